"""The SEED family's protocol splits (chronological, cross-session) and their leakage checks."""
from __future__ import annotations

import numpy as np
import pytest

from cmkd.data.protocols import check_protocol_split, per_subject_scores, protocol_split
from cmkd.data.splits import make_split
from cmkd.errors import ConfigError, DataError


def _arrays(n_subjects=2, n_sessions=3, n_trials=15, n_seg=2):
    subj, sess, trial = [], [], []
    for s in range(1, n_subjects + 1):
        for se in range(1, n_sessions + 1):
            for k in range(n_trials):
                subj += [s] * n_seg
                sess += [se] * n_seg
                trial += [100 * se + k] * n_seg
    return np.array(subj), np.array(trial), np.array(sess)


def _clips(split, part, subject, trial, session):
    idx = split[part]
    return {(int(a), int(b), int(c) - 100 * int(b)) for a, b, c in zip(subject[idx], session[idx], trial[idx])}


SEED_Y = [lab + 1 for lab in (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)]  # SEED's clip order, stored classes


def _labels(trial, session, order=SEED_Y):
    return np.array([order[(t - 100 * se) % len(order)] for t, se in zip(trial, session)])


def test_chronological_is_the_official_split():
    subject, trial, session = _arrays()
    y = _labels(trial, session)
    split = make_split(subject, trial, 0, kind="chronological", session=session, stratify=y,
                       protocol={"kind": "chronological", "train_trials": 9, "val_trials": 1})
    for s in (1, 2):
        for se in (1, 2, 3):
            mine = lambda p: {k for a, b, k in _clips(split, p, subject, trial, session) if (a, b) == (s, se)}
            assert mine("train") | mine("val") == set(range(9)) and not mine("train") & mine("val")
            assert mine("test") == set(range(9, 15))  # the official test clips, whatever the seed
        # validation: one clip of every class of the subject, drawn across its training sessions
        v = [i for i in split["val"] if subject[i] == s]
        assert sorted(set(y[v].tolist())) == [0, 1, 2]
        assert len({(trial[i], session[i]) for i in v}) == 3
    # every segment is somewhere, and no trial in two parts
    assert sum(len(v) for v in split.values()) == subject.size
    parts_of = {}
    for p, idx in split.items():
        for i in idx:
            parts_of.setdefault((subject[i], trial[i]), set()).add(p)
    assert all(len(v) == 1 for v in parts_of.values())
    # the run seed draws the validation clips (the same seed, the same draw); the test part is fixed
    same = make_split(subject, trial, 0, kind="chronological", session=session, stratify=y, protocol={"train_trials": 9})
    assert all(np.array_equal(split[p], same[p]) for p in split)
    other = make_split(subject, trial, 7, kind="chronological", session=session, stratify=y, protocol={"train_trials": 9})
    assert np.array_equal(split["test"], other["test"]) and not np.array_equal(split["val"], other["val"])
    # SEED-IV's 16 / 8; val_trials: 2 clips of each class per subject
    a4 = _arrays(1, 3, 24, 1)
    y4 = _labels(a4[1], a4[2], [0, 1, 2, 3] * 6)
    s4 = protocol_split("chronological", *a4, {"train_trials": 16, "val_trials": 2}, seed=0, labels=y4)
    assert len(s4["test"]) == 3 * 8 and len(s4["train"]) + len(s4["val"]) == 3 * 16
    assert np.bincount(y4[s4["val"]]).tolist() == [2, 2, 2, 2]


def test_the_last_clip_rule_is_refused():
    """The 912213b rule (the last training clip of every session validates) puts SEED's ninth clip,
    "positive" in all three sessions, in validation: one class. check_val_classes refuses it,
    naming the data set, the subject and the class; the rule in place passes."""
    from cmkd.data.splits import check_val_classes

    subject, trial, session = _arrays()
    y = _labels(trial, session)
    k = trial - 100 * session
    old = {"train": np.nonzero(k < 8)[0], "val": np.nonzero(k == 8)[0], "test": np.nonzero(k >= 9)[0]}
    assert set(y[old["val"]].tolist()) == {2}
    names = ["negative", "neutral", "positive"]
    with pytest.raises(DataError, match=r"data set 'seed', subject 1: class 0 \('negative'\) has 9 training trial"):
        check_val_classes(old, y, subject, trial, "seed", per_subject=True, names=names)
    new = make_split(subject, trial, 0, kind="chronological", session=session, stratify=y, protocol={"train_trials": 9})
    assert check_val_classes(new, y, subject, trial, "seed", per_subject=True, names=names) == {"0": 2, "1": 2, "2": 2}
    # per subject: a subject whose validation lacks a class is named even when the pooled part has it
    one = dict(new)
    drop = [i for i in new["val"] if subject[i] == 2 and y[i] == 1]
    one["val"], one["train"] = np.setdiff1d(new["val"], drop), np.sort(np.concatenate([new["train"], drop]))
    check_val_classes(one, y, subject, trial, "seed", per_subject=False)
    with pytest.raises(DataError, match=r"subject 2: class 1 "):
        check_val_classes(one, y, subject, trial, "seed", per_subject=True)


