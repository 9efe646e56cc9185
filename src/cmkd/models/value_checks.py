"""Checks of the values of encoder, head and architecture settings: each returns the value
(converted) or raises :class:`cmkd.errors.ConfigError` naming the key. Shared by the encoder
registry (:mod:`cmkd.models.registry`), the fusion network and the architecture modules."""
from __future__ import annotations

from cmkd.errors import ConfigError


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def pos_int(v, key: str, allow_none: bool = False, minimum: int = 1):
    """``v`` if it is an integer >= ``minimum`` (or None when allowed), else ConfigError."""
    if v is None and allow_none:
        return None
    if not _is_int(v) or v < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{key}: must be {what}{' or null' if allow_none else ''}, got {v!r}")
    return int(v)


def probability(v, key: str) -> float:
    """A dropout rate in [0, 1)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ConfigError(f"{key}: must be a number in [0, 1), got {v!r}")
    return float(v)


def pos_number(v, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise ConfigError(f"{key}: must be a positive number, got {v!r}")
    return float(v)
