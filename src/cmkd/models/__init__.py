"""Encoders and multimodal networks. Every model returns :class:`Output` (logits + features)."""
from cmkd.models.base import Output

__all__ = ["Output"]
