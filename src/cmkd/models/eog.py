"""EOG encoder: a small 1-D CNN over the two EOG derivations (horizontal, vertical).

Input ``(B, 2, T)``. ``depth`` blocks of ``Conv1d(k odd, length-preserving) -> BatchNorm1d -> ReLU ->
MaxPool1d(2)``, the channel count starting at ``width`` and doubling per block, with dropout
between blocks (not after the last: the network head has its own); then global average pooling
over time. ``feat``: ``(B, width * 2**(depth-1))``; ``hint``: the last block's
map ``(B, width * 2**(depth-1), T // 2**depth)``.
"""
from __future__ import annotations

import torch
from torch import nn


class EOGCNNEncoder(nn.Module):
    """A 1-D CNN for (B, C, T) signals (C = 2 for EOG); output ``(feat, hint)``."""

    def __init__(self, n_channels: int = 2, n_samples: int | None = None, width: int = 16,
                 depth: int = 3, kernel_size: int = 7, dropout: float = 0.25):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if n_samples is not None and n_samples // 2 ** depth < 1:
            raise ValueError(f"{n_samples} samples are too short for {depth} pooling blocks")
        blocks, c_in = [], n_channels
        for i in range(depth):
            c_out = width * 2 ** i
            if i > 0:
                blocks.append(nn.Dropout(dropout))
            blocks += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2,
                                 bias=False),
                       nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(2)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hint = self.blocks(x)
        return hint.mean(dim=-1), hint
