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
from sklearn.metrics import f1_score


def classification_metrics(y_true: np.ndarray, logits: np.ndarray) -> dict:
    y_true = np.asarray(y_true).astype(int)
    pred = np.asarray(logits).argmax(axis=1)
    n_classes = np.asarray(logits).shape[1]
    acc = float((pred == y_true).mean() * 100) if len(y_true) else math.nan
    labels = list(range(n_classes))
    macro = float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0) * 100)
    if n_classes == 2:
        f1 = float(f1_score(y_true, pred, pos_label=1, average="binary", zero_division=0) * 100)
    else:
        f1 = macro
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
