"""Splits: trial-level, subject-independent and leaky; the leakage check."""
from __future__ import annotations

import numpy as np
import pytest

from cmkd.data.splits import check_split, make_split
from cmkd.errors import ConfigError, DataError


def grid(n_subjects=8, n_trials=12, n_segments=6):
    subject = np.repeat(np.arange(n_subjects), n_trials * n_segments)
    trial = np.tile(np.repeat(np.arange(n_trials), n_segments), n_subjects)
    return subject.astype(np.int64), trial.astype(np.int64)


def trials_of(split, part, subject, trial):
    idx = split[part]
    return set(zip(subject[idx].tolist(), trial[idx].tolist()))


@pytest.mark.parametrize("kind", ["trial", "subject", "leaky"])
def test_parts_cover_everything_sorted_disjoint(kind):
    subject, trial = grid()
    sp = make_split(subject, trial, 0, kind=kind)
    assert set(sp) == {"train", "val", "test"}
    allidx = np.concatenate([sp["train"], sp["val"], sp["test"]])
    assert np.array_equal(np.sort(allidx), np.arange(len(subject)))
    for part in sp.values():
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)
        assert part.size > 0


def test_trial_split_keeps_trials_whole_and_uses_8_1_1_by_trials():
    subject, trial = grid()  # 96 trials
    sp = make_split(subject, trial, 3, kind="trial")
    parts = {p: trials_of(sp, p, subject, trial) for p in sp}
    assert parts["train"].isdisjoint(parts["val"]) and parts["train"].isdisjoint(parts["test"])
    assert parts["val"].isdisjoint(parts["test"])
    assert [len(parts[p]) for p in ("train", "val", "test")] == [76, 10, 10]
    # every segment of a trial is in the part of the trial
    for p, trials in parts.items():
        for s, t in trials:
            segs = np.nonzero((subject == s) & (trial == t))[0]
            assert np.isin(segs, sp[p]).all()


def test_trial_split_mixes_subjects():
    subject, trial = grid()
    sp = make_split(subject, trial, 0, kind="trial")
    assert len(np.unique(subject[sp["test"]])) > 1


def test_subject_split_is_subject_independent():
    subject, trial = grid(n_subjects=20)
    sp = make_split(subject, trial, 1, kind="subject")
    subs = {p: set(np.unique(subject[sp[p]]).tolist()) for p in sp}
    assert [len(subs[p]) for p in ("train", "val", "test")] == [16, 2, 2]
    assert subs["train"].isdisjoint(subs["val"] | subs["test"]) and subs["val"].isdisjoint(subs["test"])


def test_leaky_split_puts_segments_of_one_trial_in_several_parts():
    subject, trial = grid()
    sp = make_split(subject, trial, 0, kind="leaky")
    assert trials_of(sp, "train", subject, trial) & trials_of(sp, "test", subject, trial)
    n = len(subject)
    assert [len(sp[p]) for p in ("train", "val", "test")] == [n - 2 * round(0.1 * n), round(0.1 * n), round(0.1 * n)]


@pytest.mark.parametrize("kind", ["trial", "subject", "leaky"])
def test_same_seed_same_split_different_seed_different_split(kind):
    subject, trial = grid(n_subjects=10)
    a = make_split(subject, trial, 11, kind=kind)
    b = make_split(subject, trial, 11, kind=kind)
    c = make_split(subject, trial, 12, kind=kind)
    for p in a:
        np.testing.assert_array_equal(a[p], b[p])
    assert any(not np.array_equal(a[p], c[p]) for p in a)


def test_small_groups_val_and_test_get_one_each():
    subject, trial = grid(n_subjects=1, n_trials=3, n_segments=2)
    sp = make_split(subject, trial, 0)
    assert [len(trials_of(sp, p, subject, trial)) for p in ("train", "val", "test")] == [1, 1, 1]
    subject, trial = grid(n_subjects=1, n_trials=5, n_segments=1)
    sp = make_split(subject, trial, 0)
    assert [len(sp[p]) for p in ("train", "val", "test")] == [3, 1, 1]
    with pytest.raises(DataError, match=r"only 2 \(subject, trial\) groups"):
        make_split(*grid(n_subjects=1, n_trials=2), 0)
    with pytest.raises(DataError, match="only 2 subjects"):
        make_split(*grid(n_subjects=2), 0, kind="subject")


def test_zero_val_ratio_leaves_val_empty():
    subject, trial = grid()
    sp = make_split(subject, trial, 0, ratios=(0.9, 0.0, 0.1))
    assert sp["val"].size == 0 and len(trials_of(sp, "test", subject, trial)) == 10


def test_stratified_trial_split_keeps_class_ratio():
    subject, trial = grid(n_subjects=10, n_trials=20, n_segments=3)  # 200 trials
    rng = np.random.default_rng(0)
    trial_label = (rng.random((10, 20)) < 0.25).astype(int)  # 25 % positive
    y = np.repeat(trial_label.reshape(-1), 3)
    sp = make_split(subject, trial, 5, stratify=y)
    ratio = y.mean()
    for p in sp:
        assert abs(y[sp[p]].mean() - ratio) < 0.03, p
    # per class: every part gets its share of each class
    n_pos = trial_label.sum()
    pos_test = len({(s, t) for s, t in trials_of(sp, "test", subject, trial) if trial_label[s, t] == 1})
    assert pos_test == int(np.floor(0.1 * n_pos + 0.5))
    # unstratified splits drift further from the ratio for some seed
    drift = max(abs(y[make_split(subject, trial, s)["test"]].mean() - ratio) for s in range(20))
    assert drift > 0.03


