"""Evaluation metrics.

- ``accuracy``: fraction of correct predictions, in percent (as the papers report).
- ``f1``: for binary tasks the F1 score of the positive ("high") class, in percent (as DEAP and
  MAHNOB-HCI papers report; it can exceed accuracy); for more classes the macro F1.
- ``f1_macro``: macro-averaged F1 in percent, always.
- ``balanced_accuracy``: mean recall over the classes present in the true labels, in percent
  (scikit-learn's ``balanced_accuracy_score``); a constant guess scores 100/K.
- ``roc_auc``: area under the ROC curve in [0, 1] from the softmax probabilities; binary: of the
  positive class; more classes: one-vs-rest, macro average over the classes present with both
  positives and negatives (scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``).
  Ties count one half, so a constant score gives 0.5.
- ``majority_fraction``: share of the most frequent class among the true labels, in percent.
- ``chance_level``: the binomial significance threshold of the accuracy (:func:`chance_level`).
- ``rmse``: root mean squared error on targets scaled to [0, 1] (regression only).

Everything is plain numpy (no scikit-learn, no scipy): importing scikit-learn costs ~1.7 s per
training job. ``tests/test_metrics.py`` checks every metric against scikit-learn / scipy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    """One metric of a run's test (and validation) results, declared once: everything that lists,
    ranks, formats or tests metrics (tables, statistics, figures, ``cell``, the failed-run record,
    the listing) reads :data:`METRICS`.

    ``task``: the task it scores (``classification`` or ``regression``); ``higher_is_better``: its
    direction; ``unit``: ``%`` or ``""``; ``decimals``: digits shown in tables; ``headline``: a
    metric of the results tables and the paired tests (the others are reference columns);
    ``label``: its name in captions and axes.
    """

    name: str
    task: str
    higher_is_better: bool
    unit: str
    decimals: int
    headline: bool
    label: str


#: every metric :func:`compute` returns, in column order
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", "classification", True, "%", 2, True, "accuracy (%)"),
    Metric("f1", "classification", True, "%", 2, True, "F1 (%)"),
    Metric("rmse", "regression", False, "", 3, True, "RMSE"),
    Metric("f1_macro", "classification", True, "%", 2, False, "macro F1 (%)"),
    Metric("balanced_accuracy", "classification", True, "%", 2, False, "balanced accuracy (%)"),
    Metric("roc_auc", "classification", True, "", 3, False, "ROC AUC"),
    Metric("majority_fraction", "classification", True, "%", 2, False, "majority class (%)"),
    Metric("chance_level", "classification", True, "%", 2, False, "chance level (%)"),
)}

#: the metric each task is ranked and selected by
PRIMARY = {"classification": "accuracy", "regression": "rmse"}


def metric_names(task: str | None = None, *, headline: bool | None = None) -> tuple[str, ...]:
    """Names of the declared metrics, in column order; ``task`` / ``headline`` filter them."""
    return tuple(m.name for m in METRICS.values()
                 if (task is None or m.task == task) and (headline is None or m.headline == headline))


def headline_metrics() -> tuple[str, ...]:
    """The metrics of the results tables and paired tests (``accuracy``, ``f1``, ``rmse``)."""
    return metric_names(headline=True)


def primary_metric(task: str) -> str:
    """The metric a task's runs are ranked by (accuracy; RMSE for regression)."""
    return PRIMARY[task]


def higher_is_better(metric: str) -> bool:
    return METRICS[metric].higher_is_better


def nan_metrics() -> dict:
    """Every declared metric as nan: the test record of a run that produced no predictions."""
    return {k: math.nan for k in METRICS}


def _f1_per_class(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of every class, 0 where precision and recall are both undefined (sklearn's
    ``zero_division=0``). Plain numpy: importing scikit-learn costs ~1.7 s per training job."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # (tp + fp) + (tp + fn)
    return np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)


