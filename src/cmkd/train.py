"""The one training loop every method uses: a run is a pipeline of named phases,

    load -> build -> fit -> score -> write

- :func:`load`: the run's data (prepared arrays, the teachers' checkpoints, the split, its parts,
  and the split's feedback hold-out, given to a method that declares the need:
  :attr:`cmkd.methods.base.Method.feedback_part`, :func:`cmkd.run.method_setup.method_parts`);
- ``build`` and ``fit``, the phases of the run's kind (:class:`cmkd.run.state.RunKind`): for a
  network, :func:`build` (student, teachers, method, optimiser) and :func:`fit` (the epoch loop
  and the selection on validation); the trivial baselines have their own
  (:mod:`cmkd.run.trivial_run`);
- :func:`score`: the selected weights on the validation part and, once, on the test part;
- :func:`write`: features, checkpoint, history, and ``metrics.json`` last (its presence marks a
  complete run).

:func:`_run` chains them for one split; :func:`run` is the entry point (every fold of a k-fold /
LOSO run in this process, :mod:`cmkd.crossval`; a failed run recorded as failed).

Protocol (the same for every method, or it is not a benchmark):
- the split is made from the seed at the trial level (8:1:1) unless the spec asks for another kind,
  and is checked for trial overlap; its validation part must hold every class of its training part
  (checked before any epoch); inputs are standardised with statistics of the training part only;
- every method selects on the validation part the loop made (no method's ``configure`` may replace
  it), so the rows of a table select on the same trials (``val_hash`` in the provenance);
- Adam; after every epoch the student is evaluated on the validation part; the best epoch on
  validation is kept (early stopping after ``patience`` epochs without improvement);
- the test part is evaluated once, with the best-on-validation weights, at the end;
- a teacher checkpoint is accepted only if it was trained on the same data and the same split
  (else the teacher would have seen the student's test trials);
- deterministic on CPU: the seed fixes the split, the initialisation and the batch order, and the
  thread count is set from the spec (results differ between 1 and 2 threads).
"""
from __future__ import annotations

import copy
import math
import resource
import time
from pathlib import Path

import numpy as np
import torch

from cmkd import accel, atomic, crossval, metrics, provenance
from cmkd.config import training_settings
from cmkd.data import selection, split_kinds, splits as splits_mod, stream as stream_mod
from cmkd.data.prepared import check_finite, load_prepared
from cmkd.data.protocols import per_subject_scores
from cmkd.data.stream import Part  # noqa: F401  (the part type, for the callers of cmkd.train)
from cmkd.errors import DataError, DivergenceError
from cmkd.methods import REGISTRY, method_class
from cmkd.models.visual import weights_provenance
from cmkd.run.checks import (check_labels, check_validation, degenerate_reason, run_targets,  # noqa: F401
                             split_hash, subject_positions)
from cmkd.run import frame_features
from cmkd.run.method_setup import attach_method, method_parts
from cmkd.run.parts import (RequiredRunFailed, build_parts, evaluate, load_checkpoint, model_inputs,  # noqa: F401
                            predict)
from cmkd.run.state import Built, Fitted, RunData, RunKind, Scores
from cmkd.run.torch_setup import log, pause_point, setup_torch
from cmkd.run.trivial_run import TRIVIAL


def req_dir(spec: dict, role: str) -> str:
    return str(crossval.fold_dir(spec["requires"][role]["dir"], spec.get("fold")))


class BestOnValidation:
    """Model selection of the training loop: the best epoch on the validation part, early stopping
    and the restore of the best epoch's weights.

    :meth:`update` is called after every epoch with its validation score
    (:func:`cmkd.metrics.selection_score`, higher is better): a score strictly above the best so
    far (the first score always) makes the epoch the best one, keeps a copy of the model's weights
    and resets the count of epochs without improvement; any other score (a tie included) adds one
    to that count. :attr:`stop` is true once ``patience`` epochs in a row brought no improvement,
    so a run stops exactly ``patience`` epochs after its best. :meth:`restore` loads the kept
    weights into the model: the weights the test part is evaluated with and the checkpoint holds.
    """

    def __init__(self, patience: int):
        self.patience = int(patience)
        self.best: float | None = None
        self.best_epoch = -1
        self.best_state: dict | None = None
        self.since_best = 0

    def update(self, epoch: int, score: float, model: torch.nn.Module) -> None:
        """Record epoch ``epoch``'s validation ``score`` (and keep the weights if it is the best)."""
        improved = self.best is None or score > self.best
        if improved:
            self.best, self.best_epoch, self.since_best = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())  # a copy: training goes on changing the weights
        else:
            self.since_best += 1

    @property
    def stop(self) -> bool:
        """True once ``patience`` epochs in a row brought no improvement."""
        return self.since_best >= self.patience

    def keep(self, model: torch.nn.Module, epoch: int = 0) -> None:
        """Keep ``model``'s current weights as the selected ones (a run without epochs)."""
        self.best_state, self.best_epoch = copy.deepcopy(model.state_dict()), epoch

    def restore(self, model: torch.nn.Module) -> dict:
        """Load the selected weights into ``model``; returns them."""
        model.load_state_dict(self.best_state)
        return self.best_state


