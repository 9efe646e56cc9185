"""Splits: trial-level, subject-independent and leaky; the leakage check."""
from __future__ import annotations

import numpy as np
import pytest

from cmkd.data import splits as splits_mod
from cmkd.data.splits import (_carve_val, _part_sizes, check_fold, check_folds, check_split, check_val_classes, fold_splits,
                              make_split)
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


# ----------------------------------------------------------------------------- part sizes by hand
@pytest.mark.parametrize("n, ratios, min_one, want", [
    (10, (0.8, 0.1, 0.1), True, (8, 1, 1)),
    (10, (0.6, 0.3, 0.1), True, (6, 3, 1)),     # val and test use their own ratios
    (5, (0.5, 0.5, 0.0), False, (2, 3, 0)),     # 2.5 rounds half up, to 3
    (3, (0.8, 0.1, 0.1), True, (1, 1, 1)),      # 0.3 -> 0, raised to one each from n = 3
    (3, (0.8, 0.1, 0.1), False, (3, 0, 0)),
    (2, (0.8, 0.1, 0.1), True, (1, 1, 0)),      # two groups: one trains, one validates (a class in train is in val)
    (3, (0.8, 0.2, 0.0), True, (2, 1, 0)),      # a part of ratio 0 stays empty
    (3, (0.8, 0.0, 0.2), True, (2, 0, 1)),
    (4, (0.2, 0.4, 0.4), True, (1, 1, 2)),      # 2 + 2 leave no train: val (the larger, or first) gives one
    (5, (0.1, 0.1, 0.8), True, (1, 1, 3)),      # test 4 gives one; val stays at its minimum of 1
    (3, (0.2, 0.4, 0.4), False, (1, 1, 1)),     # round(1.2) each: train keeps one without a fix
    (2, (0.1, 0.45, 0.45), True, (1, 1, 0)),    # n = 2: validation before test, so the training class is validated
    (2, (0.1, 0.45, 0.45), False, (1, 0, 1)),
    (2, (0.1, 0.1, 0.8), False, (1, 0, 1)),     # test 2 gives one
    (1, (0.1, 0.0, 0.9), False, (1, 0, 0)),     # test gives its only group when val has none
    (1, (0.1, 0.9, 0.0), False, (1, 0, 0)),
    (1, (0.1, 0.1, 0.8), True, (1, 0, 0)),      # neither is above its minimum: test gives its only group
    (3, (0.1, 0.1, 0.8), True, (1, 1, 1)),      # test 2 gives one, down to its minimum of 1
    (3, (0.05, 0.45, 0.5), False, (1, 1, 1)),   # 1 + 2 leave no train: val (< test) keeps its group
])
def test_part_sizes_by_hand(n, ratios, min_one, want):
    assert _part_sizes(n, ratios, min_one) == want


def test_trial_split_of_unequal_ratios_and_the_minimum_of_three_groups():
    subject, trial = grid(n_subjects=1, n_trials=10, n_segments=2)
    sp = make_split(subject, trial, 0, ratios=(0.6, 0.3, 0.1))
    assert [len(trials_of(sp, p, subject, trial)) for p in ("train", "val", "test")] == [6, 3, 1]
    sp = make_split(*grid(n_subjects=1, n_trials=2), 0, ratios=(1.0, 0.0, 0.0))  # only train: 2 groups suffice
    assert sp["val"].size == 0 and sp["test"].size == 0 and sp["train"].size == 12
    for ratios in ((0.5, 0.5, 0.0), (0.5, 0.0, 0.5)):
        with pytest.raises(DataError, match=r"only 2 \(subject, trial\) groups"):
            make_split(*grid(n_subjects=1, n_trials=2), 0, ratios=ratios)
    with pytest.raises(DataError, match="only 1 segments"):
        make_split([0], [0], 0, kind="leaky")
    with pytest.raises(DataError, match="no segments to split"):
        make_split([], [], 0)