def test_cross_session_keeps_sessions_apart():
    subject, trial, session = _arrays()
    y = _labels(trial, session)
    split = make_split(subject, trial, 0, kind="cross_session", session=session, stratify=y, protocol={"test_session": 2})
    assert set(session[split["test"]]) == {2} and (session == 2).sum() == len(split["test"])
    assert set(session[split["train"]]) == {1, 3} and set(session[split["val"]]) <= {1, 3}
    # validation: one clip of every class per subject (3 classes x 2 subjects x 2 segments)
    assert len(split["val"]) == 3 * 2 * 2
    for s in (1, 2):
        assert sorted(set(y[[i for i in split["val"] if subject[i] == s]].tolist())) == [0, 1, 2]


def test_checks_catch_planted_leaks():
    subject, trial, session = _arrays()
    split = protocol_split("cross_session", subject, trial, session, {"test_session": 3})
    # one segment of a test trial moved into train: the shared trial-level check
    leak = dict(split)
    j = int(split["test"][0])
    leak["test"] = split["test"][1:]
    leak["train"] = np.sort(np.append(split["train"], j))
    with pytest.raises(DataError, match="appears in parts"):
        check_protocol_split("cross_session", leak, subject, trial, session)
    # a whole trial of the test session moved into train: the session check
    t = trial[j]
    moved = np.nonzero((subject == subject[j]) & (trial == t))[0]
    leak2 = {"train": np.sort(np.concatenate([split["train"], moved])), "val": split["val"],
             "test": np.setdiff1d(split["test"], moved)}
    with pytest.raises(DataError, match="session 3 is in the test part and in train/val"):
        check_protocol_split("cross_session", leak2, subject, trial, session)
    # chronological: a late clip trained, an early one tested
    chrono = protocol_split("chronological", subject, trial, session, {"train_trials": 9})
    late = np.nonzero((subject == 1) & (session == 1) & (trial == 114))[0]
    early = np.nonzero((subject == 1) & (session == 1) & (trial == 100))[0]
    swapped = {"train": np.sort(np.concatenate([np.setdiff1d(chrono["train"], early), late])), "val": chrono["val"],
               "test": np.sort(np.concatenate([np.setdiff1d(chrono["test"], late), early]))}
    with pytest.raises(DataError, match="chronological split must keep the clip order"):
        check_protocol_split("chronological", swapped, subject, trial, session)


def test_protocol_errors():
    subject, trial, session = _arrays(1, 2, 15, 1)
    with pytest.raises(DataError, match="no array 'session'"):
        make_split(subject, trial, 0, kind="chronological", protocol={"train_trials": 9})
    with pytest.raises(ConfigError, match="split.train_trials: required"):
        make_split(subject, trial, 0, kind="chronological", session=session)
    with pytest.raises(ConfigError, match="split.val_trials: must be an integer >= 1"):  # an empty validation part
        protocol_split("chronological", subject, trial, session, {"train_trials": 2, "val_trials": 0})
    with pytest.raises(DataError, match="split.test_session: session 3 is not in the data"):
        protocol_split("cross_session", subject, trial, session, {})
    with pytest.raises(DataError, match="SEED-family"):  # DEAP-style trial ids
        protocol_split("chronological", subject, np.arange(subject.size), session, {"train_trials": 9})


def test_per_subject_scores_by_hand():
    subject = np.array([1, 1, 1, 2, 2])
    y = np.array([0, 1, 2, 0, 1])
    logits = np.eye(3)[[0, 1, 0, 0, 0]]
    r = per_subject_scores(subject, y, logits)
    assert r["subjects"] == {"1": {"accuracy": pytest.approx(200 / 3), "n": 3}, "2": {"accuracy": 50.0, "n": 2}}
    assert r["mean_accuracy"] == pytest.approx((200 / 3 + 50) / 2)
    assert r["std_accuracy"] == pytest.approx(np.std([200 / 3, 50], ddof=1))


def test_protocols_on_a_prepared_seed_fixture(tmp_path):
    from cmkd.data.prepared import load_prepared
    from cmkd.data.seed import prepare_seed

    try:
        from tests import fixtures_seed as fs
    except ImportError:
        import fixtures_seed as fs
    root = fs.write_seed(tmp_path / "raw", subjects=(1, 2), sessions=(1, 2, 3), eye=False)
    prep = load_prepared(prepare_seed(root, tmp_path / "s"))
    arrays = [np.asarray(prep[k]) for k in ("subject", "trial", "session")]
    y = np.asarray(prep["label"])
    chrono = protocol_split("chronological", *arrays, {"train_trials": 9}, seed=0, labels=y)
    k = arrays[1] - 100 * arrays[2]
    assert set(k[chrono["test"]]) == set(range(9, 15)) and set(k[np.concatenate([chrono["train"], chrono["val"]])]) == set(range(9))
    cross = protocol_split("cross_session", *arrays, {"test_session": 1}, seed=0, labels=y)
    assert set(arrays[2][cross["test"]]) == {1}
    for sp in (chrono, cross):  # every subject validates on every class it trains on
        for s in (1, 2):
            m = arrays[0] == s
            assert set(y[np.intersect1d(sp["val"], np.nonzero(m)[0])]) == set(y[np.intersect1d(sp["train"], np.nonzero(m)[0])]) == {0, 1, 2}


