"""Cross-validated runs (split.kind kfold/loso): every fold in the run's process, pooled outputs,
each fold's student guided by the same fold's teacher."""
import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from cmkd.config import run_dir, run_spec
from cmkd.data.prepared import load_prepared
from cmkd.data.synthetic import write_synthetic
from cmkd.errors import DataError
from cmkd.train import run


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    cfg = tiny_config(results=str(tmp_path_factory.mktemp("res")))
    cfg["training"].update({"max_epochs": 1, "patience": 1})
    cfg["split"] = {"kind": "kfold", "n_folds": 3, "stratify": True, "val_fraction": 0.2}
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    return cfg


def _run(cfg, method, seed=0):
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", method, seed)
    return run(spec, run_dir(cfg, "synthetic", "face_eeg-to-face", "arousal", method, seed)), spec


def test_kfold_run_trains_every_fold_and_pools_the_predictions(cfg):
    teacher, _ = _run(cfg, "teacher")
    kd, spec = _run(cfg, "kd")
    prep = load_prepared(spec["prepared"])
    d = run_dir(cfg, "synthetic", "face_eeg-to-face", "arousal", "kd", 0)
    with np.load(f"{d}/features.npz") as z:
        f = {k: z[k] for k in z.files}
    # every segment of the data set tested exactly once, with its subject and trial
    assert np.array_equal(np.sort(f["index"]), np.arange(len(prep["subject"])))
    assert np.array_equal(f["subject"], np.asarray(prep["subject"])[f["index"]])
    assert np.array_equal(f["trial"], np.asarray(prep["trial"])[f["index"]])
    assert sorted(set(f["fold"].tolist())) == [0, 1, 2]
    # the run's accuracy is the pooled one; each fold's is kept for the k-fold t-test
    acc = float((np.argmax(f["logits"], 1) == f["y"]).mean() * 100)
    assert kd["test"]["accuracy"] == pytest.approx(acc)
    assert [x["fold"] for x in kd["folds"]] == [0, 1, 2] and kd["protocol"]["kind"] == "kfold"
    # the student of fold i was guided by the teacher of fold i: same split hash
    for i in range(3):
        t = torch.load(f"{run_dir(cfg, 'synthetic', 'face_eeg-to-face', 'arousal', 'teacher', 0)}/fold{i}/model.pt",
                       weights_only=False)
        s = json.loads(open(f"{d}/fold{i}/metrics.json").read())
        assert t["split_hash"] == s["provenance"]["split_hash"]
    assert len({x["split_hash"] for x in kd["folds"]}) == 3
    # every fold records its validation trials' hash and class counts; the student and its teacher
    # selected on the same trials, the ones the spec alone gives (one validation set per column)
    from cmkd.data.selection import validation_hashes

    want = validation_hashes(prep, spec)
    assert [x["val_hash"] for x in kd["folds"]] == [x["val_hash"] for x in teacher["folds"]] == want
    assert kd["provenance"]["val_hash"] == teacher["provenance"]["val_hash"] and kd["provenance"]["val_hash"].startswith("folds:")
    for x in kd["folds"]:
        assert set(x["val_class_counts"]) == {"0", "1"} and min(x["val_class_counts"].values()) >= 1
    assert kd["val_class_counts"] == {c: sum(x["val_class_counts"][c] for x in kd["folds"]) for c in ("0", "1")}
    # per subject over every fold's test segments (subjects.csv reads them for every method)
    subj = np.asarray(prep["subject"])[f["index"]]
    per = kd["test_per_subject"]
    assert set(per) == {str(s) for s in np.unique(subj)}
    for s, g in per.items():
        sel = subj == int(s)
        assert g["n"] == int(sel.sum())
        assert g["accuracy"] == pytest.approx(float((np.argmax(f["logits"][sel], 1) == f["y"][sel]).mean() * 100))
    from cmkd.analysis.tables import aggregate_runs

    aggregate_runs([f"{d}/metrics.json"], f"{d}/../runs.csv", current_code_hash="x", subjects_csv=f"{d}/../subjects.csv")
    import pandas as pd

    sub = pd.read_csv(f"{d}/../subjects.csv")
    assert set(sub["method"]) == {"kd"} and len(sub[sub["group"] == "subject"]) == len(per)


def test_holdout_student_of_a_kfold_teacher_is_refused(cfg):
    _run(cfg, "teacher", seed=1)
    holdout = dict(cfg, split={"kind": "trial", "ratios": [0.8, 0.1, 0.1], "stratify": True})
    spec = run_spec(holdout, "synthetic", "face_eeg-to-face", "arousal", "kd", 1)
    spec["on_failure"] = "fail"
    with pytest.raises(DataError, match="same split kind"):
        run(spec, run_dir(holdout, "synthetic", "face_eeg-to-face", "arousal", "kd", 1) + "_holdout")
