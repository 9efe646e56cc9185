"""ShallowConvNet and DeepConvNet: the EEG CNNs of Schirrmeister et al. (2017).

R. T. Schirrmeister, J. T. Springenberg, L. D. J. Fiederer, M. Glasstetter, K. Eggensperger,
M. Tangermann, F. Hutter, W. Burgard, T. Ball, "Deep learning with convolutional neural networks
for EEG decoding and visualization", Human Brain Mapping 38(11), 2017 (Fig. 1-2; the "shallow"
and "deep" ConvNets). They are two of the three EEG student architectures of the eye <-> EEG
track (the third is EEGNet, :mod:`cmkd.models.eegnet`).

Both are encoders in the sense of :mod:`cmkd.models.registry`: input ``(B, C, T)``, output
``(feat (B, out_dim), hint (B, C', T'))``; the paper's final classification layer is replaced by
the network head of :class:`cmkd.models.fusion.MultiModalNet`.

**ShallowConvNet** (paper: 250 Hz input): temporal ``Conv2d(1, F, (1, 25))`` -> spatial
``Conv2d(F, F, (C, 1))`` (no bias) -> BatchNorm -> square -> AvgPool ``(1, 75)`` stride
``(1, 15)`` -> log -> dropout 0.5; ``F = 40``. The square/mean/log chain mimics the log band
power of FBCSP. Sizes are in samples at 250 Hz; here the defaults follow the input rate
(``kernel_length = round(0.1 s * fs)``, ``pool_length = round(0.3 s * fs)``,
``pool_stride = round(0.06 s * fs)``, each at least 1), so that the receptive fields keep their
duration. The log is taken of ``max(x, 1e-6)`` (as braindecode's ``safe_log``).

**DeepConvNet** (paper: 250 Hz): block 1 temporal ``Conv2d(1, 25, (1, 10))`` -> spatial
``Conv2d(25, 25, (C, 1))`` (no bias) -> BatchNorm -> ELU -> MaxPool ``(1, 3)`` stride 3; blocks
2-4 dropout 0.5 -> ``Conv2d(n, 2n, (1, 10))`` (no bias) -> BatchNorm -> ELU -> MaxPool (1, 3)
stride 3, with 50, 100, 200 filters. The default kernel length follows the rate as well:
``max(2, round(10 * fs / 250))`` (10 samples at 250 Hz; 5 at 128 Hz; 2 at 32 Hz), so that the
four poolings fit into a 4 s segment at low rates.

``feat`` is the flattened last map; ``hint`` is that map ``(B, F, T')``.
"""
from __future__ import annotations

import torch
from torch import nn

from cmkd.models import registry


class ShallowConvNetEncoder(nn.Module):
    """Schirrmeister et al. 2017 shallow ConvNet without its classifier."""

    def __init__(self, n_channels: int, n_samples: int, sampling_rate: float, n_filters: int = 40,
                 kernel_length: int | None = None, pool_length: int | None = None,
                 pool_stride: int | None = None, dropout: float = 0.5):
        super().__init__()
        kernel_length = kernel_length or max(1, round(0.1 * sampling_rate))
        pool_length = pool_length or max(1, round(0.3 * sampling_rate))
        pool_stride = pool_stride or max(1, round(0.06 * sampling_rate))
        t_conv = n_samples - kernel_length + 1
        if t_conv < pool_length:
            raise ValueError(f"{n_samples} samples are too short for ShallowConvNet "
                             f"(kernel_length {kernel_length} + pool_length {pool_length} - 1 needed)")
        self.temporal = nn.Conv2d(1, n_filters, (1, kernel_length))
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_channels, 1), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.pool = nn.AvgPool2d((1, pool_length), stride=(1, pool_stride))
        self.dropout = nn.Dropout(dropout)
        t_out = (t_conv - pool_length) // pool_stride + 1
        self.hint_shape = (n_filters, t_out)
        self.out_dim = n_filters * t_out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.bn(self.spatial(self.temporal(x.unsqueeze(1))))  # (B, F, 1, T - k + 1)
        out = self.pool(out * out)
        out = torch.log(torch.clamp(out, min=1e-6))
        hint = self.dropout(out).squeeze(2)
        return hint.flatten(1), hint