# ----------------------------------------------------------------------------- load
def load_teachers(spec: dict) -> dict:
    """The checkpoints of the runs this run requires (of its own fold in a k-fold / LOSO run)."""
    fold = spec.get("fold")  # set by cmkd.crossval for kfold / loso runs: the teacher of the same fold
    teachers = {role: load_checkpoint(crossval.fold_dir(req["dir"], fold)) for role, req in spec["requires"].items()}
    for role, ck in teachers.items():
        crossval.check_fold_teacher(ck, f"{req_dir(spec, role)}/model.pt")
    return teachers


def check_inputs(spec: dict, prep, needed: list) -> None:
    for mod in needed:
        if mod not in prep:
            raise DataError(f"{prep.path}: method '{spec['method']}' needs modality '{mod}', which this prepared data "
                            f"set lacks (has {prep.modalities})")
    check_finite(prep, needed)


def check_teachers(spec: dict, teachers: dict, shash: str, data_hash: str) -> None:
    """A teacher must share the student's split and data, or it has seen the student's test trials."""
    for role, ck in teachers.items():
        if ck.get("split_hash") != shash or ck.get("data_hash") != data_hash:
            raise DataError(
                f"{req_dir(spec, role)}/model.pt: the '{role}' checkpoint was trained on another split or data "
                f"(split {ck.get('split_hash')} vs {shash}); a teacher must share the student's split, "
                "or it has seen the student's test trials")


def run_tag(spec: dict) -> str:
    fold = f" fold{spec['fold']}]" if spec.get("fold") is not None else "]"
    return f"[{spec['dataset']}/{spec['track']}/{spec['dimension']}/{spec['method']} seed{int(spec['seed'])}" + fold


def load(spec: dict, kind: RunKind | None = None, trial: bool = False, t0: float | None = None,
         tuned: dict | None = None) -> RunData:
    """The load phase: device, prepared arrays, teachers' checkpoints, labels, the split (checked)
    and its parts; the validation part less the split's feedback hold-out, which goes to a method
    that declares the need (:func:`cmkd.run.method_setup.method_parts`). ``trial``: no test part."""
    t0 = time.perf_counter() if t0 is None else t0
    kind = kind or run_kind(spec)
    seed, fold, tr, dim = int(spec["seed"]), spec.get("fold"), training_settings(spec["training"]), spec["dimension_spec"]
    device = setup_torch(spec["threads"], seed, spec.get("device", "auto"))
    task = dim["task"]
    prep = load_prepared(spec["prepared"])
    teachers = load_teachers(spec)
    needed = kind.inputs(spec, teachers)
    check_inputs(spec, prep, needed)
    prep = frame_features.apply(spec, teachers, prep, needed, device)  # frozen face features in place of the frames
    y = run_targets(spec, prep)
    split = splits_mod.run_splits(prep, seed, spec["split"], y, task)[int(fold) if fold is not None else 0]
    val_counts = check_validation(spec, prep, split, y, fold)  # before any epoch: a part that cannot measure the task
    shash = split_hash(split)
    check_teachers(spec, teachers, shash, prep.data_hash)
    if trial:  # a tuning trial sees the training and validation parts only
        split = {k: v for k, v in split.items() if k in ("train", "val")}
    amp = accel.Amp(tr["autocast"], device)
    parts, norm, data_mode = stream_mod.build_parts_auto(prep, needed, y, split, task, tr, device, build_parts)
    fb_frac = selection.check_fraction(split_kinds.settings(spec["split"])["feedback_fraction"], "split.feedback_fraction")
    held_out = selection.hold_out_feedback(parts, prep["subject"], prep["trial"], fb_frac, task).pop("feedback", None)
    n_classes = 1 if task == "regression" else int(dim.get("n_classes", 2))
    if task == "classification":  # at job start, before any epoch: what the plan could not see
        check_labels(y, split, n_classes, spec, str(prep.path))
    return RunData(spec=spec, kind=kind, prep=prep, task=task, n_classes=n_classes, y=y, split=split, split_hash=shash,
                   parts=method_parts(method_class(spec["class"]), parts, held_out), held_out=held_out,
                   feedback_fraction=fb_frac, norm=norm, data_mode=data_mode, val_counts=val_counts,
                   teachers=teachers, device=device, amp=amp, tag=run_tag(spec), t0=t0, t_data=time.perf_counter(),
                   tuned=tuned)


