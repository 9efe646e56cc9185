"""Trivial baselines (majority class / training mean, class-distribution sampling): they run
through the same training entry point, splits and outputs as every method, build no network and
train no epoch; every run records per-subject test metrics that sum back to its own."""
import copy
import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from cmkd.config import iter_cells, run_spec
from cmkd.validation import check_semantics
from cmkd.data.synthetic import write_synthetic
from cmkd.errors import ConfigError
from cmkd.methods.trivial import TrivialPredictor
from cmkd.train import run


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cfg = tiny_config(results=str(tmp_path_factory.mktemp("res")))
    cfg["trivial_methods"] = ["majority", "stratified"]
    cfg["experiments"].append({"dataset": "synthetic", "track": "face-to-eeg", "dimensions": ["valence_reg"],
                               "methods": ["baseline"]})
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    return cfg


def _run(cfg, method, dim, tmp_path, seed=0, name=None):
    track = "face-to-eeg" if dim == "valence_reg" else "face_eeg-to-face"
    out = tmp_path / (name or f"{method}_{dim}_{seed}")
    result = run(run_spec(cfg, "synthetic", track, dim, method, seed), out)
    return result, out


def test_every_experiment_gets_the_trivial_methods(prepared):
    cells = set(iter_cells(prepared))
    for ds, tr, dim in {c[:3] for c in cells}:
        assert {(ds, tr, dim, "majority"), (ds, tr, dim, "stratified")} <= cells


def test_majority_predicts_the_training_majority_class_without_a_network(prepared, tmp_path):
    result, out = _run(prepared, "majority", "arousal", tmp_path)
    assert result["status"] == "ok" and result["epochs_run"] == 0 and result["best_epoch"] == 0
    counts = result["class_counts"]
    majority = int(np.argmax(counts["train"]))
    f = np.load(out / "features.npz")
    assert (f["logits"].argmax(1) == majority).all()
    test = np.asarray(counts["test"])
    assert result["test"]["accuracy"] == pytest.approx(100 * test[majority] / test.sum())
    assert result["test"]["balanced_accuracy"] == pytest.approx(50.0) and result["test"]["roc_auc"] == 0.5
    state = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    assert set(state) == {"prior"}  # no network was built
    assert result["provenance"]["split_hash"] == _run(prepared, "baseline", "arousal", tmp_path)[0]["provenance"]["split_hash"]


def test_regression_majority_is_the_training_mean(prepared, tmp_path):
    result, out = _run(prepared, "majority", "valence_reg", tmp_path)
    state = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    pred = np.load(out / "features.npz")["logits"].reshape(-1)
    assert np.allclose(pred, float(state["values"].mean())) and float(state["mean"]) == pytest.approx(float(state["values"].mean()))
    assert 0.0 < result["test"]["rmse"] < 1.0


def test_stratified_draws_follow_the_training_distribution_and_the_seed():
    y = np.array([0] * 300 + [1] * 700)
    p = TrivialPredictor("stratified", y, "classification", 2, seed=3)
    batch = {"y": torch.zeros(4000)}
    p.eval()
    a = p(batch).logits.argmax(1)
    assert a.float().mean().item() == pytest.approx(0.7, abs=0.03)
    p.eval()  # a new evaluation restarts the draws
    assert torch.equal(a, p(batch).logits.argmax(1))
    q = TrivialPredictor("stratified", y, "classification", 2, seed=4)
    q.eval()
    assert not torch.equal(a, q(batch).logits.argmax(1))


def test_stratified_run_is_reproducible(prepared, tmp_path):
    a, _ = _run(prepared, "stratified", "arousal", tmp_path, name="a")
    b, _ = _run(prepared, "stratified", "arousal", tmp_path, name="b")
    assert a["test"] == b["test"]


@pytest.mark.parametrize("method, dim", [("stratified", "arousal"), ("majority", "valence_reg")])
def test_per_subject_metrics_sum_back_to_the_run_metric(prepared, tmp_path, method, dim):
    result, out = _run(prepared, method, dim, tmp_path)
    per = result["test_per_subject"]
    n = sum(g["n"] for g in per.values())
    assert n == result["n_segments"]["test"] and len(per) > 1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test_per_subject"] == json.loads(json.dumps(per))
    if dim == "valence_reg":
        assert sum(g["n"] * g["rmse"] ** 2 for g in per.values()) / n == pytest.approx(result["test"]["rmse"] ** 2)
    else:
        assert sum(g["n"] * g["accuracy"] for g in per.values()) / n == pytest.approx(result["test"]["accuracy"])


def test_config_names_a_bad_trivial_method(prepared):
    cfg = copy.deepcopy(prepared)
    cfg["trivial_methods"] = ["baseline"]
    with pytest.raises(ConfigError, match=r"trivial_methods\[0\]: method 'baseline'"):
        check_semantics(cfg)
    cfg = copy.deepcopy(prepared)
    cfg["methods"]["kd"]["requires"] = {"teacher": "majority"}
    with pytest.raises(ConfigError, match=r"methods.kd.requires.teacher: 'majority' is a trivial baseline"):
        check_semantics(cfg)


def test_test_groups_split_by_subject_and_by_session():
    from cmkd.run.checks import subject_positions as _test_groups

    prep = {"subject": np.array([1, 1, 2, 2, 2, 3]), "session": np.array([1, 2, 1, 1, 3, 1])}
    g = _test_groups(prep, np.array([0, 1, 2, 4]))  # positions in the test part, not data set indices
    assert {k: v.tolist() for k, v in g["subject"].items()} == {"1": [0, 1], "2": [2, 3]}
    assert {k: v.tolist() for k, v in g["session"].items()} == {"1/1": [0], "1/2": [1], "2/1": [2], "2/3": [3]}
    assert "session" not in _test_groups({"subject": prep["subject"]}, np.arange(6))
