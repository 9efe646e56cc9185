"""SEED and SEED-V loaders, the raw-EEG DE path (SEED, SEED-IV), on small files in the documented formats."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from cmkd.data import de as de_mod
from cmkd.data.prepared import load_prepared
from cmkd.data.seed import TRIAL_LABELS, prepare_seed
from cmkd.data.seed_iv import prepare_seed_iv
from cmkd.data.seed_v import SESSION_LABELS as SEED_V_LABELS, prepare_seed_v
from cmkd.errors import ConfigError, DataError

try:
    from tests import fixtures_seed as fs
except ImportError:  # pytest run with tests/ on sys.path
    import fixtures_seed as fs


def test_published_label_lists():
    assert TRIAL_LABELS == [1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1]
    assert np.array_equal(np.bincount(np.array(TRIAL_LABELS) + 1), [5, 5, 5])
    assert SEED_V_LABELS[1] == [4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0]
    assert SEED_V_LABELS[2] == SEED_V_LABELS[3] == [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0]
    for labels in SEED_V_LABELS.values():  # 3 clips per emotion in every session
        assert np.array_equal(np.bincount(labels), [3, 3, 3, 3, 3])


@pytest.fixture(scope="module")
def seed_root(tmp_path_factory):
    return fs.write_seed(tmp_path_factory.mktemp("seed"))


def _ids(prep):
    return (np.asarray(prep[k]) for k in ("session", "subject", "trial", "segment"))


def test_seed_features(seed_root, tmp_path, caplog):
    out = tmp_path / "s"
    prepare_seed(seed_root, out)
    prep = load_prepared(out)
    n = sum(fs.seed_windows(s, sess, k) for s in (1, 2) for sess in (1, 2, 3) for k in range(15))
    assert prep.n == n and prep["eeg_de"].shape == (n, 62, 5) and "eye" not in prep
    sess, subj, trial, seg = _ids(prep)
    k = trial - 100 * sess
    # labels per window are the published list (+1), whatever session
    assert np.array_equal(prep["label"], [TRIAL_LABELS[b] + 1 for b in k])
    # sessions in date order, values from the right trial and window, channels in file order
    want = [fs.seed_de_value(a, b, 7, 3, w) for a, b, w in zip(sess, k, seg)]
    assert np.allclose(prep["eeg_de"][:, 7, 3], want, atol=2e-5, rtol=0)
    assert np.allclose(prep["eeg_de"][5], [[fs.seed_de_value(sess[5], k[5], c, b, seg[5]) for b in range(5)]
                                            for c in range(62)], atol=2e-5, rtol=0)
    assert prep.meta["eeg_source"] == "features" and prep.meta["eeg_feature"] == "de_LDS"
    assert prep.meta["labels"]["label_file_checked"] is True
    assert prep.meta["channels"]["eeg_de"][:3] == ["FP1", "FPZ", "FP2"]
    assert [f["files"]["eeg"] for f in prep.meta["files"] if f["subject"] == 2] == \
        [f"2_{d}.mat" for d in fs.SEED_DATES[2]]
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_seed(seed_root, out)
    assert "reused" in caplog.text
    prepare_seed(seed_root, out, {"eeg_feature": "de_movingAve"})
    assert np.allclose(load_prepared(out)["eeg_de"][0], np.asarray(prep["eeg_de"][0]) + 0.5)


def test_seed_eye_with_pooled_features(seed_root, tmp_path):
    out = tmp_path / "s"
    prepare_seed(seed_root, out, {"modalities": ["eye", "eeg_de"], "pool_windows": 4, "subjects": [1]})
    prep = load_prepared(out)
    n = sum(fs.seed_windows(1, sess, k) // 4 for sess in (1, 2, 3) for k in range(15))
    assert prep.n == n and prep["eye"].shape == (n, 31) and prep.meta["truncated"] == []
    sess, subj, trial, seg = _ids(prep)
    k = trial - 100 * sess
    assert np.allclose(prep["eye"][:, 2], [fs.seed_eye_value(a, b, w, 2) for a, b, w in zip(sess, k, seg)])
    # a pooled row is the mean of four consecutive 1 s windows
    want = [np.mean([fs.seed_de_value(a, b, 9, 1, 4 * w + i) for i in range(4)]) for a, b, w in zip(sess, k, seg)]
    assert np.allclose(prep["eeg_de"][:, 9, 1], want, atol=2e-5, rtol=0)
    assert prep.meta["window_seconds"] == 4.0


def test_seed_raw_de(tmp_path):
    root = fs.write_seed(tmp_path / "raw", subjects=(3,), sessions=(1,), eye=False, raw=True, raw_seconds=2.2)
    out = tmp_path / "s"
    prepare_seed(root, out, {"eeg_source": "raw", "modalities": ["eeg_de", "eeg"], "sessions": [1]})
    prep = load_prepared(out)
    assert prep.n == 15 * 2 and prep["eeg"].shape == (30, 62, 200) and prep["eeg_de"].shape == (30, 62, 5)
    assert prep.meta["eeg_source"] == "raw" and prep.meta["sampling_rates"] == {"eeg": 200.0}
    de = np.asarray(prep["eeg_de"])
    # the 10 Hz sine of channel c (amplitude 1 + c) lands in the alpha band: DE = 0.5 log(2 pi e A^2 / 2)
    want = de_mod.gaussian_de(np.array([fs.seed_raw_amplitude(c) ** 2 / 2 for c in range(62)]))
    assert np.allclose(de[:, :, 2].mean(axis=0), want, atol=0.05)
    assert (de.argmax(axis=2) == 2).all()
    # the signal windows keep the channel order (amplitude grows with the channel index)
    amp = np.abs(np.asarray(prep["eeg"])).max(axis=(0, 2))
    assert np.allclose(amp, [fs.seed_raw_amplitude(c) for c in range(62)], rtol=0.02)


def test_seed_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="SEED root directory not found"):
        prepare_seed(tmp_path / "none", tmp_path / "out")
    wrong = list(TRIAL_LABELS)
    wrong[0] = 0
    root = fs.write_seed(tmp_path / "raw", subjects=(1,), sessions=(1,), eye=False, labels=wrong)
    with pytest.raises(DataError, match=r"label\.mat: 'label' is \[0, 0, -1"):
        prepare_seed(root, tmp_path / "out")
    with pytest.raises(ConfigError, match="needs eeg_source: raw"):
        prepare_seed(root, tmp_path / "out", {"modalities": ["eeg"]})
    with pytest.raises(DataError, match="Eye_movement_features: folder not found"):
        prepare_seed(root, tmp_path / "out", {"modalities": ["eye", "eeg_de"]})
    with pytest.raises(ConfigError, match="pool_windows"):
        prepare_seed(root, tmp_path / "out", {"pool_windows": 0})


@pytest.fixture(scope="module")
def seed_v_root(tmp_path_factory):
    return fs.write_seed_v(tmp_path_factory.mktemp("seedv"))


def test_seed_v(seed_v_root, tmp_path, caplog):
    out = tmp_path / "v"
    prepare_seed_v(seed_v_root, out)
    prep = load_prepared(out)
    n = sum(fs.seed_v_windows(s, i // 15 + 1, i % 15) for s in (1, 2) for i in range(45))
    assert prep.n == n and prep["eeg_de"].shape == (n, 62, 5) and prep["eye"].shape == (n, 33)
    sess, subj, trial, seg = _ids(prep)
    k = trial - 100 * sess
    assert np.array_equal(prep["label"], [SEED_V_LABELS[a][b] for a, b in zip(sess, k)])
    assert len({(a, b) for a, b in zip(subj, trial)}) == 2 * 45
    # 310 values read channel-major: channel c, band b where they were written
    assert np.allclose(prep["eeg_de"][:, 11, 4], [fs.seed_v_de_value(a, b, 11, 4, w) for a, b, w in zip(sess, k, seg)],
                       atol=2e-5, rtol=0)
    assert np.allclose(prep["eye"][:, 32], [fs.seed_v_eye_value(a, b, w, 32) for a, b, w in zip(sess, k, seg)])
    n0 = fs.seed_v_windows(1, 1, 0)
    assert prep.meta["truncated"] == [{"session": 1, "subject": 1, "trial": 0, "eye_windows": n0 + 1,
                                       "eeg_de_windows": n0, "kept": n0}]
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_seed_v(seed_v_root, out)
    assert "reused" in caplog.text
    prepare_seed_v(seed_v_root, out, {"de_layout": "band_major", "modalities": ["eeg_de"], "sessions": [2]})
    other = load_prepared(out)
    assert "eye" not in other and set(np.asarray(other["session"])) == {2}
    assert not np.allclose(other["eeg_de"][0], prep["eeg_de"][np.asarray(prep["session"]) == 2][0])


def test_seed_v_bad_inputs(tmp_path):
    root = fs.write_seed_v(tmp_path / "raw", subjects=(1,), wrong_label=True, eye=False)
    with pytest.raises(DataError, match=r"1_123\.npz: label\[0\] holds class 0 for session 1 trial 1; the published list gives 4"):
        prepare_seed_v(root, tmp_path / "out", {"modalities": ["eeg_de"]})
    (root / "EEG_DE_features" / "1_123.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match=r"1_123\.npz: cannot read \.npz file"):
        prepare_seed_v(root, tmp_path / "out", {"modalities": ["eeg_de"]})
    with pytest.raises(DataError, match="Eye_movement_features: folder not found"):
        prepare_seed_v(root, tmp_path / "out")
    with pytest.raises(ConfigError, match="de_layout"):
        prepare_seed_v(root, tmp_path / "out", {"de_layout": "x"})


def test_seed_iv_raw(tmp_path):
    root = fs.write_seed_iv_raw(tmp_path / "raw", seconds=8.5)
    out = tmp_path / "s"
    prepare_seed_iv(root, out, {"eeg_source": "raw", "modalities": ["eeg_de", "eeg"], "sessions": [1]})
    prep = load_prepared(out)
    assert prep.n == 24 * 2 and prep["eeg"].shape == (48, 62, 800) and prep.meta["eeg_source"] == "raw"
    want = de_mod.gaussian_de(np.array([fs.seed_raw_amplitude(c) ** 2 / 2 for c in range(62)]))
    assert np.allclose(np.asarray(prep["eeg_de"])[:, :, 2].mean(axis=0), want, atol=0.05)
    with pytest.raises(ConfigError, match="needs eeg_source: raw"):
        prepare_seed_iv(root, out, {"modalities": ["eeg"], "sessions": [1]})


def test_differential_entropy_by_hand():
    assert math.isclose(float(de_mod.gaussian_de(np.array(2.0))), 0.5 * math.log(2 * math.pi * math.e * 2.0))
    # white noise of variance 1 spread over 0-100 Hz: the 14-31 Hz band keeps 17/100 of the power
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 200 * 60))
    d = de_mod.differential_entropy(x, 200.0, 4.0)
    assert d.shape == (15, 2, 5)
    assert np.allclose(d[:, :, 3].mean(), 0.5 * math.log(2 * math.pi * math.e * 17 / 100), atol=0.05)
    with pytest.raises(ConfigError, match="band"):
        de_mod.differential_entropy(x, 80.0, 4.0)


# ----------------------------------------------------------------------------- validation parts
def _last_clip_rule(prep, train_trials):
    """The 912213b rule: the last training clip of every (subject, session) validates."""
    k = np.asarray(prep["trial"]) - 100 * np.asarray(prep["session"])
    return {"train": np.nonzero(k < train_trials - 1)[0], "val": np.nonzero(k == train_trials - 1)[0],
            "test": np.nonzero(k >= train_trials)[0]}


@pytest.mark.parametrize("name", ["seed", "seed_iv", "seed_v"])
def test_validation_parts_hold_every_class(name, seed_root, seed_v_root, tmp_path):
    """On the SEED, SEED-IV and SEED-V fixtures, with the paper grid's protocols (config/paper.yaml),
    every subject's validation part holds every class of its training part, for several seeds;
    the last-clip rule of 912213b validated on one or two classes (SEED "positive", SEED-IV no
    "fear", SEED-V "disgust" and "fear") and is refused naming the data set, subject and class."""
    import yaml

    from cmkd.data.splits import check_val_classes, per_subject_validation, run_splits
    from tests.conftest import ROOT

    out = tmp_path / name
    if name == "seed":
        prepare_seed(seed_root, out, {"modalities": ["eeg_de"]})
    elif name == "seed_v":
        prepare_seed_v(seed_v_root, out, {"modalities": ["eeg_de"]})
    else:
        root = fs.write_seed_iv_raw(tmp_path / "raw", subjects=(1, 2), sessions=(1, 2, 3), seconds=4.2)
        prepare_seed_iv(root, out, {"eeg_source": "raw", "modalities": ["eeg_de"]})
    prep = load_prepared(out)
    y, names = np.asarray(prep["label"]), prep.meta["labels"]["names"]
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    specs = [paper["datasets"][name]["split"]]
    if name == "seed_iv":
        specs.append(paper["datasets"]["seed_iv_cross_session"]["split"])
    for sp in specs:
        assert sp["models"] == "per_subject"  # the paper grid: one model per subject, validated on its own clips
        for seed in (0, 1, 2):
            (split,) = run_splits(prep, seed, {**sp, "models": "pooled"}, y, "classification")
            counts = check_val_classes(split, y, prep["subject"], prep["trial"], name, per_subject_validation(sp), names)
            assert set(counts) == {str(c) for c in range(len(names))} and min(counts.values()) >= 2  # 2 subjects
            for fold in run_splits(prep, seed, sp, y, "classification"):  # one per subject
                counts = check_val_classes(fold, y, prep["subject"], prep["trial"], name, True, names)
                assert set(counts) == {str(c) for c in range(len(names))} and min(counts.values()) >= 1
    old = _last_clip_rule(prep, paper["datasets"][name]["split"]["train_trials"])
    seen = {names[c] for c in np.unique(y[old["val"]])}
    assert seen == {"seed": {"positive"}, "seed_iv": set(names) - {"fear"}, "seed_v": {"disgust", "fear"}}[name]
    with pytest.raises(DataError, match=rf"data set '{name}', subject \d+: class \d \('\w+'\) has \d+ training trial"):
        check_val_classes(old, y, prep["subject"], prep["trial"], name, True, names)
