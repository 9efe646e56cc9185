"""A run as named phases (cmkd.train): load -> build -> fit -> score -> write, each callable on its
own; metrics.json written last; the trivial baselines a run kind of their own; the feedback part a
declared need of a method that the load phase fulfils; every phase function under 60 lines."""
import ast
import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, fresh_python, tiny_config
from cmkd import atomic, train
from cmkd.config import run_spec
from cmkd.data.synthetic import write_synthetic
from cmkd.methods import method_class
from cmkd.run import method_setup, trivial_run

FB_TRACK = "eeg_eog-to-eog"  # the track with a feedback hold-out (split.feedback_fraction: 0.5)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    cfg = tiny_config(results=str(tmp_path_factory.mktemp("res")))
    cfg["seeds"] = [0]
    cfg["datasets"]["synthetic"]["params"].update({"n_trials": 8, "segments_per_trial": 2})
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    return cfg


def _spec(cfg, method="baseline", track="face_eeg-to-face"):
    return run_spec(cfg, "synthetic", track, "arousal", method, 0)


def test_each_phase_runs_on_its_own_and_the_chain_is_the_run(cfg, tmp_path):
    spec = _spec(cfg)
    data = train.load(spec)
    assert data.kind is train.NETWORK and set(data.parts) == {"train", "val", "test"}
    assert data.held_out is None and data.split_hash == train.split_hash(data.split)
    built = train.build(data)
    assert built.optimizer is not None and built.model_spec["n_outputs"] == 2
    fitted = train.fit(data, built, tmp_path)
    assert 1 <= len(fitted.history) <= spec["training"]["max_epochs"] and fitted.best_epoch >= 1
    scores = train.score(data, built, fitted)
    assert set(scores.test) >= {"accuracy", "loss"} and len(scores.test_logits) == len(data.parts["test"])
    result = train.write(data, built, fitted, scores, tmp_path / "phases")
    assert sorted(p.name for p in (tmp_path / "phases").iterdir()) == ["features.npz", "history.csv", "metrics.json",
                                                                      "model.pt"]
    whole = train.run(spec, tmp_path / "whole")  # the same phases chained: the same numbers
    assert whole["test"] == result["test"] and whole["provenance"]["val_hash"] == result["provenance"]["val_hash"]


def _record_writes(monkeypatch, fail_on=None):
    """Record the names of the files written (every atomic writer goes through
    :func:`cmkd.atomic.atomic_path`; a file is in place when its context ends), in order;
    ``fail_on``: writing that file name raises."""
    order, real = [], atomic.atomic_path

    @contextlib.contextmanager
    def spy(path, *a, **k):
        if Path(path).name == fail_on:
            raise OSError(f"planted failure writing {path}")
        with real(path, *a, **k) as tmp:
            yield tmp
        order.append(Path(path).name)

    monkeypatch.setattr(atomic, "atomic_path", spy)
    return order


@pytest.mark.parametrize("method", ["baseline", "majority"])
def test_metrics_json_is_written_last(cfg, tmp_path, monkeypatch, method):
    order = _record_writes(monkeypatch)
    train.run(_spec(cfg, method), tmp_path / "ok")
    assert order == ["features.npz", "model.pt", "history.csv", "metrics.json"]


@pytest.mark.parametrize("fail_on", ["history.csv", "model.pt"])
def test_a_write_that_fails_after_the_features_leaves_no_metrics_json(cfg, tmp_path, monkeypatch, fail_on):
    _record_writes(monkeypatch, fail_on=fail_on)
    with pytest.raises(OSError, match="planted"):
        train.run(_spec(cfg), tmp_path / "run")
    assert (tmp_path / "run/features.npz").exists() and not (tmp_path / "run/metrics.json").exists()


def test_trivial_baselines_are_a_run_kind_of_their_own(cfg, tmp_path, monkeypatch):
    spec = _spec(cfg, "majority")
    assert train.run_kind(spec) is trivial_run.TRIVIAL and train.run_kind(_spec(cfg)) is train.NETWORK

    def no_network(*a, **k):
        raise AssertionError("a network phase ran for a trivial baseline")

    monkeypatch.setattr(train, "NETWORK", train.NETWORK.__class__("network", no_network, no_network, no_network, no_network))
    data = train.load(spec)
    assert all(not p.x for p in data.parts.values())  # no input array read
    built = data.kind.build(data)
    assert built.optimizer is None and built.initial_weights is None
    fitted = data.kind.fit(data, built, tmp_path)
    assert fitted.history == [] and fitted.best_epoch == 0
    result = train.write(data, built, fitted, train.score(data, built, fitted), tmp_path)
    assert result["status"] == "ok" and result["epochs_run"] == 0


