"""Targets from ratings: binary high/low classes, regression targets in [0, 1], SEED-IV emotion classes.

Ratings are DEAP-style self-assessments on a 1-9 scale. Following common DEAP practice
("a rating > 5 is high"), a rating of exactly 5.0 (the threshold) is **low** (class 0).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from cmkd.errors import ConfigError, DataError

DIMENSIONS = ("valence", "arousal", "dominance", "liking")
EMOTION = "emotion"  # SEED-family class label, array "label" (SEED 3, SEED-IV 4, SEED-V 5 classes)
TASKS = ("classification", "regression")


def _check_ratings(ratings: Any, dimension: str) -> np.ndarray:
    r = np.asarray(ratings)
    if r.dtype.kind not in "iuf":
        raise DataError(f"{dimension}: ratings must be numeric, got dtype {r.dtype}")
    r = r.astype(np.float64, copy=False)
    bad = ~(np.isfinite(r) & (r >= 1.0) & (r <= 9.0))
    if bad.any():
        i = np.argwhere(bad)[0]
        where = int(i[0]) if i.size == 1 else tuple(int(k) for k in i)
        raise DataError(f"{dimension}: rating {float(r[tuple(i)])} at index {where} is outside [1, 9] (or not finite)")
    return r


def binary(ratings: np.ndarray, threshold: float = 5.0, dimension: str = "rating") -> np.ndarray:
    """1 (high) where rating > ``threshold``, else 0 (low), as int64; a rating equal to the threshold is low.

    Raises :class:`DataError` naming ``dimension`` and the first rating that is NaN/inf or outside [1, 9].
    """
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = float("nan")
    if isinstance(threshold, bool) or not np.isfinite(t):
        raise ConfigError(f"threshold: must be a finite number, got {threshold!r}")
    r = _check_ratings(ratings, dimension)
    return (r > t).astype(np.int64)


def regression(ratings: np.ndarray, dimension: str = "rating") -> np.ndarray:
    """Ratings mapped linearly from [1, 9] to [0, 1] as float32: ``(r - 1) / 8``."""
    r = _check_ratings(ratings, dimension)
    return ((r - 1.0) / 8.0).astype(np.float32)


def targets(prepared_or_mapping: Any, dimension: str, task: str, threshold: float = 5.0) -> np.ndarray:
    """Targets of ``task`` for ``dimension`` from a :class:`~cmkd.data.prepared.Prepared` or a mapping of arrays.

    ``dimension`` is one of valence/arousal/dominance/liking (the rating array of that name), or
    ``"emotion"`` (the SEED-IV ``label`` array, returned as int64 classes; classification only).
    A missing array raises :class:`DataError` naming the dimension and the arrays available.
    """
    if task not in TASKS:
        raise ConfigError(f"task: unknown task {task!r} (choose from {list(TASKS)})")
    if dimension not in DIMENSIONS and dimension != EMOTION:
        raise ConfigError(f"dimension: unknown dimension {dimension!r} (choose from {list(DIMENSIONS) + [EMOTION]})")
    name = "label" if dimension == EMOTION else dimension
    if name not in prepared_or_mapping:
        if hasattr(prepared_or_mapping, "names"):
            available = list(prepared_or_mapping.names)
        elif isinstance(prepared_or_mapping, Mapping):
            available = sorted(prepared_or_mapping)
        else:
            available = []
        raise DataError(f"dimension '{dimension}': the data have no array '{name}' (arrays: {available})")
    values = np.asarray(prepared_or_mapping[name])
    if dimension == EMOTION:
        if task != "classification":
            raise ConfigError(f"task: dimension 'emotion' is categorical; task must be 'classification', got {task!r}")
        if values.dtype.kind not in "iu":
            raise DataError(f"dimension 'emotion': array 'label' must hold integers, got dtype {values.dtype}")
        if values.size and values.min() < 0:
            i = int(np.argmin(values))
            raise DataError(f"dimension 'emotion': array 'label' has negative class {int(values[i])} at index {i}")
        return np.array(values, dtype=np.int64)
    if task == "classification":
        return binary(values, threshold=threshold, dimension=dimension)
    return regression(values, dimension=dimension)
