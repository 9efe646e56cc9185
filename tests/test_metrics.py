"""Evaluation metrics: hand-computed values and agreement with scikit-learn."""
import math

import numpy as np
import pytest

from cmkd import metrics


def _logits(pred, n_classes):
    out = np.zeros((len(pred), n_classes))
    out[np.arange(len(pred)), pred] = 1.0
    return out


def test_binary_hand_computed():
    # y: 1 1 1 0 0 ; pred: 1 0 1 1 0 -> tp=2 fp=1 fn=1 for class 1: F1 = 4/6; class 0: tp=1 fp=1 fn=1: 2/4
    y = np.array([1, 1, 1, 0, 0])
    m = metrics.compute("classification", y, _logits([1, 0, 1, 1, 0], 2))
    assert m["accuracy"] == pytest.approx(60.0)
    assert m["f1"] == pytest.approx(100 * 4 / 6)
    assert m["f1_macro"] == pytest.approx(100 * (4 / 6 + 0.5) / 2)
    assert math.isnan(m["rmse"])


def test_absent_class_counts_zero():
    # class 1 never true and never predicted: its F1 is 0 (zero_division=0), as sklearn
    y = np.array([0, 0, 0])
    m = metrics.compute("classification", y, _logits([0, 0, 0], 2))
    assert m["accuracy"] == 100.0 and m["f1"] == 0.0 and m["f1_macro"] == pytest.approx(50.0)


def test_agrees_with_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for n_classes in (2, 4):
        y = rng.integers(0, n_classes, 200)
        logits = rng.normal(size=(200, n_classes))
        pred = logits.argmax(1)
        m = metrics.compute("classification", y, logits)
        ref_macro = f1_score(y, pred, labels=list(range(n_classes)), average="macro", zero_division=0)
        assert m["f1_macro"] == pytest.approx(100 * ref_macro)
        if n_classes == 2:
            assert m["f1"] == pytest.approx(100 * f1_score(y, pred, zero_division=0))


def test_label_out_of_range_is_named():
    with pytest.raises(ValueError, match="labels outside"):
        metrics.compute("classification", np.array([0, 2]), _logits([0, 1], 2))


def test_rmse():
    m = metrics.compute("regression", np.array([0.0, 1.0]), np.array([0.5, 0.5]))
    assert m["rmse"] == pytest.approx(0.5) and math.isnan(m["accuracy"])
