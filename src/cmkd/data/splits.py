"""Train/validation/test splits of segment indices: by trial, by subject, or (deliberately) by segment.

- ``trial`` (the protocol): groups are (subject, trial) pairs, so all segments of one trial fall in
  one part. This is the honest split for segment-level models.
- ``subject``: subject-independent; groups are subjects.
- ``leaky``: segments are assigned one by one, so segments of one trial land in several parts.
  It exists only to show the leakage effect beside the honest number.
- ``chronological``, ``cross_session``: the SEED family's subject-dependent protocols, built in
  :mod:`cmkd.data.protocols` (they need the ``session`` array).

Groups are shuffled with the seed and assigned to the parts by number of groups (8:1:1 by
default); when there are at least 3 groups, validation and test each get at least one group
(for a part whose ratio is not 0). With ``stratify`` (per-segment labels, constant within a
group) the assignment is done per class, so each part keeps the class ratio. The split is checked
(:func:`check_split`) before it is returned.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from cmkd.data.protocols import PROTOCOL_KINDS
from cmkd.errors import ConfigError, DataError

KINDS = ("trial", "subject", "leaky") + PROTOCOL_KINDS
PARTS = ("train", "val", "test")


def _as_1d_int(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise DataError(f"split: array '{name}' must be 1-d, got shape {a.shape}")
    if a.size and a.dtype.kind not in "iu":
        raise DataError(f"split: array '{name}' must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    try:
        r = tuple(float(x) for x in ratios)
    except (TypeError, ValueError):
        raise ConfigError(f"split.ratios: expected three numbers (train, val, test), got {ratios!r}") from None
    if len(r) != 3 or any(not math.isfinite(x) or x < 0 for x in r) or not math.isclose(sum(r), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split.ratios: expected three non-negative numbers (train, val, test) summing to 1, got {ratios!r}")
    if r[0] <= 0:
        raise ConfigError(f"split.ratios: the train ratio must be > 0, got {ratios!r}")
    return r  # type: ignore[return-value]


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _part_sizes(n: int, ratios: tuple[float, float, float], min_one: bool) -> tuple[int, int, int]:
    """Numbers of groups for (train, val, test); val/test get >= 1 each when ``min_one`` and n >= 3."""
    n_val = _round_half_up(ratios[1] * n)
    n_test = _round_half_up(ratios[2] * n)
    if min_one and n >= 3:
        n_val = max(n_val, 1) if ratios[1] > 0 else 0
        n_test = max(n_test, 1) if ratios[2] > 0 else 0
    # train keeps at least one group
    while n - n_val - n_test < 1 and (n_val > 0 or n_test > 0):
        if n_val >= n_test and n_val > (1 if min_one and ratios[1] > 0 else 0):
            n_val -= 1
        elif n_test > (1 if min_one and ratios[2] > 0 else 0):
            n_test -= 1
        elif n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def make_split(subject, trial, seed: int, kind: str = "trial", ratios: Sequence[float] = (0.8, 0.1, 0.1),
               stratify: np.ndarray | None = None, session=None, protocol: Mapping | None = None) -> dict[str, np.ndarray]:
    """Split segments into ``{"train", "val", "test"}`` -> sorted int64 segment indices.

    ``subject`` and ``trial`` are the per-segment index arrays of a prepared data set. ``stratify``
    holds per-segment class labels; for ``kind="trial"`` they must be constant within a trial
    (:class:`DataError` naming the trial otherwise). For ``kind="subject"`` a subject's trials have
    mixed labels, so ``stratify`` is not applied there. The protocol kinds take the per-segment
    ``session`` array and their parameters from ``protocol`` (the ``split`` config section).
    """
    if kind not in KINDS:
        raise ConfigError(f"split.kind: unknown kind {kind!r} (choose from {list(KINDS)})")
    if kind in PROTOCOL_KINDS:
        from cmkd.data.protocols import protocol_split

        return protocol_split(kind, subject, trial, session, protocol)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"split.seed: must be a non-negative integer, got {seed!r}")
    r = _check_ratios(ratios)
    subject = _as_1d_int(subject, "subject")
    trial = _as_1d_int(trial, "trial")
    if subject.shape != trial.shape:
        raise DataError(f"split: arrays 'subject' ({subject.shape[0]}) and 'trial' ({trial.shape[0]}) differ in length")
    n = subject.shape[0]
    if n == 0:
        raise DataError("split: no segments to split")

    # group id of every segment
    if kind == "trial":
        keys = np.stack([subject, trial], axis=1)
        _, group = np.unique(keys, axis=0, return_inverse=True)
    elif kind == "subject":
        _, group = np.unique(subject, return_inverse=True)
    else:
        group = np.arange(n)
    group = np.asarray(group).reshape(-1)
    n_groups = int(group.max()) + 1
    if (r[1] > 0 or r[2] > 0) and n_groups < 3:
        what = {"trial": "(subject, trial) groups", "subject": "subjects", "leaky": "segments"}[kind]
        raise DataError(f"split: only {n_groups} {what}; need at least 3 to fill train, val and test")

    # class of every group (stratified splits only)
    if stratify is not None and kind != "subject":
        y = np.asarray(stratify)
        if y.shape != (n,):
            raise DataError(f"split: 'stratify' has shape {y.shape}, expected ({n},) (one label per segment)")
        _, y = np.unique(y, return_inverse=True)
        y = np.asarray(y).reshape(-1)
        group_class = np.full(n_groups, -1, dtype=np.int64)
        group_class[group] = y
        bad = np.nonzero(group_class[group] != y)[0]
        if bad.size:
            i = int(bad[0])
            raise DataError(f"split: 'stratify' labels differ within subject {int(subject[i])} trial {int(trial[i])}; "
                            f"labels must be constant within a trial")
    else:
        group_class = np.zeros(n_groups, dtype=np.int64)

    rng = np.random.default_rng(int(seed))
    part_of_group = np.empty(n_groups, dtype=np.int64)
    classes = np.unique(group_class)
    sizes = {}
    members = {}
    for c in classes:
        g = np.nonzero(group_class == c)[0]
        members[c] = g[rng.permutation(g.size)]
        sizes[c] = list(_part_sizes(g.size, r, min_one=True))
    # a class too small to give val/test a group each can leave a part empty: take one from the
    # largest train share of another class
    for p in (1, 2):
        if r[p] > 0 and sum(sizes[c][p] for c in classes) == 0:
            donor = max(classes, key=lambda c: sizes[c][0])
            if sizes[donor][0] > 1:
                sizes[donor][0] -= 1
                sizes[donor][p] += 1
    for c in classes:
        g = members[c]
        n_tr, n_va, _ = sizes[c]
        part_of_group[g[:n_tr]] = 0
        part_of_group[g[n_tr:n_tr + n_va]] = 1
        part_of_group[g[n_tr + n_va:]] = 2

    seg_part = part_of_group[group]
    split = {name: np.nonzero(seg_part == i)[0].astype(np.int64) for i, name in enumerate(PARTS)}
    check_split(split, subject, trial, kind)
    return split


def check_split(split: Mapping[str, np.ndarray], subject, trial, kind: str) -> None:
    """Raise :class:`DataError` if parts overlap, an index is out of range, or (kinds ``trial`` and
    ``subject``) a trial appears in two parts; for ``subject`` also a subject in two parts."""
    if kind not in KINDS:
        raise ConfigError(f"split.kind: unknown kind {kind!r} (choose from {list(KINDS)})")
    subject = _as_1d_int(subject, "subject")
    trial = _as_1d_int(trial, "trial")
    if subject.shape != trial.shape:
        raise DataError(f"split: arrays 'subject' ({subject.shape[0]}) and 'trial' ({trial.shape[0]}) differ in length")
    n = subject.shape[0]
    missing = [p for p in PARTS if p not in split]
    if missing:
        raise DataError(f"split: missing part(s) {missing}")
    owner = np.full(n, -1, dtype=np.int64)
    for i, p in enumerate(PARTS):
        idx = np.asarray(split[p])
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise DataError(f"split: part '{p}' must be a 1-d integer array, got shape {idx.shape} dtype {idx.dtype}")
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise DataError(f"split: part '{p}' has index {int(bad[0])} out of range [0, {n})")
        uniq, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise DataError(f"split: part '{p}' lists segment {int(uniq[counts > 1][0])} more than once")
        taken = owner[idx] >= 0
        if taken.any():
            j = int(idx[taken][0])
            raise DataError(f"split: segment {j} (subject {int(subject[j])}, trial {int(trial[j])}) is in both "
                            f"'{PARTS[owner[j]]}' and '{p}'")
        owner[idx] = i
    if kind == "leaky":
        return
    assigned = owner >= 0
    keys = np.stack([subject[assigned], trial[assigned]], axis=1)
    own = owner[assigned]
    pairs = np.unique(np.concatenate([keys, own[:, None]], axis=1), axis=0)  # unique (subject, trial, part)
    st, counts = np.unique(pairs[:, :2], axis=0, return_counts=True)
    if (counts > 1).any():
        s, t = st[counts > 1][0]
        parts = [PARTS[q] for q in pairs[(pairs[:, 0] == s) & (pairs[:, 1] == t), 2]]
        raise DataError(f"split: subject {int(s)} trial {int(t)} appears in parts {parts}; "
                        f"a {kind}-level split must keep every trial in one part")
    if kind == "subject":
        sp = np.unique(np.stack([subject[assigned], own], axis=1), axis=0)
        subj, counts = np.unique(sp[:, 0], return_counts=True)
        if (counts > 1).any():
            s = subj[counts > 1][0]
            parts = [PARTS[q] for q in sp[sp[:, 0] == s, 1]]
            raise DataError(f"split: subject {int(s)} appears in parts {parts}; "
                            f"a subject-independent split must keep every subject in one part")
