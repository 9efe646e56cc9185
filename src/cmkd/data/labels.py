"""Targets from ratings: binary high/low classes, regression targets in [0, 1], SEED-IV emotion classes.

Ratings are DEAP-style self-assessments on a 1-9 scale, split at a threshold (5 by default).
Which side a rating *equal* to the threshold falls on is a per-dimension choice, ``tie``:

- ``"low"`` (default): high = rating > threshold, so 5.0 is low (the DEAP paper's "> 5" rule);
- ``"high"``: high = rating >= threshold, so 5.0 is high (TorchEEG's ``>= 5`` convention).

Integer-rated data sets (MAHNOB-HCI's 1-9 scales) put many ratings exactly on 5, so the choice
moves whole trials between the classes. :func:`high_side` is the one place the rule lives; any
code that splits values at a threshold (class balance, regression bins) should call it.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from cmkd.errors import ConfigError, DataError

DIMENSIONS = ("valence", "arousal", "dominance", "liking")
EMOTION = "emotion"  # SEED-family class label, array "label" (SEED 3, SEED-IV 4, SEED-V 5 classes)
TASKS = ("classification", "regression")
TIES = ("low", "high")


def check_tie(tie: Any, where: str = "tie") -> str:
    """Return ``tie`` when it is one of :data:`TIES`, else raise :class:`ConfigError` naming ``where``."""
    if tie not in TIES:
        raise ConfigError(f"{where}: must be one of {list(TIES)} (the side a value equal to the threshold falls on), "
                          f"got {tie!r}")
    return tie


def high_side(values: Any, threshold: float, tie: str = "low") -> np.ndarray:
    """Boolean array: True where ``values`` lie on the high side of ``threshold``.

    ``tie="low"``: ``values > threshold``; ``tie="high"``: ``values >= threshold``. No range
    check, so it serves ratings, targets scaled to [0, 1] and bin edges alike.
    """
    check_tie(tie)
    v = np.asarray(values)
    return v >= threshold if tie == "high" else v > threshold


def tie_rule(threshold: float = 5.0, tie: str = "low") -> str:
    """The rule in words, for captions and reports: ``"rating > 5 is high (5 is low)"``."""
    check_tie(tie)
    op = ">=" if tie == "high" else ">"
    return f"rating {op} {threshold:g} is high ({threshold:g} is {tie})"


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


def binary(ratings: np.ndarray, threshold: float = 5.0, dimension: str = "rating", tie: str = "low") -> np.ndarray:
    """1 (high) / 0 (low) as int64, split by :func:`high_side`; a rating equal to the threshold
    is low with ``tie="low"`` (default) and high with ``tie="high"``.

    Raises :class:`DataError` naming ``dimension`` and the first rating that is NaN/inf or outside [1, 9].
    """
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = float("nan")
    if isinstance(threshold, bool) or not np.isfinite(t):
        raise ConfigError(f"threshold: must be a finite number, got {threshold!r}")
    check_tie(tie, f"dimensions.{dimension}.tie")
    r = _check_ratings(ratings, dimension)
    return high_side(r, t, tie).astype(np.int64)


def regression(ratings: np.ndarray, dimension: str = "rating") -> np.ndarray:
    """Ratings mapped linearly from [1, 9] to [0, 1] as float32: ``(r - 1) / 8``."""
    r = _check_ratings(ratings, dimension)
    return ((r - 1.0) / 8.0).astype(np.float32)


def targets(prepared_or_mapping: Any, dimension: str, task: str, threshold: float = 5.0,
            tie: str = "low") -> np.ndarray:
    """Targets of ``task`` for ``dimension`` from a :class:`~cmkd.data.prepared.Prepared` or a mapping of arrays.

    ``dimension`` is one of valence/arousal/dominance/liking (the rating array of that name), or
    ``"emotion"`` (the SEED-IV ``label`` array, returned as int64 classes; classification only).
    A missing array raises :class:`DataError` naming the dimension and the arrays available.
    ``tie`` (classification): the side of a rating equal to ``threshold`` (:func:`high_side`).
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
        return binary(values, threshold=threshold, dimension=dimension, tie=tie)
    return regression(values, dimension=dimension)


def class_balance(ratings: Any, threshold: float = 5.0, tie: str = "low") -> dict:
    """Counts of a rating array split at ``threshold``: ``{"low", "high", "at_threshold", "rule"}``.

    ``at_threshold`` counts the ratings equal to the threshold (those ``tie`` places)."""
    r = np.asarray(ratings, np.float64)
    hi = high_side(r, threshold, tie)
    return {"low": int((~hi).sum()), "high": int(hi.sum()), "at_threshold": int((r == threshold).sum()),
            "rule": tie_rule(threshold, tie)}


def balance_meta(ratings: Mapping[str, Any], threshold: float = 5.0) -> dict:
    """Class balance of per-trial ratings for meta.json: per dimension, the trials, the high
    count under each tie side and the ratings equal to the threshold."""
    out: dict[str, Any] = {"threshold": threshold, "unit": "trial"}
    for dim, vals in ratings.items():
        r = np.asarray(vals, np.float64)
        out[dim] = {"trials": int(r.size), "high_tie_low": int(high_side(r, threshold, "low").sum()),
                    "high_tie_high": int(high_side(r, threshold, "high").sum()),
                    "at_threshold": int((r == threshold).sum())}
    return out
