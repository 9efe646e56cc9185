"""Cutting continuous recordings into non-overlapping fixed-length segments (4 s by default)."""
from __future__ import annotations

import numpy as np

from cmkd.errors import DataError


def segment_length(sampling_rate: float, seconds: float = 4.0) -> int:
    n = int(round(sampling_rate * seconds))
    if n <= 0:
        raise DataError(f"segment of {seconds} s at {sampling_rate} Hz has no samples")
    return n


def segment_signal(x: np.ndarray, sampling_rate: float, seconds: float = 4.0, where: str = "signal") -> np.ndarray:
    """Cut ``x`` of shape (C, T) into (n, C, L) windows of ``seconds``; a trailing partial window is dropped.

    ``where`` names the source (file, trial) in the error raised when the signal is shorter than one window.
    """
    if x.ndim != 2:
        raise DataError(f"{where}: expected a (channels, samples) array, got shape {x.shape}")
    L = segment_length(sampling_rate, seconds)
    n = x.shape[1] // L
    if n == 0:
        raise DataError(f"{where}: {x.shape[1]} samples is shorter than one {seconds} s segment ({L} samples)")
    return np.ascontiguousarray(x[:, : n * L].reshape(x.shape[0], n, L).transpose(1, 0, 2))


def id_columns(n: int, subject: int, trial: int, ratings) -> dict[str, np.ndarray]:
    """The per-row columns of ``n`` segments of one trial: ``subject``, ``trial``, ``segment``
    (0..n-1) and one float32 column per ``(name, value)`` of ``ratings``."""
    out = {"subject": np.full(n, subject, np.int64), "trial": np.full(n, trial, np.int64),
           "segment": np.arange(n, dtype=np.int64)}
    for name, value in ratings:
        out[name] = np.full(n, value, np.float32)
    return out