# ----------------------------------------------------------------------------- build (a network)
def network_inputs(spec: dict, teachers: dict) -> list:
    """The modalities a network run reads: its own and its teachers'."""
    return list(dict.fromkeys(list(spec["modalities"]) + [m for ck in teachers.values() for m in ck["spec"]["modalities"]]))


def build(data: RunData) -> Built:
    """The build phase of a network run: the student network (seeded), the teachers, the method
    around them and its Adam optimiser, configured with its parts."""
    from cmkd.models.registry import build_model  # lazy: optional; imports timm only when a visual encoder is built

    spec = data.spec
    model_spec = {
        "architecture": spec.get("architecture"),
        "model": spec.get("model") or {},
        "modalities": list(spec["modalities"]),
        "encoders": spec["encoders"],
        "inputs": model_inputs(data.prep, list(spec["modalities"])),
        "head": spec["head"],
        "n_outputs": data.n_classes,
    }
    torch.manual_seed(int(spec["seed"]))
    student = build_model(model_spec, where="encoders")
    # where the visual encoders' initial weights came from
    return attach_method(data, student, model_spec, weights_provenance(student))


# ----------------------------------------------------------------------------- fit (a network)
def train_steps(data: RunData, built: Built, perm: torch.Tensor, epoch: int, history: list, out_dir: Path) -> tuple[dict, int]:
    """One epoch's optimiser steps over the training part in the order ``perm``; returns the summed
    loss terms (and diagnostics) and the number of steps. A non-finite loss writes the history of
    the epochs before it and raises :class:`DivergenceError`."""
    method, opt, amp, bs = built.method, built.optimizer, data.amp, int(data.spec["training"]["batch_size"])
    sums, nb = {}, 0
    steps = (perm[s:s + bs] for s in range(0, len(perm), bs))
    steps = (idx for idx in steps if len(idx) >= 2)  # BatchNorm cannot train on a single sample
    for idx, batch in stream_mod.iter_batches(data.parts["train"], steps, data.device):
        with amp.autocast():
            _, terms = method.training_step(batch)
        total = sum(terms.values())
        if not torch.isfinite(total):
            bad = [k for k, v in terms.items() if not torch.isfinite(v)]
            atomic.write_rows(out_dir / "history.csv", history, None if history else ["epoch"])  # the epochs before the divergence
            raise DivergenceError(f"{data.tag} method '{data.spec['method']}' diverged at epoch {epoch}: "
                                  f"non-finite loss term(s) {bad}")
        opt.zero_grad(set_to_none=True)
        amp.backward(total)
        amp.step(opt)
        method.after_step(batch)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        for k, v in method.diagnostics.items():  # logged, not optimised
            sums[f"diag_{k}"] = sums.get(f"diag_{k}", 0.0) + float(v)
        sums["total"] = sums.get("total", 0.0) + float(total.detach())
        nb += 1
    return sums, nb


