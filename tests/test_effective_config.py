"""A run's effective configuration has one source: cmkd.config.effective_run_config and the split-kind
catalog (cmkd.data.split_kinds). Each test sets a split where only that merge sees it (a data set's or
a track's split, a kind's declared default) and checks that the planner, the statistics' fallback, the
captions and the run read it; a call site that merges or defaults by hand fails here."""
import copy
import dataclasses
import json

import numpy as np
import pytest

from cmkd import crossval
from cmkd.analysis import table_notes
from cmkd.config import effective_run_config
from cmkd.data import labels as labels_mod
from cmkd.data import split_kinds
from cmkd.params import Param
from cmkd.run.checks import run_targets
from cmkd.validation import load_config, validate_config
from cmkd.workflow import summary
from cmkd.workflow.grid import Grid, cell_protocol, other_protocol_methods
from conftest import ROOT

DS, TRACK = "synthetic", "face_eeg-to-face"


@pytest.fixture(scope="module")
def default_config():
    cfg, lines = load_config(base=ROOT / "config.yaml")
    cfg["published_tables"] = str(ROOT / cfg["published_tables"])
    validate_config(cfg, lines)
    return cfg


@pytest.fixture
def dataset_split_config(default_config):
    """The default with a data-set-level 6:2:2 trial split (the top-level split stays k-fold)."""
    cfg = copy.deepcopy(default_config)
    cfg["datasets"][DS]["split"] = {"kind": "trial", "ratios": [0.6, 0.2, 0.2]}
    return cfg


# ----------------------------------------------------------------------------- the planner
def test_a_dataset_split_reaches_the_figure_protocols(dataset_split_config):
    cfg = dataset_split_config
    assert cell_protocol(cfg, DS, TRACK) == ("trial",)  # the data set's kind, not the top-level k-fold
    assert cell_protocol(cfg, DS, TRACK, "baseline") == ("trial",)
    other = other_protocol_methods(cfg)
    # the 8:1:1 trial-split baseline runs the data set's protocol now; the k-fold/LOSO runs do not
    assert "baseline_trial" not in other
    assert {"baseline_kfold", "baseline_loso", "teacher_leaky"} <= set(other)
    assert Grid.of(cfg).other_protocol == other


def test_a_track_split_reaches_the_figure_protocols(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["tracks"][TRACK]["split"] = {"kind": "loso"}
    assert cell_protocol(cfg, DS, TRACK, "baseline") == ("loso",)
    assert "baseline_loso" not in other_protocol_methods(cfg)


def test_a_dataset_split_reaches_the_stats_test_fraction(default_config, dataset_split_config):
    assert summary.test_fraction(Grid.of(copy.deepcopy(default_config))) == pytest.approx(0.1)
    # most cells run the data set's 6:2:2 split (baseline_trial keeps its own 8:1:1)
    assert summary.test_fraction(Grid.of(dataset_split_config)) == pytest.approx(0.2)


def test_a_dataset_split_reaches_the_tables_spec_and_captions(dataset_split_config):
    grid = Grid.of(dataset_split_config)
    spec = json.loads(summary.tables_spec(grid, dataset_split_config["published_tables"]))
    sp = spec["protocol"]["splits"][f"{DS}/{TRACK}/baseline"]
    assert sp == effective_run_config(dataset_split_config, DS, TRACK, None, "baseline")["split"]
    assert sp["kind"] == "trial" and sp["ratios"] == [0.6, 0.2, 0.2]
    assert table_notes.describe_split(sp).startswith("one trial-level 6:2:2 split per seed (60 % of the segments train")
    assert table_notes.split_shares(sp) == pytest.approx((0.6, 0.2, 0.2))


# ----------------------------------------------------------------------------- declared defaults
def _with_kfold_default(monkeypatch, n_folds: int = 7, val_fraction: float = 0.3):
    kind = split_kinds.SPLIT_KINDS["kfold"]
    params = {**kind.params, "n_folds": Param(n_folds, "int", lo=2), "val_fraction": Param(val_fraction, "number")}
    monkeypatch.setitem(split_kinds.SPLIT_KINDS, "kfold", dataclasses.replace(kind, params=params))


def test_captions_read_the_kinds_declared_defaults(monkeypatch):
    _with_kfold_default(monkeypatch)
    assert table_notes.split_shares({"kind": "kfold"}) == pytest.approx((6 / 7 * 0.7, 6 / 7 * 0.3, 1 / 7))
    assert table_notes.describe_split({"kind": "kfold"}).startswith("trial-level 7-fold cross-validation")
    note = table_notes.table_note(__import__("pandas").DataFrame(), {"caption": ""}, {"split": {"kind": "kfold"}})
    assert "stratified 7-fold cross-validation over trials (pooled;" in note


def test_fold_kinds_come_from_the_catalog(monkeypatch):
    assert crossval.is_fold_protocol({"kind": "kfold"}) and crossval.is_fold_protocol({"kind": "loso"})
    assert not crossval.is_fold_protocol({"kind": "trial"}) and not crossval.is_fold_protocol(None)
    monkeypatch.setitem(split_kinds.SPLIT_KINDS, "tmp_folds", split_kinds.SplitKind("tmp_folds", "subject", True))
    assert crossval.is_fold_protocol({"kind": "tmp_folds"})
    with pytest.raises(Exception, match="fold list of a tmp_folds run"):
        crossval.check_fold_teacher({"protocol": "tmp_folds", "spec": None}, "x/model.pt")


# ----------------------------------------------------------------------------- the run's labels
def test_run_targets_read_the_dimension_settings():
    prep = {"arousal": np.array([1.0, 3.0, 4.0, 5.0, 9.0])}
    spec = {"dimension": "arousal", "dimension_spec": {"task": "classification", "threshold": 4.0, "tie": "high"}}
    assert run_targets(spec, prep).tolist() == labels_mod.targets(prep, "arousal", "classification", 4.0,
                                                                   tie="high").tolist() == [0, 0, 1, 1, 1]
    spec["dimension_spec"] = {"task": "classification"}  # labels' own defaults: threshold 5, tie low
    assert run_targets(spec, prep).tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(KeyError):  # the task is required (the schema says so): no silent classification
        run_targets({"dimension": "arousal", "dimension_spec": {"threshold": 5.0}}, prep)


def test_training_settings_fill_the_declared_defaults(default_config):
    from cmkd.config import TRAINING_DEFAULTS, run_spec

    cfg = copy.deepcopy(default_config)
    cfg["training"].pop("select_on", None)
    cfg["methods"]["baseline"]["training"] = {"eval_batch_size": 64}
    eff = effective_run_config(cfg, DS, TRACK, "arousal", "baseline")
    assert eff["training"]["eval_batch_size"] == 64 and "select_on" not in eff["training"]
    assert eff["training_settings"] == {**TRAINING_DEFAULTS, **eff["training"]}
    assert eff["training_settings"]["select_on"] == "accuracy" and eff["training_settings"]["eval_batch_size"] == 64
    # the spec (and its config hash) holds the training section as configured, not the filled one
    assert run_spec(cfg, DS, TRACK, "arousal", "baseline", 0)["training"] == eff["training"]
