"""The protocol's promises, each guarded by a test that fails when the promise is broken.

- model selection: the epoch kept is the best on the validation part (highest accuracy, lowest
  RMSE), early stopping stops exactly ``patience`` epochs after the best one, the weights restored
  are the best epoch's, and the test part is evaluated once, after training, with those weights;
- leakage guards: standardisation statistics come from the training part only; a teacher
  checkpoint trained on another split or other data is refused;
- the loss weights of KD (α, 1 − α, T) and CRD (β) as the methods apply them;
- tables: mean ± std over seeds with ddof = 1, ``n`` and ``n_failed`` with a failed seed;
- statistics: Holm's step-down correction within each family (not Benjamini–Hochberg, not
  Bonferroni), and the significance mark strictly below α.

The selection tests script the validation score of each epoch (the real evaluation runs, only the
number the loop compares is replaced), so the expected best epoch is known in advance.
"""
from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_config
from cmkd.config import run_spec
from cmkd.data.synthetic import write_synthetic
from cmkd.errors import DataError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cfg = tiny_config(results=str(tmp_path_factory.mktemp("res")))
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    return cfg


# ----------------------------------------------------------------------------- model selection
def _scripted_run(cfg, out_dir, monkeypatch, schedule, *, dim="arousal", method="baseline",
                  patience=3, max_epochs=10, select_on=None):
    """Train one run whose validation score at epoch k is ``schedule[k-1]``.

    Returns the run's result and the list of evaluation calls ``(part, weights, metrics)`` in
    call order, where ``part`` is "train", "val" or "test" (recognised by the segment indices of
    the split the run made) and ``weights`` a copy of the student's weights at the call.
    """
    import cmkd.train as train
    from cmkd.data import splits as splits_mod

    made = {}
    real_split, real_eval = splits_mod.make_split, train.evaluate

    def recording_split(*a, **k):
        made["split"] = real_split(*a, **k)
        return made["split"]

    calls: list[tuple[str, dict, dict]] = []

    def scripted_eval(task, model, part, device, batch_size, keep_features=False):
        m, logits, emb = real_eval(task, model, part, device, batch_size, keep_features)
        idx = set(np.asarray(part.index).tolist())
        name = next((k for k, v in made["split"].items() if set(np.asarray(v).tolist()) == idx), "?")
        calls.append((name, {k: v.detach().clone() for k, v in model.state_dict().items()}, dict(m)))
        n_val = sum(1 for c in calls if c[0] == "val")
        if name == "val" and n_val <= len(schedule):
            key = "loss" if select_on == "loss" else "rmse" if task == "regression" else "accuracy"
            m = dict(m, **{key: schedule[n_val - 1]})
            if select_on == "loss":  # the accuracy/RMSE rises/falls every epoch: it must not select
                m.update(accuracy=float(n_val), rmse=1.0 / n_val)
        return m, logits, emb

    monkeypatch.setattr(splits_mod, "make_split", recording_split)
    monkeypatch.setattr(train, "evaluate", scripted_eval)
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", dim, method, 0)
    spec["training"].update({"patience": patience, "max_epochs": max_epochs})
    # the scripted criterion: accuracy (or RMSE) unless told otherwise, whatever the default config selects on
    spec["training"]["select_on"] = select_on or "accuracy"
    result = train.run(spec, out_dir)
    return result, calls


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dim,schedule,best,stopped", [
    # accuracy: best at epoch 2 (70); 3 epochs without improvement (60, 65, 55) -> stop after epoch 5
    ("arousal", [50.0, 70.0, 60.0, 65.0, 55.0], 2, 5),
    # an improvement resets the patience counter: best at 4 (75), stop after 7
    ("arousal", [50.0, 70.0, 60.0, 75.0, 75.0, 74.0, 10.0], 4, 7),
    # RMSE: lower is better; best at epoch 4 (0.10), stop after 7
    ("valence_reg", [0.30, 0.25, 0.28, 0.10, 0.20, 0.22, 0.26], 4, 7),
])
def test_best_on_validation_epoch_is_kept_and_restored(prepared, tmp_path, monkeypatch, dim, schedule, best, stopped):
    result, calls = _scripted_run(prepared, tmp_path / "run", monkeypatch, schedule, dim=dim)
    assert result["status"] == "ok"
    assert result["best_epoch"] == best
    assert result["epochs_run"] == stopped, "early stopping must stop exactly `patience` epochs after the best"
    parts = [c[0] for c in calls]
    # one validation evaluation per epoch, then the final ones; never the test part before the end
    assert parts[:stopped] == ["val"] * stopped
    assert parts.count("test") == 1 and parts[-1] == "test"
    epoch_weights = [c[1] for c in calls[:stopped]]
    assert not _same_weights(epoch_weights[best - 1], epoch_weights[stopped - 1]), "weights did not change (test is blind)"
    # the test part is evaluated with the best epoch's weights, which are also the checkpoint's
    assert _same_weights(calls[-1][1], epoch_weights[best - 1])
    saved = torch.load(tmp_path / "run/model.pt", weights_only=False)["state_dict"]
    assert _same_weights(saved, epoch_weights[best - 1])
    # the reported test metrics are those of that single evaluation
    real_test = calls[-1][2]
    for k in ("accuracy", "rmse"):
        assert (math.isnan(result["test"][k]) and math.isnan(real_test[k])) or result["test"][k] == real_test[k]