class DeepConvNetEncoder(nn.Module):
    """Schirrmeister et al. 2017 deep ConvNet (4 conv-pool blocks) without its classifier."""

    def __init__(self, n_channels: int, n_samples: int, sampling_rate: float,
                 n_filters: tuple = (25, 50, 100, 200), kernel_length: int | None = None,
                 pool: int = 3, dropout: float = 0.5):
        super().__init__()
        k = kernel_length or max(2, round(10 * sampling_rate / 250))
        t = n_samples
        for _ in n_filters:
            t = (t - k + 1) // pool
            if t < 1:
                raise ValueError(f"{n_samples} samples are too short for DeepConvNet with kernel_length {k} "
                                 f"and {len(n_filters)} blocks of max-pool {pool}")
        f0 = n_filters[0]
        blocks = [nn.Sequential(
            nn.Conv2d(1, f0, (1, k)),
            nn.Conv2d(f0, f0, (n_channels, 1), bias=False),
            nn.BatchNorm2d(f0), nn.ELU(), nn.MaxPool2d((1, pool), stride=(1, pool)))]
        for f_in, f_out in zip(n_filters[:-1], n_filters[1:]):
            blocks.append(nn.Sequential(
                nn.Dropout(dropout), nn.Conv2d(f_in, f_out, (1, k), bias=False),
                nn.BatchNorm2d(f_out), nn.ELU(), nn.MaxPool2d((1, pool), stride=(1, pool))))
        self.blocks = nn.Sequential(*blocks)
        self.hint_shape = (n_filters[-1], t)
        self.out_dim = n_filters[-1] * t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hint = self.blocks(x.unsqueeze(1)).squeeze(2)  # (B, F, T')
        return hint.flatten(1), hint


_EEG_INPUT_PARAMS = {
    "n_channels": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "EEG channels (default: the data's)"},
    "n_samples": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "samples per segment (default: the data's)"},
    "sampling_rate": {"default": None, "lo": 0, "lo_open": True, "nullable": True, "doc": "Hz (default: the data's)"},
    "channel_names": {"default": None, "kind": "any", "doc": "channel names (default: the data's)"},
}
_DROPOUT = {"default": 0.5, "lo": 0, "hi": 1, "hi_open": True, "doc": "dropout rate"}

#: the encoders' parameters as cmkd.params.Param literals (read with ast by the config check and the
#: listing: cmkd.feasibility.encoder_params)
ENCODER_PARAMS = {
    "shallowconvnet": {
        "n_filters": {"default": 40, "kind": "int", "lo": 1, "doc": "temporal and spatial filters (Schirrmeister et al. 2017 ShallowConvNet)"},
        "kernel_length": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "temporal kernel (null: from the rate)"},
        "pool_length": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "mean-pool length (null: from the rate)"},
        "pool_stride": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "mean-pool stride (null: from the rate)"},
        "dropout": _DROPOUT, **_EEG_INPUT_PARAMS},
    "deepconvnet": {
        "n_filters": {"default": [25, 50, 100, 200], "kind": "any", "doc": "filters of the four blocks (Schirrmeister et al. 2017 DeepConvNet)"},
        "kernel_length": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "temporal kernel (null: from the rate)"},
        "pool": {"default": 3, "kind": "int", "lo": 1, "doc": "max-pool length and stride of each block"},
        "dropout": _DROPOUT, **_EEG_INPUT_PARAMS},
}


def _build_shallowconvnet(cfg, info, where, info_where):
    c = registry._merge("shallowconvnet", cfg, where)
    n_ch, n_t, fs, _, _ = registry._eeg_input(c, info, where, info_where)
    pi = registry.pos_int
    return registry._built(where, lambda: ShallowConvNetEncoder(
        n_ch, n_t, fs, n_filters=pi(c["n_filters"], f"{where}.n_filters"),
        kernel_length=pi(c["kernel_length"], f"{where}.kernel_length", allow_none=True),
        pool_length=pi(c["pool_length"], f"{where}.pool_length", allow_none=True),
        pool_stride=pi(c["pool_stride"], f"{where}.pool_stride", allow_none=True),
        dropout=registry.probability(c["dropout"], f"{where}.dropout")))


def _build_deepconvnet(cfg, info, where, info_where):
    c = registry._merge("deepconvnet", cfg, where)
    n_ch, n_t, fs, _, _ = registry._eeg_input(c, info, where, info_where)
    filters = c["n_filters"]
    if not isinstance(filters, (list, tuple)) or not filters:
        raise registry.ConfigError(f"{where}.n_filters: must be a non-empty list of positive integers, got {filters!r}")
    filters = tuple(registry.pos_int(f, f"{where}.n_filters") for f in filters)
    return registry._built(where, lambda: DeepConvNetEncoder(
        n_ch, n_t, fs, n_filters=filters,
        kernel_length=registry.pos_int(c["kernel_length"], f"{where}.kernel_length", allow_none=True),
        pool=registry.pos_int(c["pool"], f"{where}.pool"),
        dropout=registry.probability(c["dropout"], f"{where}.dropout")))


ENCODERS = {"shallowconvnet": _build_shallowconvnet, "deepconvnet": _build_deepconvnet}