def test_stratified_split_borrows_a_group_for_an_empty_part():
    """Classes too small to give val/test a group each: the class with the largest train share
    gives one, if it has more than one (else the part stays empty)."""
    subject = np.zeros(3, np.int64)
    trial = np.arange(3)
    # class 0: 1 trial, class 1: 2 trials -> (1, 0, 0) and (2, 0, 0); val borrows from class 1
    # (train 2); for test both have train 1: nothing to give
    sp = make_split(subject, trial, 0, stratify=np.array([0, 1, 1]))
    assert len(sp["train"]) == 2 and len(sp["val"]) == 1 and len(sp["test"]) == 0
    assert sorted(np.array([0, 1, 1])[sp["train"]].tolist()) == [0, 1] and sp["val"][0] in (1, 2)
    # (and the split is refused by check_val_classes: class 0 trains and does not validate)
    with pytest.raises(DataError, match="class 0 has 1 training trial"):
        check_val_classes(sp, np.array([0, 1, 1]), subject, trial, "tiny", per_subject=False)
    # two classes of 2 trials: each gives its second trial to validation (a class that trains
    # validates), none is left to borrow for the test part
    subject, trial, y = np.zeros(4, np.int64), np.arange(4), np.array([0, 0, 1, 1])
    sp = make_split(subject, trial, 0, stratify=y)
    assert [sorted(y[sp[p]].tolist()) for p in ("train", "val", "test")] == [[0, 1], [0, 1], []]
    # two classes of 3 trials: each gives val and test one of its own (not one borrowed for both)
    y = np.array([0, 0, 0, 1, 1, 1])
    sp = make_split(np.zeros(6, np.int64), np.arange(6), 0, stratify=y)
    assert [sorted(y[sp[p]].tolist()) for p in ("train", "val", "test")] == [[0, 1], [0, 1], [0, 1]]
    # three single-trial classes: no class has a group to spare
    sp = make_split(np.zeros(3, np.int64), np.arange(3), 0, stratify=np.array([0, 1, 2]))
    assert len(sp["train"]) == 3 and sp["val"].size == 0 and sp["test"].size == 0


def test_splits_are_checked_before_they_are_returned(monkeypatch):
    calls = []
    real = {n: getattr(splits_mod, n) for n in ("check_split", "check_fold", "check_folds")}
    for name, fn in real.items():
        monkeypatch.setattr(splits_mod, name, lambda *a, _n=name, _f=fn, **k: (calls.append(_n), _f(*a, **k))[1])
    subject, trial = grid(n_subjects=2, n_trials=5, n_segments=1)
    make_split(subject, trial, 0)
    assert calls == ["check_split"]
    calls.clear()
    fold_splits(subject, trial, 0, "kfold", n_folds=2)
    assert calls.count("check_fold") == 2 and calls[-1] == "check_folds"


