"""The output type every model returns, so feature-based KD needs no hooks into foreign code."""
from __future__ import annotations

from typing import NamedTuple

import torch


class Output(NamedTuple):
    """``logits``: (B, n_outputs); ``features``: named tensors.

    Conventions for feature names:
    - ``embedding``: (B, D) the penultimate representation the head reads (used by SP, RKD, PKT, CRD);
    - ``hint``: an intermediate feature map (B, C, ...) (used by FitNets, NST);
    - one entry per modality name (``eeg``, ``face``, ``eog``, ``eye``): that encoder's (B, D_m)
      output, used by modality-aware methods (prototype rebalancing, fusion features).
    """

    logits: torch.Tensor
    features: dict
