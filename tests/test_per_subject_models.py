"""Per-subject models for the SEED family (``split.models: per_subject``): one model per subject,
trained, selected and tested on that subject's clips only, the run's headline the mean over
subjects; the pooled protocol (one model over all subjects) unchanged beside it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cmkd.data import split_kinds
from cmkd.data.prepared import load_prepared
from cmkd.data.seed import prepare_seed
from cmkd.data.seed_iv import prepare_seed_iv
from cmkd.data.seed_v import prepare_seed_v
from cmkd.data.splits import PARTS, check_subject_folds, check_val_classes, run_splits
from cmkd.errors import ConfigError, DataError

try:
    from tests import fixtures_seed as fs
except ImportError:  # pytest run with tests/ on sys.path
    import fixtures_seed as fs

SPLITS = {"seed": {"kind": "chronological", "train_trials": 9},
          "seed_iv": {"kind": "chronological", "train_trials": 16},
          "seed_iv_cross_session": {"kind": "cross_session", "test_session": 3},
          "seed_v": {"kind": "chronological", "train_trials": 10}}


def _prepared(name: str, tmp_path):
    out = tmp_path / name
    if name == "seed":
        prepare_seed(fs.write_seed(tmp_path / "raw", subjects=(1, 2, 3), eye=False), out, {"modalities": ["eeg_de"]})
    elif name == "seed_v":
        prepare_seed_v(fs.write_seed_v(tmp_path / "raw", subjects=(1, 2, 3), eye=False), out, {"modalities": ["eeg_de"]})
    else:
        root = fs.write_seed_iv_raw(tmp_path / "raw", subjects=(1, 2, 3), sessions=(1, 2, 3), seconds=4.2)
        prepare_seed_iv(root, out, {"eeg_source": "raw", "modalities": ["eeg_de"]})
    return load_prepared(out)


@pytest.mark.parametrize("name", ["seed", "seed_iv", "seed_iv_cross_session", "seed_v"])
def test_per_subject_folds_are_the_subjects_of_the_pooled_split(name, tmp_path):
    """On the SEED, SEED-IV and SEED-V fixtures: one fold per subject, each holding only its
    subject's segments, every part the pooled protocol split's part of that subject (the same
    validation clips), each validation part holding every class of its training part."""
    prep = _prepared("seed_iv" if name.startswith("seed_iv") else name, tmp_path)
    y, subject, trial = np.asarray(prep["label"]), np.asarray(prep["subject"]), np.asarray(prep["trial"])
    for seed in (0, 1):
        (pooled,) = run_splits(prep, seed, SPLITS[name], y, "classification")
        assert run_splits(prep, seed, {**SPLITS[name], "models": "pooled"}, y, "classification")[0]["train"].tolist() \
            == pooled["train"].tolist()
        folds = run_splits(prep, seed, {**SPLITS[name], "models": "per_subject"}, y, "classification")
        assert len(folds) == 3
        for s, fold in zip((1, 2, 3), folds):
            for p in PARTS:
                assert len(fold[p]) and set(subject[fold[p]].tolist()) == {s}, (s, p)
                assert np.array_equal(fold[p], pooled[p][subject[pooled[p]] == s])
            counts = check_val_classes(fold, y, subject, trial, name, True)
            assert min(counts.values()) >= 1 and len(counts) == len(np.unique(y))


def test_subject_fold_check_refuses_a_model_that_sees_another_subject():
    subject = np.repeat([1, 2], 6)
    split = {"train": np.array([0, 1, 6, 7]), "val": np.array([2, 8]), "test": np.array([3, 4, 5, 9, 10, 11])}
    good = [{p: v[subject[v] == s] for p, v in split.items()} for s in (1, 2)]
    check_subject_folds(good, split, subject)
    leaky = [dict(good[0], train=split["train"]), good[1]]  # subject 1's model trained on both subjects
    with pytest.raises(DataError, match="per-subject fold 0 holds subjects \\[1, 2\\]"):
        check_subject_folds(leaky, split, subject)
    lost = [good[0], dict(good[1], test=good[1]["test"][:1])]
    with pytest.raises(DataError, match="test parts are not the protocol split's"):
        check_subject_folds(lost, split, subject)
    no_val = [good[0], dict(good[1], val=np.zeros(0, np.int64))]
    with pytest.raises(DataError, match="subject 2 has no val segment"):
        check_subject_folds(no_val, split, subject)


def test_models_parameter_is_declared_once_and_checked():
    assert split_kinds.SPLIT_KINDS["chronological"].params["models"] is split_kinds.SPLIT_KINDS["cross_session"].params["models"]
    assert split_kinds.settings({"kind": "chronological", "train_trials": 9})["models"] == "pooled"
    assert split_kinds.fold_run({"kind": "cross_session", "models": "per_subject"})
    assert not split_kinds.fold_run({"kind": "chronological", "train_trials": 9})
    assert split_kinds.fold_run({"kind": "loso"}) and not split_kinds.fold_run({"kind": "trial"})
    assert split_kinds.models_per_run({"kind": "chronological", "models": "per_subject"}, 15) == 15
    assert split_kinds.models_per_run({"kind": "chronological"}, 15) == 1
    assert split_kinds.models_per_run({"kind": "kfold", "n_folds": 4}, 15) == 4
    with pytest.raises(ConfigError, match=r"datasets\.seed\.split\.models: must be one of"):
        split_kinds.check_section({"kind": "chronological", "models": "each"}, "datasets.seed.split")
    with pytest.raises(ConfigError, match=r"methods\.m\.split\.models: 'per_subject' needs a kind that trains "
                                          r"per-subject models \(chronological, cross_session\); kind 'kfold'"):
        split_kinds.check_section({"kind": "kfold", "models": "per_subject"}, "methods.m.split")


def test_config_check_names_a_bad_models_value(tmp_path):
    import yaml

    from cmkd.validation import check_semantics
    from tests.conftest import ROOT

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    (tmp_path / "1_20131027.mat").write_bytes(b"")
    base["datasets"]["seed"] = {"loader": "seed", "root": str(tmp_path), "modalities": ["eye", "eeg_de"],
                                "split": {"kind": "chronological", "train_trials": 9, "models": "per_subject"}}
    base["tracks"]["eye-to-eeg_de"] = {"teacher": ["eye"], "student": ["eeg_de"]}
    base["tracks"]["eeg_de-to-eye"] = {"teacher": ["eeg_de"], "student": ["eye"]}  # a table of seed names it
    base["encoders"]["eeg_de"] = {"name": "de_mlp"}
    base["dimensions"]["emotion3"] = {"task": "classification", "n_classes": 3, "target": "emotion"}
    base["experiments"] = [{"dataset": "seed", "track": "eye-to-eeg_de", "dimensions": ["emotion3"],
                            "methods": ["baseline"]}]
    base["tables"] = []
    check_semantics(base)
    base["datasets"]["seed"]["split"]["models"] = "per-subject"
    with pytest.raises(ConfigError, match=r"datasets\.seed\.split\.models"):
        check_semantics(base)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def seed_cfg(tmp_path_factory):
    from conftest import tiny_config

    tmp = tmp_path_factory.mktemp("perseed")
    cfg = tiny_config(results=str(tmp / "results"))
    cfg["seeds"] = [0]
    cfg["training"].update({"max_epochs": 12, "patience": 12, "batch_size": 16, "lr": 3e-3})
    cfg["datasets"]["seed"] = {"loader": "seed", "root": str(tmp / "raw"), "modalities": ["eye", "eeg_de"],
                               "params": {"modalities": ["eye", "eeg_de"], "pool_windows": 4},
                               "split": {"kind": "chronological", "train_trials": 9, "models": "per_subject"}}
    cfg["tracks"]["eye-to-eeg_de"] = {"teacher": ["eye"], "student": ["eeg_de"]}
    cfg["encoders"]["eeg_de"] = {"name": "de_mlp"}
    cfg["dimensions"]["emotion3"] = {"task": "classification", "n_classes": 3, "target": "emotion"}
    fs.write_seed(tmp / "raw", subjects=(1, 2, 3), sessions=(1, 2, 3))
    prepare_seed(tmp / "raw", tmp / "results" / "prepared" / "seed", cfg["datasets"]["seed"]["params"])
    return cfg


def _train(cfg, method, models, seed=0):
    from cmkd.config import run_dir, run_spec
    from cmkd.train import run

    cfg = json.loads(json.dumps(cfg))
    cfg["datasets"]["seed"]["split"]["models"] = models
    spec = run_spec(cfg, "seed", "eye-to-eeg_de", "emotion3", method, seed)
    spec["on_failure"] = "fail"
    out = run_dir(cfg, "seed", "eye-to-eeg_de", "emotion3", method, seed) + f"_{models}"
    for role, req in spec["requires"].items():  # the teacher of the same protocol
        req["dir"] = req["dir"] + f"_{models}"
    return run(spec, out), spec, out


def test_per_subject_run_trains_one_model_per_subject(seed_cfg):
    """A per-subject teacher and student: one model per subject on its own segments (the folds'
    split hashes are those of the subject's split), the student of subject i guided by subject i's
    teacher, the headline the mean of the per-subject metrics."""
    import torch

    from cmkd.run.checks import split_hash

    teacher, _, t_out = _train(seed_cfg, "teacher", "per_subject")
    kd, spec, out = _train(seed_cfg, "kd", "per_subject")
    prep = load_prepared(spec["prepared"])
    subject = np.asarray(prep["subject"])
    y = np.asarray(prep["label"])
    folds = run_splits(prep, 0, spec["split"], y, "classification")
    assert [f["fold"] for f in kd["folds"]] == [0, 1, 2] and [f["subject"] for f in kd["folds"]] == [1, 2, 3]
    assert kd["protocol"] == {"kind": "chronological", "n_folds": 3, "folds_by": None, "val_fraction": None,
                              "models": "per_subject"}
    for i, (fold, rec) in enumerate(zip(folds, kd["folds"])):
        for p in PARTS:  # the model of subject i+1 saw only that subject's segments
            assert set(subject[fold[p]].tolist()) == {i + 1}
            assert rec["n_segments"][p] == len(fold[p])
        assert rec["split_hash"] == split_hash(fold)
        t = torch.load(f"{t_out}/fold{i}/model.pt", weights_only=False)
        assert t["split_hash"] == rec["split_hash"] == teacher["folds"][i]["split_hash"]
        with np.load(f"{out}/fold{i}/features.npz") as z:
            assert np.array_equal(np.sort(z["index"]), fold["test"]) and set(z["subject"].tolist()) == {i + 1}
    # the headline: the mean over subjects of the per-subject metrics, each equal to its model's test
    assert kd["averaged_over"] == "subjects" and set(kd["test_per_subject"]) == {"1", "2", "3"}
    for metric in ("accuracy", "f1", "balanced_accuracy"):
        per = [kd["test_per_subject"][s][metric] for s in ("1", "2", "3")]
        assert kd["test"][metric] == pytest.approx(np.mean(per))
        assert per == pytest.approx([f["test"][metric] for f in kd["folds"]])
    assert kd["test_subject_summary"]["mean_accuracy"] == pytest.approx(kd["test"]["accuracy"])
    with np.load(f"{out}/features.npz") as z:
        pooled_acc = float((np.argmax(z["logits"], 1) == z["y"]).mean() * 100)
        assert set(z["index"].tolist()) == set(np.concatenate([f["test"] for f in folds]).tolist())
    assert kd["test_pooled"]["accuracy"] == pytest.approx(pooled_acc)
    # the subjects' F1s differ here, so the mean over subjects is not the pooled predictions' F1:
    # the headline is the former
    assert kd["test"]["f1"] != pytest.approx(kd["test_pooled"]["f1"])
    assert json.loads(open(f"{out}/metrics.json").read())["test"]["accuracy"] == kd["test"]["accuracy"]


def test_pooled_run_trains_one_model_as_before(seed_cfg):
    """``models: pooled`` (and no ``models`` key, the default) trains one model over all subjects:
    no folds, the pooled test metrics, the same numbers with and without the key."""
    pooled, spec, out = _train(seed_cfg, "baseline", "pooled")
    assert "folds" not in pooled and "averaged_over" not in pooled and "test_pooled" not in pooled
    assert set(pooled["test_per_subject"]) == {"1", "2", "3"}
    with np.load(f"{out}/features.npz") as z:
        assert pooled["test"]["accuracy"] == pytest.approx(float((np.argmax(z["logits"], 1) == z["y"]).mean() * 100))
    (split,) = run_splits(load_prepared(spec["prepared"]), 0, spec["split"], np.asarray(load_prepared(spec["prepared"])["label"]),
                          "classification")
    assert pooled["n_segments"] == {p: len(split[p]) for p in PARTS}
    cfg = json.loads(json.dumps(seed_cfg))
    del cfg["datasets"]["seed"]["split"]["models"]
    from cmkd.config import run_spec
    from cmkd.train import run

    spec0 = run_spec(cfg, "seed", "eye-to-eeg_de", "emotion3", "baseline", 0)
    default = run(spec0, out + "_default")
    assert default["test"] == pooled["test"] and default["n_segments"] == pooled["n_segments"]


def test_a_student_of_a_per_subject_teacher_must_run_per_subject(seed_cfg):
    _train(seed_cfg, "teacher", "per_subject", seed=1)
    from cmkd.config import run_dir, run_spec
    from cmkd.train import run

    spec = run_spec(seed_cfg, "seed", "eye-to-eeg_de", "emotion3", "kd", 1)
    spec["split"] = {**spec["split"], "models": "pooled"}
    spec["on_failure"] = "fail"
    for req in spec["requires"].values():
        req["dir"] = req["dir"] + "_per_subject"
    with pytest.raises(DataError, match="one model per subject, not a model"):
        run(spec, run_dir(seed_cfg, "seed", "eye-to-eeg_de", "emotion3", "kd", 1) + "_mixed")


# ----------------------------------------------------------------------------- captions and cost
def test_table_note_says_which_models_ran():
    import pandas as pd

    from cmkd.analysis.table_notes import table_note

    df = pd.DataFrame({"dataset": ["seed", "seed", "seed_iv"], "track": ["eye-to-eeg_de"] * 3,
                       "method": ["baseline", "cmcrd", "baseline"], "synthetic": [False] * 3})
    splits = {"seed/eye-to-eeg_de/baseline": {**SPLITS["seed"], "models": "per_subject"},
              "seed/eye-to-eeg_de/cmcrd": {**SPLITS["seed"], "models": "per_subject"},
              "seed_iv/eye-to-eeg_de/baseline": SPLITS["seed_iv"]}
    note = table_note(df, {"caption": "C."}, {"split": {"kind": "trial"}, "splits": splits})
    assert ("Protocol as run (generated from the split settings): seed: the chronological protocol split "
            "(train_trials 9), one model per subject") in note
    assert "the metrics the mean over subjects; seed_iv: the chronological protocol split (train_trials 16), one pooled " \
           "model over all subjects" in note
    assert "Protocol as run" not in table_note(df.assign(dataset="synthetic"), {"caption": "C."},
                                               {"split": {"kind": "trial"}, "splits": {}})


def test_cost_counts_one_model_per_subject():
    """The resource estimate and the paper grid's projection count the per-subject models: the
    same training segments as one pooled model, plus MODEL_S per further model."""
    import copy

    from cmkd import bench_scale, resources
    from cmkd.config import iter_cells, run_spec

    cfg = bench_scale.paper_config()
    assert cfg["datasets"]["seed_iv"]["split"]["models"] == "per_subject"
    pooled = copy.deepcopy(cfg)
    for ds in pooled["datasets"].values():
        if "models" in (ds.get("split") or {}):
            ds["split"]["models"] = "pooled"
    cell = ("seed_iv", "eye-to-eeg_de", "emotion", "baseline")
    per, one = resources.estimate(cfg, *cell, n_seeds=10), resources.estimate(pooled, *cell, n_seeds=10)
    assert (per["models"], one["models"]) == (15, 1) and per["mem_mb"] == one["mem_mb"]
    extra = 10 * 14 * resources.MODEL_S * resources.MARGIN / 60
    assert extra - 1 <= per["runtime"] - one["runtime"] <= extra + 1  # minutes, each rounded up
    seg = resources.run_segments({**SPLITS["seed_iv"], "models": "per_subject"}, 1000, 15)
    assert seg == {"models": 15, **{k: v for k, v in resources.run_segments(SPLITS["seed_iv"], 1000, 15).items()
                                    if k != "models"}}
    assert resources.run_segments({"kind": "kfold", "n_folds": 5, "val_fraction": 0.1}, 1000, 15) == \
        {"models": 5, "train": pytest.approx(3600), "val": pytest.approx(400)}
    # the projection: every eeg_de-student cell of the grid (the SEED family) trains one model per subject
    rate = {frozenset(["eeg_de"]): 1e-3}
    g, g1 = bench_scale.project_grid(cfg, rate), bench_scale.project_grid(pooled, rate)
    counted = [c for c in iter_cells(cfg) if set(run_spec(cfg, *c, 0)["modalities"]) == {"eeg_de"}]
    subjects = {"seed": 15, "seed_raw": 15, "seed_v": 16}
    assert g["cells"] == g1["cells"] == len(counted) > 0 and g1["models"] == 10 * len(counted)
    assert g["models"] == 10 * sum(subjects.get(c[0], 15) for c in counted)
    assert g["hours"] - g1["hours"] == pytest.approx((g["models"] - g1["models"]) * resources.MODEL_S / 3600)
