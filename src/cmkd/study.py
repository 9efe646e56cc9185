"""A hyperparameter study in a job (:mod:`cmkd.tuning` declares the search, the budget and the
tuned twins, and reads a finished study back; docs/tuning.md): the trials of one seed of a tuned
method, one optuna study per split, each trial trained by :func:`cmkd.train._run` with
``trial=True`` on the split's training part and scored on its validation part. The journal file
storage keeps every trial as it ends, so a killed job resumes where it stopped."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.samplers import TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from cmkd import atomic, crossval
from cmkd.data.prepared import load_prepared
from cmkd.config import training_settings
from cmkd.errors import ConfigError, DivergenceError
from cmkd.run.checks import run_targets
from cmkd.train import _run
from cmkd.tuning import JOURNAL_FILE, apply_params, search_space


def _folds(spec: dict) -> list:
    """The splits of one seed: every fold of a k-fold/LOSO protocol, or [None] (one split)."""
    if not crossval.is_fold_protocol(spec.get("split")):
        return [None]
    prep = load_prepared(spec["prepared"])
    y = run_targets(spec, prep)
    return list(range(len(crossval.folds_of(prep, int(spec["seed"]), spec["split"], y, spec["dimension_spec"]["task"]))))


def _distributions(space: dict):
    return {k: FloatDistribution(r["lo"], r["hi"], log=r["log"]) for k, r in space.items()}


def _counted(t) -> bool:
    """A trial spent from the budget: completed, or diverged (a score of its own: the worst)."""
    return t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and bool(t.user_attrs.get("diverged")))


def study_name(spec: dict, fold) -> str:
    return (f"{spec['dataset']}/{spec['track']}/{spec['dimension']}/{spec['method']}/seed{int(spec['seed'])}"
            + ("" if fold is None else f"/fold{int(fold)}"))


def evaluate_trial(spec: dict, fold, params: dict) -> dict:
    """Train one trial (``params`` applied) on the split's training part and score it on its
    validation part: :func:`cmkd.train._run` with ``trial=True`` (no test part is built)."""
    s = apply_params(spec, params)
    s.pop("tuning", None)
    if fold is not None:
        s["fold"] = int(fold)
    with tempfile.TemporaryDirectory() as d:
        return _run(s, d, trial=True)


def run_study(spec: dict, out: str | Path, evaluate=None) -> dict:
    """Run (or resume) the studies of one seed of a tuned method and write their result to ``out``
    (``study.json``); the journal (``study.journal`` beside it) keeps every trial as it ends."""
    evaluate = evaluate or evaluate_trial
    t0, c0 = time.perf_counter(), time.process_time()
    tun = spec.get("tuning") or {}
    if "n_trials" not in tun:
        raise ConfigError(f"methods.{spec['method']}: not a tuned method (its spec has no tuning.n_trials)")
    n_trials, seed = int(tun["n_trials"]), int(spec["seed"])
    space = search_space(spec["class"])
    dists = _distributions(space)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(out.with_name(JOURNAL_FILE))))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = []
    for fold in _folds(spec):
        name = study_name(spec, fold)
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            # left by a killed job: not spent from the budget, drawn again
            storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        resumed = sum(_counted(t) for t in study.get_trials(deepcopy=False))
        while (done := sum(_counted(t) for t in study.get_trials(deepcopy=False))) < n_trials:
            # the sampler's seed: the run seed, the fold and the number of trials spent, so a resumed
            # study draws what the uninterrupted one would have
            study.sampler = TPESampler(seed=seed * 100003 + (fold or 0) * 1009 + done)
            trial = study.ask(dists)
            tw, tc = time.perf_counter(), time.process_time()
            try:
                r = evaluate(spec, fold, dict(trial.params))
            except DivergenceError as e:
                trial.set_user_attr("diverged", str(e))
                trial.set_user_attr("wall_s", time.perf_counter() - tw)
                trial.set_user_attr("cpu_s", time.process_time() - tc)
                study.tell(trial, state=TrialState.FAIL)
                continue
            trial.set_user_attr("wall_s", time.perf_counter() - tw)
            trial.set_user_attr("cpu_s", time.process_time() - tc)
            trial.set_user_attr("best_epoch", int(r.get("best_epoch", -1)))
            study.tell(trial, float(r["score"]))
        trials = [t for t in study.get_trials(deepcopy=False) if _counted(t)]
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
        folds.append({
            "fold": fold, "study_name": name, "n_trials": len(trials), "resumed_with": resumed,
            "best_params": dict(best.params) if best else None,
            "best_value": float(best.value) if best else None,
            "best_trial": best.number if best else None,
            "trials": [{"number": t.number, "params": dict(t.params), "state": t.state.name,
                        "value": None if t.value is None else float(t.value),
                        "wall_s": t.user_attrs.get("wall_s"), "cpu_s": t.user_attrs.get("cpu_s")} for t in trials],
        })
    result = {
        "cell": {k: spec[k] for k in ("dataset", "track", "dimension", "method", "seed")},
        "of": tun.get("of"), "class": spec["class"], "n_trials": n_trials, "direction": "maximize",
        "select_on": str(training_settings(spec["training"])["select_on"]),
        "sampler": "optuna TPESampler (seeded: run seed, fold, trials spent)", "optuna": optuna.__version__,
        "search_space": space, "folds": folds,
        "cost": {"trials": sum(f["n_trials"] for f in folds),
                 "cpu_s": sum(t["cpu_s"] or 0.0 for f in folds for t in f["trials"]),
                 "wall_s": sum(t["wall_s"] or 0.0 for f in folds for t in f["trials"]),
                 "job_wall_s": time.perf_counter() - t0, "job_cpu_s": time.process_time() - c0},
    }
    atomic.write_json(out, result)
    return result