def fit_epoch(data: RunData, built: Built, selector: BestOnValidation, epoch: int, g: torch.Generator,
              history: list, out_dir: Path) -> dict:
    """One epoch: the training steps, then the validation part (the selector's score); returns
    the epoch's ``history.csv`` row and logs it."""
    tr, method, task = training_settings(data.spec["training"]), built.method, data.task
    te = time.perf_counter()
    method.train()
    method.on_epoch_start(epoch, g)
    perm = torch.randperm(len(data.parts["train"]), generator=g)
    sums, nb = train_steps(data, built, perm, epoch, history, out_dir)
    with data.amp.autocast():
        vm, _, _ = evaluate(task, method.student, data.parts["val"], data.device, int(tr["eval_batch_size"]))
    selector.update(epoch, metrics.selection_score(task, vm, str(tr["select_on"])), method.student)
    row = {"epoch": epoch, **{f"train_{k}": v / max(nb, 1) for k, v in sums.items()},
           "val_loss": vm["loss"], "val_accuracy": vm["accuracy"], "val_f1": vm["f1"], "val_rmse": vm["rmse"],
           "time_s": time.perf_counter() - te, **method.epoch_summary()}  # a method's own columns
    terms_s = " ".join(f"{k}={v / max(nb, 1):.4f}" for k, v in sums.items() if k != "total" and not k.startswith("diag_"))
    vshow = f"val_rmse={vm['rmse']:.4f}" if task == "regression" else f"val_acc={vm['accuracy']:.2f}"
    log(f"{data.tag} epoch {epoch}/{int(tr['max_epochs'])} loss={sums.get('total', 0) / max(nb, 1):.4f} ({terms_s}) "
        f"{vshow} best@{selector.best_epoch} {row['time_s']:.1f}s")
    return row


def fit(data: RunData, built: Built, out_dir: str | Path) -> Fitted:
    """The fit phase of a network run: epochs until ``max_epochs`` or ``patience`` epochs without
    a better validation score; the best epoch's weights are loaded into the student."""
    tr, method = training_settings(data.spec["training"]), built.method
    patience = int(tr["patience"])
    g = torch.Generator().manual_seed(int(data.spec["seed"]))
    history, selector = [], BestOnValidation(patience)
    t_train0 = time.perf_counter()
    # the teachers' forward passes are training work (the loop made them every step before)
    if method.cache_teacher_outputs(data.parts["train"], data.device, int(tr["eval_batch_size"]),
                                    float(tr["teacher_cache_mb"])):
        log(f"{data.tag} teacher outputs on the training part computed once and cached")
    for epoch in range(1, int(tr["max_epochs"]) + 1):
        history.append(fit_epoch(data, built, selector, epoch, g, history, Path(out_dir)))
        pause_point(data.spec["method"], epoch)
        if selector.stop:
            log(f"{data.tag} early stop: no validation improvement for {patience} epochs")
            break
    best_state = selector.restore(method.student)
    return Fitted(history=history, best_state=best_state, best_epoch=selector.best_epoch, best_score=selector.best,
                  t_train0=t_train0)


def network_degenerate(data: RunData, fitted: Fitted, y_test, out) -> str | None:
    if data.spec.get("fold") is not None:  # a fold's test part may hold one class (a LOSO subject): the whole run's is checked
        return degenerate_reason(data.task, [], [], fitted.history)
    return degenerate_reason(data.task, y_test, out, fitted.history)


NETWORK = RunKind("network", network_inputs, build, fit, network_degenerate)


def run_kind(spec: dict) -> RunKind:
    """The trivial baselines' kind for a trivial method class, else the network run."""
    return TRIVIAL if REGISTRY[spec["class"]].trivial else NETWORK


def trial_summary(fitted: Fitted) -> dict:
    """What a tuning trial returns: the best validation score, its epoch, the epochs run and the
    best epoch's validation columns."""
    h, best = fitted.history, fitted.best_epoch
    return {"score": float(fitted.best_score), "best_epoch": best, "epochs_run": len(h),
            "val": {k: float(v) for k, v in h[best - 1].items() if k.startswith("val_")} if h else {}}


# ----------------------------------------------------------------------------- score and write
def score(data: RunData, built: Built, fitted: Fitted) -> Scores:
    """The score phase: the selected weights on the validation part and, once, on the test part."""
    ebs, student = int(training_settings(data.spec["training"])["eval_batch_size"]), built.method.student
    with data.amp.autocast():
        val_m, _, _ = evaluate(data.task, student, data.parts["val"], data.device, ebs)
        test_m, logits, emb = evaluate(data.task, student, data.parts["test"], data.device, ebs, keep_features=True)
    t_end = time.perf_counter()
    log(f"{data.tag} best epoch {fitted.best_epoch}: test "
        + " ".join(f"{k}={v:.4f}" for k, v in test_m.items() if not math.isnan(v)))
    return Scores(val=val_m, test=test_m, test_logits=logits, test_embedding=emb, t_end=t_end)