@pytest.mark.parametrize("dim", ["arousal", "valence_reg"])
def test_select_on_loss_keeps_the_lowest_validation_loss(prepared, tmp_path, monkeypatch, dim):
    """``training.select_on: loss``: the epoch of the lowest validation loss (cross-entropy, or MSE
    for regression) is kept and early stopping counts from it, while the scripted accuracy improves
    (and the RMSE falls) every epoch and would select the last one."""
    result, calls = _scripted_run(prepared, tmp_path / "run", monkeypatch, [0.70, 0.60, 0.65, 0.50, 0.50, 0.55, 0.58, 0.1],
                                  dim=dim, select_on="loss")
    assert result["best_epoch"] == 4 and result["epochs_run"] == 7
    assert _same_weights(calls[-1][1], calls[3][1])


def test_validation_classes_recorded_and_a_part_missing_a_class_refused(prepared, tmp_path, monkeypatch):
    """metrics.json records ``val_class_counts`` (class -> validation trials) and provenance
    ``val_hash``; a split whose validation part misses a class of its training part is refused at
    job start, before any epoch, naming the data set and the class."""
    import json

    import cmkd.train as train
    from cmkd.data import splits as splits_mod
    from cmkd.data.prepared import load_prepared
    from cmkd.data.selection import validation_hashes

    spec = run_spec(prepared, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    spec["training"].update({"max_epochs": 1, "patience": 1})
    result = train.run(spec, tmp_path / "ok")
    prep = load_prepared(spec["prepared"])
    y = (np.asarray(prep["arousal"]) > 5.0).astype(int)
    (split,) = splits_mod.run_splits(prep, 0, spec["split"], y, "classification")
    assert result["val_class_counts"] == splits_mod.val_class_counts(split, y, prep["subject"], prep["trial"])
    assert set(result["val_class_counts"]) == {"0", "1"} and min(result["val_class_counts"].values()) >= 1
    assert json.loads((tmp_path / "ok/metrics.json").read_text())["provenance"]["val_hash"] == validation_hashes(prep, spec)[0]
    # plant: the validation trials of class 1 moved into training
    real = splits_mod.make_split

    def one_class_val(*a, **k):
        sp = real(*a, **k)
        moved = sp["val"][y[sp["val"]] == 1]
        return {"train": np.sort(np.concatenate([sp["train"], moved])), "val": sp["val"][y[sp["val"]] == 0], "test": sp["test"]}

    monkeypatch.setattr(splits_mod, "make_split", one_class_val)
    epochs = []
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: epochs.append(1))
    spec["on_failure"] = "fail"
    with pytest.raises(DataError, match=r"data set 'synthetic', all subjects \(pooled split\): class 1 has \d+ training"):
        train.run(spec, tmp_path / "bad")
    assert not epochs and not (tmp_path / "bad/history.csv").exists()


