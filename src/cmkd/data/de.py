"""Differential entropy (DE) of band-passed EEG, the feature the SEED family ships precomputed.

The SEED data sets (BCMI, Shanghai Jiao Tong University) describe their features as: EEG
down-sampled to 200 Hz, DE per channel in five bands (delta 1-4 Hz, theta 4-8 Hz, alpha 8-14 Hz,
beta 14-31 Hz, gamma 31-50 Hz) on non-overlapping windows (1 s for SEED, 4 s for SEED-IV and
SEED-V), under a Gaussian assumption, ``DE = 0.5 * log(2 * pi * e * sigma^2)`` with ``sigma^2``
the variance of the band-passed signal in the window. The shipped features are then smoothed
(moving average or a linear dynamic system, the ``de_movingAve`` / ``de_LDS`` keys); this module
computes the unsmoothed DE.

Choices the data sets' pages leave open, each a parameter of :func:`differential_entropy`:

- ``filter_order`` (4): a Butterworth band-pass, applied forward and backward over the whole
  trial (zero phase, so the band's energy stays in its window) before windowing;
- the last, incomplete window of a trial is dropped (the shipped features keep
  ``floor(duration / window)`` windows as well).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from cmkd.errors import ConfigError, DataError

SEED_BANDS: tuple[tuple[float, float], ...] = ((1.0, 4.0), (4.0, 8.0), (8.0, 14.0), (14.0, 31.0), (31.0, 50.0))
BAND_NAMES = ["delta", "theta", "alpha", "beta", "gamma"]


def gaussian_de(variance: np.ndarray) -> np.ndarray:
    """``0.5 * log(2 * pi * e * variance)``: the differential entropy of a Gaussian of that variance."""
    v = np.asarray(variance, dtype=np.float64)
    return 0.5 * np.log(2.0 * math.pi * math.e * np.maximum(v, np.finfo(np.float64).tiny))


def window_count(n_samples: int, sfreq: float, window_seconds: float) -> int:
    return int(n_samples // int(round(sfreq * window_seconds)))


def differential_entropy(x: np.ndarray, sfreq: float, window_seconds: float,
                         bands: Sequence[tuple[float, float]] = SEED_BANDS, filter_order: int = 4,
                         where: str = "EEG") -> np.ndarray:
    """DE of ``x`` (channels, samples) per window and band: array (windows, channels, bands).

    Each band is a zero-phase Butterworth band-pass of order ``filter_order`` (``sosfiltfilt``)
    over the whole trial; the filtered signal is cut into non-overlapping windows of
    ``window_seconds`` and :func:`gaussian_de` of each window's variance is taken.
    """
    from scipy.signal import butter, sosfiltfilt  # lazy: optional (scipy.signal costs ~0.9 s; the planner imports this module)

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"{where}: expected (channels, samples), got shape {x.shape}")
    if window_seconds <= 0 or sfreq <= 0:
        raise ConfigError(f"{where}: window_seconds and the sampling rate must be > 0, got {window_seconds}, {sfreq}")
    w = int(round(sfreq * window_seconds))
    n_win = x.shape[1] // w
    out = np.empty((n_win, x.shape[0], len(bands)), dtype=np.float64)
    if n_win == 0:
        return out
    nyq = sfreq / 2.0
    for b, (lo, hi) in enumerate(bands):
        if not 0 < lo < hi < nyq:
            raise ConfigError(f"{where}: band {lo}-{hi} Hz must lie inside (0, {nyq}) Hz at {sfreq} Hz")
        sos = butter(int(filter_order), [lo, hi], btype="bandpass", fs=sfreq, output="sos")
        y = sosfiltfilt(sos, x, axis=1)[:, :n_win * w]
        var = y.reshape(x.shape[0], n_win, w).var(axis=2)  # (channels, windows)
        out[:, :, b] = gaussian_de(var).T
    return out


def signal_windows(x: np.ndarray, sfreq: float, window_seconds: float) -> np.ndarray:
    """Non-overlapping windows of ``x`` (channels, samples): array (windows, channels, window samples)."""
    w = int(round(sfreq * window_seconds))
    n_win = x.shape[1] // w
    return np.ascontiguousarray(x[:, :n_win * w].reshape(x.shape[0], n_win, w).transpose(1, 0, 2))
