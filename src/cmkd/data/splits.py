"""Train/validation/test splits of segment indices: by trial, by subject, or (deliberately) by segment.

- ``trial`` (the protocol): groups are (subject, trial) pairs, so all segments of one trial fall in
  one part. This is the honest split for segment-level models.
- ``subject``: subject-independent; groups are subjects.
- ``leaky``: segments are assigned one by one, so segments of one trial land in several parts.
  It exists only to show the leakage effect beside the honest number.
- ``chronological``, ``cross_session``: the SEED family's subject-dependent protocols, built in
  :mod:`cmkd.data.protocols` (they need the ``session`` array).

Every kind, its family and its parameters (with their defaults) are declared once in
:mod:`cmkd.data.split_kinds`; a kind whose declaration names an implementation (``make``) is made
there, the others here by their family.

Groups are shuffled with the seed and assigned to the parts by number of groups (8:1:1 by
default); when there are at least 3 groups, validation and test each get at least one group
(for a part whose ratio is not 0). With ``stratify`` (per-segment labels, constant within a
group) the assignment is done per class, so each part keeps the class ratio. The split is checked
(:func:`check_split`) before it is returned.
"""
from __future__ import annotations

import importlib
import math
from typing import Mapping, Sequence

import numpy as np

from cmkd.data import split_kinds
from cmkd.errors import ConfigError, DataError

#: the single-split kinds and the kinds that make several folds per seed, as registered at import
#: (:mod:`cmkd.data.split_kinds`; the functions here read the live catalog)
KINDS = split_kinds.kinds(folds=False)
PARTS = ("train", "val", "test")
#: what a group is, per family of single splits made here
GROUP_WORDS = {"trial": "(subject, trial) groups", "subject": "subjects", "leaky": "segments"}


def _single_kind(kind: str) -> split_kinds.SplitKind:
    """The declaration of a single-split kind, or :class:`ConfigError`."""
    if kind not in split_kinds.SPLIT_KINDS or split_kinds.SPLIT_KINDS[kind].folds:
        raise ConfigError(f"split.kind: unknown kind {kind!r} (choose from {list(split_kinds.kinds(folds=False))})")
    return split_kinds.SPLIT_KINDS[kind]


def _implementation(target: str):
    """The function ``module:function`` that makes a declared kind's split (imported on use)."""
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


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
    elif min_one and n == 2 and ratios[1] > 0:  # one trains, one validates: a class in training is in validation
        n_val, n_test = 1, 0
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


