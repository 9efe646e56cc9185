"""Equal-budget hyperparameter search on validation (docs/tuning.md).

Turned on by the config's ``tuning`` block (``config/tuned.yaml``: ``tuning: {enabled: true,
n_trials: N, methods: all}``). Every *student* method of the grid (a network method that no other
method requires: teachers and teacher assistants keep their fixed settings, the same for every
row) gets a tuned twin, ``<method>_tuned`` (:data:`SUFFIX`), with

- one optuna study per (data set, track, dimension, method, split = seed x fold): the same number
  of trials ``n_trials`` for every method; each trial trains on that split's training part and is
  scored on its validation part only (:func:`cmkd.train._run` with ``trial=True`` builds no test
  part); the sampler is optuna's TPE, seeded from the run seed (and the fold and the trial's
  number, so a resumed study draws what an uninterrupted one would have);
- the study in optuna's journal file storage (``JournalFileBackend``) beside its result, so a
  killed job resumes on re-run: the trials it completed are read back, not repeated;
- the search space of each method from its registry entry (``REGISTER[...]["search"]``), plus the
  learning rate with the same range for every method (``params_common.SEARCH_RANGES["lr"]``);
- the final run of each split (``<method>_tuned``'s training job, whose input is the study file)
  training once with the best parameters and touching its test part once; its ``metrics.json``
  provenance records the parameters, the budget and the best validation score
  (:func:`apply_study`).

The planning half of this module (:func:`expand`, :func:`search_space`) is torch-free.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pandas as pd

from cmkd import atomic
from cmkd.config import experiment_methods
from cmkd.errors import ConfigError, DataError
from cmkd.methods import REGISTRY
from cmkd.methods.params_common import SEARCH_RANGES

SUFFIX = "_tuned"          # the tuned twin of method m is the method key m + SUFFIX
STUDY_FILE = "study.json"  # a study's result, in the tuned run's seed folder (the study job's output)
JOURNAL_FILE = "study.journal"  # the optuna journal beside it (not an output: it survives a killed job)


# ----------------------------------------------------------------------------- planning (torch-free)
def settings(config: dict) -> dict | None:
    """The config's ``tuning`` block when it is enabled, else None."""
    t = config.get("tuning") or {}
    return t if t.get("enabled") else None


def search_space(class_name: str) -> dict:
    """``{name: {"lo", "hi", "log"}}`` searched for a method of registered class ``class_name``:
    the learning rate (``lr``, the same range for every method) and the method's own ``search``."""
    lr = SEARCH_RANGES["lr"]
    return {"lr": {"lo": float(lr["lo"]), "hi": float(lr["hi"]), "log": bool(lr["log"])},
            **copy.deepcopy(REGISTRY[class_name].search)}


def student_methods(config: dict) -> list[str]:
    """Method keys the experiments run that are students: a network (not a trivial baseline) that
    no method of the grid requires (a teacher or a teacher assistant is required by another) and
    that runs the split of its track (not a leakage or protocol variant)."""
    listed, required = [], set()
    for i, exp in enumerate(config["experiments"]):
        for m in experiment_methods(config, exp, f"experiments[{i}].methods"):
            if m not in listed:
                listed.append(m)
    for m, entry in config["methods"].items():
        required.update((entry.get("requires") or {}).values())
    # a method with a split of its own (the leakage and protocol studies) compares splits, not methods: not a student here
    return [m for m in listed if m not in required and not REGISTRY[config["methods"][m]["class"]].trivial
            and not config["methods"][m].get("split")]


def tuned_methods(config: dict) -> list[str]:
    """The methods the ``tuning`` block tunes (``methods: all`` or a list of students), in
    experiment order; a listed method that is not a student raises ConfigError naming it."""
    t = settings(config)
    if t is None:
        return []
    students = student_methods(config)
    want = t.get("methods", "all")
    if want == "all":
        return students
    for m in want:
        if m not in students:
            raise ConfigError(f"tuning.methods: '{m}' is not a student method of the experiments (teachers and teacher "
                              f"assistants keep fixed settings; students: {', '.join(students)})")
    return [m for m in students if m in want]


