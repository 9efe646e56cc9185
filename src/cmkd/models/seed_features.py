"""Encoders of pre-computed EEG features: SEED-IV differential entropy (``eeg_de``).

SEED-IV (Zheng et al. 2019, "EmotionMeter") ships the differential entropy (DE) of each of the 62
channels in five bands (delta, theta, alpha, beta, gamma) per 4 s window: an array ``(62, 5)``
per segment. CMCRD's SEED-IV track (arXiv 2504.09221) distils an eye-movement teacher into a
student on these features.

``de_mlp`` (documented choice; the CMCRD text does not fix a DE network):

1. a band embedding shared by all channels: ``Linear(5, band_dim)`` + ReLU on each channel's
   five DE values (a 1x1 convolution over channels), giving the ``hint`` ``(B, band_dim, 62)``;
2. flatten ``(B, 62 * band_dim)`` -> BatchNorm1d -> one ``Linear -> BatchNorm1d -> ReLU`` block
   per entry of ``hidden``, with dropout between blocks (as :class:`cmkd.models.eye.EyeMLPEncoder`).

``feat``: the last block's output ``(B, hidden[-1])``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cmkd.models import registry
from cmkd.models.eye import NormMLP


class DEMLPEncoder(NormMLP):
    """Band embedding per channel, then an MLP; input ``(B, n_channels, n_bands)``."""

    def __init__(self, n_channels: int = 62, n_bands: int = 5, band_dim: int = 16,
                 hidden: Sequence[int] = (128, 64), dropout: float = 0.25):
        band = nn.Sequential(nn.Linear(n_bands, band_dim), nn.ReLU())  # built first: same initialisation order
        super().__init__(n_channels * band_dim, hidden, dropout)
        self.band = band
        self.hint_shape = (band_dim, n_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.band(x)  # (B, C, band_dim)
        out, _ = self.mlp(e.flatten(1))
        return out, e.transpose(1, 2)  # hint (B, band_dim, C)


#: the encoder's parameters as cmkd.params.Param literals (read with ast by the config check and the
#: listing: cmkd.feasibility.encoder_params)
ENCODER_PARAMS = {"de_mlp": {
    "band_dim": {"default": 16, "kind": "int", "lo": 1, "doc": "features per channel after the shared band layer"},
    "hidden": {"default": [128, 64], "kind": "any", "doc": "hidden layer sizes"},
    "dropout": {"default": 0.25, "lo": 0, "hi": 1, "hi_open": True, "doc": "dropout rate"},
}}


def _build_de_mlp(cfg, info, where, info_where):
    c = registry._merge("de_mlp", cfg, where)
    n_ch, n_bands = registry._shape(info, 2, info_where, "channels, bands")
    hidden = c["hidden"]
    if registry._is_int(hidden):
        hidden = [hidden]
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise registry.ConfigError(f"{where}.hidden: must be a non-empty list of positive integers, got {hidden!r}")
    hidden = [registry.pos_int(h, f"{where}.hidden") for h in hidden]
    return registry._built(where, lambda: DEMLPEncoder(
        n_ch, n_bands, band_dim=registry.pos_int(c["band_dim"], f"{where}.band_dim"), hidden=hidden,
        dropout=registry.probability(c["dropout"], f"{where}.dropout")))


ENCODERS = {"de_mlp": _build_de_mlp}