def make_split(subject, trial, seed: int, kind: str = "trial", ratios: Sequence[float] = tuple(split_kinds.RATIOS.default),
               stratify: np.ndarray | None = None, session=None, protocol: Mapping | None = None) -> dict[str, np.ndarray]:
    """Split segments into ``{"train", "val", "test"}`` -> sorted int64 segment indices.

    ``subject`` and ``trial`` are the per-segment index arrays of a prepared data set. ``stratify``
    holds per-segment class labels; for ``kind="trial"`` they must be constant within a trial
    (:class:`DataError` naming the trial otherwise). For ``kind="subject"`` a subject's trials have
    mixed labels, so ``stratify`` is not applied there. The protocol kinds take the per-segment
    ``session`` array and their parameters from ``protocol`` (the ``split`` config section).
    """
    if kind in split_kinds.kinds(folds=True):
        raise ConfigError(f"split.kind: {kind!r} makes several folds per seed; use fold_splits()")
    info = _single_kind(kind)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"split.seed: must be a non-negative integer, got {seed!r}")
    if info.make:  # a kind made by its own implementation (the SEED-family protocols)
        return _implementation(info.make)(kind, subject, trial, session, protocol, seed=int(seed), labels=stratify)
    r = _check_ratios(ratios)
    subject = _as_1d_int(subject, "subject")
    trial = _as_1d_int(trial, "trial")
    if subject.shape != trial.shape:
        raise DataError(f"split: arrays 'subject' ({subject.shape[0]}) and 'trial' ({trial.shape[0]}) differ in length")
    n = subject.shape[0]
    if n == 0:
        raise DataError("split: no segments to split")

    # group id of every segment
    fam = info.family
    if fam == "trial":
        keys = np.stack([subject, trial], axis=1)
        _, group = np.unique(keys, axis=0, return_inverse=True)
    elif fam == "subject":
        _, group = np.unique(subject, return_inverse=True)
    else:
        group = np.arange(n)
    group = np.asarray(group).reshape(-1)
    n_groups = int(group.max()) + 1
    if (r[1] > 0 or r[2] > 0) and n_groups < 3:
        raise DataError(f"split: only {n_groups} {GROUP_WORDS[fam]}; need at least 3 to fill train, val and test")

    # class of every group (stratified splits only)
    group_class = _group_classes(group, n_groups, stratify if fam != "subject" else None, subject, trial)

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
    ``subject``) a trial appears in two parts; for ``subject`` also a subject in two parts (the
    checks of the kind's family, :mod:`cmkd.data.split_kinds`)."""
    fam = _single_kind(kind).family
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
    if fam == "leaky":
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
    if fam == "subject":
        sp = np.unique(np.stack([subject[assigned], own], axis=1), axis=0)
        subj, counts = np.unique(sp[:, 0], return_counts=True)
        if (counts > 1).any():
            s = subj[counts > 1][0]
            parts = [PARTS[q] for q in sp[sp[:, 0] == s, 1]]
            raise DataError(f"split: subject {int(s)} appears in parts {parts}; "
                            f"a subject-independent split must keep every subject in one part")


# ----------------------------------------------------------------------------------------------
# cross-validation protocols: every trial (kfold) or every subject (loso) is tested once per
# repetition. A run of one seed trains one model per fold (cmkd.crossval); the seed is the
# repetition: it shuffles the fold assignment and the validation carve-out.

#: Split kinds that make several folds per seed (one model per fold; :mod:`cmkd.data.split_kinds`).
FOLD_KINDS = split_kinds.kinds(folds=True)
#: How the k-fold assignment is made: over all trials at once, within each subject, or segment by
#: segment (``segment``: the leaky segment-level k-fold, for the leakage study only: segments of one
#: trial land in different parts, as in the studies that report segment-level cross-validation).
FOLDS_BY = split_kinds.FOLDS_BY.choices


def _trial_groups(subject: np.ndarray, trial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(group of every segment, (subject, trial) key of every group)``."""
    keys, group = np.unique(np.stack([subject, trial], axis=1), axis=0, return_inverse=True)
    return np.asarray(group).reshape(-1), keys


def _group_classes(group: np.ndarray, n_groups: int, stratify, subject, trial) -> np.ndarray:
    """Class index of every group (all zeros without ``stratify``); labels must be constant in a trial."""
    if stratify is None:
        return np.zeros(n_groups, dtype=np.int64)
    y = np.asarray(stratify)
    if y.shape != group.shape:
        raise DataError(f"split: 'stratify' has shape {y.shape}, expected ({group.size},) (one label per segment)")
    _, y = np.unique(y, return_inverse=True)
    y = np.asarray(y).reshape(-1)
    gc = np.full(n_groups, -1, dtype=np.int64)
    gc[group] = y
    bad = np.nonzero(gc[group] != y)[0]
    if bad.size:
        i = int(bad[0])
        raise DataError(f"split: 'stratify' labels differ within subject {int(subject[i])} trial {int(trial[i])}; "
                        f"labels must be constant within a trial")
    return gc


def _deal(groups_by_stratum: list[np.ndarray], n_folds: int, rng: np.random.Generator) -> dict[int, int]:
    """Shuffle each stratum and deal its groups round-robin into ``n_folds`` folds, the counter
    running on across strata: fold sizes differ by at most one overall and per stratum."""
    fold_of: dict[int, int] = {}
    k = int(rng.integers(n_folds))
    for g in groups_by_stratum:
        for x in g[rng.permutation(g.size)]:
            fold_of[int(x)] = k % n_folds
            k += 1
    return fold_of


def _carve_val(train_groups: np.ndarray, group_class: np.ndarray, val_fraction: float,
               rng: np.random.Generator) -> np.ndarray:
    """Validation groups taken from ``train_groups``, stratified by class: ``round(val_fraction * n)``
    (at least 1) spread over the classes in proportion, and at least one group of every class that
    has two or more (so every class that stays in training is in validation; each class keeps at
    least one training group). A class with a single training group keeps it in training, and
    :func:`check_val_classes` refuses the split."""
    n_val = max(1, _round_half_up(val_fraction * train_groups.size))
    if n_val >= train_groups.size:
        raise DataError(f"split: a training fold of {train_groups.size} trial(s) cannot give {n_val} to validation")
    classes = np.unique(group_class[train_groups])
    members = {c: train_groups[group_class[train_groups] == c] for c in classes}
    members = {c: g[rng.permutation(g.size)] for c, g in members.items()}
    # largest-remainder allocation of n_val over the classes; n_val < train_groups.size makes every
    # quota smaller than its class, so the floors leave each class at least one training group
    quota = {c: n_val * members[c].size / train_groups.size for c in classes}
    take = {c: int(math.floor(quota[c])) for c in classes}
    for c in sorted(classes, key=lambda c: quota[c] - math.floor(quota[c]), reverse=True):
        if sum(take.values()) >= n_val:
            break
        if take[c] < members[c].size - 1:
            take[c] += 1
    for c in classes:  # every class with a spare group is represented in validation
        if take[c] == 0 and members[c].size >= 2:
            take[c] = 1
    return np.concatenate([members[c][:take[c]] for c in classes])


def fold_splits(subject, trial, seed: int, kind: str = "kfold", n_folds: int = split_kinds.N_FOLDS.default,
                folds_by: str = split_kinds.FOLDS_BY.default, val_fraction: float = split_kinds.VAL_FRACTION.default,
                stratify: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """The folds of one repetition (``seed``): a list of ``{"train", "val", "test"}`` splits.

    - ``kfold``: stratified k-fold over trials ((subject, trial) groups; every segment of a trial
      in one part). ``folds_by="pooled"`` deals all trials into ``n_folds`` folds per class;
      ``folds_by="subject"`` deals each subject's trials separately (per subject and class), so every
      subject has trials in every test fold (the subject-dependent protocol; one model per fold is
      trained on the training trials of all subjects). Every trial is in the test part of exactly
      one fold. ``folds_by="segment"`` deals single segments (stratified by class), so the segments of
      one trial are spread over the folds: the leaky segment-level k-fold, for the leakage study (it
      pairs with a trial-level k-fold run on every segment); its folds skip the trial check.
    - ``loso``: leave one subject out; fold ``i`` tests the ``i``-th subject (sorted ids) and trains
      on the others (cross-subject); ``n_folds`` and ``folds_by`` are ignored.

    In both, the validation part is carved from each fold's training trials by trial
    (``val_fraction`` of them, at least one, stratified by class): the choice is a parameter of
    the protocol, never the test trials. Each fold passes :func:`check_fold`; the folds together
    pass :func:`check_folds`.
    """
    if kind not in FOLD_KINDS:
        raise ConfigError(f"split.kind: {kind!r} is not a cross-validation kind (choose from {list(FOLD_KINDS)})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"split.seed: must be a non-negative integer, got {seed!r}")
    if folds_by not in FOLDS_BY:
        raise ConfigError(f"split.folds_by: must be one of {list(FOLDS_BY)}, got {folds_by!r}")
    if not (0 < float(val_fraction) < 1):
        raise ConfigError(f"split.val_fraction: must lie in (0, 1), got {val_fraction!r}")
    subject = _as_1d_int(subject, "subject")
    trial = _as_1d_int(trial, "trial")
    if subject.shape != trial.shape:
        raise DataError(f"split: arrays 'subject' ({subject.shape[0]}) and 'trial' ({trial.shape[0]}) differ in length")
    if subject.size == 0:
        raise DataError("split: no segments to split")
    if kind == "kfold" and folds_by == "segment":  # every segment its own group (leaky on purpose)
        group = np.arange(subject.size, dtype=np.int64)
        keys = np.stack([subject, trial], axis=1)
    else:
        group, keys = _trial_groups(subject, trial)
    n_groups = keys.shape[0]
    group_class = _group_classes(group, n_groups, stratify, subject, trial)
    rng = np.random.default_rng(int(seed))
    subjects = np.unique(keys[:, 0])

    if kind == "loso":
        if subjects.size < 2:
            raise DataError(f"split: leave-one-subject-out needs at least 2 subjects, got {subjects.size}")
        fold_of_group = np.searchsorted(subjects, keys[:, 0])
        n = int(subjects.size)
    else:
        if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
            raise ConfigError(f"split.n_folds: must be an integer >= 2, got {n_folds!r}")
        n = int(n_folds)
        if folds_by == "subject":
            per_subject = np.bincount(np.searchsorted(subjects, keys[:, 0]))
            if per_subject.min() < n:
                s = int(subjects[int(np.argmin(per_subject))])
                raise DataError(f"split: subject {s} has {int(per_subject.min())} trial(s), fewer than "
                                f"split.n_folds={n} (folds_by: subject needs one per fold)")
            strata = [np.nonzero((keys[:, 0] == s) & (group_class == c))[0]
                      for s in subjects for c in np.unique(group_class)]
        else:
            if n_groups < n:
                raise DataError(f"split: {n_groups} {'segment' if folds_by == 'segment' else 'trial'}(s), "
                                f"fewer than split.n_folds={n}")
            strata = [np.nonzero(group_class == c)[0] for c in np.unique(group_class)]
        dealt = _deal([s for s in strata if s.size], n, rng)
        fold_of_group = np.array([dealt[g] for g in range(n_groups)], dtype=np.int64)

    folds = []
    for f in range(n):
        test_g = np.nonzero(fold_of_group == f)[0]
        train_g = np.nonzero(fold_of_group != f)[0]
        val_g = _carve_val(train_g, group_class, float(val_fraction), rng)  # pooled: one model trains on all subjects
        part_of_group = np.zeros(n_groups, dtype=np.int64)
        part_of_group[val_g] = 1
        part_of_group[test_g] = 2
        seg_part = part_of_group[group]
        split = {name: np.nonzero(seg_part == i)[0].astype(np.int64) for i, name in enumerate(PARTS)}
        check_fold(split, subject, trial, kind, leaky=folds_by == "segment" and kind == "kfold")
        folds.append(split)
    check_folds(folds, subject, trial)
    return folds


def check_fold(split: Mapping[str, np.ndarray], subject, trial, kind: str, leaky: bool = False) -> None:
    """One fold: the trial-level checks of :func:`check_split` (only the segment checks when
    ``leaky``: the segment-level k-fold); for ``loso`` also no test subject in the training or
    validation part."""
    if kind not in FOLD_KINDS:
        raise ConfigError(f"split.kind: {kind!r} is not a cross-validation kind (choose from {list(FOLD_KINDS)})")
    check_split(split, subject, trial, "leaky" if leaky and kind == "kfold" else "trial")
    if kind == "loso":
        subject = _as_1d_int(subject, "subject")
        test_s = set(np.unique(subject[split["test"]]).tolist())
        seen = set(np.unique(subject[np.concatenate([split["train"], split["val"]])]).tolist())
        both = sorted(test_s & seen)
        if both:
            raise DataError(f"split: subject {both[0]} is in the test part and in train/val; "
                            f"leave-one-subject-out must keep the test subject unseen")
        if len(test_s) != 1:
            raise DataError(f"split: a leave-one-subject-out fold tests {len(test_s)} subjects, expected 1")


def check_folds(folds: Sequence[Mapping[str, np.ndarray]], subject, trial) -> None:
    """The folds of one repetition: every segment is in the test part of exactly one fold."""
    subject = _as_1d_int(subject, "subject")
    trial = _as_1d_int(trial, "trial")
    count = np.zeros(subject.size, dtype=np.int64)
    for f in folds:
        count[np.asarray(f["test"])] += 1
    bad = np.nonzero(count != 1)[0]
    if bad.size:
        j = int(bad[0])
        raise DataError(f"split: segment {j} (subject {int(subject[j])}, trial {int(trial[j])}) is in the test part of "
                        f"{int(count[j])} folds; every trial must be tested exactly once per repetition")


# ----------------------------------------------------------------------------------------------
# validation that can measure the task: every class of a training part is in its validation part

def per_subject_validation(split_spec: Mapping) -> bool:
    """True where validation is drawn per subject (the SEED family's protocols): the validation
    part must hold every class of each subject's training trials. Otherwise the validation part is
    carved from the pooled training trials (every k-fold, LOSO and 8:1:1 split: one model trains
    on all subjects) and the check is pooled over subjects."""
    return split_kinds.settings(split_spec)["kind"] in split_kinds.per_subject_kinds()


def _trial_ids(subject: np.ndarray, trial: np.ndarray, idx) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64)
    return np.unique(np.stack([subject[idx], trial[idx]], axis=1), axis=0) if idx.size else np.zeros((0, 2), np.int64)


def val_class_counts(split: Mapping[str, np.ndarray], y, subject, trial) -> dict[str, int]:
    """``{class: number of validation trials}`` (a trial counts for the class of its segments;
    every class of the training or validation part is listed, with 0 where validation has none)."""
    y, subject, trial = np.asarray(y), _as_1d_int(subject, "subject"), _as_1d_int(trial, "trial")
    classes = np.unique(y[np.concatenate([np.asarray(split["train"]), np.asarray(split["val"])]).astype(np.int64)])
    out = {}
    for c in classes:
        v = np.asarray(split["val"], dtype=np.int64)
        out[str(int(c))] = int(_trial_ids(subject, trial, v[y[v] == c]).shape[0])
    return out


def check_val_classes(split: Mapping[str, np.ndarray], y, subject, trial, dataset: str, per_subject: bool,
                      names: Sequence[str] | None = None, fold: int | None = None) -> dict[str, int]:
    """Refuse a split whose validation part misses a class that its training part has: one
    :class:`DataError` naming the data set, the subject (or the pooled subjects) and the class.
    ``per_subject``: the check runs within every subject (the per-subject protocols). Returns
    :func:`val_class_counts`. ``y``: per-segment class labels (classification only)."""
    y, subject, trial = np.asarray(y), _as_1d_int(subject, "subject"), _as_1d_int(trial, "trial")
    tr, va = (np.asarray(split[p], dtype=np.int64) for p in ("train", "val"))
    scopes = [(int(s), tr[subject[tr] == s], va[subject[va] == s]) for s in np.unique(subject[tr])] if per_subject \
        else [(None, tr, va)]
    for s, t_idx, v_idx in scopes:
        missing = sorted(set(np.unique(y[t_idx]).tolist()) - set(np.unique(y[v_idx]).tolist()))
        if missing:
            c = int(missing[0])
            label = f"{c} ('{names[c]}')" if names is not None and 0 <= c < len(names) else str(c)
            n_tr = _trial_ids(subject, trial, t_idx[y[t_idx] == c]).shape[0]
            who = f"subject {s}" if s is not None else "all subjects (pooled split)"
            where = f"data set '{dataset}'" + (f", fold {fold}" if fold is not None else "")
            raise DataError(f"split: {where}, {who}: class {label} has {n_tr} training trial(s) and no validation "
                            f"trial; a validation part must hold every class of its training part (model "
                            f"selection could not measure it)")
    return val_class_counts(split, y, subject, trial)


def run_splits(arrays: Mapping, seed: int, split_spec: Mapping, y, task: str) -> list[dict[str, np.ndarray]]:
    """The split(s) of one run, as the training loop makes them: the folds of one repetition for
    :data:`FOLD_KINDS`, else a one-element list (:func:`make_split`). ``arrays``: ``subject``,
    ``trial`` (and ``session`` where the data set has sessions); ``y`` the run's targets (they
    stratify a classification split unless ``split.stratify`` is false). A protocol split with
    ``models: per_subject`` gives one split per subject (:func:`subject_folds`)."""
    sp = split_kinds.settings(split_spec)  # the kind's declared defaults filled in
    stratify = np.asarray(y) if (task == "classification" and sp["stratify"]) else None
    subject, trial = np.asarray(arrays["subject"]), np.asarray(arrays["trial"])
    if split_kinds.SPLIT_KINDS[sp["kind"]].folds:
        own = {k: sp[k] for k in ("n_folds", "folds_by") if k in sp}  # loso declares neither
        return fold_splits(subject, trial, int(seed), kind=sp["kind"], val_fraction=float(sp["val_fraction"]),
                           stratify=stratify, **own)
    session = np.asarray(arrays["session"]) if "session" in arrays else None
    split = make_split(subject, trial, int(seed), kind=sp["kind"], ratios=tuple(sp.get("ratios") or ()),
                       stratify=stratify, session=session, protocol=sp)
    return subject_folds(split, subject) if split_kinds.per_subject_models(sp) else [split]


def subject_folds(split: Mapping[str, np.ndarray], subject) -> list[dict[str, np.ndarray]]:
    """A protocol split cut into one split per subject (``models: per_subject``), in subject order:
    fold ``i`` holds the ``i``-th subject's (sorted ids) training, validation and test segments of
    ``split`` and nothing else. Checked by :func:`check_subject_folds`."""
    subject = _as_1d_int(subject, "subject")
    parts = {p: np.asarray(split[p], dtype=np.int64) for p in PARTS}
    folds = [{p: idx[subject[idx] == s] for p, idx in parts.items()}
             for s in np.unique(subject[np.concatenate(list(parts.values()))])]
    check_subject_folds(folds, split, subject)
    return folds


def check_subject_folds(folds: Sequence[Mapping[str, np.ndarray]], split: Mapping[str, np.ndarray], subject) -> None:
    """Per-subject folds of ``split``: every fold holds one subject only, with training, validation
    and test segments; together they are ``split``, part by part (no segment lost or added)."""
    subject = _as_1d_int(subject, "subject")
    for i, f in enumerate(folds):
        who = np.unique(subject[np.concatenate([np.asarray(f[p], np.int64) for p in PARTS])])
        if who.size != 1:
            raise DataError(f"split: per-subject fold {i} holds subjects {who.tolist()}; a per-subject model must see "
                            "only its own subject's segments")
        empty = [p for p in PARTS if not len(f[p])]
        if empty:
            raise DataError(f"split: subject {int(who[0])} has no {empty[0]} segment in the protocol split; a "
                            "per-subject model needs training, validation and test clips of its subject")
    for p in PARTS:
        got = np.sort(np.concatenate([np.asarray(f[p], np.int64) for f in folds])) if folds else np.zeros(0, np.int64)
        if not np.array_equal(got, np.sort(np.asarray(split[p], np.int64))):
            raise DataError(f"split: the per-subject folds' {p} parts are not the protocol split's {p} part")
