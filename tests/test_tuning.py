"""The equal-budget hyperparameter search on validation (cmkd.tuning, docs/tuning.md): the same
budget and learning-rate range for every method, trials that never see a test label, studies that
resume from their journal after a kill, the final run's provenance, and the workflow's plan."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import ROOT, run_snakemake, tiny_config

from cmkd import study, tuning
from cmkd.config import run_spec
from cmkd.errors import ConfigError, DataError
from cmkd.methods import REGISTRY
from cmkd.methods.params_common import SEARCH_RANGES


def tuned_config(results: str, n_trials: int = 2) -> dict:
    cfg = tiny_config(results)
    cfg["training"].update({"max_epochs": 1, "patience": 1})
    cfg["tuning"] = {"enabled": True, "n_trials": n_trials, "methods": "all"}
    return cfg


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from cmkd import cli

    tmp = tmp_path_factory.mktemp("tune")
    cfg = tuned_config(str(tmp / "results"))
    out = f"{cfg['results']}/prepared/synthetic"
    assert cli.main(["prepare", "synthetic", "--out", out, "--params",
                     json.dumps(cfg["datasets"]["synthetic"]["params"]), "--seed", "0"]) in (0, None)
    return cfg


# ----------------------------------------------------------------------------- declarations, plan
def test_every_method_searches_the_same_learning_rate_range():
    lr = {"lo": SEARCH_RANGES["lr"]["lo"], "hi": SEARCH_RANGES["lr"]["hi"], "log": SEARCH_RANGES["lr"]["log"]}
    for name, info in REGISTRY.items():
        space = tuning.search_space(name)
        assert space["lr"] == lr, name
        assert set(space) - {"lr"} == set(info.search), name
    # a KD loss weight and the temperature are searched where the method has them
    assert {"alpha", "temperature"} <= set(REGISTRY["kd"].search)
    assert "beta" in REGISTRY["fitnets"].search


def test_a_method_may_not_declare_its_own_learning_rate_range(tmp_path):
    from cmkd.errors import RegistryError
    from cmkd.methods import discover

    (tmp_path / "m.py").write_text('REGISTER = {"m": {"search": {"lr": {"lo": 1e-5, "hi": 1.0}}, "params": {}}}\n')
    with pytest.raises(RegistryError, match="learning rate"):
        discover([str(tmp_path)])
    (tmp_path / "m.py").write_text('REGISTER = {"m": {"search": {"a": {"lo": -1.0, "hi": 1.0}}, '
                                   '"params": {"a": {"default": 0.5, "lo": 0.0}}}}\n')
    with pytest.raises(RegistryError, match="declared bounds"):
        discover([str(tmp_path)])


def test_the_plan_gives_every_student_the_same_budget_and_keeps_teachers_fixed():
    import yaml

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert tuning.expand(cfg) is cfg  # tuning off: the default plans nothing more
    cfg = {**cfg, **yaml.safe_load((ROOT / "config" / "tuned.yaml").read_text())}
    out = tuning.expand(cfg)
    tuned = {m: e for m, e in out["methods"].items() if e.get("tuning")}
    assert tuned and len({e["tuning"]["n_trials"] for e in tuned.values()}) == 1
    assert {e["tuning"]["n_trials"] for e in tuned.values()} == {cfg["tuning"]["n_trials"]}
    required = {t for e in cfg["methods"].values() for t in (e.get("requires") or {}).values()}
    assert not {e["tuning"]["of"] for e in tuned.values()} & required  # teachers, assistants: fixed
    assert "kd_tuned" in tuned and out["methods"]["kd_tuned"]["requires"] == cfg["methods"]["kd"]["requires"]
    # every tuned run's spec carries the same budget, and the tuned table follows its default table
    specs = [run_spec(out, "synthetic", "face_eeg-to-face", "arousal", m, 0) for m in tuned
             if any(m in e["methods"] for e in out["experiments"] if e["track"] == "face_eeg-to-face")]
    assert len({s["tuning"]["n_trials"] for s in specs}) == 1
    names = [t["name"] for t in out["tables"]]
    assert names[names.index("students") + 1] == "students_tuned"
    tab = out["tables"][names.index("students_tuned")]
    assert "kd_tuned" in tab["rows"] and f"{cfg['tuning']['n_trials']} TPE trials" in tab["caption"]


def test_unequal_budgets_are_refused(tmp_path):
    def study(method, n, spent):
        return {"cell": {"dataset": "d", "track": "t", "dimension": "a", "method": method, "seed": 0},
                "n_trials": n, "folds": [{"fold": None, "n_trials": spent}]}

    tuning.check_equal_budget([study("kd_tuned", 3, 3), study("fitnets_tuned", 3, 3)])
    with pytest.raises(ConfigError, match="unequal budgets"):
        tuning.check_equal_budget([study("kd_tuned", 3, 3), study("fitnets_tuned", 5, 5)])
    with pytest.raises(ConfigError, match="unequal budgets"):
        tuning.check_equal_budget([study("kd_tuned", 3, 3), study("fitnets_tuned", 3, 2)])
    # the final run refuses a study that spent less than its budget, or ran under another one
    p = tmp_path / "study.json"
    p.write_text(json.dumps({**study("kd_tuned", 3, 2), "select_on": "loss",
                             "folds": [{"fold": None, "n_trials": 2, "best_params": {"lr": 1e-3}, "best_value": 0.0,
                                        "best_trial": 0}]}))
    spec = {"tuning": {"n_trials": 3, "study": str(p)}, "training": {"lr": 1e-3}, "params": {}}
    with pytest.raises(DataError, match="unequal budget"):
        tuning.apply_study(spec, None)
    with pytest.raises(ConfigError, match="same budget"):
        tuning.apply_study({**spec, "tuning": {"n_trials": 4, "study": str(p)}}, None)


# ----------------------------------------------------------------------------- studies
def test_a_trial_never_reads_the_test_part(prepared, monkeypatch):
    """A trial trains on the training part and is scored on the validation part; the test part is
    neither built nor evaluated (its labels are never read)."""
    from cmkd import train
    from cmkd.data import labels as labels_mod
    from cmkd.data import splits as splits_mod
    from cmkd.data import stream as stream_mod
    from cmkd.data.prepared import load_prepared

    cfg = tuning.expand(prepared)
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline_tuned", 0)
    prep = load_prepared(spec["prepared"])
    y = labels_mod.targets(prep, "arousal", "classification", 5.0)
    split = splits_mod.run_splits(prep, 0, spec["split"], y, "classification")[0]
    test = set(np.asarray(split["test"]).tolist())
    built, scored = [], []
    real_build, real_eval = stream_mod.build_parts_auto, train.evaluate

    def build(prep_, needed, y_, split_, *a, **k):
        built.append(sorted(split_))
        return real_build(prep_, needed, y_, split_, *a, **k)

    def evaluate(task, model, part, *a, **k):
        scored.append(set(np.asarray(part.index).tolist()))
        return real_eval(task, model, part, *a, **k)

    monkeypatch.setattr(stream_mod, "build_parts_auto", build)
    monkeypatch.setattr(train, "evaluate", evaluate)
    r = study.evaluate_trial(spec, None, {"lr": 3e-3})
    assert built == [["train", "val"]]
    assert scored and not any(s & test for s in scored)
    assert np.isfinite(r["score"])


def test_a_killed_study_resumes_from_its_journal(tmp_path):
    """Trials a killed job completed are read back from the journal, not run again, and the resumed
    study ends where an uninterrupted one ends."""
    spec = {"dataset": "d", "track": "t", "dimension": "a", "method": "kd_tuned", "seed": 3, "class": "kd",
            "split": {"kind": "trial"}, "training": {"lr": 1e-3, "select_on": "loss"}, "params": {},
            "tuning": {"of": "kd", "n_trials": 4}}
    calls = []

    class Killed(BaseException):
        pass

    def evaluate(spec_, fold, params, kill_at=None):
        calls.append(dict(params))
        if kill_at is not None and len(calls) == kill_at:
            raise Killed()
        return {"score": -abs(np.log10(params["lr"]) + 2.5) - abs(params["alpha"] - 0.3), "best_epoch": 1}

    whole = study.run_study(spec, tmp_path / "a" / "study.json", evaluate)
    uninterrupted = list(calls)
    assert len(uninterrupted) == 4 and whole["folds"][0]["n_trials"] == 4
    calls.clear()
    out = tmp_path / "b" / "study.json"
    with pytest.raises(Killed):
        study.run_study(spec, out, lambda s, f, p: evaluate(s, f, p, kill_at=3))
    assert not out.exists() and (tmp_path / "b" / tuning.JOURNAL_FILE).exists()
    assert calls == uninterrupted[:3]
    calls.clear()
    resumed = study.run_study(spec, out, evaluate)
    assert calls == uninterrupted[2:]  # the two completed trials are not run again; the killed one is
    f = resumed["folds"][0]
    assert f["resumed_with"] == 2 and f["n_trials"] == 4
    assert f["best_params"] == whole["folds"][0]["best_params"]
    assert [t["params"] for t in f["trials"]] == [t["params"] for t in whole["folds"][0]["trials"]]


def test_study_then_final_run_records_the_choice(prepared):
    """A real study (2 trials of 1 epoch) and the final run of its split: the best parameters are
    used, and the budget and best validation score are in the run's provenance."""
    from cmkd import train

    cfg = tuning.expand(prepared)
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline_tuned", 1)
    res = study.run_study(spec, spec["tuning"]["study"])
    f = res["folds"][0]
    assert res["n_trials"] == f["n_trials"] == 2 and len(f["trials"]) == 2
    assert res["cost"]["cpu_s"] > 0 and res["search_space"]["lr"]["lo"] == SEARCH_RANGES["lr"]["lo"]
    m = train.run(spec, spec["tuning"]["study"].rsplit("/", 1)[0])
    t = m["provenance"]["tuning"]
    assert t["n_trials"] == 2 and t["params"] == f["best_params"] and t["best_value"] == f["best_value"]
    assert m["spec"]["training"]["lr"] == pytest.approx(f["best_params"]["lr"])


def test_tuned_plan_and_default_plan(tmp_path):
    """With tuning on, the dry run plans one study per tuned run and seed and the cost table; off,
    it plans none."""
    cfg = tuned_config(str(tmp_path / "results"))
    r = run_snakemake(tmp_path, "-n", config=cfg)
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    n_tuned = 2  # baseline, kd (the teacher is required by kd: fixed)
    stats = {ln.split()[0]: int(ln.split()[1]) for ln in text.splitlines()
             if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert stats["study"] == n_tuned * len(cfg["seeds"]) and stats["tuning_cost"] == 1
    cfg.pop("tuning")
    r = run_snakemake(tmp_path, "-n", config=cfg)
    assert r.returncode == 0, r.stderr
    assert "study" not in {ln.split()[0] for ln in (r.stdout + r.stderr).splitlines() if ln.split()}