def test_a_method_selecting_on_other_validation_trials_is_refused(prepared, tmp_path, monkeypatch):
    """Every row of a table selects on the same validation trials: a method whose configure()
    replaces the validation part (as EmotionKD's feedback once halved it) stops the run before any
    epoch, naming the method."""
    import cmkd.train as train
    from cmkd.data.selection import subset
    from cmkd.errors import ConfigError
    from cmkd.methods.base import Method

    def halving(self, parts=None, device=None, optimizer=None, **_):
        parts["val"] = subset(parts["val"], np.arange(len(parts["val"]) // 2))

    monkeypatch.setattr(Method, "configure", halving)
    epochs = []
    monkeypatch.setattr(train, "evaluate", lambda *a, **k: epochs.append(1))
    spec = run_spec(prepared, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    with pytest.raises(ConfigError, match="baseline: method class 'baseline' changed the validation part"):
        train.run(spec, tmp_path / "run")
    assert not epochs


def test_patience_bounds_the_run_at_max_epochs(prepared, tmp_path, monkeypatch):
    """A score that improves every epoch runs to ``max_epochs`` and keeps the last epoch."""
    result, calls = _scripted_run(prepared, tmp_path / "run", monkeypatch, [10.0, 20.0, 30.0, 40.0],
                                  patience=2, max_epochs=4)
    assert result["epochs_run"] == 4 and result["best_epoch"] == 4
    assert _same_weights(calls[-1][1], calls[3][1])


def test_selector_keeps_restores_and_stops_by_hand():
    """The loop's model selection on its own: scores 50, 70, 70 (a tie is no improvement), 60 with
    patience 2 keep epoch 2 and stop after epoch 4; the weights kept are a copy taken at epoch 2."""
    from cmkd.train import BestOnValidation

    model = torch.nn.Linear(1, 1, bias=False)
    assert not BestOnValidation(1).stop and BestOnValidation(1).best_epoch == -1  # nothing selected yet
    sel = BestOnValidation(patience=2)
    stops = []
    for epoch, score in enumerate([50.0, 70.0, 70.0, 60.0], start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # "training" changes the weights in place
        sel.update(epoch, score, model)
        stops.append(sel.stop)
    assert stops == [False, False, False, True]
    assert sel.best_epoch == 2 and sel.best == 70.0 and sel.since_best == 2
    assert float(sel.restore(model)["weight"]) == 2.0 and float(model.weight) == 2.0
    # a run without epochs (trivial baselines): the current weights, epoch 0, also a copy
    sel = BestOnValidation(patience=2)
    sel.keep(model)
    with torch.no_grad():
        model.weight.fill_(9.0)
    sel.restore(model)
    assert sel.best_epoch == 0 and float(model.weight) == 2.0


# ----------------------------------------------------------------------------- leakage guards
def test_standardisation_uses_training_statistics_only():
    from cmkd.train import build_parts

    rng = np.random.default_rng(0)
    n = 30
    eeg = rng.normal(size=(n, 2, 8)).astype(np.float32)
    train, val, test = np.arange(0, 20), np.arange(20, 25), np.arange(25, 30)
    eeg[val] += 100.0   # the other parts sit far away: statistics over all parts would move
    eeg[test] -= 50.0
    eeg[:, 1] *= 3.0
    y = (np.arange(n) % 2).astype(np.int64)
    parts, norm = build_parts({"eeg": eeg}, ["eeg"], y, {"train": train, "val": val, "test": test}, "classification")
    mean = eeg[train].mean(axis=(0, 2))
    std = eeg[train].std(axis=(0, 2))
    np.testing.assert_allclose(norm["eeg"]["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(norm["eeg"]["std"], std, rtol=1e-5)
    expected_test = (eeg[test] - mean[None, :, None]) / std[None, :, None]
    np.testing.assert_allclose(parts["test"].x["eeg"].numpy(), expected_test, rtol=1e-4, atol=1e-4)
    # the training part itself is centred and scaled; the test part is not (it is shifted by -50)
    assert abs(float(parts["train"].x["eeg"].mean())) < 1e-4
    assert float(parts["test"].x["eeg"].mean()) < -5


@pytest.mark.parametrize("field", ["split_hash", "data_hash"])
def test_teacher_from_another_split_or_data_is_refused(prepared, tmp_path, field):
    from cmkd.train import run

    cfg = dict(prepared, results=str(tmp_path))
    shutil.copytree(f"{prepared['results']}/prepared", tmp_path / "prepared")
    tdir = tmp_path / "synthetic/face_eeg-to-face/arousal/teacher/seed0"
    assert run(run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "teacher", 0), tdir)["status"] in ("ok", "degenerate")
    ok = run(run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "kd", 0), tmp_path / "kd_ok")
    assert ok["status"] in ("ok", "degenerate")  # the same teacher is accepted (a tiny run may predict one class)
    ck = torch.load(tdir / "model.pt", weights_only=False)
    ck[field] = "0" * 16
    torch.save(ck, tdir / "model.pt")
    with pytest.raises(DataError, match="another split or data"):
        run(run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "kd", 0), tmp_path / "kd_bad")
    assert not (tmp_path / "kd_bad/metrics.json").exists()


# ----------------------------------------------------------------------------- loss weights by hand
def _softmax(row, T=1.0):
    e = [math.exp(v / T) for v in row]
    return [x / sum(e) for x in e]


def test_kd_method_weights_and_temperature_by_hand():
    """L = (1 − α) CE + α T² KL(p_t^T ‖ p_s^T) (Hinton et al. 2015), α = 0.3, T = 2."""
    from test_methods_zoo import Stub

    from cmkd.methods import method_class

    s_logits, t_logits, y = [[0.5, -0.5], [1.0, 2.0]], [[2.0, 0.0], [0.0, 1.0]], [0, 1]
    m = method_class("kd")(Stub(s_logits), {"teacher": Stub(t_logits)}, {"alpha": 0.3, "temperature": 2.0},
                           "classification", 2)
    _, terms = m.training_step({"y": torch.tensor(y)})
    ce = sum(-math.log(_softmax(r)[c]) for r, c in zip(s_logits, y)) / 2
    kl = 0.0
    for s, t in zip(s_logits, t_logits):
        ps, pt = _softmax(s, 2.0), _softmax(t, 2.0)
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    kl = kl / 2 * 4.0
    assert math.isclose(float(terms["ce"]), 0.7 * ce, rel_tol=1e-5)
    assert math.isclose(float(terms["kd"]), 0.3 * kl, rel_tol=1e-5)


def test_crd_term_scales_with_beta():
    from test_methods_zoo import _method, _parts

    parts = _parts()
    batch = parts["train"].batch(torch.arange(8), torch.device("cpu"))
    values = {}
    for beta in (0.8, 1.6):
        m, _, _, _ = _method("crd", {"beta": beta, "nce_k": 5, "feat_dim": 8}, parts=parts)
        m.train()
        torch.manual_seed(123)  # the same negatives for both
        _, terms = m.training_step(batch)
        values[beta] = float(terms["crd"])
    assert values[0.8] > 0
    assert math.isclose(values[1.6], 2 * values[0.8], rel_tol=1e-5)


# ----------------------------------------------------------------------------- tables
def _runs(values, failed=0):
    rows = [{"dataset": "d", "track": "t", "dimension": "arousal", "method": "m", "seed": i, "status": "ok",
             "stale": False, "accuracy": v, "f1": v / 2, "rmse": math.nan} for i, v in enumerate(values)]
    rows += [{"dataset": "d", "track": "t", "dimension": "arousal", "method": "m", "seed": len(values) + i,
              "status": "failed", "stale": False, "accuracy": math.nan, "f1": math.nan, "rmse": math.nan}
             for i in range(failed)]
    return pd.DataFrame(rows)


def test_table_mean_std_ddof1_and_failed_counts():
    from cmkd.analysis.tables import summarise

    s = summarise(_runs([60.0, 72.0, 66.0])).iloc[0]
    assert s["accuracy_mean"] == 66.0 and math.isclose(s["accuracy_std"], 6.0)  # ddof = 1: sqrt(72/2)
    assert s["n"] == 3 and s["n_failed"] == 0
    s = summarise(_runs([60.0, 70.0], failed=1)).iloc[0]
    assert s["accuracy_mean"] == 65.0 and math.isclose(s["accuracy_std"], math.sqrt(50.0))
    assert s["n"] == 2 and s["n_failed"] == 1
    assert math.isclose(s["f1_mean"], 32.5)


# ----------------------------------------------------------------------------- statistics
def test_holm_within_each_family_against_statsmodels():
    """Four p-values in one family, where Holm, Bonferroni and Benjamini-Hochberg all differ,
    and a second family that must be corrected on its own."""
    from statsmodels.stats.multitest import multipletests

    from cmkd.analysis.stats import _holm

    fam = {"dataset": "d", "track": "t", "dimension": "arousal", "metric": "accuracy", "test": "corrected_t"}
    p1 = [0.01, 0.04, 0.03, 0.02]
    p2 = [0.02, 0.5]
    rows = [dict(fam, reference="baseline", method=f"m{i}", p=p) for i, p in enumerate(p1)]
    rows += [dict(fam, reference="kd", method=f"m{i}", p=p) for i, p in enumerate(p2)]
    rows.append(dict(fam, reference="kd", method="m9", p=math.nan))  # no p-value: stays empty, not counted
    table = pd.DataFrame(rows)
    got = _holm(table).to_numpy()
    # hand: sorted 0.01, 0.02, 0.03, 0.04 -> 4*0.01, 3*0.02, 2*0.03, 1*0.04 -> running max
    np.testing.assert_allclose(got[:4], [0.04, 0.06, 0.06, 0.06])
    np.testing.assert_allclose(got[:4], multipletests(p1, method="holm")[1])
    assert not np.allclose(got[:4], multipletests(p1, method="fdr_bh")[1])
    assert not np.allclose(got[:4], multipletests(p1, method="bonferroni")[1])
    np.testing.assert_allclose(got[4:6], [0.04, 0.5])  # family of two, the NaN not counted
    assert math.isnan(got[6])


def test_significance_mark_strictly_below_alpha():
    from cmkd.analysis.stats import MARK_TEST, significance_marks

    base = {"dataset": "d", "track": "t", "dimension": "arousal", "metric": "accuracy", "reference": "baseline"}
    df = pd.DataFrame([
        dict(base, method="at_alpha", test=MARK_TEST, p_holm=0.05),
        dict(base, method="below", test=MARK_TEST, p_holm=0.0499),
        dict(base, method="other_test", test="paired_t", p_holm=0.001),
        dict(base, method="empty", test=MARK_TEST, p_holm=math.nan),
    ])
    marks = significance_marks(df, alpha=0.05)
    key = lambda m: ("d", "t", "arousal", "accuracy", m, "baseline")
    assert marks[key("at_alpha")] == "" and marks[key("below")] == "*" and marks[key("empty")] == ""
    assert key("other_test") not in marks  # only the corrected resampled t-test marks