def test_stratify_must_be_constant_within_a_trial():
    subject, trial = grid(n_subjects=2, n_trials=4, n_segments=3)
    y = np.zeros(len(subject), dtype=int)
    y[4] = 1  # subject 0, trial 1, segment 1
    with pytest.raises(DataError, match="subject 0 trial 1"):
        make_split(subject, trial, 0, stratify=y)
    with pytest.raises(DataError, match="stratify"):
        make_split(subject, trial, 0, stratify=y[:-1])


def test_stratify_ignored_for_subject_split_and_applied_for_leaky():
    subject, trial = grid()
    y = np.tile([0, 1], len(subject) // 2)  # varies within trials
    sp = make_split(subject, trial, 0, kind="subject", stratify=y)
    check_split(sp, subject, trial, "subject")
    sp = make_split(subject, trial, 0, kind="leaky", stratify=y)
    assert y[sp["test"]].mean() == 0.5


def test_unknown_kind_and_bad_arguments():
    subject, trial = grid(n_subjects=2)
    with pytest.raises(ConfigError, match="split.kind"):
        make_split(subject, trial, 0, kind="segment")
    with pytest.raises(ConfigError, match="split.ratios"):
        make_split(subject, trial, 0, ratios=(0.8, 0.3, 0.1))
    with pytest.raises(ConfigError, match="split.ratios"):
        make_split(subject, trial, 0, ratios=(0.8, 0.2))
    with pytest.raises(ConfigError, match="split.seed"):
        make_split(subject, trial, -1)
    with pytest.raises(DataError, match="'subject'.*'trial'"):
        make_split(subject, trial[:-1], 0)
    with pytest.raises(DataError, match="'trial' must hold integers"):
        make_split(subject, trial.astype(float), 0)
    with pytest.raises(ConfigError, match="split.kind"):
        check_split({"train": [], "val": [], "test": []}, subject, trial, "bogus")


def test_check_split_catches_leaks_overlaps_and_bad_indices():
    subject, trial = grid(n_subjects=2, n_trials=4, n_segments=3)  # 24 segments
    good = make_split(subject, trial, 0)
    check_split(good, subject, trial, "trial")
    # a segment of a test trial moved into train: the trial appears in two parts
    leak = {p: v.copy() for p, v in good.items()}
    j = int(leak["test"][0])
    leak["test"] = leak["test"][1:]
    leak["train"] = np.sort(np.append(leak["train"], j))
    with pytest.raises(DataError, match=f"subject {subject[j]} trial {trial[j]}"):
        check_split(leak, subject, trial, "trial")
    check_split(leak, subject, trial, "leaky")  # allowed for the leaky kind
    # overlap
    over = dict(good, val=np.append(good["val"], good["train"][0]))
    with pytest.raises(DataError, match="in both 'train' and 'val'"):
        check_split(over, subject, trial, "leaky")
    # out of range
    with pytest.raises(DataError, match="index 24 out of range"):
        check_split(dict(good, test=np.append(good["test"], 24)), subject, trial, "trial")
    with pytest.raises(DataError, match="index -1 out of range"):
        check_split(dict(good, test=np.append(good["test"], -1)), subject, trial, "trial")
    # duplicates and missing parts
    with pytest.raises(DataError, match="more than once"):
        check_split(dict(good, test=np.append(good["test"], good["test"][0])), subject, trial, "trial")
    with pytest.raises(DataError, match="missing part"):
        check_split({"train": good["train"], "test": good["test"]}, subject, trial, "trial")


def test_check_split_subject_kind_catches_a_subject_in_two_parts():
    subject, trial = grid(n_subjects=4, n_trials=2, n_segments=2)
    sp = make_split(subject, trial, 0, kind="subject")
    s_test = int(subject[sp["test"][0]])
    # move one whole trial of the test subject into train: no trial is split, but the subject is
    t = int(trial[sp["test"][0]])
    idx = np.nonzero((subject == s_test) & (trial == t))[0]
    bad = {"train": np.sort(np.concatenate([sp["train"], idx])), "val": sp["val"],
           "test": np.setdiff1d(sp["test"], idx)}
    check_split(bad, subject, trial, "trial")
    with pytest.raises(DataError, match=f"subject {s_test} appears in parts"):
        check_split(bad, subject, trial, "subject")


def test_works_on_the_synthetic_layout_with_unsorted_ids():
    subject, trial = grid(n_subjects=3, n_trials=5, n_segments=2)
    perm = np.random.default_rng(1).permutation(len(subject))
    subject, trial = subject[perm] * 7 + 100, trial[perm] + 40
    sp = make_split(subject, trial, 2)
    assert sum(len(v) for v in sp.values()) == len(subject)
    check_split(sp, subject, trial, "trial")
