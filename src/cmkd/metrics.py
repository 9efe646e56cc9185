"""Evaluation metrics.

- ``accuracy``: fraction of correct predictions, in percent (as the papers report).
- ``f1``: for binary tasks the F1 score of the positive ("high") class, in percent (as DEAP and
  MAHNOB-HCI papers report; it can exceed accuracy); for more classes the macro F1.
- ``f1_macro``: macro-averaged F1 in percent, always.
- ``rmse``: root mean squared error on targets scaled to [0, 1] (regression only).
"""
from __future__ import annotations

import math

import numpy as np


def _f1_per_class(y_true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """F1 of every class, 0 where precision and recall are both undefined (sklearn's
    ``zero_division=0``). Plain numpy: importing scikit-learn costs ~1.7 s per training job."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # (tp + fp) + (tp + fn)
    return np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)


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
    return {"accuracy": acc, "f1": f1, "f1_macro": macro, "rmse": math.nan}


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict:
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    rmse = float(np.sqrt(np.mean((pred - y_true) ** 2))) if len(y_true) else math.nan
    return {"accuracy": math.nan, "f1": math.nan, "f1_macro": math.nan, "rmse": rmse}


def compute(task: str, y_true, outputs) -> dict:
    if task == "regression":
        return regression_metrics(y_true, outputs)
    return classification_metrics(y_true, outputs)


def selection_score(task: str, m: dict) -> float:
    """Higher is better: validation accuracy for classification, −RMSE for regression."""
    return -m["rmse"] if task == "regression" else m["accuracy"]