def _with_need(base, need):
    class Needing(base):
        feedback_part = need
        got = []

        def configure(self, parts=None, device=None, optimizer=None, **k):
            type(self).got.append(dict(parts))
            return super().configure(parts=parts, device=device, optimizer=optimizer, **k)

    return Needing


@pytest.mark.parametrize("need", [None, "held_out", "train"])
def test_the_feedback_need_is_fulfilled_by_the_loop(cfg, tmp_path, monkeypatch, need):
    spec = _spec(cfg, "baseline_eog", FB_TRACK)
    cls = _with_need(method_class(spec["class"]), need)
    monkeypatch.setattr(train, "method_class", lambda name: cls)
    monkeypatch.setattr(method_setup, "method_class", lambda name: cls)
    data = train.load(spec)
    val, held = set(data.parts["val"].index.tolist()), set(data.held_out.index.tolist())
    assert val.isdisjoint(held) and val | held == set(np.asarray(data.split["val"]).tolist())  # every run: the same halves
    if need is None:
        assert "feedback" not in data.parts
    else:
        assert data.parts["feedback"] is (data.held_out if need == "held_out" else data.parts["train"])
    train.build(data)
    assert len(cls.got) == 1 and ("feedback" in cls.got[0]) == (need is not None)
    if need == "held_out":
        assert cls.got[0]["feedback"] is data.held_out


def test_a_need_without_a_hold_out_gets_none_and_an_unknown_need_is_refused(cfg):
    parts = {"train": object(), "val": object(), "test": object()}
    assert method_setup.method_parts(_with_need(object, "held_out"), parts, None)["feedback"] is None
    with pytest.raises(Exception, match="feedback_part"):
        method_setup.method_parts(_with_need(object, "validation"), parts, None)
    assert method_class("mkd_student").feedback_part == "held_out" and method_class("emotionkd").feedback_part == "train"
    assert method_class("baseline").feedback_part is None


def test_the_selection_part_is_the_same_with_and_without_the_need(cfg):
    """Whether a method takes the hold-out or not, it selects on the same validation trials."""
    a = train.load(_spec(cfg, "baseline_eog", FB_TRACK))
    b = train.load(_spec(cfg, "majority", FB_TRACK))
    assert np.array_equal(a.parts["val"].index, b.parts["val"].index)


PHASE_FILES = ["src/cmkd/train.py", "src/cmkd/crossval.py", *sorted(str(p.relative_to(ROOT))
                                                                      for p in (ROOT / "src/cmkd/run").glob("*.py"))]


def long_functions(source: str, limit: int = 60) -> list[str]:
    """Functions (methods included) of ``source`` that are ``limit`` lines long or longer."""
    return [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 >= limit]


def test_no_phase_function_is_60_lines_or_more():
    assert long_functions("def f():\n" + "    x = 1\n" * 59) == ["f (60 lines)"]  # the rule itself
    assert long_functions("def f():\n" + "    x = 1\n" * 58) == []
    for f in PHASE_FILES:
        assert long_functions((ROOT / f).read_text()) == [], f


def test_the_fold_loop_does_not_import_the_training_loop():
    """cmkd.crossval pools the folds that cmkd.train drives: no cycle, and planning imports no torch."""
    out = fresh_python("import sys, cmkd.crossval; print('cmkd.train' in sys.modules, 'torch' in sys.modules)")
    assert out.split() == ["False", "False"]
    assert not (ROOT / "src/cmkd/protocols.py").exists()
    tree = ast.parse((ROOT / "src/cmkd/crossval.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "cmkd.train" not in imported


def test_a_kfold_run_pools_its_folds(cfg, tmp_path):
    spec = _spec(cfg, "majority")
    spec["split"] = {"kind": "kfold", "n_folds": 2, "folds_by": "pooled", "val_fraction": 0.25, "stratify": True}
    result = train.run(spec, tmp_path)
    assert result["protocol"]["n_folds"] == 2 and [f["fold"] for f in result["folds"]] == [0, 1]
    assert json.loads((tmp_path / "metrics.json").read_text())["provenance"]["split_hash"].startswith("folds:")