BAD_SPLIT_ARGUMENTS = {
    "2-d subject": (lambda s, t: make_split(s.reshape(2, -1), t.reshape(2, -1), 0), DataError, "must be 1-d"),
    "ratios not numbers": (lambda s, t: make_split(s, t, 0, ratios=("a", "b", "c")), ConfigError, "three numbers"),
    "ratios too few": (lambda s, t: make_split(s, t, 0, ratios=(0.5, 0.5)), ConfigError, "summing to 1"),
    "ratio negative": (lambda s, t: make_split(s, t, 0, ratios=(1.2, -0.1, -0.1)), ConfigError, "non-negative"),
    "train ratio 0": (lambda s, t: make_split(s, t, 0, ratios=(0.0, 0.5, 0.5)), ConfigError, "train ratio must be > 0"),
    "unknown kind": (lambda s, t: make_split(s, t, 0, kind="segment"), ConfigError, "unknown kind 'segment'"),
    "bool seed": (lambda s, t: make_split(s, t, True), ConfigError, "split.seed"),
    "float seed": (lambda s, t: make_split(s, t, 1.0), ConfigError, "split.seed"),
    "check lengths": (lambda s, t: check_split({"train": [0], "val": [], "test": []}, s, t[:-1], "trial"),
                      DataError, "differ in length"),
    "check 2-d part": (lambda s, t: check_split({"train": np.array([[0, 1]]), "val": [], "test": []}, s, t, "trial"),
                       DataError, "part 'train' must be a 1-d integer array"),
    "check float part": (lambda s, t: check_split({"train": np.array([0.0]), "val": [], "test": []}, s, t, "trial"),
                         DataError, "part 'train' must be a 1-d integer array"),
    "folds of a holdout kind": (lambda s, t: fold_splits(s, t, 0, "trial"), ConfigError, "not a cross-validation kind"),
    "folds bool seed": (lambda s, t: fold_splits(s, t, False), ConfigError, "split.seed"),
    "folds float seed": (lambda s, t: fold_splits(s, t, 0.0), ConfigError, "split.seed"),
    "folds negative seed": (lambda s, t: fold_splits(s, t, -2), ConfigError, "split.seed"),
    "val_fraction 0": (lambda s, t: fold_splits(s, t, 0, val_fraction=0.0), ConfigError, "val_fraction"),
    "val_fraction 1": (lambda s, t: fold_splits(s, t, 0, val_fraction=1.0), ConfigError, "val_fraction"),
    "folds lengths": (lambda s, t: fold_splits(s, t[:-1], 0), DataError, "differ in length"),
    "folds empty": (lambda s, t: fold_splits([], [], 0), DataError, "no segments to split"),
    "loso one subject": (lambda s, t: fold_splits(np.zeros_like(s), t, 0, "loso"), DataError, "at least 2 subjects, got 1"),
    "n_folds 1": (lambda s, t: fold_splits(s, t, 0, n_folds=1), ConfigError, "n_folds: must be an integer >= 2"),
    "n_folds bool": (lambda s, t: fold_splits(s, t, 0, n_folds=True), ConfigError, "n_folds"),
    "n_folds float": (lambda s, t: fold_splits(s, t, 0, n_folds=3.0), ConfigError, "n_folds"),
    "more folds than trials": (lambda s, t: fold_splits(s, t, 0, n_folds=11), DataError,
                               r"10 trial\(s\), fewer than split.n_folds=11"),
    "stratify shape": (lambda s, t: fold_splits(s, t, 0, stratify=np.zeros(3)), DataError, "'stratify' has shape"),
    "stratify within a trial": (lambda s, t: fold_splits(s, t, 0, stratify=np.arange(s.size) % 2), DataError,
                                "labels differ within subject 0 trial 0"),
    "check_fold of a holdout kind": (lambda s, t: check_fold({"train": [0], "val": [], "test": []}, s, t, "trial"),
                                     ConfigError, "not a cross-validation kind"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPLIT_ARGUMENTS))
def test_bad_split_arguments_name_the_problem(case):
    subject, trial = grid(n_subjects=2, n_trials=5, n_segments=2)  # 10 trials
    call, err, match = BAD_SPLIT_ARGUMENTS[case]
    with pytest.raises(err, match=match):
        call(subject, trial)


def test_check_messages_name_the_parts_and_the_first_bad_segment():
    subject, trial = grid(n_subjects=2, n_trials=3, n_segments=2)  # 12 segments, trial (s, t) = segments 6s+2t, +1
    # trial (1, 2) = segments 10, 11 split between train and test
    sp = {"train": np.array([0, 1, 2, 3, 10]), "val": np.array([4, 5]), "test": np.array([6, 7, 8, 9, 11])}
    with pytest.raises(DataError, match=r"subject 1 trial 2 appears in parts \['train', 'test'\]"):
        check_split(sp, subject, trial, "trial")
    # subject 1 in val and test, every trial whole
    sp = {"train": np.array([0, 1, 2, 3, 4, 5]), "val": np.array([6, 7]), "test": np.array([8, 9, 10, 11])}
    with pytest.raises(DataError, match=r"subject 1 appears in parts \['val', 'test'\]"):
        check_split(sp, subject, trial, "subject")
    # check_folds names the first segment tested other than once: segment 2 (subject 0, trial 1)
    f = {"train": np.array([], np.int64), "val": np.array([], np.int64)}
    folds = [dict(f, test=np.array([0, 1])), dict(f, test=np.array([4, 5, 6, 7, 8, 9, 10, 11]))]
    with pytest.raises(DataError, match=r"segment 2 \(subject 0, trial 1\) is in the test part of 0 folds"):
        check_folds(folds, subject, trial)
    # a LOSO fold must test exactly one subject
    fold = {"train": np.array([], np.int64), "val": np.array([], np.int64), "test": np.arange(12)}
    with pytest.raises(DataError, match="tests 2 subjects, expected 1"):
        check_fold(fold, subject, trial, "loso")


