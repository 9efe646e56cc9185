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


# ---- imbalance-aware metrics, chance level, per-subject results


def test_balanced_accuracy_and_auc_agree_with_sklearn():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    rng = np.random.default_rng(1)
    for n_classes in (2, 3, 4):
        for imbalance in (0.5, 0.8):
            p = np.full(n_classes, (1 - imbalance) / (n_classes - 1))
            p[0] = imbalance
            y = rng.choice(n_classes, size=150, p=p)
            logits = rng.normal(size=(150, n_classes)).round(1)  # rounded: ties in the scores
            logits[:, 0] += 0.5 * (y == 0)
            m = metrics.compute("classification", y, logits)
            assert m["balanced_accuracy"] == pytest.approx(100 * balanced_accuracy_score(y, logits.argmax(1)))
            prob = metrics.softmax(logits)
            ref = roc_auc_score(y, prob[:, 1]) if n_classes == 2 else roc_auc_score(y, prob, multi_class="ovr", average="macro")
            assert m["roc_auc"] == pytest.approx(ref)
            assert m["majority_fraction"] == pytest.approx(100 * np.bincount(y).max() / len(y))


def test_balanced_accuracy_ignores_classes_absent_from_the_labels():
    from sklearn.metrics import balanced_accuracy_score

    y = np.array([0, 0, 0, 1, 1])
    pred = np.array([0, 2, 0, 1, 2])  # class 2 predicted, never true: recall over classes 0 and 1 only
    with pytest.warns(UserWarning):
        ref = balanced_accuracy_score(y, pred)
    assert metrics.compute("classification", y, _logits(pred, 3))["balanced_accuracy"] == pytest.approx(100 * ref)
    assert ref == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_constant_guess_is_at_chance_on_the_imbalance_aware_metrics():
    y = np.array([1, 1, 1, 0])
    m = metrics.compute("classification", y, _logits([1, 1, 1, 1], 2))
    assert m["accuracy"] == 75.0  # the plain accuracy rewards the label prior ...
    assert m["balanced_accuracy"] == 50.0 and m["roc_auc"] == 0.5  # ... these do not
    assert math.isnan(metrics.compute("classification", np.array([1, 1]), _logits([1, 0], 2))["roc_auc"])


@pytest.mark.parametrize("n, p", [(16, 0.5), (48, 0.5625), (100, 0.5), (1000, 0.6), (7, 0.9), (250, 0.25), (33, 0.7)])
def test_chance_level_is_the_binomial_quantile_of_scipy(n, p):
    from scipy.stats import binom

    assert metrics.binom_ppf(0.95, n, p) == int(binom.ppf(0.95, n, p))
    assert metrics.chance_level(n, p) == pytest.approx(binom.ppf(0.95, n, p) * 100 / n)
    # one-sided: an accuracy above the threshold has p < 0.05, the threshold itself does not
    k = metrics.binom_ppf(0.95, n, p)
    assert binom.sf(k, n, p) <= 0.05 and (k == 0 or binom.sf(k - 1, n, p) > 0.05)


def test_chance_level_in_the_metrics_uses_the_majority_share():
    from scipy.stats import binom

    y = np.array([1] * 30 + [0] * 18)
    m = metrics.compute("classification", y, _logits([0] * 48, 2))
    assert m["chance_level"] == pytest.approx(binom.ppf(0.95, 48, 30 / 48) * 100 / 48)
    assert m["chance_level"] > m["majority_fraction"]


def test_per_subject_metrics_sum_back_to_the_run_metric():
    rng = np.random.default_rng(2)
    subject = rng.integers(0, 5, 90)
    groups = {f"s{s}": np.flatnonzero(subject == s) for s in np.unique(subject)}
    y = rng.integers(0, 2, 90)
    logits = rng.normal(size=(90, 2))
    run = metrics.compute("classification", y, logits)
    per = metrics.per_group("classification", y, logits, groups)
    assert sum(g["n"] for g in per.values()) == 90
    assert sum(g["n"] * g["accuracy"] for g in per.values()) / 90 == pytest.approx(run["accuracy"])
    t = rng.random(90)
    pred = rng.random(90)
    run = metrics.compute("regression", t, pred)
    per = metrics.per_group("regression", t, pred, groups)
    assert sum(g["n"] * g["rmse"] ** 2 for g in per.values()) / 90 == pytest.approx(run["rmse"] ** 2)


def test_compute_returns_exactly_the_declared_metrics():
    """The catalog and the computation agree: a metric added to one and not the other fails here."""
    from cmkd.metrics import METRICS, compute
    c = compute("classification", np.array([0, 1, 1, 0]), np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]]))
    r = compute("regression", np.array([0.1, 0.5]), np.array([0.2, 0.4]))
    assert list(c) == list(METRICS) and list(r) == list(METRICS)
    for name, m in METRICS.items():
        assert np.isfinite(c[name]) == (m.task == "classification"), name
        assert np.isfinite(r[name]) == (m.task == "regression"), name
