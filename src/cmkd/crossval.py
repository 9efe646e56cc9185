"""Fold runs: cross-validation (``split.kind: kfold | loso``) and the SEED-family protocols with one
model per subject (``split.models: per_subject``, whose folds are the subjects): all folds of a run
in one process.

A run (one seed = one repetition) trains one model per fold with the ordinary training phases
(:func:`cmkd.train.run` drives them: :func:`plan` checks every fold's validation part before any
fold trains, each fold runs with ``spec["fold"] = i`` into ``<run>/fold<i>``
(:func:`fold_runs`), then :func:`pool` writes the run's own outputs from the folds:

- ``features.npz``: the test predictions of every fold, concatenated (every segment of the data
  set once, since every trial is tested in exactly one fold; per subject: every test segment of
  the protocol once), with ``fold``, ``subject`` and ``trial`` per segment: the per-trial
  predictions the trial-level paired test needs;
- ``metrics.json``: the test metrics of the pooled predictions (``test``, and per subject and
  session: ``test_per_subject``, ``test_per_session``), each fold's test metrics (``folds``, with
  each fold's split hash, for the corrected repeated k-fold t-test), ``protocol``; with one model
  per subject the headline ``test`` is the mean over subjects of ``test_per_subject``
  (``averaged_over: subjects``; the pooled predictions' metrics in ``test_pooled``), each fold
  record names its ``subject``;
- ``history.csv``: the mean over folds of every logged column per epoch (``n_folds`` says how
  many folds reached that epoch);
- ``model.pt``: a marker that lists the fold checkpoints; a student of a k-fold teacher loads
  the teacher's checkpoint of its own fold (:func:`fold_dir`), whose split hash must match (a
  per-subject student: the same subject's teacher).
"""
from __future__ import annotations

import csv
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmkd import atomic, metrics
from cmkd.data import split_kinds
from cmkd.data import splits as splits_mod
from cmkd.data.prepared import load_prepared
from cmkd.data.protocols import per_subject_scores
from cmkd.errors import ConfigError, DataError
from cmkd.methods import REGISTRY
from cmkd.run.checks import check_validation, degenerate_reason, run_targets, subject_positions


def is_fold_protocol(split_spec: dict | None) -> bool:
    """A run's split (as configured; its kind ``trial`` when absent) makes several folds per seed:
    k-fold, LOSO, or a SEED-family protocol with one model per subject (:mod:`cmkd.data.split_kinds`)."""
    return split_kinds.fold_run(split_spec)


def fold_dir(run_dir: str | Path, fold: int | None) -> Path:
    """The folder of fold ``fold`` of a run (the run folder itself without folds)."""
    return Path(run_dir) if fold is None else Path(run_dir) / f"fold{int(fold)}"


def folds_of(prep, seed: int, split_spec: dict, y, task: str = "classification") -> list[dict]:
    """Every fold of one repetition (``seed``) for a prepared data set (:func:`cmkd.data.splits.run_splits`)."""
    return splits_mod.run_splits(prep, int(seed), split_spec, y, task)


@dataclass
class FoldPlan:
    """The folds of one run: its spec, prepared data, task and fold splits, and its start time."""

    spec: dict
    prep: Any
    task: str
    folds: list
    t0: float


def plan(spec: dict) -> FoldPlan:
    """The folds of one run, every fold's validation part checked before any fold trains."""
    t0 = time.perf_counter()
    if "fold" in spec:
        raise ConfigError("a run spec names a fold already: folds are made by the protocol, not the spec")
    prep = load_prepared(spec["prepared"])
    task, y = spec["dimension_spec"]["task"], run_targets(spec, prep)
    folds = folds_of(prep, int(spec["seed"]), spec["split"], y, task)
    for f, split in enumerate(folds):  # every fold's validation part, before any fold trains
        check_validation(spec, prep, split, y, f)
    return FoldPlan(spec, prep, task, folds, t0)


def fold_runs(fold_plan: FoldPlan, out_dir: str | Path) -> list[tuple[dict, Path]]:
    """``(spec, output folder)`` of every fold of the run."""
    return [({**fold_plan.spec, "fold": f}, fold_dir(out_dir, f)) for f in range(len(fold_plan.folds))]


def _pooled_features(out_dir: Path, n_folds: int) -> dict:
    feats = []
    for f in range(n_folds):
        with np.load(fold_dir(out_dir, f) / "features.npz", allow_pickle=False) as z:
            feats.append({k: z[k] for k in z.files})
    cat = {k: np.concatenate([d[k] for d in feats]) for k in ("logits", "y", "index", "subject", "trial")}
    if all(d["embedding"].ndim == 2 for d in feats):
        cat["embedding"] = np.concatenate([d["embedding"] for d in feats])
    else:
        cat["embedding"] = np.zeros((0,))
    cat["fold"] = np.concatenate([np.full(len(d["y"]), f, dtype=np.int64) for f, d in enumerate(feats)])
    if np.unique(cat["index"]).size != cat["index"].size:
        raise DataError(f"{out_dir}: a segment was tested in two folds (the fold splits overlap)")
    return cat


