"""The one training loop every method uses.

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
import hashlib
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cmkd import accel, atomic, metrics, protocols, provenance
from cmkd.data import CONTINUOUS as _CONTINUOUS
from cmkd.data import labels as labels_mod
from cmkd.data import selection
from cmkd.data import splits as splits_mod
from cmkd.data import stream as stream_mod
from cmkd.data.prepared import check_finite, load_prepared
from cmkd.data.stream import Part
from cmkd.data.protocols import PER_SUBJECT_KINDS, per_subject_scores
from cmkd.devices import resolve_device
from cmkd.errors import ConfigError, DataError, DivergenceError
from cmkd.methods import REGISTRY, method_class
from cmkd.methods.base import RunContext

CONTINUOUS = _CONTINUOUS  # the modality table: cmkd.data.MODALITY_KINDS


def req_dir(spec: dict, role: str) -> str:
    return str(protocols.fold_dir(spec["requires"][role]["dir"], spec.get("fold")))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True)`` without its side import of the inductor
    compiler (``torch._inductor`` and what it pulls in: about 1.1 s per training job here, and
    nothing here compiles). The public function sets the same C++ flag and then an inductor
    option; where the private setter is missing, the public function is called."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(True)
    else:
        setter(True)
    assert torch.are_deterministic_algorithms_enabled()


def setup_torch(threads: int, seed: int, device: str) -> torch.device:
    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    dev = resolve_device(device)  # a job given a GPU that torch cannot use stops here (cmkd.devices)
    if dev.type == "cpu":
        _deterministic_algorithms()
    else:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return dev


def pause_point(method: str, epoch: int) -> None:
    """A barrier for the interrupt tests, inert unless ``CMKD_PAUSE_AT`` is set.

    With ``CMKD_PAUSE_AT=<method>:<epoch>:<dir>``, the run of ``<method>`` stops after epoch
    ``<epoch>``, writes its pid to ``<dir>/paused`` and waits until ``<dir>/resume`` exists, so a
    test can interrupt a job at a known point instead of after a guessed delay.
    """
    at = os.environ.get("CMKD_PAUSE_AT")
    if not at:
        return
    m, e, d = at.split(":", 2)
    if m != method or int(e) != epoch:
        return
    d = Path(d)
    atomic.write_text(d / "paused", str(os.getpid()))  # whole or absent: the test reads the pid at once
    while not (d / "resume").exists():
        time.sleep(0.05)


def split_hash(split: dict) -> str:
    h = hashlib.sha256()
    for part in ("train", "val", "test"):
        h.update(part.encode())
        h.update(np.asarray(split[part], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


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


def load_checkpoint(run_dir: str | Path) -> dict:
    f = Path(run_dir) / "model.pt"
    if not f.exists():
        raise DataError(f"{f}: required checkpoint missing (train that run first)")
    try:
        ck = torch.load(f, map_location="cpu", weights_only=False)
    except Exception as e:
        raise DataError(f"{f}: cannot read checkpoint ({e})") from None
    if ck.get("status") == "failed":
        raise RequiredRunFailed(f"{f}: the required run failed ({ck.get('reason')})")
    return ck


class RequiredRunFailed(DataError):
    """A teacher/assistant this run needs has failed: this run is recorded as failed too."""


def build_parts(prep, modalities, y, split, task):
    """Gather each split part into memory and standardise continuous modalities with train statistics."""
    parts, norm = {}, {}
    train_idx = split["train"]
    for mod in modalities:
        if mod in CONTINUOUS:
            tr = np.asarray(prep[mod][train_idx], dtype=np.float32)
            axes = (0,) + tuple(range(2, tr.ndim))  # per channel / feature
            mean = tr.mean(axis=axes, keepdims=True)
            std = tr.std(axis=axes, keepdims=True)
            std[std < 1e-8] = 1.0
            norm[mod] = (mean, std)
    for part, idx in split.items():
        x = {}
        for mod in modalities:
            a = np.asarray(prep[mod][idx])
            if mod in norm:
                a = (a.astype(np.float32) - norm[mod][0]) / norm[mod][1]
            x[mod] = torch.from_numpy(np.ascontiguousarray(a))
        yy = torch.from_numpy(y[idx].astype(np.float32 if task == "regression" else np.int64))
        parts[part] = Part(x=x, y=yy, index=np.asarray(idx))
    return parts, {k: {"mean": v[0].reshape(-1).tolist(), "std": v[1].reshape(-1).tolist()} for k, v in norm.items()}


def model_inputs(prep, modalities) -> dict:
    info = {}
    for mod in modalities:
        shape = list(prep.meta["arrays"][mod]["shape"][1:])
        d = {"shape": shape}
        sr = prep.meta.get("sampling_rates", {}).get(mod)
        if sr:
            d["sampling_rate"] = sr
        ch = prep.meta.get("channels", {}).get(mod)
        if ch:
            d["channel_names"] = ch
        info[mod] = d
    return info


@torch.no_grad()
def predict(model, part: Part, device, batch_size: int, keep_features: bool = False):
    model.eval()
    outs, feats = [], []
    for s in range(0, len(part), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(part)))
        o = model(part.batch(idx, device))
        outs.append(o.logits.float().cpu())
        if keep_features:
            feats.append(o.features["embedding"].float().cpu())
    logits = torch.cat(outs).numpy() if outs else np.zeros((0, 1), np.float32)
    emb = torch.cat(feats).numpy() if feats else None
    return logits, emb


def evaluate(task, model, part, device, batch_size, keep_features=False):
    logits, emb = predict(model, part, device, batch_size, keep_features)
    y = part.y.numpy()
    out = logits.reshape(-1) if task == "regression" else logits
    m = metrics.compute(task, y, out)
    if task == "regression":
        m["loss"] = float(np.mean((out - y) ** 2)) if len(y) else math.nan
    else:
        t = torch.from_numpy(logits)
        m["loss"] = float(torch.nn.functional.cross_entropy(t, part.y).item()) if len(y) else math.nan
    return m, logits, emb


def _test_groups(prep, test_index) -> dict:
    """Positions of the test samples of each subject (and of each subject's session, where the
    data set has sessions), for the per-subject metrics of metrics.json."""
    subj = np.asarray(prep["subject"])[test_index]
    out = {"subject": {str(s): np.flatnonzero(subj == s) for s in np.unique(subj)}}
    if "session" in prep:
        sess = np.asarray(prep["session"])[test_index]
        out["session"] = {f"{s}/{e}": np.flatnonzero((subj == s) & (sess == e))
                          for s, e in sorted({(a, b) for a, b in zip(subj.tolist(), sess.tolist())})}
    return out


def check_validation(spec: dict, prep, split: dict, y: np.ndarray, fold: int | None = None) -> dict | None:
    """A classification run's validation part must hold every class of its training part (per
    subject where the protocol is per subject): :func:`cmkd.data.splits.check_val_classes`, a
    DataError naming the data set, subject and class otherwise. Returns the validation class
    counts (``metrics.json`` ``val_class_counts``); ``None`` for regression."""
    if spec["dimension_spec"].get("task", "classification") != "classification":
        return None
    names = ((prep.meta.get("labels") or {}).get("names") if spec["dimension_spec"].get("target", spec["dimension"])
             == labels_mod.EMOTION else None)
    return splits_mod.check_val_classes(split, y, prep["subject"], prep["trial"], spec["dataset"],
                                        splits_mod.per_subject_validation(spec["split"]), names=names, fold=fold)


def run(spec: dict, out_dir: str | Path, t_process_start: float | None = None) -> dict:
    """Train one run and write its outputs.

    A divergence (NaN/inf loss) or a failed required run is, by default (``on_failure: record``),
    written as a complete run with ``status: failed`` and the reason, so the tables mark the cell
    as failed instead of dropping it and the rest of the grid goes on; with ``on_failure: fail``
    the job fails instead.
    """
    try:
        if protocols.is_fold_protocol(spec.get("split")):  # kfold / loso: every fold in this process
            return protocols.run_folds(spec, out_dir, _run, t_process_start)
        return _run(spec, out_dir, t_process_start)
    except (DivergenceError, RequiredRunFailed) as e:
        if spec.get("on_failure", "record") != "record":
            raise
        log(f"error: {e}")
        return write_failed(spec, out_dir, str(e), t_process_start)


def write_failed(spec: dict, out_dir: str | Path, reason: str, t_process_start: float | None = None) -> dict:
    """Outputs of a failed run: metrics.json with status 'failed', empty history/features, a marker checkpoint."""
    import pandas as pd

    out_dir = Path(out_dir)
    result = {
        "status": "failed",
        "reason": reason,
        "cell": {k: spec[k] for k in ("dataset", "track", "dimension", "method", "seed")},
        "class": spec["class"],
        "task": spec["dimension_spec"].get("task", "classification"),
        "synthetic": spec.get("synthetic", False),
        "test": metrics.nan_metrics(),
        "provenance": provenance.collect(spec, "", "n/a"),
        "spec": spec,
        "timing": {"process_s": (time.perf_counter() - t_process_start) if t_process_start else math.nan},
    }
    atomic.write_npz(out_dir / "features.npz", embedding=np.zeros((0,)), logits=np.zeros((0,)), y=np.zeros((0,)), index=np.zeros((0,)))
    with atomic.atomic_path(out_dir / "model.pt") as tmp:
        torch.save({"status": "failed", "reason": reason}, tmp)
    if not (out_dir / "history.csv").exists():
        atomic.write_csv(out_dir / "history.csv", pd.DataFrame({"epoch": []}))
    atomic.write_json(out_dir / "metrics.json", result)
    return result


def check_labels(y, split: dict, n_classes: int, spec: dict, source: str) -> None:
    """Classification labels a network can learn: two classes or more in the data and in the
    training part, and none beyond ``n_classes``; else :class:`ConfigError` naming the key."""
    from cmkd.data.labels import DIMENSIONS

    dim, d = spec["dimension"], spec["dimension_spec"]
    y = np.asarray(y)
    if np.unique(y).size < 2:
        raise ConfigError(f"dimensions.{dim}.threshold: every label of {source} falls in one class at threshold "
                          f"{d.get('threshold', 5.0)} (tie '{d.get('tie', 'low')}'); no classifier can be trained")
    if d.get("target", dim) in DIMENSIONS and n_classes != 2:
        raise ConfigError(f"dimensions.{dim}.n_classes: a rating split at a threshold has 2 classes, got {n_classes}")
    if y.size and int(y.max()) >= n_classes:
        raise ConfigError(f"dimensions.{dim}.n_classes: {n_classes}, but {source} has class {int(y.max())}")
    if np.unique(y[np.asarray(split["train"])]).size < 2:
        raise ConfigError(f"split: the training part of {spec['method']} (dimension '{dim}', {source}) holds a single "
                          "class; no classifier can be trained")


def degenerate_reason(task: str, y_test, out, history: list | None = None) -> str | None:
    """Why a network run's numbers mean nothing, or None: a non-finite loss in its history, test
    labels of a single class, or constant test predictions (the trivial baselines, constant by
    design, are not asked)."""
    for row in history or []:
        bad = [k for k, v in row.items() if (k == "val_loss" or k == "train_total") and not math.isfinite(float(v))]
        if bad:
            return f"non-finite {bad[0]} at epoch {row.get('epoch')}"
    y_test, out = np.asarray(y_test), np.asarray(out, dtype=np.float64)
    if y_test.size > 1 and task == "classification" and np.unique(y_test).size < 2:
        return f"the test labels have a single class ({int(y_test[0])})"
    if out.size == 0 or y_test.size < 2:
        return None
    if not np.isfinite(out).all():
        return "non-finite test outputs"
    if task == "classification":
        pred = out.argmax(axis=1) if out.ndim == 2 else (out > 0).astype(int)
        if np.unique(pred).size == 1:
            return f"constant test predictions (every test segment predicted class {int(pred[0])})"
    elif np.ptp(out.reshape(-1)) == 0:
        return f"constant test predictions ({float(out.reshape(-1)[0]):.4g} for every test segment)"
    return None


def _run(spec: dict, out_dir: str | Path, t_process_start: float | None = None, trial: bool = False) -> dict:
    """One run (one split). ``trial``: a trial of a hyperparameter study (:mod:`cmkd.tuning`):
    trains on the training part, scores on the validation part, builds no test part (its labels
    are never read) and writes nothing; returns ``{"score", "best_epoch", "val"}``. A tuned run
    (``spec["tuning"]``) takes its split's best parameters from its study first."""
    t0 = time.perf_counter()
    tuned = None
    if spec.get("tuning") and not trial:
        from cmkd import tuning

        spec, tuned = tuning.apply_study(spec, spec.get("fold"))
    out_dir = Path(out_dir)
    tr = spec["training"]
    seed = int(spec["seed"])
    tag = f"[{spec['dataset']}/{spec['track']}/{spec['dimension']}/{spec['method']} seed{seed}" + (f" fold{spec['fold']}]" if spec.get('fold') is not None else "]")
    device = setup_torch(spec["threads"], seed, spec.get("device", "auto"))
    dim = spec["dimension_spec"]
    task = dim.get("task", "classification")

    prep = load_prepared(spec["prepared"])
    fold = spec.get("fold")  # set by cmkd.protocols for kfold / loso runs: the teacher of the same fold
    teachers_ck = {role: load_checkpoint(protocols.fold_dir(req["dir"], fold)) for role, req in spec["requires"].items()}
    for role, ck in teachers_ck.items():
        protocols.check_fold_teacher(ck, f"{req_dir(spec, role)}/model.pt")
    modalities = list(spec["modalities"])
    trivial = REGISTRY[spec["class"]].trivial  # a trivial baseline reads no input: no network, no epoch
    needed = list(dict.fromkeys(modalities + [m for ck in teachers_ck.values() for m in ck["spec"]["modalities"]]))
    needed = [] if trivial else needed
    for mod in needed:
        if mod not in prep:
            raise DataError(f"{prep.path}: method '{spec['method']}' needs modality '{mod}', which this prepared data set lacks (has {prep.modalities})")
    check_finite(prep, needed)

    y = labels_mod.targets(prep, dim.get("target", spec["dimension"]), task, float(dim.get("threshold", 5.0)),
                           tie=dim.get("tie", "low"))
    sp = spec["split"]
    split = splits_mod.run_splits(prep, seed, sp, y, task)[int(fold) if fold is not None else 0]
    val_counts = check_validation(spec, prep, split, y, fold)  # before any epoch: a part that cannot measure the task
    shash = split_hash(split)
    for role, ck in teachers_ck.items():
        if ck.get("split_hash") != shash or ck.get("data_hash") != prep.data_hash:
            raise DataError(
                f"{req_dir(spec, role)}/model.pt: the '{role}' checkpoint was trained on another split or data "
                f"(split {ck.get('split_hash')} vs {shash}); a teacher must share the student's split, "
                "or it has seen the student's test trials")
    if trial:  # a tuning trial sees the training and validation parts only
        split = {k: v for k, v in split.items() if k in ("train", "val")}
    amp = accel.Amp(tr.get("autocast", "off"), device)
    parts, norm, data_mode = stream_mod.build_parts_auto(prep, needed, y, split, task, tr, device, build_parts)
    fb_frac = selection.check_fraction(sp.get("feedback_fraction"), "split.feedback_fraction")
    selection.hold_out_feedback(parts, prep["subject"], prep["trial"], fb_frac, task)  # parts["val"]: the selection trials
    selection_index = np.asarray(parts["val"].index)  # the same for every method of the column (checked after configure)
    n_classes = 1 if task == "regression" else int(dim.get("n_classes", 2))
    if task == "classification":  # at job start, before any epoch: what the plan could not see
        check_labels(y, split, n_classes, spec, str(prep.path))
    t_data = time.perf_counter()

    from cmkd.models.registry import build_model  # imports timm only when a visual encoder is built
    from cmkd.models.visual import weights_provenance, without_pretrained

    model_spec = {
        "architecture": spec.get("architecture"),
        "model": spec.get("model") or {},
        "modalities": modalities,
        "encoders": spec["encoders"],
        "inputs": model_inputs(prep, modalities),
        "head": spec["head"],
        "n_outputs": n_classes,
    }
    torch.manual_seed(seed)
    if trivial:
        model_spec = {"trivial": spec["class"], "n_outputs": n_classes}
        student = method_class(spec["class"]).fit_predictor(parts["train"].y.numpy(), task, n_classes, seed)
    else:
        student = build_model(model_spec, where="encoders")
    initial_weights = None if trivial else weights_provenance(student)  # where the visual encoders' initial weights came from
    teachers = {}
    for role, ck in teachers_ck.items():
        t = build_model(without_pretrained(ck["spec"]))  # its trained weights replace any initial ones
        t.load_state_dict(ck["state_dict"])
        teachers[role] = t
    cls = method_class(spec["class"])
    context = RunContext(seed=seed, key=spec["method"], device=device)  # seed: for methods' own random choices
    method = cls(student, teachers, spec["params"], task, n_classes, context=context).to(device)
    method.dimension_spec = dict(dim)  # the dimension's config (threshold, tie) for methods that bin targets
    params = method.trainable_parameters()
    opt_name = tr.get("optimizer", "adam")
    if opt_name != "adam":
        raise ConfigError(f"training.optimizer: only 'adam' is supported, got {opt_name!r}")
    opt = None if trivial else torch.optim.Adam(params, lr=float(tr["lr"]), weight_decay=float(tr.get("weight_decay", 0.0)))
    method.configure(parts=parts, device=device, optimizer=opt)
    selected = selection.selection_record(parts["val"], prep["subject"], prep["trial"], fb_frac)
    if not np.array_equal(np.sort(np.asarray(parts["val"].index)), np.sort(np.asarray(selection_index))):
        raise ConfigError(f"{spec['method']}: method class '{spec['class']}' changed the validation part in configure(); "
                          "every row of a table must select on the same validation trials")

    bs, ebs = int(tr["batch_size"]), int(tr.get("eval_batch_size", 256))
    max_epochs, patience = (0 if trivial else int(tr["max_epochs"])), int(tr["patience"])
    select_on = str(tr.get("select_on", "accuracy"))
    g = torch.Generator().manual_seed(seed)
    history = []
    selector = BestOnValidation(patience)
    t_train0 = time.perf_counter()
    # the teachers' forward passes are training work (the loop made them every step before)
    cache_mb = float(tr.get("teacher_cache_mb", 1024))
    if method.cache_teacher_outputs(parts["train"], device, ebs, cache_mb):
        log(f"{tag} teacher outputs on the training part computed once and cached")
    for epoch in range(1, max_epochs + 1):
        te = time.perf_counter()
        method.train()
        method.on_epoch_start(epoch, g)
        perm = torch.randperm(len(parts["train"]), generator=g)
        sums, nb = {}, 0
        steps = (perm[s:s + bs] for s in range(0, len(perm), bs))
        steps = (idx for idx in steps if len(idx) >= 2)  # BatchNorm cannot train on a single sample
        for idx, batch in stream_mod.iter_batches(parts["train"], steps, device):
            with amp.autocast():
                _, terms = method.training_step(batch)
            total = sum(terms.values())
            if not torch.isfinite(total):
                bad = [k for k, v in terms.items() if not torch.isfinite(v)]
                import pandas as pd

                atomic.write_csv(out_dir / "history.csv", pd.DataFrame(history))  # the epochs before the divergence
                raise DivergenceError(f"{tag} method '{spec['method']}' diverged at epoch {epoch}: non-finite loss term(s) {bad}")
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
        with amp.autocast():
            vm, _, _ = evaluate(task, method.student, parts["val"], device, ebs)
        selector.update(epoch, metrics.selection_score(task, vm, select_on), method.student)
        row = {"epoch": epoch, **{f"train_{k}": v / max(nb, 1) for k, v in sums.items()},
               "val_loss": vm["loss"], "val_accuracy": vm["accuracy"], "val_f1": vm["f1"], "val_rmse": vm["rmse"],
               "time_s": time.perf_counter() - te, **method.epoch_summary()}  # a method's own columns
        history.append(row)
        terms_s = " ".join(f"{k}={v / max(nb, 1):.4f}" for k, v in sums.items() if k != "total" and not k.startswith("diag_"))
        vshow = f"val_rmse={vm['rmse']:.4f}" if task == "regression" else f"val_acc={vm['accuracy']:.2f}"
        log(f"{tag} epoch {epoch}/{max_epochs} loss={sums.get('total', 0) / max(nb, 1):.4f} ({terms_s}) "
            f"{vshow} best@{selector.best_epoch} {row['time_s']:.1f}s")
        pause_point(spec["method"], epoch)
        if selector.stop:
            log(f"{tag} early stop: no validation improvement for {patience} epochs")
            break
    if trivial:
        selector.keep(method.student)
    best_state, best_epoch = selector.restore(method.student), selector.best_epoch
    if trial:
        return {"score": float(selector.best), "best_epoch": best_epoch, "epochs_run": len(history),
                "val": {k: float(v) for k, v in history[best_epoch - 1].items() if k.startswith("val_")} if history else {}}
    with amp.autocast():
        val_m, _, _ = evaluate(task, method.student, parts["val"], device, ebs)
        test_m, test_logits, test_emb = evaluate(task, method.student, parts["test"], device, ebs, keep_features=True)
    t_end = time.perf_counter()
    log(f"{tag} best epoch {best_epoch}: test " + " ".join(f"{k}={v:.4f}" for k, v in test_m.items() if not math.isnan(v)))

    prov = provenance.collect(spec, prep.data_hash, str(device), {"split_hash": shash, "val_hash": selected["trials_sha256"][:16],
                                                                 **amp.info, "data_access": data_mode,
                                                                 "weights": initial_weights,
                                                                 **({"tuning": tuned} if tuned else {})})
    groups = _test_groups(prep, parts["test"].index)
    test_out = test_logits.reshape(-1) if task == "regression" else test_logits
    trials = lambda idx: len({(int(a), int(b)) for a, b in zip(np.asarray(prep["subject"])[idx], np.asarray(prep["trial"])[idx])})
    if trivial:
        bad = None
    elif fold is not None:  # a fold's test part may hold one class (a LOSO subject): the whole run's is checked
        bad = degenerate_reason(task, [], [], history)
    else:
        bad = degenerate_reason(task, parts["test"].y.numpy(), test_out, history)
    if bad:
        log(f"{tag} degenerate run: {bad}")
    result = {
        "status": "degenerate" if bad else "ok",
        **({"reason": bad} if bad else {}),
        "cell": {k: spec[k] for k in ("dataset", "track", "dimension", "method", "seed")},
        "class": spec["class"],
        "task": task,
        "synthetic": spec.get("synthetic", False),
        "test": {k: v for k, v in test_m.items()},
        "val": {k: v for k, v in val_m.items()},
        "method_params": {k: v for k, v in method.params.items() if v is None or isinstance(v, (bool, int, float, str))},
        **({} if task == "regression" else {"class_counts": {k: metrics.class_counts(y[v], n_classes) for k, v in split.items()}}),
        "test_per_subject": metrics.per_group(task, parts["test"].y.numpy(), test_out, groups["subject"]),
        **({"test_per_session": metrics.per_group(task, parts["test"].y.numpy(), test_out, groups["session"])}
           if "session" in groups else {}),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "n_segments": {k: int(len(v)) for k, v in split.items()},
        "n_trials": {k: trials(v) for k, v in split.items()},
        "split": spec["split"],
        "selection": selected,
        **({} if val_counts is None else {"val_class_counts": val_counts}),
        "timing": {
            "data_s": t_data - t0,
            "train_s": t_end - t_train0,
            "setup_s": t_train0 - t_data,
            "in_process_s": t_end - t0,
        },
        "provenance": prov,
        "spec": spec,
    }
    if sp.get("kind") in PER_SUBJECT_KINDS and task == "classification":  # subject-dependent protocols: mean/sd over subjects
        result["test_subject_summary"] = per_subject_scores(np.asarray(prep["subject"])[parts["test"].index],
                                                        parts["test"].y.numpy(), test_logits)
    atomic.write_npz(out_dir / "features.npz", embedding=test_emb if test_emb is not None else np.zeros((0,)),
                 logits=test_logits, y=parts["test"].y.numpy(), index=parts["test"].index,
                 subject=np.asarray(prep["subject"])[parts["test"].index],  # per-trial predictions (paired tests)
                 trial=np.asarray(prep["trial"])[parts["test"].index])
    ckpt = {"spec": model_spec, "state_dict": best_state, "split_hash": shash, "data_hash": prep.data_hash,
            "config_hash": spec["config_hash"], "norm": norm, "task": task, "provenance": prov}
    with atomic.atomic_path(out_dir / "model.pt") as tmp:
        torch.save(ckpt, tmp)
    import pandas as pd

    atomic.write_csv(out_dir / "history.csv", pd.DataFrame(history) if history else pd.DataFrame({"epoch": []}))
    if t_process_start is not None:
        result["timing"]["process_s"] = time.perf_counter() - t_process_start
    import resource

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    atomic.write_json(out_dir / "metrics.json", result)  # written last: its presence marks a complete run
    return result
