"""Eye-movement encoder: an MLP over the 31 eye-tracking features of a segment.

Input ``(B, 31)`` (pupil, fixation, saccade, blink statistics, on very different scales), so the
input first passes a ``BatchNorm1d``; then one ``Linear -> BatchNorm1d -> ReLU`` block per entry
of ``hidden``, with dropout between blocks (not after the last: the network head has its own).
``feat``: the last block's output ``(B, hidden[-1])``; ``hint``: the first block's output
``(B, hidden[0])`` (the same as ``feat`` with a single hidden layer).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class NormMLP(nn.Module):
    """``BatchNorm1d`` on the input, then one ``Linear -> BatchNorm1d -> ReLU`` block per entry of
    ``hidden`` with dropout between blocks (not after the last). :meth:`mlp` returns the last
    block's output and the first block's output. Shared by the eye and DE feature encoders."""

    def __init__(self, d_in: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        if not hidden:
            raise ValueError("hidden must list at least one layer size")
        self.input_norm = nn.BatchNorm1d(d_in)
        blocks = []
        for d in hidden:
            blocks.append(nn.Sequential(nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU()))
            d_in = d
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = d_in

    def mlp(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = out = self.blocks[0](self.input_norm(x))
        for block in self.blocks[1:]:
            out = block(self.dropout(out))
        return out, first


class EyeMLPEncoder(NormMLP):
    """An MLP with batch norm for (B, n_features) vectors; output ``(feat, hint)``."""

    def __init__(self, n_features: int = 31, hidden: Sequence[int] = (64, 32),
                 dropout: float = 0.25):
        super().__init__(n_features, hidden, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(x)
