"""The trainable part of the face encoder with frozen features (``encoders.face.frozen: true``).

CDGKD (seed 001, §4.3) *extracts* the visual features with PVT, and its authors' code reads
precomputed per-frame features. With ``frozen: true`` the workflow's extraction job (rule
``frame_features``) extracts them once per prepared data set and encoder settings with the
pretrained timm backbone (:mod:`cmkd.run.frame_features`: one pooled vector per frame, ``(N, F, D)``,
cached under ``results/frame_features/``) and the training job hands the network these features in place of the frames; the
backbone is in no network and in no optimiser. :class:`FrozenFeatureHead` is what trains on top:

    per frame:  LayerNorm(D) -> Linear(D, hidden) -> GELU      ((B, F, D) -> (B, F, hidden))
    feat:       mean over the F frames                        ((B, hidden); ``out_dim = hidden``)
    hint:       the per-frame hidden map, channels first      ((B, hidden, F))

The hint. With frozen features the backbone's maps are constants (no gradient reaches the
student through them: FitNets would train only its regressor and NST nothing), so the hint of
a frozen encoder is the head's per-frame hidden layer, the only trainable intermediate layer:
a map of ``hidden`` channels over the F frames (the frames are its positions), which the hint
methods (FitNets, NST; :func:`cmkd.methods.zoo_common.match_spatial`) read like any other
``(B, C, N)`` map. ``hint_stage`` (a backbone stage) has no meaning here and is refused.

:attr:`FrozenFeatureHead.weights` is the extraction's provenance (architecture, weights source
and sha256, the cache key), written to ``metrics.json`` as the fine-tuned encoder's is.
"""
from __future__ import annotations

import torch
from torch import nn


class FrozenFeatureHead(nn.Module):
    """A small trainable head on cached per-frame features; input ``(B, F, D)``, output ``(feat, hint)``."""

    def __init__(self, in_dim: int, hidden: int = 256, provenance: dict | None = None):
        super().__init__()
        self.in_dim, self.out_dim = int(in_dim), int(hidden)
        self.norm = nn.LayerNorm(self.in_dim)
        self.proj = nn.Linear(self.in_dim, self.out_dim)
        self.act = nn.GELU()
        #: provenance of the frozen features (written to metrics.json by the training loop)
        self.weights = dict(provenance or {})

    def frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(per-frame vectors (B, F, hidden), hint (B, hidden, F))``."""
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected cached frame features (B, F, {self.in_dim}), got shape {tuple(x.shape)}"
                             " (encoders.face.frozen: the training job replaces the frames by their features)")
        per_frame = self.act(self.proj(self.norm(x.float())))
        return per_frame, per_frame.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_frame, hint = self.frames(x)
        return per_frame.mean(dim=1), hint