def test_config_check_of_protocol_splits(tmp_path):
    import copy

    import yaml

    from cmkd.config import run_spec
    from cmkd.validation import check_semantics
    from tests.conftest import ROOT

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    (tmp_path / "1_20131027.mat").write_bytes(b"")  # an empty raw root is a config error of its own
    base["datasets"]["seed"] = {"loader": "seed", "root": str(tmp_path), "modalities": ["eye", "eeg_de"],
                                "split": {"kind": "chronological", "train_trials": 9}}
    base["tracks"]["eye-to-eeg_de"] = {"teacher": ["eye"], "student": ["eeg_de"]}
    base["tracks"]["eeg_de-to-eye"] = {"teacher": ["eeg_de"], "student": ["eye"]}  # a table of seed names it
    base["encoders"]["eeg_de"] = {"name": "de_mlp"}
    base["dimensions"]["emotion3"] = {"task": "classification", "n_classes": 3, "target": "emotion"}
    base["experiments"] = [{"dataset": "seed", "track": "eye-to-eeg_de", "dimensions": ["emotion3"],
                            "methods": ["baseline", "teacher_leaky"]}]
    check_semantics(base)
    # the data set's split reaches the run spec; a method's own split (leaky) still wins
    assert run_spec(base, "seed", "eye-to-eeg_de", "emotion3", "baseline", 0)["split"]["kind"] == "chronological"
    own = run_spec(base, "seed", "eye-to-eeg_de", "emotion3", "teacher_leaky", 0)["split"]  # segment-level k-fold
    assert (own["kind"], own["folds_by"]) == (base["methods"]["teacher_leaky"]["split"]["kind"], "segment")
    bad = copy.deepcopy(base)
    del bad["datasets"]["seed"]["split"]["train_trials"]
    with pytest.raises(ConfigError, match=r"datasets\.seed\.split\.train_trials: required"):
        check_semantics(bad)
    bad = copy.deepcopy(base)
    bad["datasets"]["seed"]["split"]["kind"] = "chronologic"
    with pytest.raises(ConfigError, match=r"datasets\.seed\.split\.kind: unknown split kind 'chronologic' \(known: "):
        check_semantics(bad)
    bad = copy.deepcopy(base)
    bad["datasets"]["seed"]["split"]["train_trails"] = 9
    with pytest.raises(ConfigError, match=r"datasets\.seed\.split\.train_trails: unknown split key"):
        check_semantics(bad)
    bad = copy.deepcopy(base)
    bad["split"] = {"kind": "cross_session"}
    bad["experiments"] = [{"dataset": "synthetic", "track": "eye-to-eeg", "dimensions": ["arousal"], "methods": ["baseline"]}]
    with pytest.raises(ConfigError, match=r"split\.kind: 'cross_session' is a SEED-family protocol; dataset 'synthetic'"):
        check_semantics(bad)


def test_plan_time_check_refuses_a_validation_part_missing_a_class(tmp_path):
    """Where the prepared meta.json exists, check_config (Snakemake's planning) computes every run's
    split and refuses one whose validation part misses a class, naming the data set, subject and
    class; without prepared data the job checks at start."""
    import yaml

    from cmkd.validation import check_semantics
    from cmkd.data.seed import prepare_seed
    from tests.conftest import ROOT

    try:
        from tests import fixtures_seed as fs
    except ImportError:
        import fixtures_seed as fs
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    base["results"] = str(tmp_path / "results")
    base["datasets"]["seed"] = {"loader": "seed", "root": str(tmp_path), "modalities": ["eye", "eeg_de"],
                                "split": {"kind": "chronological", "train_trials": 9, "stratify": False}}
    base["tracks"]["eye-to-eeg_de"] = {"teacher": ["eye"], "student": ["eeg_de"]}
    base["encoders"]["eeg_de"] = {"name": "de_mlp"}
    base["dimensions"]["emotion3"] = {"task": "classification", "n_classes": 3, "target": "emotion"}
    base["experiments"] = [{"dataset": "seed", "track": "eye-to-eeg_de", "dimensions": ["emotion3"], "methods": ["baseline"]}]
    base["tables"] = []
    root = fs.write_seed(tmp_path / "raw", subjects=(1, 2), sessions=(1, 2, 3), eye=True)
    check_semantics(base)  # not prepared yet: nothing to compute at plan time
    prepare_seed(root, tmp_path / "results" / "prepared" / "seed", {"modalities": ["eye", "eeg_de"]})
    # unstratified: one validation clip per subject cannot hold the three classes
    with pytest.raises(DataError, match=r"data set 'seed', subject 1: class \d \('\w+'\) has \d+ training trial.*"
                                        r"seed 0, dimension emotion3; found at plan time"):
        check_semantics(base)
    base["datasets"]["seed"]["split"]["stratify"] = True  # the default: one clip of every class per subject
    check_semantics(base)