def expand(config: dict) -> dict:
    """The config with tuning applied (a copy; the config itself when tuning is off): for each tuned
    method ``m``, a method ``m_tuned`` (same entry, plus ``tuning: {of, n_trials}``) run beside
    ``m`` in every experiment that runs ``m``; for each table that has a tuned row, a tuned table
    (``<name>_tuned``, right after it: tuned rows, teachers and untuned rows as they are, the
    budget in its caption); tuned references beside their references."""
    t = settings(config)
    if t is None:
        return config

    n = int(t["n_trials"])
    tuned = tuned_methods(config)
    out = copy.deepcopy(config)
    for m in tuned:
        key = m + SUFFIX
        if key in config["methods"]:
            raise ConfigError(f"methods.{key}: the name is taken by the tuned twin of '{m}' (tuning is on); rename it")
        out["methods"][key] = {**copy.deepcopy(config["methods"][m]), "tuning": {"of": m, "n_trials": n}}
    for i, exp in enumerate(out["experiments"]):
        ms = experiment_methods(config, exp, f"experiments[{i}].methods")
        exp["methods"] = ms + [m + SUFFIX for m in ms if m in tuned]
    for tr in out["tracks"].values():
        refs = list(tr.get("references") or ["baseline"])
        tr["references"] = refs + [r + SUFFIX for r in refs if r in tuned]
    tables = []
    for tab in out.get("tables") or []:
        tables.append(tab)
        rows = tab.get("rows") or {}
        if not any(m in tuned for m in rows):
            continue
        tw = lambda m: m + SUFFIX if m in tuned else m  # noqa: E731
        labels = tab.get("labels") or {}
        new = {**copy.deepcopy(tab), "name": tab["name"] + SUFFIX,
               "title": f"{tab.get('title', tab['name'])} (tuned)",
               "rows": {tw(m): v for m, v in rows.items()},
               "labels": {tw(m): labels.get(m, m) for m in rows if m in labels or m in tuned},
               "caption": (f"Tuned: every student row chose its learning rate, loss weights and temperature by an "
                           f"equal-budget search on the validation part ({n} TPE trials per split, seeded; "
                           f"docs/tuning.md); teachers and teacher assistants keep their fixed settings. "
                           + (tab.get("caption") or "")).strip()}
        if tab.get("reference"):
            new["reference"] = tw(tab["reference"])
        tables.append(new)
    out["tables"] = tables
    return out


def study_path(run_dir: str) -> str:
    return f"{run_dir}/{STUDY_FILE}"


# ----------------------------------------------------------------------------- a study (in a job)
def apply_params(spec: dict, params: dict) -> dict:
    """A copy of ``spec`` with searched ``params`` in place: ``lr`` into ``training``, the rest
    into the method's ``params``."""
    s = copy.deepcopy(spec)
    for k, v in params.items():
        if k == "lr":
            s["training"]["lr"] = float(v)
        else:
            s["params"][k] = float(v)
    return s


def apply_study(spec: dict, fold) -> tuple[dict, dict]:
    """The final run's spec with the best parameters of its split's study in place, and the record
    of its provenance (``tuning``: parameters, budget, best validation score). A study of another
    budget, or one that spent fewer trials than its budget, is refused: every method of a table
    gets the same number of trials."""
    tun = spec["tuning"]
    path = Path(tun["study"])
    if not path.exists():
        raise DataError(f"{path}: the study of this tuned run is missing (run its study job first)")
    res = json.loads(path.read_text())
    if int(res["n_trials"]) != int(tun["n_trials"]):
        raise ConfigError(f"{path}: a study of {res['n_trials']} trials, but tuning.n_trials is {tun['n_trials']} "
                          "(every method gets the same budget; run the study again)")
    entry = next((f for f in res["folds"] if f["fold"] == (None if fold is None else int(fold))), None)
    if entry is None:
        raise DataError(f"{path}: no study of fold {fold}")
    if int(entry["n_trials"]) != int(tun["n_trials"]):
        raise DataError(f"{path}: fold {fold} spent {entry['n_trials']} of its {tun['n_trials']} trials (an unequal budget)")
    params = entry["best_params"] or {}
    record = {"study": str(path), "n_trials": int(tun["n_trials"]), "fold": fold, "params": params,
              "best_value": entry["best_value"], "best_trial": entry["best_trial"], "select_on": res["select_on"],
              "of": res.get("of")}
    return apply_params(spec, params), record