def run_provenance(data: RunData, built: Built) -> dict:
    return provenance.collect(data.spec, data.prep.data_hash, str(data.device),
                              {"split_hash": data.split_hash, "val_hash": built.selected["trials_sha256"][:16],
                               **data.amp.info, "data_access": data.data_mode, "weights": built.initial_weights,
                               **({"tuning": data.tuned} if data.tuned else {})})


def per_subject_records(data: RunData, scores: Scores) -> dict:
    """The test part's metrics per subject (and session), and over subjects for the per-subject protocols."""
    y_test, idx, logits = data.parts["test"].y.numpy(), data.parts["test"].index, scores.test_logits
    out = logits.reshape(-1) if data.task == "regression" else logits
    groups = subject_positions(data.prep, idx)
    rec = {"test_per_subject": metrics.per_group(data.task, y_test, out, groups["subject"]),
           **({"test_per_session": metrics.per_group(data.task, y_test, out, groups["session"])}
              if "session" in groups else {})}
    if split_kinds.get(split_kinds.settings(data.spec["split"])["kind"]).per_subject and data.task == "classification":
        rec["test_subject_summary"] = per_subject_scores(np.asarray(data.prep["subject"])[idx], y_test, logits)
    return rec


def run_record(data: RunData, built: Built, fitted: Fitted, scores: Scores) -> dict:
    """``metrics.json`` of a finished run (less the process time and peak memory)."""
    spec, task, split, prep = data.spec, data.task, data.split, data.prep
    y_test = data.parts["test"].y.numpy()
    bad = data.kind.degenerate(data, fitted, y_test, scores.test_logits.reshape(-1) if task == "regression" else scores.test_logits)
    if bad:
        log(f"{data.tag} degenerate run: {bad}")
    trials = lambda idx: len({(int(a), int(b)) for a, b in zip(np.asarray(prep["subject"])[idx], np.asarray(prep["trial"])[idx])})
    per_test = per_subject_records(data, scores)
    summary = per_test.pop("test_subject_summary", None)
    return {
        "status": "degenerate" if bad else "ok",
        **({"reason": bad} if bad else {}),
        "cell": {k: spec[k] for k in ("dataset", "track", "dimension", "method", "seed")},
        "class": spec["class"],
        "task": task,
        "synthetic": spec.get("synthetic", False),
        "test": dict(scores.test),
        "val": dict(scores.val),
        "method_params": {k: v for k, v in built.method.params.items() if v is None or isinstance(v, (bool, int, float, str))},
        **({} if task == "regression" else
           {"class_counts": {k: metrics.class_counts(data.y[v], data.n_classes) for k, v in split.items()}}),
        **per_test,
        "best_epoch": fitted.best_epoch,
        "epochs_run": len(fitted.history),
        "n_segments": {k: int(len(v)) for k, v in split.items()},
        "n_trials": {k: trials(v) for k, v in split.items()},
        "split": spec["split"],
        "selection": built.selected,
        **({} if data.val_counts is None else {"val_class_counts": data.val_counts}),
        "timing": {"data_s": data.t_data - data.t0, "train_s": scores.t_end - fitted.t_train0,
                   "setup_s": fitted.t_train0 - data.t_data, "in_process_s": scores.t_end - data.t0},
        "provenance": run_provenance(data, built),
        "spec": spec,
        **({} if summary is None else {"test_subject_summary": summary}),
    }


def write(data: RunData, built: Built, fitted: Fitted, scores: Scores, out_dir: str | Path,
          t_process_start: float | None = None) -> dict:
    """The write phase: features (the test part's per-segment predictions), checkpoint, history
    and ``metrics.json``, written last: its presence marks a complete run."""
    out_dir, prep, test = Path(out_dir), data.prep, data.parts["test"]
    result = run_record(data, built, fitted, scores)
    emb = scores.test_embedding
    atomic.write_npz(out_dir / "features.npz", embedding=emb if emb is not None else np.zeros((0,)),
                     logits=scores.test_logits, y=test.y.numpy(), index=test.index,
                     subject=np.asarray(prep["subject"])[test.index],  # per-trial predictions (paired tests)
                     trial=np.asarray(prep["trial"])[test.index])
    ckpt = {"spec": built.model_spec, "state_dict": fitted.best_state, "split_hash": data.split_hash,
            "data_hash": prep.data_hash, "config_hash": data.spec["config_hash"], "norm": data.norm, "task": data.task,
            "provenance": result["provenance"]}
    with atomic.atomic_path(out_dir / "model.pt") as tmp:
        torch.save(ckpt, tmp)
    history = fitted.history
    atomic.write_rows(out_dir / "history.csv", history, None if history else ["epoch"])
    if t_process_start is not None:
        result["timing"]["process_s"] = time.perf_counter() - t_process_start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    atomic.write_json(out_dir / "metrics.json", result)  # written last: its presence marks a complete run
    return result