def _pooled_provenance(results: list) -> dict:
    h = hashlib.sha256()
    for r in results:
        h.update(str(r["provenance"].get("split_hash", "")).encode())
    hv = hashlib.sha256()
    for r in results:
        hv.update(str(r["provenance"].get("val_hash", "")).encode())
    prov = dict(results[0]["provenance"], split_hash="folds:" + h.hexdigest()[:16], val_hash="folds:" + hv.hexdigest()[:16])
    if "tuning" in results[0]["provenance"]:  # a tuned run: each fold's chosen parameters (cmkd.tuning.apply_study)
        prov["tuning"] = [r["provenance"]["tuning"] for r in results]
    return prov


def _fold_records(results: list, subjects=None) -> list:
    """Each fold's record; ``subjects`` (the pooled test segments' subjects, in fold order): the
    subject of each per-subject model."""
    who = {}
    if subjects is not None:
        start = 0
        for f, r in enumerate(results):
            n = int(r["n_segments"]["test"])
            who[f] = {"subject": int(subjects[start])} if n else {}
            start += n
    return [{"fold": f, **who.get(f, {}), "test": r["test"], "val": r["val"], "best_epoch": r["best_epoch"],
             "n_segments": r["n_segments"], "n_trials": r["n_trials"],
             "split_hash": r["provenance"].get("split_hash"), "val_hash": r["provenance"].get("val_hash"),
             **({"val_class_counts": r["val_class_counts"]} if "val_class_counts" in r else {})}
            for f, r in enumerate(results)]


def subject_mean(per_subject: dict) -> dict:
    """The mean over subjects of every metric of ``test_per_subject`` (NaN where no subject has it):
    the headline of a run with one model per subject, each subject weighing the same."""
    names = [k for k in next(iter(per_subject.values()), {}) if k != "n"]
    out = {}
    for k in names:
        vals = [float(v[k]) for v in per_subject.values() if not math.isnan(float(v[k]))]
        out[k] = sum(vals) / len(vals) if vals else math.nan
    return out


def _per_subject_fields(fold_plan: FoldPlan, cat: dict, per_subject: dict, out) -> dict:
    """The record fields of a run with one model per subject: the headline ``test`` as the mean
    over subjects, ``averaged_over``, the pooled predictions' metrics beside it (``test_pooled``)
    and, for classification, the accuracy's mean and spread over subjects."""
    rec = {"test": subject_mean(per_subject), "averaged_over": "subjects",
           "test_pooled": metrics.compute(fold_plan.task, cat["y"], out)}
    if fold_plan.task == "classification":
        rec["test_subject_summary"] = per_subject_scores(cat["subject"], cat["y"], cat["logits"])
    return rec


def _protocol_record(sp: dict, n_folds: int) -> dict:
    kind = split_kinds.get(sp["kind"])
    rec = {"kind": sp["kind"], "n_folds": n_folds, "folds_by": sp["folds_by"] if "folds_by" in kind.params else None,
           "val_fraction": float(sp["val_fraction"]) if "val_fraction" in kind.params else None}
    if "models" in kind.params:
        rec["models"] = sp["models"]
    return rec


def _pooled_record(fold_plan: FoldPlan, results: list, cat: dict) -> dict:
    spec, task, sp = fold_plan.spec, fold_plan.task, split_kinds.settings(fold_plan.spec["split"])
    out = cat["logits"].reshape(-1) if task == "regression" else cat["logits"]
    # per subject (and session) over the pooled test predictions: every fold's test segments of a
    # subject together, as aggregate_runs reads them (results/summary/subjects.csv)
    groups = subject_positions(fold_plan.prep, cat["index"])
    per_subject = metrics.per_group(task, cat["y"], out, groups["subject"])
    by_subject = split_kinds.per_subject_models(sp)
    headline = (_per_subject_fields(fold_plan, cat, per_subject, out) if by_subject
                else {"test": metrics.compute(task, cat["y"], out)})
    counts = [r.get("val_class_counts") for r in results]
    val_counts = ({k: int(sum(c.get(k, 0) for c in counts)) for k in sorted({k for c in counts for k in c}, key=int)}
                  if all(c is not None for c in counts) else None)
    bad = next((f"fold {i}: {r.get('reason', r['status'])}" for i, r in enumerate(results) if r.get("status", "ok") != "ok"),
               None)
    if bad is None and not REGISTRY[spec["class"]].trivial:
        bad = degenerate_reason(task, cat["y"], out)
    first = results[0]
    return {
        "status": "degenerate" if bad else "ok",
        **({"reason": bad} if bad else {}),
        "cell": first["cell"],
        "class": first["class"],
        "task": task,
        "synthetic": first.get("synthetic", False),
        **headline,
        "test_per_subject": per_subject,
        **({"test_per_session": metrics.per_group(task, cat["y"], out, groups["session"])}
           if "session" in groups else {}),
        "protocol": _protocol_record(sp, len(results)),
        "folds": _fold_records(results, cat["subject"] if by_subject else None),
        **({} if val_counts is None else {"val_class_counts": val_counts}),  # summed over the folds
        "best_epoch": int(np.median([r["best_epoch"] for r in results])),
        "epochs_run": int(sum(r["epochs_run"] for r in results)),
        "n_segments": {"test": int(cat["y"].size)},
        "n_trials": {"test": int(len(set(zip(cat["subject"].tolist(), cat["trial"].tolist()))))},
        "split": spec["split"],
        "timing": {"train_s": float(sum(r["timing"]["train_s"] for r in results)),
                   "in_process_s": time.perf_counter() - fold_plan.t0},
        "provenance": _pooled_provenance(results),
        "spec": spec,
    }