# ----------------------------------------------------------------------------- the report
def check_equal_budget(studies: list[dict]) -> None:
    """Every study of one table column (data set, track, dimension) spent the same number of
    trials; else ConfigError naming the methods and their budgets."""
    cols: dict[tuple, dict[str, set]] = {}
    for s in studies:
        c = s["cell"]
        key = (c["dataset"], c["track"], c["dimension"])
        for f in s["folds"]:
            cols.setdefault(key, {}).setdefault(c["method"], set()).update({int(s["n_trials"]), int(f["n_trials"])})
    for key, by_method in cols.items():
        budgets = set().union(*by_method.values())
        if len(budgets) > 1:
            detail = ", ".join(f"{m}: {sorted(b)}" for m, b in sorted(by_method.items()))
            raise ConfigError(f"tuning: unequal budgets in {'/'.join(key)} ({detail}); every method gets the same number of trials")


def cost_table(study_files: list[str | Path]):
    """Per tuned method: studies, trials, CPU- and wall-minutes of the trials (from the studies'
    own timing), after :func:`check_equal_budget`; the last row is the total."""
    studies = [json.loads(Path(p).read_text()) for p in study_files]
    check_equal_budget(studies)
    rows = []
    for s in studies:
        c = s["cell"]
        rows.append({"dataset": c["dataset"], "track": c["track"], "dimension": c["dimension"], "method": c["method"],
                     "seed": c["seed"], "n_trials": s["n_trials"], "studies": len(s["folds"]), "jobs": 1,
                     "trials": s["cost"]["trials"], "cpu_min": s["cost"]["cpu_s"] / 60, "wall_min": s["cost"]["wall_s"] / 60})
    df = pd.DataFrame(rows, columns=["dataset", "track", "dimension", "method", "seed", "n_trials", "studies", "jobs",
                                     "trials", "cpu_min", "wall_min"])
    keys = ["dataset", "track", "dimension", "method", "n_trials"]
    g = df.groupby(keys, sort=False, as_index=False).agg(
        seeds=("seed", "nunique"), studies=("studies", "sum"), jobs=("jobs", "sum"), trials=("trials", "sum"),
        cpu_min=("cpu_min", "sum"), wall_min=("wall_min", "sum"))
    total = {k: "" for k in keys} | {"dataset": "total", "n_trials": ",".join(str(v) for v in sorted(set(df["n_trials"]))),
                                     "seeds": "", "studies": int(g["studies"].sum()), "jobs": int(g["jobs"].sum()),
                                     "trials": int(g["trials"].sum()), "cpu_min": float(g["cpu_min"].sum()),
                                     "wall_min": float(g["wall_min"].sum())}
    return pd.concat([g, pd.DataFrame([total])], ignore_index=True)


def write_cost(study_files: list[str | Path], out_csv: str | Path, out_html: str | Path) -> None:
    """``tuning.csv`` and its HTML page for the report: the cost sentence generated from the run."""
    t = cost_table(study_files)
    tot = t.iloc[-1]
    sentence = (f"Tuning cost: {tot['jobs']} study jobs ({tot['studies']} studies, {tot['trials']} trials of "
                f"{tot['n_trials']} per study) took {tot['cpu_min']:.1f} CPU-minutes ({tot['wall_min']:.1f} "
                f"wall-minutes) of training trials, measured by the studies themselves.")
    atomic.write_csv(out_csv, t)
    html = (f"<html><body><h2>Hyperparameter search: cost</h2><p>{sentence}</p>"
            + t.to_html(index=False, float_format=lambda v: f"{v:.2f}" if not math.isnan(v) else "") + "</body></html>")
    Path(out_html).write_text(html, encoding="utf-8")
