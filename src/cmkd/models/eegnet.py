"""EEGNet: a compact depthwise-separable CNN for EEG.

V. J. Lawhern, A. J. Solon, N. R. Waytowich, S. M. Gordon, C. P. Hung, B. J. Lance, "EEGNet: a
compact convolutional neural network for EEG-based brain-computer interfaces", Journal of Neural
Engineering 15(5), 2018 (Table 2, EEGNet-F1,D with F2 = F1 * D; EEGNet-8,2 by default):

- block 1: ``Conv2d(1, F1, (1, kernel_length))`` ("same" padding, no bias), batch norm;
  depthwise ``Conv2d(F1, D * F1, (C, 1), groups=F1)`` (no bias, max-norm 1 on each kernel),
  batch norm, ELU, AvgPool ``(1, 4)``, dropout;
- block 2: separable conv = depthwise ``Conv2d(D * F1, D * F1, (1, sep_kernel_length))`` +
  pointwise ``Conv2d(D * F1, F2, 1)`` (no bias), batch norm, ELU, AvgPool ``(1, 8)``, dropout;
- flatten: ``feat`` has ``F2 * (T // 32)`` dimensions.

Batch norm as the reference implementation (the Army Research Lab's ``EEGModels.py``, Keras
``BatchNormalization()`` with its defaults ``epsilon = 1e-3``, ``momentum = 0.99``): :data:`BN_EPS`
1e-3 and :data:`BN_MOMENTUM` 0.01. The two frameworks define momentum oppositely: Keras updates
``moving = momentum * moving + (1 - momentum) * batch`` (0.99 keeps 99 % of the old value), PyTorch
``running = (1 - momentum) * running + momentum * batch``, so Keras' 0.99 is PyTorch's 0.01 (as
braindecode's ``EEGNetv4``: ``BatchNorm2d(..., momentum=0.01, eps=1e-3)``). PyTorch's defaults
(eps 1e-5, momentum 0.1) would weight each batch ten times more in the running statistics.

The paper's kernel lengths are half a second for the temporal conv (64 at 128 Hz) and 16 samples
at the 4x-pooled rate for the separable conv (an eighth of a second of the input rate). Dropout is
0.5 within subject and 0.25 across subjects in the paper. The paper's dense layer (max-norm 0.25)
is replaced by the network head of :class:`cmkd.models.fusion.MultiModalNet`. The ``hint`` is the
block-2 map before flattening, ``(B, F2, T // 32)``.
"""
from __future__ import annotations

import torch
from torch import nn


#: batch-norm epsilon of the reference implementation (Keras' default, EEGModels.py)
BN_EPS = 1e-3
#: PyTorch momentum of the running statistics: 1 - Keras' default momentum 0.99 (EEGModels.py)
BN_MOMENTUM = 0.01


def _bn(n: int) -> nn.BatchNorm2d:
    """EEGNet's batch norm with the reference implementation's constants (module docstring)."""
    return nn.BatchNorm2d(n, eps=BN_EPS, momentum=BN_MOMENTUM)


def _same_pad(kernel_length: int) -> nn.ZeroPad2d:
    """Keras' "same" padding along time: ``k - 1`` zeros, the extra one (even ``k``) after."""
    before = (kernel_length - 1) // 2
    return nn.ZeroPad2d((before, kernel_length - 1 - before, 0, 0))


class MaxNormConv2d(nn.Conv2d):
    """A Conv2d whose every output kernel is renormed to an L2 norm of at most ``max_norm``.

    As Keras' ``max_norm`` constraint, the projection is applied to the stored weights (outside
    autograd) before each forward, i.e. after each optimiser update.
    """

    def __init__(self, *args, max_norm: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_norm = max_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.weight.data = torch.renorm(self.weight.data, p=2, dim=0, maxnorm=self.max_norm)
        return super().forward(x)


class EEGNetEncoder(nn.Module):
    """EEGNet-F1,D without its dense layer; input (B, C, T), output ``(feat, hint)``."""

    def __init__(self, n_channels: int, n_samples: int, sampling_rate: float, F1: int = 8,
                 D: int = 2, F2: int | None = None, kernel_length: int | None = None,
                 sep_kernel_length: int | None = None, dropout: float = 0.5):
        super().__init__()
        F2 = F1 * D if F2 is None else F2
        kernel_length = kernel_length or max(1, int(sampling_rate * 0.5))
        sep_kernel_length = sep_kernel_length or max(1, int(sampling_rate / 8))
        if n_samples // 32 < 1:
            raise ValueError(f"{n_samples} samples are too short for EEGNet (needs at least 32)")
        self.block1 = nn.Sequential(
            _same_pad(kernel_length),
            nn.Conv2d(1, F1, (1, kernel_length), bias=False),
            _bn(F1),
            MaxNormConv2d(F1, F1 * D, (n_channels, 1), groups=F1, bias=False, max_norm=1.0),
            _bn(F1 * D),
            nn.ELU(),
            nn.AvgPool2d((1, 4)),
            nn.Dropout(dropout),
        )
        self.block2 = nn.Sequential(
            _same_pad(sep_kernel_length),
            nn.Conv2d(F1 * D, F1 * D, (1, sep_kernel_length), groups=F1 * D, bias=False),
            nn.Conv2d(F1 * D, F2, 1, bias=False),
            _bn(F2),
            nn.ELU(),
            nn.AvgPool2d((1, 8)),
            nn.Dropout(dropout),
        )
        self.hint_shape = (F2, (n_samples // 4) // 8)
        self.out_dim = F2 * self.hint_shape[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.block2(self.block1(x.unsqueeze(1)))  # (B, F2, 1, T // 32)
        hint = out.squeeze(2)
        return hint.flatten(1), hint
