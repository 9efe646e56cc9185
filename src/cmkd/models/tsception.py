"""TSception: a multi-scale temporal and hemispheric-asymmetry spatial CNN for EEG.

Y. Ding, N. Robinson, S. Zhang, Q. Zeng, C. Guan, "TSception: Capturing temporal dynamics and
spatial asymmetry from EEG for emotion recognition", IEEE Transactions on Affective Computing,
2022. The layers follow the authors' released network (class ``TSception``) layer for layer:

- three temporal branches ``Conv2d(1, num_T, (1, k))`` with ``k = int(w * fs)`` for
  ``w`` in (0.5, 0.25, 0.125), each followed by LeakyReLU and AvgPool ``(1, 8)``; the branch
  outputs are concatenated along time and batch-normalised;
- two spatial branches on that map: ``Conv2d(num_T, num_S, (C, 1))`` over all channels and
  ``Conv2d(num_T, num_S, (C/2, 1), stride (C/2, 1))`` over each hemisphere, each followed by
  LeakyReLU and AvgPool ``(1, int(8 * 0.25)) = (1, 2)``; concatenated along the channel axis
  (3 rows) and batch-normalised;
- a fusion ``Conv2d(num_S, num_S, (3, 1))``, LeakyReLU, AvgPool ``(1, 4)``, batch norm;
- the mean over time gives a ``num_S``-d vector.

The paper's classifier (``Linear(num_S, hidden) -> ReLU -> Dropout -> Linear``) is *not* part of
this encoder: it is exactly the head of :class:`cmkd.models.fusion.MultiModalNet` (set the head's
``hidden`` to 32 and ``dropout`` to 0.5 for the paper), so the unimodal network is the paper's
network. The encoder's ``feat`` is the ``num_S``-d pooled vector, unless ``hidden`` is given, in
which case an extra ``Linear(num_S, hidden) -> ReLU -> Dropout`` projection produces ``feat``.
The ``hint`` is the fused feature map after its batch norm, ``(B, num_S, L)``.

The hemisphere kernel assumes the rows are ordered "left-hemisphere channels, then their
right-hemisphere mirror partners in the same order": :func:`hemisphere_order` derives that order
from 10-20 channel names (odd number = left, even = right, ``z`` = midline). The paper drops the
midline channels (DEAP: Fz, Cz, Pz, Oz; 32 -> 28 channels); ``midline="both"`` instead appends the
midline channels to both halves, so each hemisphere kernel sees them.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from cmkd.errors import ConfigError

INCEPTION_WINDOWS = (0.5, 0.25, 0.125)  # temporal kernel lengths in seconds
POOL = 8  # temporal pooling after the temporal branches
SPATIAL_POOL = int(POOL * 0.25)  # 2, as int(self.pool*0.25) in the released code
FUSION_POOL = 4
MIDLINE_MODES = ("drop", "both")

# DEAP's 32 EEG channels in the Geneva order of the preprocessed files (s01.dat ... s32.dat).
DEAP_CHANNELS = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
)

_NAME = re.compile(r"^([A-Za-z]+?)([1-9]\d*|[zZ])$")
# electrode-row prefixes of the 10-20 / 10-10 / 10-5 systems (plus CB for cerebellar sites, A and
# M for ear and mastoid references), upper case
TEN_TWENTY_PREFIXES = frozenset({
    "N", "FP", "AFP", "AF", "AFF", "F", "FFC", "FFT", "FC", "FCC", "FT", "FTT", "C", "CCP", "CP",
    "CPP", "T", "TTP", "TP", "TPP", "P", "PPO", "PO", "POO", "O", "OI", "I", "CB", "A", "M",
})


def _split_name(name: str) -> tuple[str, str]:
    m = _NAME.match(name.strip())
    if not m or m.group(1).upper() not in TEN_TWENTY_PREFIXES:
        raise ValueError(name)
    return m.group(1).upper(), m.group(2).upper()


def hemisphere_order(names: Sequence[str], midline: str = "drop",
                     where: str = "inputs.eeg.channel_names") -> list[int]:
    """Indices that reorder ``names`` to "left hemisphere, then mirror partners on the right".

    Left channels (odd number) keep their order; the right half lists each left channel's
    partner (number + 1, same letters, case-insensitive), so row ``i`` of the left half and row
    ``i`` of the right half are mirror images. Midline channels (``z``) are dropped
    (``midline="drop"``, the paper's 28-channel DEAP setup) or appended to both halves
    (``midline="both"``; they then appear twice). Raises :class:`ConfigError` naming ``where``
    and the channel when a name is not a 10-20 name or has no mirror partner.
    """
    if midline not in MIDLINE_MODES:
        raise ConfigError(f"{where}: midline must be one of {list(MIDLINE_MODES)}, got {midline!r}")
    parsed = {}
    for i, name in enumerate(names):
        try:
            letters, num = _split_name(str(name))
        except ValueError:
            raise ConfigError(
                f"{where}: channel {name!r} is not a 10-20 name (letters + number or 'z'); "
                f"set reorder: false to keep the input order") from None
        if (letters, num) in parsed:
            raise ConfigError(f"{where}: channel {name!r} appears twice")
        parsed[(letters, num)] = i
    left, right, mid = [], [], []
    for (letters, num), i in parsed.items():
        if num == "Z":
            mid.append(i)
        elif int(num) % 2 == 1:
            partner = (letters, str(int(num) + 1))
            if partner not in parsed:
                raise ConfigError(f"{where}: left channel {names[i]!r} has no right partner "
                                  f"'{letters}{int(num) + 1}'")
            left.append(i)
            right.append(parsed[partner])
        else:
            partner = (letters, str(int(num) - 1))
            if partner not in parsed:
                raise ConfigError(f"{where}: right channel {names[i]!r} has no left partner "
                                  f"'{letters}{int(num) - 1}'")
    order_left = sorted(range(len(left)), key=lambda k: left[k])
    left = [left[k] for k in order_left]
    right = [right[k] for k in order_left]
    mid.sort()
    if midline == "both":
        return left + mid + right + mid
    return left + right


def _conv_block(in_chan: int, out_chan: int, kernel, stride, pool: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chan, out_chan, kernel_size=kernel, stride=stride),
        nn.LeakyReLU(),
        nn.AvgPool2d(kernel_size=(1, pool), stride=(1, pool)),
    )


def tsception_lengths(n_samples: int, sampling_rate: float) -> tuple[int, int, int]:
    """Time lengths after the temporal block, the spatial pooling and the fusion pooling."""
    kernels = [int(w * sampling_rate) for w in INCEPTION_WINDOWS]
    t = sum(max(0, (n_samples - k + 1) // POOL) for k in kernels)
    s = t // SPATIAL_POOL
    return t, s, s // FUSION_POOL  # the (3, 1) fusion kernel spans rows only


class TSceptionEncoder(nn.Module):
    """TSception up to its pooled ``num_S``-d vector; input (B, C, T), output ``(feat, hint)``.

    ``channel_order``: indices into the input's channel axis giving the rows the network sees
    (see :func:`hemisphere_order`); ``None`` uses the input order as given.
    """

    def __init__(self, n_channels: int, n_samples: int, sampling_rate: float, num_T: int = 15,
                 num_S: int = 15, channel_order: Sequence[int] | None = None,
                 hidden: int | None = None, dropout: float = 0.5):
        super().__init__()
        kernels = [int(w * sampling_rate) for w in INCEPTION_WINDOWS]
        if min(kernels) < 1:
            raise ValueError(f"sampling_rate {sampling_rate} too low for TSception's kernels")
        if channel_order is not None:
            channel_order = [int(i) for i in channel_order]
            if any(i < 0 or i >= n_channels for i in channel_order):
                raise ValueError("channel_order index out of range")
            self.register_buffer("channel_order", torch.tensor(channel_order, dtype=torch.long),
                                 persistent=False)
            rows = len(channel_order)
        else:
            self.channel_order = None
            rows = n_channels
        if rows < 2 or rows == 3:
            # the hemisphere kernel must yield exactly 2 rows for the (3, 1) fusion kernel
            raise ValueError(f"TSception needs 2 or at least 4 channel rows, got {rows}")
        t_len, s_len, f_len = tsception_lengths(n_samples, sampling_rate)
        if min((n_samples - k + 1) // POOL for k in kernels) < 1 or f_len < 1:
            raise ValueError(f"{n_samples} samples at {sampling_rate} Hz are too short for TSception")
        self.n_channels, self.n_samples, self.rows = n_channels, n_samples, rows
        half = int(rows * 0.5)
        self.Tception1 = _conv_block(1, num_T, (1, kernels[0]), 1, POOL)
        self.Tception2 = _conv_block(1, num_T, (1, kernels[1]), 1, POOL)
        self.Tception3 = _conv_block(1, num_T, (1, kernels[2]), 1, POOL)
        self.Sception1 = _conv_block(num_T, num_S, (rows, 1), 1, SPATIAL_POOL)
        self.Sception2 = _conv_block(num_T, num_S, (half, 1), (half, 1), SPATIAL_POOL)
        self.fusion_layer = _conv_block(num_S, num_S, (3, 1), 1, FUSION_POOL)
        self.BN_t = nn.BatchNorm2d(num_T)
        self.BN_s = nn.BatchNorm2d(num_S)
        self.BN_fusion = nn.BatchNorm2d(num_S)
        if hidden:
            self.project = nn.Sequential(nn.Linear(num_S, hidden), nn.ReLU(), nn.Dropout(dropout))
            self.out_dim = hidden
        else:
            self.project = None
            self.out_dim = num_S
        self.hint_shape = (num_S, f_len)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channel_order is not None:
            x = x.index_select(1, self.channel_order)
        x = x.unsqueeze(1)  # (B, 1, C, T)
        out = torch.cat((self.Tception1(x), self.Tception2(x), self.Tception3(x)), dim=-1)
        out = self.BN_t(out)
        out = torch.cat((self.Sception1(out), self.Sception2(out)), dim=2)
        out = self.BN_s(out)
        out = self.BN_fusion(self.fusion_layer(out))  # (B, num_S, 1, L)
        hint = out.squeeze(2)
        feat = hint.mean(dim=-1)
        if self.project is not None:
            feat = self.project(feat)
        return feat, hint
