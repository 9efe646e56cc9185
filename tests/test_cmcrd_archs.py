"""The KD baselines of the CMCRD architecture study (config/paper.yaml, method group cmcrd_kd_archs):
each is config.yaml's ``<baseline>_mcc`` with the student's EEG encoder swapped, distils from the same
eye teacher, and every architecture x baseline trains on SEED raw-EEG fixtures with a non-zero
distillation loss."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from cmkd.config import deep_merge, experiment_methods, prepared_dir, run_dir, run_spec
from tests.conftest import ROOT

try:
    from tests import fixtures_seed as fs
except ImportError:  # pytest run with tests/ on sys.path
    import fixtures_seed as fs

BASELINES = ("kd", "crd", "fitnets", "nst", "sp", "rkd", "pkt")
ARCHS = {"eegnet": "eegnet", "shallow": "shallowconvnet", "deep": "deepconvnet"}
ARCH_METHODS = [f"{b}_mcc_{a}" for a in ARCHS for b in BASELINES]


def _configs() -> tuple[dict, dict]:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))
    return cfg, paper


def test_every_architecture_has_every_kd_baseline_from_the_cmcrd_teacher():
    cfg, paper = _configs()
    merged = deep_merge(cfg, paper)
    for a, enc in ARCHS.items():
        for b in BASELINES:
            entry = dict(paper["methods"][f"{b}_mcc_{a}"])
            assert entry.pop("encoders") == {"eeg": {"name": enc}}, (a, b)
            assert entry == cfg["methods"][f"{b}_mcc"], (a, b)   # the TSception entry but for the encoder
            assert entry["requires"] == merged["methods"]["cmcrd"]["requires"] == {"teacher": "cmcrd_teacher"}
            assert merged["methods"][f"cmcrd_{a}"]["encoders"] == {"eeg": {"name": enc}}
    assert f"{b}_mcc_{a}" not in cfg["methods"]                   # the default grid runs none of them
    for e in paper["experiments"]:
        if e["track"] == "eye-to-eeg":                              # seed_raw and seed_iv_raw
            assert set(ARCH_METHODS) <= set(experiment_methods(merged, e)), e["dataset"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """The paper grid's seed_raw eye -> EEG cell on a small SEED copy (one subject, one session, 4 s of
    200 Hz EEG per clip), with the eye teacher trained for one epoch."""
    from cmkd import train
    from cmkd.data.seed import prepare_seed

    tmp = tmp_path_factory.mktemp("cmcrd_archs")
    root = fs.write_seed(tmp / "raw", subjects=(1, 2), sessions=(1,), raw=True, raw_seconds=4.4)
    cfg = deep_merge(*_configs())
    cfg["results"] = str(tmp / "results")
    cfg["threads"] = 1
    cfg["device"] = "cpu"
    cfg["training"].update({"max_epochs": 1, "patience": 1, "batch_size": 8})
    cfg["datasets"]["seed_raw"]["root"] = str(root)
    prepare_seed(root, prepared_dir(cfg, "seed_raw"), {**cfg["datasets"]["seed_raw"]["params"], "sessions": [1]})
    cell = ("seed_raw", "eye-to-eeg", "emotion3")
    train.run(run_spec(cfg, *cell, "cmcrd_teacher", 0), run_dir(cfg, *cell, "cmcrd_teacher", 0))
    return cfg, cell


@pytest.mark.parametrize("method", ARCH_METHODS)
def test_each_architecture_and_kd_baseline_trains_with_a_nonzero_distillation_loss(seed_run, method):
    from cmkd import train

    cfg, cell = seed_run
    spec = run_spec(cfg, *cell, method, 0)
    assert spec["encoders"]["eeg"]["name"] == ARCHS[method.rsplit("_", 1)[1]]
    out = run_dir(cfg, *cell, method, 0)
    rec = train.run(spec, out)
    assert rec["status"] in ("ok", "degenerate"), rec.get("reason")
    hist = pd.read_csv(f"{out}/history.csv")
    kd_terms = [c for c in hist.columns if c.startswith("train_") and c != "train_ce" and not c.endswith("_s")]
    assert kd_terms, list(hist.columns)
    for c in kd_terms:
        v = float(hist[c].iloc[0])
        assert math.isfinite(v) and v != 0.0, (method, c, v)