# ----------------------------------------------------------------------------- the pipeline
def _run(spec: dict, out_dir: str | Path, t_process_start: float | None = None, trial: bool = False) -> dict:
    """One run (one split): load -> build -> fit -> score -> write. ``trial``: a trial of a
    hyperparameter study (:mod:`cmkd.tuning`): trains on the training part, scores on the
    validation part, builds no test part (its labels are never read) and writes nothing; returns
    ``{"score", "best_epoch", "epochs_run", "val"}``. A tuned run (``spec["tuning"]``) takes its
    split's best parameters from its study first."""
    t0 = time.perf_counter()
    tuned = None
    if spec.get("tuning") and not trial:
        from cmkd import tuning  # lazy: optional; optuna: only for tuned runs

        spec, tuned = tuning.apply_study(spec, spec.get("fold"))
    data = load(spec, run_kind(spec), trial=trial, t0=t0, tuned=tuned)
    built = data.kind.build(data)
    fitted = data.kind.fit(data, built, Path(out_dir))
    if trial:
        return trial_summary(fitted)
    return write(data, built, fitted, score(data, built, fitted), out_dir, t_process_start)


def run_folds(spec: dict, out_dir: str | Path, t_process_start: float | None = None) -> dict:
    """Every fold of a k-fold / LOSO run in this process (:mod:`cmkd.crossval`), then the run's pooled outputs."""
    fold_plan = crossval.plan(spec)
    results = [_run(fold_spec, fold_out) for fold_spec, fold_out in crossval.fold_runs(fold_plan, out_dir)]
    return crossval.pool(fold_plan, out_dir, results, t_process_start)


def run(spec: dict, out_dir: str | Path, t_process_start: float | None = None) -> dict:
    """Train one run and write its outputs.

    A divergence (NaN/inf loss) or a failed required run is, by default (``on_failure: record``),
    written as a complete run with ``status: failed`` and the reason, so the tables mark the cell
    as failed instead of dropping it and the rest of the grid goes on; with ``on_failure: fail``
    the job fails instead.
    """
    try:
        if crossval.is_fold_protocol(spec.get("split")):  # kfold / loso: every fold in this process
            return run_folds(spec, out_dir, t_process_start)
        return _run(spec, out_dir, t_process_start)
    except (DivergenceError, RequiredRunFailed) as e:
        if spec.get("on_failure", "record") != "record":
            raise
        log(f"error: {e}")
        return write_failed(spec, out_dir, str(e), t_process_start)


def write_failed(spec: dict, out_dir: str | Path, reason: str, t_process_start: float | None = None) -> dict:
    """Outputs of a failed run: metrics.json with status 'failed', empty history/features, a marker checkpoint."""
    out_dir = Path(out_dir)
    result = {
        "status": "failed",
        "reason": reason,
        "cell": {k: spec[k] for k in ("dataset", "track", "dimension", "method", "seed")},
        "class": spec["class"],
        "task": spec["dimension_spec"]["task"],
        "synthetic": spec.get("synthetic", False),
        "test": metrics.nan_metrics(),
        "provenance": provenance.collect(spec, "", "n/a"),
        "spec": spec,
        "timing": {"process_s": (time.perf_counter() - t_process_start) if t_process_start else math.nan},
    }
    atomic.write_npz(out_dir / "features.npz", embedding=np.zeros((0,)), logits=np.zeros((0,)), y=np.zeros((0,)),
                     index=np.zeros((0,)))
    with atomic.atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"status": "failed", "reason": reason}, tmp)
    if not (out_dir / "history.csv").exists():
        atomic.write_rows(out_dir / "history.csv", [], ["epoch"])
    atomic.write_json(out_dir / "metrics.json", result)
    return result
