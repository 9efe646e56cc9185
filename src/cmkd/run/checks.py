"""The checks of a training run and its records that need no torch (the fold pooling of
:mod:`cmkd.crossval` reads them too): the split's hash, the validation part's classes, the labels a
network can learn, why a finished run's numbers mean nothing, and the test part's groups."""
from __future__ import annotations

import hashlib
import math

import numpy as np

from cmkd.data import labels as labels_mod
from cmkd.data import splits as splits_mod
from cmkd.errors import ConfigError


def split_hash(split: dict) -> str:
    h = hashlib.sha256()
    for part in ("train", "val", "test"):
        h.update(part.encode())
        h.update(np.asarray(split[part], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def run_targets(spec: dict, prep) -> np.ndarray:
    """The targets of a run's dimension (:func:`cmkd.data.labels.targets`) from its settings
    (``spec["dimension_spec"]``, as configured: ``task`` required, the threshold filled by the
    schema): its ``target`` array (the dimension's name when absent), threshold and tie side
    where set (:func:`cmkd.data.labels.targets`' own defaults otherwise)."""
    dim = spec["dimension_spec"]
    kw = {k: dim[k] for k in ("threshold", "tie") if k in dim}
    if "threshold" in kw:
        kw["threshold"] = float(kw["threshold"])
    return labels_mod.targets(prep, dim.get("target", spec["dimension"]), dim["task"], **kw)


def check_validation(spec: dict, prep, split: dict, y: np.ndarray, fold: int | None = None) -> dict | None:
    """A classification run's validation part must hold every class of its training part (per
    subject where the protocol is per subject): :func:`cmkd.data.splits.check_val_classes`, a
    DataError naming the data set, subject and class otherwise. Returns the validation class
    counts (``metrics.json`` ``val_class_counts``); ``None`` for regression."""
    if spec["dimension_spec"]["task"] != "classification":
        return None
    names = ((prep.meta.get("labels") or {}).get("names") if spec["dimension_spec"].get("target", spec["dimension"])
             == labels_mod.EMOTION else None)
    return splits_mod.check_val_classes(split, y, prep["subject"], prep["trial"], spec["dataset"],
                                        splits_mod.per_subject_validation(spec["split"]), names=names, fold=fold)


def check_labels(y, split: dict, n_classes: int, spec: dict, source: str) -> None:
    """Classification labels a network can learn: two classes or more in the data and in the
    training part, and none beyond ``n_classes``; else :class:`ConfigError` naming the key."""
    dim, d = spec["dimension"], spec["dimension_spec"]
    y = np.asarray(y)
    if np.unique(y).size < 2:
        raise ConfigError(f"dimensions.{dim}.threshold: every label of {source} falls in one class at threshold "
                          f"{d.get('threshold', 5.0)} (tie '{d.get('tie', 'low')}'); no classifier can be trained")
    if d.get("target", dim) in labels_mod.DIMENSIONS and n_classes != 2:
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


def subject_positions(prep, test_index) -> dict:
    """Positions of the test samples of each subject (and of each subject's session, where the
    data set has sessions), for the per-subject metrics of metrics.json."""
    subj = np.asarray(prep["subject"])[test_index]
    out = {"subject": {str(s): np.flatnonzero(subj == s) for s in np.unique(subj)}}
    if "session" in prep:
        sess = np.asarray(prep["session"])[test_index]
        out["session"] = {f"{s}/{e}": np.flatnonzero((subj == s) & (sess == e))
                          for s, e in sorted({(a, b) for a, b in zip(subj.tolist(), sess.tolist())})}
    return out