# ----------------------------------------------------------------------------- folds
def test_carve_val_by_hand():
    """round(f * n) groups, at least 1, largest remainders first, every class keeps a training group
    and every class with a group to spare gives validation at least one."""
    gc = np.array([0] * 6 + [1] * 4)
    rng = np.random.default_rng(0)
    cls = lambda v, gc=gc: np.bincount(gc[v], minlength=2).tolist()
    assert cls(_carve_val(np.arange(10), gc, 0.3, rng)) == [2, 1]   # quotas 1.8, 1.2: the .8 first
    assert cls(_carve_val(np.arange(10), gc, 0.01, rng)) == [1, 1]  # round(0.1) = 0: one of every class
    assert cls(_carve_val(np.arange(10), gc, 0.1, rng)) == [1, 1]   # 0.6, 0.4: class 1 raised to its one
    assert cls(_carve_val(np.arange(3), np.array([0, 0, 1]), 0.01, rng), np.array([0, 0, 1])) == [1, 0]  # a single
    # training group of class 1 stays in training (check_val_classes refuses that split)
    assert cls(_carve_val(np.arange(10), gc, 0.7, rng)) == [4, 3]   # 4.2, 2.8: the .8 up to 3 of 4
    gc17 = np.array([0] * 12 + [1] * 5)  # 3 of 17: quotas 2.12, 0.88: the .88 (small class) first
    assert cls(_carve_val(np.arange(17), gc17, 0.18, rng), gc17) == [2, 1]
    gc4 = np.array([0, 0, 1, 1])  # round(2.8) = 3 wanted, but each class keeps one: 2
    v = _carve_val(np.arange(4), gc4, 0.7, rng)
    assert cls(v, gc4) == [1, 1]
    sub = np.array([3, 5, 6, 8])  # the groups are those of train_groups, not positions
    v = _carve_val(sub, np.array([0, 0, 0, 1, 1, 1, 1, 1, 1]), 0.5, rng)
    assert set(v.tolist()) <= set(sub.tolist()) and len(v) == 2
    with pytest.raises(DataError, match="cannot give 2 to validation"):
        _carve_val(np.arange(2), np.array([0, 1]), 0.9, rng)


def test_kfold_boundaries_and_defaults():
    subject, trial = grid(n_subjects=2, n_trials=5, n_segments=1)  # 10 trials
    assert len(fold_splits(subject, trial, 0)) == 5  # the default: 5 folds
    assert len(fold_splits(subject, trial, 0, n_folds=10)) == 10  # as many folds as trials
    assert len(fold_splits(subject, trial, 0, "loso")) == 2  # two subjects suffice
    assert len(fold_splits(subject, trial, 0, n_folds=5, folds_by="subject")) == 5  # 5 trials per subject suffice
    # 4 folds of 10 trials: every fold tests 2 or 3 (the round-robin reaches every fold)
    sizes = sorted(len(f["test"]) for f in fold_splits(subject, trial, 1, n_folds=4))
    assert sizes == [2, 2, 3, 3]


def test_kfold_by_subject_names_the_short_subject_and_deals_within_subjects():
    subject = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    trial = np.array([10, 11, 12, 10, 11, 10, 11, 12])
    with pytest.raises(DataError, match=r"subject 1 has 2 trial\(s\), fewer than split.n_folds=3"):
        fold_splits(subject, trial, 0, n_folds=3, folds_by="subject")
    subject, trial = grid(n_subjects=3, n_trials=4, n_segments=1)
    y = (trial >= 2).astype(np.int64)  # per subject two trials of each class
    for seed in range(3):
        folds = fold_splits(subject, trial, seed, n_folds=2, folds_by="subject", stratify=y)
        for f in folds:  # every subject, and within it every class, in every test fold once
            assert sorted(zip(subject[f["test"]].tolist(), y[f["test"]].tolist())) == [
                (s, c) for s in range(3) for c in (0, 1)]
