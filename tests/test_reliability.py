"""Reliability: determinism, divergence handling, corrupt inputs, stale provenance.

Each test states what it injects and what must hold.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from cmkd.config import run_spec
from cmkd.data.prepared import load_prepared, write_prepared
from cmkd.data.synthetic import write_synthetic
from cmkd.errors import DataError
from cmkd.analysis.tables import aggregate_runs, summarise
from cmkd.train import run


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cfg = tiny_config(results=str(tmp_path_factory.mktemp("res")))
    cfg["training"]["max_epochs"] = 2
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    return cfg


def _spec(cfg, method, seed, dim="arousal"):
    return run_spec(cfg, "synthetic", "face_eeg-to-face", dim, method, seed)


def test_same_seed_same_metrics_other_seed_other_split(prepared, tmp_path):
    """Inject: the same run twice, and once with another seed. Holds: identical metrics and
    weights for the same seed (CPU, same threads); another seed gives another split and numbers."""
    a = run(_spec(prepared, "baseline", 0), tmp_path / "a")
    b = run(_spec(prepared, "baseline", 0), tmp_path / "b")
    c = run(_spec(prepared, "baseline", 1), tmp_path / "c")
    assert a["test"] == b["test"] and a["val"] == b["val"]
    wa = torch.load(tmp_path / "a/model.pt", weights_only=False)["state_dict"]
    wb = torch.load(tmp_path / "b/model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["provenance"]["split_hash"] != c["provenance"]["split_hash"]
    assert (a["test"], a["val"]) != (c["test"], c["val"])
    ha, hb = (pd.read_csv(tmp_path / f"{x}/history.csv").drop(columns="time_s") for x in "ab")
    assert ha.equals(hb)


def test_divergence_is_recorded_and_propagates(prepared, tmp_path, monkeypatch):
    """Inject: a NaN loss in epoch 2 of the teacher. Holds: the teacher run is written with
    status 'failed' and a reason naming the method and epoch; the KD student that needs it is
    recorded as failed too; the aggregated table counts the failed cells instead of dropping them."""
    from cmkd.methods import baseline

    orig = baseline.Baseline.training_step

    def remember_epoch(self, epoch, generator):
        self._epoch = epoch

    def nan_in_epoch2(self, batch):
        logits, terms = orig(self, batch)
        if getattr(self, "_epoch", 0) >= 2:
            terms["ce"] = terms["ce"] * float("nan")
        return logits, terms

    monkeypatch.setattr(baseline.Baseline, "on_epoch_start", remember_epoch)
    monkeypatch.setattr(baseline.Baseline, "training_step", nan_in_epoch2)
    cfg = dict(prepared, results=str(tmp_path))
    import shutil

    shutil.copytree(f"{prepared['results']}/prepared", tmp_path / "prepared")
    t = run(_spec(cfg, "teacher", 0), tmp_path / "synthetic/face_eeg-to-face/arousal/teacher/seed0")
    assert t["status"] == "failed"
    assert "method 'teacher' diverged at epoch 2" in t["reason"] and "ce" in t["reason"]
    s = run(_spec(cfg, "kd", 0), tmp_path / "synthetic/face_eeg-to-face/arousal/kd/seed0")
    assert s["status"] == "failed" and "required run failed" in s["reason"]
    runs = aggregate_runs(sorted(tmp_path.glob("synthetic/**/metrics.json")), tmp_path / "runs.csv")
    assert set(runs["status"]) == {"failed"}
    summary = summarise(runs)
    assert summary["n_failed"].sum() == 2 and math.isnan(summary["accuracy_mean"].iloc[0])
    # with on_failure: fail the job stops with the clear message instead
    spec = _spec(cfg, "teacher", 0)
    spec["on_failure"] = "fail"
    with pytest.raises(Exception, match="diverged at epoch 2"):
        run(spec, tmp_path / "x")


def test_nan_in_signal_names_array_segment_and_channel(prepared, tmp_path):
    """Inject: a NaN in one EEG sample of a prepared data set. Holds: a DataError naming the
    file, the segment and the channel, before any training starts."""
    prep = load_prepared(f"{prepared['results']}/prepared/synthetic")
    arrays = {k: np.array(prep[k]) for k in prep.names}
    arrays["eeg"][3, 5, 10] = np.nan
    write_prepared(tmp_path / "bad", arrays, {k: v for k, v in prep.meta.items() if k not in ("arrays", "content_hash", "n_segments")})
    spec = _spec(prepared, "teacher", 0)
    spec["prepared"] = str(tmp_path / "bad")
    with pytest.raises(DataError, match=r"eeg\.npy: non-finite value in segment 3, channel FC1"):
        run(spec, tmp_path / "out")
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_corrupt_array_file_is_named(prepared, tmp_path):
    """Inject: an .npy file whose shape disagrees with meta.json. Holds: a DataError naming the file."""
    import shutil

    shutil.copytree(f"{prepared['results']}/prepared/synthetic", tmp_path / "p")
    np.save(tmp_path / "p/eeg.npy", np.zeros((3, 2), np.float32))
    spec = _spec(prepared, "teacher", 0)
    spec["prepared"] = str(tmp_path / "p")
    with pytest.raises(DataError, match=r"eeg\.npy: shape \[3, 2\]"):
        run(spec, tmp_path / "out")


def test_stale_runs_are_flagged(prepared, tmp_path):
    """Inject: a run whose provenance carries another code hash. Holds: runs.csv flags it stale
    and the summary counts it."""
    run(_spec(prepared, "baseline", 0), tmp_path / "synthetic/face_eeg-to-face/arousal/baseline/seed0")
    f = tmp_path / "synthetic/face_eeg-to-face/arousal/baseline/seed0/metrics.json"
    runs = aggregate_runs([f], tmp_path / "runs.csv")
    assert not runs["stale"].iloc[0]
    m = json.loads(f.read_text())
    m["provenance"]["code_hash"] = "0" * 16
    f.write_text(json.dumps(m))
    runs = aggregate_runs([f], tmp_path / "runs.csv")
    assert runs["stale"].iloc[0]
    assert summarise(runs)["n_stale"].iloc[0] == 1


def test_metrics_file_without_its_cell_is_named(tmp_path):
    """Inject: metrics.json files that lack the run's identity (a 'cell' key, or its seed).
    Holds: one DataError naming the file and what is missing, not a KeyError from inside pandas."""
    f = tmp_path / "metrics.json"
    f.write_text(json.dumps({"test": {"accuracy": 50.0}}))
    with pytest.raises(DataError, match=r"metrics\.json: no 'cell'"):
        aggregate_runs([f], tmp_path / "runs.csv")
    f.write_text(json.dumps({"cell": {"dataset": "d", "track": "t", "dimension": "arousal", "method": "kd"}}))
    with pytest.raises(DataError, match=r"metrics\.json: 'cell' lacks seed"):
        aggregate_runs([f], tmp_path / "runs.csv")
    f.write_text(json.dumps({"cell": {"dataset": "d", "track": "t", "dimension": "arousal", "method": "kd",
                                      "seed": "first"}}))
    with pytest.raises(DataError, match=r"'cell\.seed' is not an integer"):
        aggregate_runs([f], tmp_path / "runs.csv")
