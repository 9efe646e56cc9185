"""Protocols with power: k-fold / LOSO splits, tests matched to the design, minimum detectable
difference, tests that cannot reach alpha not run, Nemenyi critical difference."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss
from statsmodels.stats.power import TTestPower

from cmkd.analysis import stats
from cmkd.data.splits import check_fold, check_folds, fold_splits, make_split
from cmkd.errors import ConfigError, DataError


def grid(n_subjects=6, n_trials=10, n_segments=3):
    subject = np.repeat(np.arange(n_subjects), n_trials * n_segments).astype(np.int64)
    trial = np.tile(np.repeat(np.arange(n_trials), n_segments), n_subjects).astype(np.int64)
    label = ((trial + subject) % 2).astype(np.int64)  # constant within a trial
    return subject, trial, label


def trials(idx, subject, trial):
    return set(zip(subject[idx].tolist(), trial[idx].tolist()))


# ----------------------------------------------------------------------------------------------
# splits


@pytest.mark.parametrize("folds_by", ["pooled", "subject"])
def test_kfold_tests_every_trial_once_and_keeps_trials_whole(folds_by):
    subject, trial, label = grid()
    folds = fold_splits(subject, trial, 3, "kfold", n_folds=5, folds_by=folds_by, val_fraction=0.1, stratify=label)
    assert len(folds) == 5
    tested = [trials(f["test"], subject, trial) for f in folds]
    assert sum(len(t) for t in tested) == 60 and set().union(*tested) == trials(np.arange(subject.size), subject, trial)
    for f, t in zip(folds, tested):
        tr, va = trials(f["train"], subject, trial), trials(f["val"], subject, trial)
        assert not (tr & va) and not (tr & t) and not (va & t)
        assert len(t) == 12 and len(va) == 5  # 60/5 per fold; round(0.1 * 48) by trial
        assert np.bincount(label[f["test"]]).tolist() == [18, 18]  # stratified
        if folds_by == "subject":
            assert set(subject[f["test"]].tolist()) == set(range(6))  # every subject in every fold
    other = fold_splits(subject, trial, 4, "kfold", n_folds=5, folds_by=folds_by, stratify=label)
    assert any(not np.array_equal(a["test"], b["test"]) for a, b in zip(folds, other))  # seeds repeat


def test_segment_kfold_tests_every_segment_once_and_spreads_trials():
    """folds_by: segment (the leakage study's k-fold): every segment tested once per seed, segments
    of one trial in different parts (leaky on purpose), stratified, and it is not a trial-level split."""
    subject, trial, label = grid()
    folds = fold_splits(subject, trial, 1, "kfold", n_folds=2, folds_by="segment", val_fraction=0.1, stratify=label)
    assert len(folds) == 2
    assert sorted(np.concatenate([f["test"] for f in folds]).tolist()) == list(range(subject.size))
    for f in folds:
        assert f["test"].size == 90 and f["val"].size == 9  # 180 / 2; round(0.1 * 90) segments
        assert np.bincount(label[f["test"]]).tolist() == [45, 45]
        assert trials(f["train"], subject, trial) & trials(f["test"], subject, trial)  # trials leak across parts
        with pytest.raises(DataError, match="appears in parts"):
            check_fold(f, subject, trial, "kfold")  # the trial-level check would refuse it
    check_folds(folds, subject, trial)


def test_loso_tests_each_subject_once_unseen():
    subject, trial, label = grid()
    folds = fold_splits(subject, trial, 0, "loso", stratify=label)
    assert len(folds) == 6
    for i, f in enumerate(folds):
        assert set(subject[f["test"]].tolist()) == {i}
        assert i not in set(subject[np.concatenate([f["train"], f["val"]])].tolist())
        assert f["val"].size > 0


def test_fold_checks_catch_leaks():
    subject, trial, label = grid()
    f = fold_splits(subject, trial, 0, "loso")[0]
    # a training segment of the test subject: the LOSO check names it
    leak = {**f, "train": np.sort(np.concatenate([f["train"][3:], f["test"][:3]])), "test": f["test"][3:]}
    with pytest.raises(DataError, match="test subject unseen|in the test part and in train"):
        check_fold(leak, subject, trial, "loso")
    # half a trial in test, half in train: the trial-level check
    folds = fold_splits(subject, trial, 0, "kfold", n_folds=3)
    f = folds[0]
    seg = f["test"][0]
    bad = {**f, "test": f["test"][1:], "train": np.sort(np.append(f["train"], seg))}
    with pytest.raises(DataError, match="keep every trial in one part"):
        check_fold(bad, subject, trial, "kfold")
    # a trial tested twice in one repetition
    twice = [folds[0], {**folds[1], "test": np.union1d(folds[1]["test"], folds[0]["test"][:3])}]
    with pytest.raises(DataError, match="tested exactly once"):
        check_folds(twice + [folds[2]], subject, trial)


def test_trial_level_kfold_refuses_a_dealing_that_splits_a_trial(monkeypatch):
    """The trial check stays on for every k-fold but the segment-level one: plant a grouping that
    deals single segments (as folds_by: segment does) under folds_by: pooled and under loso, and
    fold_splits must refuse it instead of returning folds whose trials straddle the parts."""
    import cmkd.data.splits as splits_mod

    subject, trial, label = grid()

    def per_segment(subject, trial):  # every segment its own group: trials leak across the parts
        return np.arange(subject.size, dtype=np.int64), np.stack([subject, trial], axis=1)

    monkeypatch.setattr(splits_mod, "_trial_groups", per_segment)
    with pytest.raises(DataError, match="appears in parts"):
        fold_splits(subject, trial, 0, "kfold", n_folds=2, folds_by="pooled", stratify=label)
    with pytest.raises(DataError, match="appears in parts"):
        fold_splits(subject, trial, 0, "loso", folds_by="segment", stratify=label)


def test_fold_split_errors_name_the_key():
    subject, trial, _ = grid(n_subjects=2, n_trials=3)
    with pytest.raises(DataError, match="split.n_folds=4"):
        fold_splits(subject, trial, 0, "kfold", n_folds=4, folds_by="subject")
    with pytest.raises(ConfigError, match="split.folds_by"):
        fold_splits(subject, trial, 0, "kfold", folds_by="session")
    with pytest.raises(ConfigError, match="fold_splits"):
        make_split(subject, trial, 0, kind="kfold")


# ----------------------------------------------------------------------------------------------
# which tests can run at their n


def test_smallest_p_and_tarone():
    assert stats.smallest_p("wilcoxon", 3) == pytest.approx(0.25)  # the n = 3 seeds
    assert stats.smallest_p("wilcoxon", 6) == pytest.approx(1 / 32)
    assert ss.wilcoxon([1, 2, 3, 4, 5, 6]).pvalue == pytest.approx(1 / 32)  # attained
    assert stats.smallest_p("paired_t", 2) == 0 and stats.smallest_p("paired_t", 1) == 1
    assert stats.smallest_p("trial_permutation", 40, 9999) == pytest.approx(1e-4)
    # Tarone: 3 continuous tests and 2 that cannot reach 0.05 -> family of 3
    assert stats.tarone_size([0, 0, 0, 0.25, 0.0625], 0.05) == 3
    # three tests that reach 0.03 at best: K = 1 admits 3 > 1, K = 2 admits none (0.03 >= 0.025)
    assert stats.tarone_size([0.03, 0.03, 0.03], 0.05) == 2
    assert stats.tarone_size([0, 0, 0.03], 0.05) == 2


def _seed_runs(n_seeds, effects):
    rows = []
    rng = np.random.default_rng(1)
    for s in range(n_seeds):
        base = 60 + rng.normal(0, 3)
        rows.append(dict(dataset="syn", track="t", dimension="arousal", method="baseline", seed=s,
                         accuracy=base, f1=base, rmse=np.nan, status="ok"))
        for m, e in effects.items():
            v = base + e + rng.normal(0, 2)
            rows.append(dict(dataset="syn", track="t", dimension="arousal", method=m, seed=s,
                             accuracy=v, f1=v, rmse=np.nan, status="ok"))
    return pd.DataFrame(rows)


def test_wilcoxon_with_three_seeds_is_not_run_and_with_eight_is():
    t3 = stats.paired_tests(_seed_runs(3, {"kd": 5, "fitnets": 1}), ["baseline"])
    assert "wilcoxon" not in set(t3.test) and {"paired_t", "corrected_t"} <= set(t3.test)
    t8 = stats.paired_tests(_seed_runs(8, {"kd": 5, "fitnets": 1}), ["baseline"])
    w = t8[(t8.test == "wilcoxon") & (t8.method == "kd") & (t8.metric == "accuracy")].iloc[0]
    runs = _seed_runs(8, {"kd": 5, "fitnets": 1})
    d = (runs[runs.method == "kd"].accuracy.to_numpy() - runs[runs.method == "baseline"].accuracy.to_numpy())
    assert w.p == pytest.approx(ss.wilcoxon(d).pvalue)
    assert w.alpha_family == pytest.approx(0.025)  # 2 comparisons, both can reach 0.025 at n = 8


# ----------------------------------------------------------------------------------------------
# minimum detectable difference


def test_mde_equals_statsmodels_and_the_noncentral_t_power():
    t = stats.paired_tests(_seed_runs(5, {"kd": 5, "fitnets": 1, "sp": 0}), ["baseline"],
                           test_fraction=0.1)
    r = t[(t.test == "paired_t") & (t.method == "kd") & (t.metric == "accuracy")].iloc[0]
    runs = _seed_runs(5, {"kd": 5, "fitnets": 1, "sp": 0})
    d = runs[runs.method == "kd"].accuracy.to_numpy() - runs[runs.method == "baseline"].accuracy.to_numpy()
    assert r.alpha_family == pytest.approx(0.05 / 3)
    es = TTestPower().solve_power(nobs=5, alpha=0.05 / 3, power=0.8, alternative="two-sided")
    assert r.mde == pytest.approx(es * np.std(d, ddof=1), rel=1e-9)
    # corrected t: at delta = MDE the power of the corrected test (noncentral t, df = n-1,
    # nc = delta / (sd sqrt(1/n + 1/9)): n_test/n_train = 0.1/0.9, training + validation) is 0.8
    c = t[(t.test == "corrected_t") & (t.method == "kd") & (t.metric == "accuracy")].iloc[0]
    sd = np.std(d, ddof=1)
    nc = c.mde / (sd * math.sqrt(1 / 5 + 1 / 9))
    crit = ss.t.ppf(1 - c.alpha_family / 2, 4)
    power = ss.nct.sf(crit, 4, nc) + ss.nct.cdf(-crit, 4, nc)
    assert power == pytest.approx(0.8, abs=1e-6)


# ----------------------------------------------------------------------------------------------
# trial-level test and the corrected repeated k-fold t-test, through write_stats and run folders


def _write_run(root, method, seed, correct, subject, trial, folds=None):
    d = root / method / f"seed{seed}"
    d.mkdir(parents=True)
    y = np.zeros(correct.size, dtype=np.int64)
    logits = np.stack([correct.astype(float), 1 - correct.astype(float)], axis=1)  # argmax 0 == y when correct
    np.savez(d / "features.npz", logits=logits, y=y, index=np.arange(correct.size), subject=subject, trial=trial,
             embedding=np.zeros((correct.size, 2)))
    m = {"task": "classification", "test": {"accuracy": 100 * correct.mean()}}
    if folds is not None:
        m["folds"] = folds
    (d / "metrics.json").write_text(json.dumps(m))
    return dict(dataset="syn", track="t", dimension="arousal", method=method, seed=seed,
                accuracy=100 * correct.mean(), f1=np.nan, rmse=np.nan, status="ok", path=str(d))


def _planted(tmp_path, planted, n_trials=120, n_seg=3, n_seeds=3):
    """Reference right on 60 % of segments; ``kd`` fixes a ``planted`` share of the reference's
    errors (a known difference); ``same`` is as good as the reference but errs elsewhere."""
    rng = np.random.default_rng(7)
    subject = np.repeat(np.arange(n_trials) // 12, n_seg)
    trial = np.repeat(np.arange(n_trials) % 12, n_seg)
    runs = []
    for s in range(n_seeds):
        ref = rng.random(n_trials * n_seg) < 0.6
        kd = ref | (rng.random(ref.size) < planted / 0.4 * (1 - 0)) & ~ref
        same = rng.permutation(ref)
        runs += [_write_run(tmp_path, "baseline", s, ref, subject, trial),
                 _write_run(tmp_path, "kd", s, kd, subject, trial),
                 _write_run(tmp_path, "same", s, same, subject, trial)]
    runs_csv = tmp_path / "runs.csv"
    pd.DataFrame(runs).to_csv(runs_csv, index=False)
    return runs_csv


def test_planted_difference_is_detected_by_the_trial_level_test(tmp_path):
    runs_csv = _planted(tmp_path, planted=0.08)  # +8 accuracy points planted
    table = stats.write_stats(runs_csv, tmp_path / "stats.csv", {"t": ["baseline"]}, 0.1,
                              metrics=("accuracy",))
    kd = table[(table.test == "trial_permutation") & (table.method == "kd")].iloc[0]
    same = table[(table.test == "trial_permutation") & (table.method == "same")].iloc[0]
    assert kd.n == 120 and 5 < kd.effect < 11 and kd.p_holm < 0.001
    assert kd.ci_low > 0
    assert same.p_holm > 0.05 and abs(same.effect) < kd.mde  # no planted effect: indistinguishable
    # the seed-level test with 3 seeds: its MDE is what statsmodels gives for n = 3
    pt = table[(table.test == "paired_t") & (table.method == "kd")].iloc[0]
    runs = pd.read_csv(runs_csv)
    d = runs[runs.method == "kd"].accuracy.to_numpy() - runs[runs.method == "baseline"].accuracy.to_numpy()
    es = TTestPower().solve_power(nobs=3, alpha=pt.alpha_family, power=0.8, alternative="two-sided")
    assert pt.mde == pytest.approx(es * np.std(d, ddof=1), rel=1e-9)
    # no Wilcoxon at n = 3, in the file either
    back = pd.read_csv(tmp_path / "stats.csv")
    assert "wilcoxon" not in set(back.test)


def test_trial_level_test_is_skipped_for_other_test_segments(tmp_path):
    runs_csv = _planted(tmp_path, planted=0.08)
    runs = pd.read_csv(runs_csv)
    p = runs.loc[(runs.method == "kd") & (runs.seed == 0), "path"].iloc[0]
    with np.load(f"{p}/features.npz") as z:
        arr = {k: z[k] for k in z.files}
    arr["index"] = arr["index"] + 1000  # e.g. a leaky split: other test segments
    np.savez(f"{p}/features.npz", **arr)
    table = stats.write_stats(runs_csv, tmp_path / "stats.csv", {"t": ["baseline"]}, 0.1, metrics=("accuracy",))
    assert table[(table.test == "trial_permutation") & (table.method == "kd")].empty
    assert not table[(table.test == "trial_permutation") & (table.method == "same")].empty


def test_sign_flip_exact_hand_computed():
    # d = [1, 2, 3]: T = 2; of the 8 sign patterns only (+,+,+) and (-,-,-) reach |T| >= 2
    r = stats.sign_flip_test([1, 2, 3])
    assert r["exact"] and r["statistic"] == pytest.approx(2.0) and r["p"] == pytest.approx(0.25)
    # weights: T = (1*1 + 3*2) / 4 = 1.75; patterns: +-: (1-6)/4, -+: (-1+6)/4=1.25 -> p = 2/4
    r = stats.sign_flip_test([1, 2], [1, 3])
    assert r["statistic"] == pytest.approx(1.75) and r["p"] == pytest.approx(0.5)


def test_corrected_repeated_kfold_t_hand_computed(tmp_path):
    # 2 repetitions x 3 folds, fold differences d = [2, 4, 3, 5, 1, 3]: mean 3, var 2
    # n_test/n_train = 10/20 (n_train: the 18 training + 2 validation segments of the fold, all the
    # non-test data): t = 3 / sqrt((1/6 + 1/2) * 2) = 3 / sqrt(4/3) = 3 sqrt(3) / 2
    rows, d = [], [2, 4, 3, 5, 1, 3]
    subject, trial = np.zeros(30, np.int64), np.repeat(np.arange(10), 3)
    for s in range(2):
        for m, shift in (("baseline", 0.0), ("kd", 1.0)):
            folds = [{"fold": f, "test": {"accuracy": 50.0 + shift * d[3 * s + f]}, "split_hash": f"s{s}f{f}",
                      "n_segments": {"test": 10, "train": 18, "val": 2}} for f in range(3)]
            rows.append(_write_run(tmp_path, m, s, np.ones(30, bool), subject, trial, folds))
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    table = stats.write_stats(tmp_path / "runs.csv", tmp_path / "stats.csv", {"t": ["baseline"]}, 0.1,
                              metrics=("accuracy",))
    r = table[table.test == "corrected_kfold_t"].iloc[0]
    assert r.statistic == pytest.approx(3 * math.sqrt(3) / 2) and r.n == 6
    assert r.p == pytest.approx(2 * ss.t.sf(3 * math.sqrt(3) / 2, 5))
    assert "n_test/n_train = 0.5" in r.note
    assert "corrected_t" not in set(table.test)  # the holdout correction is not applied to folds
    assert "paired_t" in set(table.test)  # the seed-level rows are kept beside the fold-level one


# ----------------------------------------------------------------------------------------------
# Nemenyi critical difference


def test_nemenyi_critical_difference_matches_demsar_table():
    # Demsar (2006, JMLR 7), Table 5(a): q_0.05 for k = 2..10
    q005 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    for k, q in zip(range(2, 11), q005):
        assert stats.nemenyi_critical_difference(k, 1) / math.sqrt(k * (k + 1) / 6) == pytest.approx(q, abs=1.5e-3)
    # Demsar's worked example: k = 4 classifiers, N = 14 data sets: CD = 2.569 * sqrt(20/84) = 1.25
    assert stats.nemenyi_critical_difference(4, 14) == pytest.approx(1.25, abs=5e-3)


# ----------------------------------------------------------------------------------------------
# tables: the MDE under the table and the marks


def test_tables_print_mde_and_mark_indistinguishable_rows(tmp_path):
    from cmkd.analysis.tables import write_tables

    runs_csv = _planted(tmp_path, planted=0.08)
    stats.write_stats(runs_csv, tmp_path / "stats.csv", {"t": ["baseline"]}, 0.1, metrics=("accuracy",))
    spec = {"tables": [{"name": "students", "title": "Students", "track": "t", "metric": "accuracy",
                        "reference": "baseline", "rows": {"baseline": None, "kd": None, "same": None}}],
            "datasets": {"syn": {}}, "references": {"t": ["baseline"]},
            "protocol": {"split": {"kind": "kfold", "n_folds": 5}, "seeds": [0, 1, 2]}}
    write_tables(runs_csv, spec, tmp_path / "tables", tmp_path / "stats.csv")
    df = pd.read_csv(tmp_path / "tables" / "students.csv").set_index("method")
    assert df.loc["kd", "sig_trials"] == "*" and df.loc["same", "sig_trials"] == "≈"
    st = pd.read_csv(tmp_path / "stats.csv")
    mde = st[(st.test == "trial_permutation")].mde.median()
    assert df.loc["kd", "mde_trials"] == pytest.approx(mde)
    # the headline mark and MDE are the method-level test's (a table of 2 comparisons: Holm over 2,
    # the same family as the cell's here)
    ml = st[st.test == "method_level"].set_index("method")
    assert df.loc["kd", "mde"] == pytest.approx(ml.mde.median())
    for m in ("kd", "same"):
        want = "*" if ml.loc[m, "p_holm"] < 0.05 else "≈" if abs(df.loc[m, "effect"]) < df.loc[m, "mde"] else ""
        assert df.loc[m, "sig"] == want
    for ext in ("md", "tex", "html"):
        text = (tmp_path / "tables" / f"students.{ext}").read_text()
        assert "Minimum detectable difference from baseline" in text and f"{mde:.1f} points" in text
        assert f"method-level MDE {ml.mde.median():.1f} points" in text
        assert "Holm over this table{}s 2 comparison(s) with baseline in syn / arousal (accuracy)".format(
            "&#x27;" if ext == "html" else "'") in text
    assert "5-fold cross-validation" in (tmp_path / "tables" / "students.md").read_text()
    # with one seed the seed-level tests cannot run: the table says so instead of a blank
    one = pd.read_csv(runs_csv)
    one[one.seed == 0].to_csv(tmp_path / "one.csv", index=False)
    stats.write_stats(tmp_path / "one.csv", tmp_path / "one_stats.csv", {"t": ["baseline"]}, 0.1,
                      metrics=("accuracy",))
    write_tables(tmp_path / "one.csv", spec, tmp_path / "t1", tmp_path / "one_stats.csv")
    df1 = pd.read_csv(tmp_path / "t1" / "students.csv").set_index("method")
    assert df1.loc["kd", "sig_seeds"] == "n too small" and df1.loc["kd", "sig"] == "n too small"
    assert "no method-level test (n too small)" in (tmp_path / "t1" / "students.md").read_text()


def test_a_table_is_its_own_holm_family(tmp_path):
    """A table of one comparison is tested at alpha, not at the cell's alpha / 2."""
    from cmkd.analysis.tables import write_tables

    runs_csv = _planted(tmp_path, planted=0.08)
    stats.write_stats(runs_csv, tmp_path / "stats.csv", {"t": ["baseline"]}, 0.1, metrics=("accuracy",))
    st = pd.read_csv(tmp_path / "stats.csv")
    row = st[(st.test == "trial_permutation") & (st.method == "kd")].iloc[0]
    assert row.alpha_family == pytest.approx(0.025)
    spec = {"tables": [{"name": "one", "track": "t", "metric": "accuracy", "reference": "baseline",
                        "rows": {"baseline": None, "kd": None}}],
            "datasets": {"syn": {}}, "references": {"t": ["baseline"]}, "protocol": {}}
    write_tables(runs_csv, spec, tmp_path / "tables", tmp_path / "stats.csv")
    df = pd.read_csv(tmp_path / "tables" / "one.csv").set_index("method")
    es = lambda a: TTestPower().solve_power(nobs=int(row.n), alpha=a, power=0.8, alternative="two-sided")
    assert df.loc["kd", "mde_trials"] == pytest.approx(row.mde * es(0.05) / es(0.025), rel=1e-9)
    assert df.loc["kd", "mde_trials"] < row.mde
    # the method-level MDE is rescaled with its own (Welch-Satterthwaite) degrees of freedom
    ml = st[(st.test == "method_level") & (st.method == "kd")].iloc[0]
    es_ml = lambda a: TTestPower().solve_power(nobs=ml.df + 1, alpha=a, power=0.8, alternative="two-sided")
    assert df.loc["kd", "mde"] == pytest.approx(ml.mde * es_ml(0.05) / es_ml(0.025), rel=1e-9)
    text = (tmp_path / "tables" / "one.md").read_text()
    assert "Holm over this table's 1 comparison(s) with baseline in syn / arousal (accuracy): alpha 0.05" in text


def test_runs_for_mde_is_the_smallest_run_count_that_reaches_the_target():
    """The projection of the method-level MDE to more training runs: at the returned R the MDE (standard
    error shrunk by sqrt(n/R), df grown by (R-1)/(n-1)) is within the target, at R - 1 it is not."""
    import math

    from cmkd.analysis.stats.power import detectable_difference, runs_for_mde, standard_effect

    alpha = 0.05 / 11
    for mde, df, n in ((16.0, 5.0, 6), (14.3, 5.0, 6), (30.0, 2.0, 3), (12.0, 11.0, 12)):
        r = int(runs_for_mde(mde, df, n, 10.0, alpha))
        se = mde / (standard_effect(df + 1.0, alpha) * math.sqrt(df + 1.0))
        assert abs(detectable_difference(se, df, alpha) - mde) < 1e-9  # the inversion is exact at n runs
        at = lambda k: detectable_difference(se * math.sqrt(n / k), df * (k - 1) / (n - 1), alpha)  # noqa: E731
        assert at(r) <= 10.0 < at(r - 1)
    assert runs_for_mde(9.0, 5.0, 6, 10.0, alpha) == 6          # already within the target
    assert math.isnan(runs_for_mde(float("nan"), 5.0, 6, 10.0, alpha))
    assert runs_for_mde(16.0, 5.0, 6, 10.0, alpha) == 10        # the default's students table, arousal (6 runs)


def test_cost_of_the_target_counts_whole_seeds_and_the_runs_the_rows_distil_from():
    """The note's cost of a 10-point method-level MDE: runs come as whole seeds (every fold of each),
    and the added runs of the teachers and assistants the rows require (through one another) are
    counted, at the median time of each method's runs (the first run of a job pays its start-up)."""
    from cmkd.analysis.tables import _runs_needed as needed, required_closure, whole_seeds

    def _runs_needed(n_now, r_need, rows, runs, ds, tr, dim, requires=None):  # as add_power calls it
        return needed(n_now, whole_seeds(n_now, r_need, runs, ds, tr, dim, list(rows["method"])), rows, runs,
                      ds, tr, dim, requires)

    requires = {"cdgkd": ["teacher", "ta2"], "ta2": ["teacher", "ta1"], "ta1": ["teacher"], "kd": ["teacher"],
                "other": ["elsewhere"]}
    assert required_closure(["baseline", "kd", "cdgkd"], requires) == ["teacher", "ta2", "ta1"]
    assert required_closure(["kd", "teacher"], requires) == []  # a row is not counted twice
    times = {"baseline": [90, 30, 30], "kd": [60, 60, 60], "cdgkd": [120, 60, 60],
             "teacher": [60, 30, 30], "ta1": [30, 30, 30], "ta2": [30, 30, 30], "other": [600, 600, 600]}
    runs = pd.DataFrame([{"dataset": "d", "track": "t", "dimension": "a", "method": m, "seed": s, "process_s": x}
                         for m, xs in times.items() for s, x in enumerate(xs)])
    rows = pd.DataFrame({"method": ["baseline", "kd", "cdgkd"]})
    # 6 runs = 3 seeds x 2 folds; 9 runs needed -> 5 seeds (10 runs): 2 more seeds = 2/3 more of each method's runs
    text = _runs_needed(6.0, 9.0, rows, runs, "d", "t", "a", requires)
    assert "about 10 training runs per method (5 seeds x 2 folds; this run: 6)" in text
    # rows: (30 + 60 + 60) s per run x 2 more seeds = 300 s = 5.0 min; required: (30 + 30 + 30) x 2 = 180 s = 3.0 min
    assert "about 8.0 more minutes of process time" in text
    assert "5.0 for the table's 3 rows and 3.0 for the 3 methods they distil from (teacher, ta2, ta1)" in text
    # here: rows 150 + 180 + 240 = 570 s, required 120 + 90 + 90 = 300 s: 870 s = 14.5 min
    assert text.endswith("against 14.5 minutes for these runs here")
    # without requires only the rows
    assert "about 5.0 more minutes" in _runs_needed(6.0, 9.0, rows, runs, "d", "t", "a")
    # one run per seed (a fixed split): seeds alone
    assert "about 8 training runs per method (8 seeds; this run: 3)" in _runs_needed(3.0, 8.0, rows, runs, "d", "t", "a")
    assert _runs_needed(6.0, 6.0, rows, runs, "d", "t", "a").startswith("the method-level MDE is within 10 points")