def _number(text: str) -> float | None:
    """A history field as a number (empty: NaN); None when it is not one."""
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def _pooled_history(out_dir: Path, n_folds: int) -> tuple[list[dict], list[str]]:
    """The folds' histories merged per epoch: the mean over the folds that ran that epoch of every
    numeric column (missing values skipped; a column with text is left out), and ``n_folds``, the
    number of folds that did. Rows and columns for :func:`cmkd.atomic.write_rows`."""
    rows, columns = [], ["epoch"]
    for f in range(n_folds):
        with open(fold_dir(out_dir, f) / "history.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            columns += [c for c in reader.fieldnames or [] if c not in columns]
            rows += list(reader)
    parsed = [{c: _number(r.get(c) or "") for c in columns} for r in rows]
    numeric = [c for c in columns if all(p[c] is not None for p in parsed)]
    by_epoch: dict[float, list[dict]] = {}
    for p in parsed:
        by_epoch.setdefault(p["epoch"], []).append(p)
    merged = []
    for epoch in sorted(by_epoch):
        group = by_epoch[epoch]
        row = {"epoch": int(epoch) if float(epoch).is_integer() else epoch}
        for c in numeric[1:]:
            values = [g[c] for g in group if not math.isnan(g[c])]
            row[c] = sum(values) / len(values) if values else math.nan
        row["n_folds"] = len(group)
        merged.append(row)
    return merged, numeric + ["n_folds"]


def pool(fold_plan: FoldPlan, out_dir: str | Path, results: list, t_process_start: float | None = None) -> dict:
    """Write the run's outputs from its folds' (``results``, in fold order): features, history,
    the marker checkpoint, and ``metrics.json`` last (its presence marks a complete run)."""
    import torch  # lazy: torch; here: planning imports this module and must not load torch

    out_dir, n_folds = Path(out_dir), len(results)
    cat = _pooled_features(out_dir, n_folds)
    result = _pooled_record(fold_plan, results, cat)
    atomic.write_npz(out_dir / "features.npz", **cat)
    atomic.write_rows(out_dir / "history.csv", *_pooled_history(out_dir, n_folds))
    with atomic.atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"status": "ok", "protocol": fold_plan.spec["split"]["kind"], "n_folds": n_folds,
                    "models": result["protocol"].get("models"),
                    "folds": [str(fold_dir(out_dir, f) / "model.pt") for f in range(n_folds)],
                    "spec": None, "split_hash": result["provenance"]["split_hash"],
                    "data_hash": result["provenance"].get("data_hash")}, tmp)
    if t_process_start is not None:
        result["timing"]["process_s"] = time.perf_counter() - t_process_start
    atomic.write_json(out_dir / "metrics.json", result)  # written last: its presence marks a complete run
    return result


def check_fold_teacher(ck: dict, where: str) -> None:
    """A fold's student loads its fold's teacher (a per-subject model's: the same subject's
    model); the cell-level marker is not a model."""
    if ck.get("spec") is None and ("folds" in ck or ck.get("protocol") in split_kinds.kinds(folds=True)):
        models = " with one model per subject" if ck.get("models") == "per_subject" else ""
        raise DataError(f"{where}: this is the fold list of a {ck.get('protocol')} run{models}, not a model; a student "
                        "of a cross-validated or per-subject teacher must use the same split kind and models (one teacher per fold)")


__all__ = ["is_fold_protocol", "fold_dir", "folds_of", "FoldPlan", "plan", "fold_runs", "pool", "check_fold_teacher"]