def balanced_accuracy(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``, in percent (nan without labels)."""
    if len(y_true) == 0:
        return math.nan
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, pred), 1)
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean() * 100)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, ties given their average rank (scipy's ``rankdata(method='average')``)."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inv.reshape(-1)]


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(score of a positive > score of a negative), ties
    one half. nan when either class is absent (the AUC is undefined)."""
    positive = np.asarray(positive, dtype=bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    r = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((r[positive].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def roc_auc(y_true: np.ndarray, logits: np.ndarray) -> float:
    """Binary: AUC of the positive class's probability; more classes: one-vs-rest macro AUC over
    the classes that have positives and negatives in ``y_true`` (nan when none has)."""
    logits = np.asarray(logits)
    if len(y_true) == 0:
        return math.nan
    p = softmax(logits)
    if logits.shape[1] == 2:
        return binary_auc(y_true == 1, p[:, 1])
    aucs = [binary_auc(y_true == c, p[:, c]) for c in range(logits.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else math.nan


def _binom_log_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1, dtype=np.float64)
    lg = np.vectorize(math.lgamma)
    with np.errstate(divide="ignore"):
        return (lg(n + 1.0) - lg(k + 1.0) - lg(n - k + 1.0)
                + k * np.log(p) + (n - k) * np.log1p(-p))


def binom_ppf(q: float, n: int, p: float) -> int:
    """The smallest ``k`` with ``P(X <= k) >= q`` for ``X ~ Binomial(n, p)`` (scipy's
    ``binom.ppf``, MATLAB's ``binoinv``)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    cdf = np.cumsum(np.exp(_binom_log_pmf(n, p)))
    # a relative tolerance as scipy's discrete ppf, so that a cdf equal to q up to rounding counts
    return int(min(np.searchsorted(cdf, q * (1 - 1e-10), side="left"), n))


def chance_level(n: int, p: float, alpha: float = 0.05) -> float:
    """Binomial significance threshold of an accuracy, in percent (Combrisson & Jerbi 2015, eq. 1:
    ``St(alpha) = binoinv(1 - alpha, n, p) * 100 / n``), one-sided.

    ``n`` is the number of test samples and ``p`` the success probability of the null: here the
    share of the majority class of the test part (so the threshold is never below the accuracy
    of always predicting that class; with balanced classes it is Combrisson & Jerbi's ``1/c``).
    An accuracy strictly above the threshold has a binomial p-value below ``alpha`` under that
    null. It treats the ``n`` samples as independent; segments of one trial are not, so the
    threshold is a floor to clear, not a test. nan for ``n = 0``.
    """
    if n <= 0:
        return math.nan
    return binom_ppf(1.0 - alpha, int(n), float(p)) * 100.0 / int(n)


def class_counts(y_true, n_classes: int) -> list[int]:
    y = np.asarray(y_true).astype(int).reshape(-1)
    return np.bincount(y, minlength=n_classes).astype(int).tolist() if len(y) else [0] * n_classes


def classification_metrics(y_true: np.ndarray, logits: np.ndarray) -> dict:
    y_true = np.asarray(y_true).astype(int)
    pred = np.asarray(logits).argmax(axis=1)
    n_classes = np.asarray(logits).shape[1]
    acc = float((pred == y_true).mean() * 100) if len(y_true) else math.nan
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= n_classes):
        raise ValueError(f"labels outside 0..{n_classes - 1} for {n_classes} output classes")
    per_class = _f1_per_class(y_true, pred, n_classes)
    macro = float(per_class.mean() * 100)
    f1 = float(per_class[1] * 100) if n_classes == 2 else macro
    counts = np.bincount(y_true, minlength=n_classes) if len(y_true) else np.zeros(n_classes)
    majority = float(counts.max() / len(y_true)) if len(y_true) else math.nan
    return {**nan_metrics(), "accuracy": acc, "f1": f1, "f1_macro": macro,
            "balanced_accuracy": balanced_accuracy(y_true, pred, n_classes), "roc_auc": roc_auc(y_true, logits),
            "majority_fraction": majority * 100, "chance_level": chance_level(len(y_true), majority)}


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict:
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    rmse = float(np.sqrt(np.mean((pred - y_true) ** 2))) if len(y_true) else math.nan
    return {**nan_metrics(), "rmse": rmse}


def per_group(task: str, y_true, outputs, groups: dict[str, np.ndarray]) -> dict:
    """Metrics of each group of test samples (a subject, a subject's session ...): ``groups`` maps
    a group name to the positions of its samples. Each entry has ``n`` (its segments) and every
    metric computed within the group; the run's accuracy is the ``n``-weighted mean of the groups'
    accuracies and its squared RMSE the ``n``-weighted mean of theirs (when the groups partition
    the samples)."""
    y_true = np.asarray(y_true)
    outputs = np.asarray(outputs)
    out = {}
    for name, idx in groups.items():
        idx = np.asarray(idx, dtype=np.int64)
        m = compute(task, y_true[idx], outputs[idx])
        out[str(name)] = {"n": int(len(idx)), **m}
    return out


def compute(task: str, y_true, outputs) -> dict:
    if task == "regression":
        return regression_metrics(y_true, outputs)
    return classification_metrics(y_true, outputs)


#: what model selection ranks epochs by (``training.select_on``)
SELECT_ON = ("accuracy", "loss")


def selection_score(task: str, m: dict, on: str = "accuracy") -> float:
    """Higher is better. ``on="accuracy"`` (the papers' choice: CDGKD §4.2 "the evaluation metric
    is classification accuracy"): validation accuracy for classification, −RMSE for regression.
    ``on="loss"``: −(validation loss), i.e. the mean cross-entropy of the logits (classification)
    or the MSE (regression). On a small validation part the loss is the steadier criterion: every
    sample moves it by a continuous amount, where accuracy moves in steps of 100/n and ties."""
    if on == "loss":
        return -m["loss"]
    if on != "accuracy":
        raise ValueError(f"training.select_on: must be one of {list(SELECT_ON)}, got {on!r}")
    p = primary_metric(task)
    return m[p] if higher_is_better(p) else -m[p]
