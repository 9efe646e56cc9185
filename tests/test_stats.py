"""Tests of cmkd.analysis.stats on small fixed run tables: every p-value against scipy/statsmodels."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats as ss
from statsmodels.stats.multitest import multipletests

from cmkd.analysis import stats
from cmkd.errors import DataError

REQUIRED = ["dataset", "track", "dimension", "metric", "method", "reference", "test",
            "statistic", "p", "p_holm", "effect", "ci_low", "ci_high", "n", "note"]

SEEDS = [0, 1, 2, 3, 4]
# accuracy (percent) per method and seed 0..4 in the one classification cell
BASELINE = [10.0, 20.0, 30.0, 40.0, 50.0]
KD = [11.0, 22.0, 33.0, 44.0, 55.0]            # d = kd - baseline = [1, 2, 3, 4, 5]
FITNETS = [12.0, 19.0, 33.5, 41.0, 49.0]        # d = [2, -1, 3.5, 1, -1]
SHIFT = [b + 2.0 for b in BASELINE]             # d = [2, 2, 2, 2, 2]: zero variance
# f1 per method and seed
F1 = {"baseline": [0.50, 0.52, 0.49, 0.55, 0.51], "kd": [0.53, 0.55, 0.50, 0.58, 0.50],
      "fitnets": [0.51, 0.50, 0.52, 0.57, 0.52], "copy": [0.50, 0.52, 0.49, 0.55, 0.51],
      "shift": [0.52, 0.54, 0.51, 0.57, 0.53]}
# rmse per method and seed in the one regression cell
RMSE = {"baseline": [1.10, 1.05, 1.20, 1.15, 1.08], "kd": [1.00, 1.02, 1.10, 1.16, 1.01]}


def _runs() -> pd.DataFrame:
    rows = []
    acc = {"baseline": BASELINE, "kd": KD, "fitnets": FITNETS, "copy": BASELINE, "shift": SHIFT}
    for method, values in acc.items():
        for seed, a, f in zip(SEEDS, values, F1[method]):
            rows.append(dict(dataset="synthetic", track="v2e", dimension="valence", method=method,
                             seed=seed, accuracy=a, f1=f, rmse=np.nan, status="ok"))
    # takd: one ok seed, one failed seed -> fewer than 2 paired seeds
    rows.append(dict(dataset="synthetic", track="v2e", dimension="valence", method="takd",
                     seed=0, accuracy=15.0, f1=0.5, rmse=np.nan, status="ok"))
    rows.append(dict(dataset="synthetic", track="v2e", dimension="valence", method="takd",
                     seed=1, accuracy=np.nan, f1=np.nan, rmse=np.nan, status="failed"))
    # a failed kd run with a partner baseline seed: must not enter any test
    rows.append(dict(dataset="synthetic", track="v2e", dimension="valence", method="kd",
                     seed=5, accuracy=99.0, f1=0.99, rmse=np.nan, status="failed"))
    rows.append(dict(dataset="synthetic", track="v2e", dimension="valence", method="baseline",
                     seed=5, accuracy=60.0, f1=0.60, rmse=np.nan, status="ok"))
    for method, values in RMSE.items():
        for seed, r in zip(SEEDS, values):
            rows.append(dict(dataset="synthetic", track="v2e", dimension="valence_reg",
                             method=method, seed=seed, accuracy=np.nan, f1=np.nan, rmse=r,
                             status="ok"))
    return pd.DataFrame(rows)


def _row(table, test, method, metric="accuracy", dimension="valence", reference="baseline"):
    sel = table[(table.test == test) & (table.method == method) & (table.metric == metric)
                & (table.dimension == dimension) & (table.reference == reference)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return stats.paired_tests(_runs(), ["baseline"], test_fraction=0.1)


def test_columns_and_shape(table):
    assert list(table.columns[: len(REQUIRED)]) == REQUIRED
    assert list(table.columns) == list(stats.STATS_COLUMNS)
    # valence: 4 methods x {accuracy, f1} x 3 t-type tests (method-level, paired, corrected);
    # valence_reg: 1 method x rmse x 3. No Wilcoxon rows: with 5 seeds its smallest two-sided p is
    # 2/2^5 = 0.0625 >= 0.05; no takd rows: 1 paired seed
    assert len(table) == 4 * 2 * 3 + 1 * 1 * 3
    assert set(table.test) == {"method_level", "paired_t", "corrected_t"}
    assert not (table.method == table.reference).any()
    # without folds or per-trial predictions the method-level test is the t-test over the seeds'
    # differences (the training runs of a holdout design)
    for r in table[table.test == "method_level"].itertuples():
        pt = _row(table, "paired_t", r.method, r.metric, r.dimension)
        assert (r.p == pytest.approx(pt.p, rel=1e-12)) if pd.notna(pt.p) else math.isnan(r.p)
    # rmse is not tested where it is all NaN, accuracy not where it is all NaN
    assert set(table[table.dimension == "valence"].metric) == {"accuracy", "f1"}
    assert set(table[table.dimension == "valence_reg"].metric) == {"rmse"}


def test_paired_t_and_wilcoxon_equal_scipy(table):
    for method, values in (("kd", KD), ("fitnets", FITNETS)):
        t = ss.ttest_rel(values, BASELINE)
        r = _row(table, "paired_t", method)
        assert r.statistic == pytest.approx(t.statistic, rel=1e-12)
        assert r.p == pytest.approx(t.pvalue, rel=1e-12)
        assert r.n == 5
    # f1 and rmse too
    t = ss.ttest_rel(F1["fitnets"], F1["baseline"])
    assert _row(table, "paired_t", "fitnets", "f1").p == pytest.approx(t.pvalue, rel=1e-12)
    t = ss.ttest_rel(RMSE["kd"], RMSE["baseline"])
    r = _row(table, "paired_t", "kd", "rmse", "valence_reg")
    assert r.p == pytest.approx(t.pvalue, rel=1e-12)
    assert r.effect == pytest.approx(np.mean(np.subtract(RMSE["kd"], RMSE["baseline"])))


def test_corrected_t_hand_computed(table):
    # d = kd - baseline = [1, 2, 3, 4, 5], n = 5, n_test/n_train = 0.1/0.9 = 1/9: n_train is all the
    # non-test data (training + validation part: 0.8 + 0.1), not the training part alone (0.1/0.8)
    # mean(d) = 3; var(d, ddof=1) = (4 + 1 + 0 + 1 + 4) / 4 = 2.5
    # corrected variance of the mean = (1/5 + 1/9) * 2.5 = (14/45) * 2.5 = 7/9
    # t = 3 / sqrt(7/9) = 9 / sqrt(7) = 3.40168025708...  (t^2 = 81/7)
    # df = 4; with 4 df the two-sided p has a closed form: sin(a) = t / sqrt(4 + t^2) = 9/sqrt(109),
    # cos^2(a) = 28/109, p = 1 - sin(a) * (1 + cos^2(a)/2) = 1 - (9/sqrt(109)) (123/109)
    # (the plain paired t would be 3 / sqrt(2.5/5) = 4.2426..., p = 0.0132...: the correction
    # widens the standard error by sqrt((14/45)/0.2) = 1.2472)
    r = _row(table, "corrected_t", "kd")
    assert r.statistic == pytest.approx(9 / math.sqrt(7), rel=1e-12)
    assert r.statistic == pytest.approx(3.4016802570830453, rel=1e-12)
    assert r.p == pytest.approx(1 - 9 / math.sqrt(109) * 123 / 109, rel=1e-10)
    assert r.n == 5
    assert r.effect == pytest.approx(3.0)
    # 95 % CI: 3 -+ t_{0.975, 4} * sqrt(7/9)
    half = ss.t.ppf(0.975, 4) * math.sqrt(7 / 9)
    assert half == pytest.approx(2.776445 * 0.881917, abs=1e-5)
    assert r.ci_low == pytest.approx(3 - half, rel=1e-12)
    assert r.ci_high == pytest.approx(3 + half, rel=1e-12)
    # the plain t CI uses sd/sqrt(n) = sqrt(0.5)
    pt = _row(table, "paired_t", "kd")
    assert pt.ci_high - pt.effect == pytest.approx(ss.t.ppf(0.975, 4) * math.sqrt(0.5))
    # Cohen's d_z = 3 / sqrt(2.5) on every row of the comparison
    for test in ("paired_t", "corrected_t"):
        assert _row(table, test, "kd").dz == pytest.approx(3 / math.sqrt(2.5))
    # the function on its own, and the ratio from the test fraction
    res = stats.corrected_t_test([1, 2, 3, 4, 5], 0.125)
    assert res["statistic"] == pytest.approx(3.328201177351375)
    assert res["df"] == 4
    other = stats.paired_tests(_runs(), ["baseline"], test_fraction=0.2)
    # n_test/n_train = 0.2/0.8: (1/5 + 1/4) * 2.5 = 9/8 -> t = 3 / sqrt(9/8)
    assert _row(other, "corrected_t", "kd").statistic == pytest.approx(3 / math.sqrt(9 / 8))


def test_holm_matches_statsmodels(table):
    for test in ("paired_t", "corrected_t"):
        for metric in ("accuracy", "f1"):
            fam = table[(table.test == test) & (table.metric == metric)
                        & (table.dimension == "valence") & (table.reference == "baseline")]
            valid = fam[fam.p.notna()]
            assert len(valid) >= 2
            expected = multipletests(valid.p.to_numpy(), method="holm")[1]
            np.testing.assert_allclose(valid.p_holm.to_numpy(), expected, rtol=1e-12)
            assert fam[fam.p.isna()].p_holm.isna().all()


def test_fewer_than_two_seeds_gives_no_row(table):
    # a test that cannot reject at its n is not run: no row of any test for takd (1 paired seed)
    assert not (table.method == "takd").any()


def test_zero_variance_and_all_zero_differences(table):
    # shift: d = [2, 2, 2, 2, 2] -> t undefined (scipy would say t=inf, p=0)
    for test in ("paired_t", "corrected_t"):
        r = _row(table, test, "shift")
        assert math.isnan(r.p) and "zero variance" in r.note
        assert r.effect == pytest.approx(2.0)
        assert math.isnan(r.ci_low) and math.isnan(r.ci_high) and math.isnan(r.dz)
    # copy: d = 0 everywhere -> no test at all
    for test in ("paired_t", "corrected_t"):
        r = _row(table, test, "copy")
        assert math.isnan(r.p) and r.note
        assert math.isnan(r.mde)


def test_failed_runs_excluded_and_counted(table):
    r = _row(table, "corrected_t", "kd")
    assert r.n == 5            # seed 5 of kd failed, so baseline seed 5 has no partner
    assert r.n_failed == 1
    assert "excluded failed runs: method 1, reference 0" in r.note
    assert "without a partner seed dropped: method 0, reference 1" in r.note
    runs = _runs()
    clean = runs[runs.status == "ok"]
    again = stats.paired_tests(clean, ["baseline"])
    for test in ("paired_t", "corrected_t"):
        assert _row(again, test, "kd").p == pytest.approx(_row(table, test, "kd").p, nan_ok=True)
        assert _row(again, test, "kd").n_failed == 0


def test_duplicate_seed_is_an_error():
    runs = _runs()
    runs = pd.concat([runs, runs.iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match="more than once"):
        stats.paired_tests(runs, ["baseline"])


def test_missing_reference_gives_no_rows():
    runs = _runs()
    out = stats.paired_tests(runs, ["teacher"])
    assert out.empty and list(out.columns) == list(stats.STATS_COLUMNS)


def test_significance_marks_follow_the_named_test(table):
    marks = stats.significance_marks(table, alpha=0.05, tests=("corrected_t",))
    key = ("synthetic", "v2e", "valence", "accuracy", "kd", "baseline")
    corrected = _row(table, "corrected_t", "kd").p_holm
    assert marks[key] == ("*" if corrected < 0.05 else "")
    # a comparison with no p is never marked; one whose test was not run is absent
    assert marks[("synthetic", "v2e", "valence", "accuracy", "shift", "baseline")] == ""
    assert ("synthetic", "v2e", "valence", "accuracy", "takd", "baseline") not in marks
    # the marks follow corrected_t only: force a significant paired_t, nothing changes
    forced = table.copy()
    forced.loc[forced.test == "paired_t", "p_holm"] = 0.0
    assert stats.significance_marks(forced, tests=("corrected_t",)) == marks
    forced = table.copy()
    forced.loc[forced.test == "corrected_t", "p_holm"] = 0.001
    assert stats.significance_marks(forced, tests=("corrected_t",))[key] == "*"
    # the default marks come from the method-level test (here the t over seeds: no predictions)
    ml = stats.significance_marks(table)
    assert stats.MARK_TEST == "method_level"
    assert ml[key] == ("*" if _row(table, "method_level", "kd").p_holm < 0.05 else "")
    assert stats.significance_marks(table, tests=(stats.TRIAL_MARK_TEST,)) == {}  # no predictions


def test_write_stats_roundtrip(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    _runs().to_csv(runs_csv, index=False)
    out = tmp_path / "summary" / "stats.csv"
    written = stats.write_stats(runs_csv, out, {"v2e": ["baseline"], "e2o": ["baseline"]},
                                test_fraction=0.1)
    back = pd.read_csv(out)
    assert list(back.columns) == list(stats.STATS_COLUMNS)
    assert len(back) == len(written) == 27
    r = _row(back, "corrected_t", "kd")
    assert r.p == pytest.approx(1 - 9 / math.sqrt(109) * 123 / 109, rel=1e-10)
    assert not list(out.parent.glob(".*tmp*"))


# ----------------------------------------------------------------------------------------------
# Friedman / Nemenyi / CD diagram

BLOCK_ACC = {  # block -> method -> accuracy per seed (two seeds each)
    ("deap", "v2e", "valence"): {"baseline": [0.60, 0.62], "kd": [0.64, 0.66],
                                 "fitnets": [0.61, 0.65], "crd": [0.70, 0.68]},
    ("deap", "v2e", "arousal"): {"baseline": [0.55, 0.57], "kd": [0.58, 0.56],
                                 "fitnets": [0.60, 0.62], "crd": [0.63, 0.61]},
    ("mahnob", "v2e", "valence"): {"baseline": [0.50, 0.52], "kd": [0.57, 0.55],
                                   "fitnets": [0.51, 0.49], "crd": [0.58, 0.60]},
    ("mahnob", "v2e", "arousal"): {"baseline": [0.52, 0.50], "kd": [0.53, 0.55],
                                   "fitnets": [0.56, 0.54], "crd": [0.59, 0.57]},
    ("seed_iv", "e2o", "emotion"): {"baseline": [0.40, 0.44], "kd": [0.45, 0.47],
                                    "fitnets": [0.42, 0.40], "crd": [0.48, 0.46]},
}


def _block_runs() -> pd.DataFrame:
    rows = []
    for (ds, tr, dim), methods in BLOCK_ACC.items():
        for method, values in methods.items():
            for seed, a in enumerate(values):
                rows.append(dict(dataset=ds, track=tr, dimension=dim, method=method, seed=seed,
                                 accuracy=a, f1=a - 0.05, rmse=np.nan, status="ok"))
    # rkd appears in one block only: dropped with a note
    rows.append(dict(dataset="deap", track="v2e", dimension="valence", method="rkd", seed=0,
                     accuracy=0.9, f1=0.9, rmse=np.nan, status="ok"))
    # a failed run that would change the block mean if it were counted
    rows.append(dict(dataset="deap", track="v2e", dimension="valence", method="kd", seed=2,
                     accuracy=0.0, f1=0.0, rmse=np.nan, status="failed"))
    return pd.DataFrame(rows)


def test_friedman_matches_scipy_and_nemenyi_matches_scikit_posthocs():
    summary, nemenyi = stats.friedman_nemenyi(_block_runs(), metric="accuracy")
    methods = ["baseline", "crd", "fitnets", "kd"]
    means = np.array([[np.mean(BLOCK_ACC[b][m]) for m in methods] for b in sorted(BLOCK_ACC)])
    expected = ss.friedmanchisquare(*means.T)
    assert summary["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert summary["p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert summary["n_blocks"] == 5
    assert sorted(summary["methods"]) == methods
    assert summary["dropped_methods"] == ["rkd"] and "rkd" in summary["note"]
    assert summary["n_failed"] == 1
    # average ranks, 1 = best (highest accuracy)
    ranks = ss.rankdata(-means, axis=1).mean(axis=0)
    for m, r in zip(methods, ranks):
        assert summary["ranks"][m] == pytest.approx(r)
    assert summary["ranks"]["crd"] == pytest.approx(1.0)
    direct = sp.posthoc_nemenyi_friedman(pd.DataFrame(means, columns=methods))
    pd.testing.assert_frame_equal(nemenyi.loc[methods, methods], direct.loc[methods, methods],
                                  check_exact=False, rtol=1e-12)


def test_friedman_rmse_ranks_lower_is_better():
    runs = _block_runs()
    runs["rmse"] = 1.0 - runs["accuracy"]
    summary, _ = stats.friedman_nemenyi(runs, metric="rmse")
    assert summary["ranks"]["crd"] == pytest.approx(1.0)


def test_friedman_too_few_blocks_or_methods():
    runs = _block_runs()
    one_block = runs[runs.dataset == "seed_iv"]
    summary, nemenyi = stats.friedman_nemenyi(one_block)
    assert summary["p"] is None and summary["statistic"] is None and nemenyi.empty
    assert "at least 2 blocks" in summary["note"]
    two_methods = runs[runs.method.isin(["kd", "crd"])]
    summary, nemenyi = stats.friedman_nemenyi(two_methods)
    assert summary["p"] is None and "3 methods" in summary["note"] and nemenyi.empty


def test_cd_diagram_written_and_not_blank(tmp_path):
    import matplotlib.image as mpimg

    summary, nemenyi = stats.friedman_nemenyi(_block_runs(), metric="accuracy")
    png, svg = tmp_path / "cd.png", tmp_path / "cd.svg"
    stats.critical_difference_diagram(summary["ranks"], nemenyi, png, svg, "accuracy, all cells")
    img = mpimg.imread(png)
    assert img.ndim == 3 and float(np.var(img)) > 0
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    # nothing to draw still writes both files, saying so
    png2, svg2 = tmp_path / "none.png", tmp_path / "none.svg"
    stats.critical_difference_diagram({"kd": 1.0}, pd.DataFrame(), png2, svg2, "too few")
    assert float(np.var(mpimg.imread(png2))) > 0 and svg2.exists()


# ----------------------------------------------------------------------------------------------
# small functions by hand, limits and argument checks


def test_smallest_p_limits_and_tarone_default_alpha():
    assert stats.smallest_p("wilcoxon", 0) == 1.0 and stats.smallest_p("trial_permutation", 0) == 1.0
    assert stats.smallest_p("wilcoxon", 1) == 1.0
    assert stats.smallest_p("trial_permutation", 13) == 2 / 2 ** 13  # enumerated: 8192 <= 10000
    assert stats.smallest_p("trial_permutation", 15) == 1 / 10000    # sampled: 9999 sign flips by default
    assert stats.smallest_p("trial_permutation", 4, n_permutations=15) == 2 / 16
    with pytest.raises(ValueError, match="unknown test 'ttest'"):
        stats.smallest_p("ttest", 5)
    assert stats.tarone_size([0.01]) == 1 and stats.tarone_size([]) == 1
    # K = 1 admits 3 > 1; K = 2 admits only 0.001 (< 0.025): 2 (at alpha 0.05, the default)
    assert stats.tarone_size([0.001, 0.04, 0.04]) == 2
    # p_min exactly at alpha / K does not count (it cannot be below it)
    assert stats.tarone_size([0.05, 0.05]) == 1


def test_zero_variance_is_relative_and_inclusive():
    assert stats._zero_variance(np.array([0.0, 1e-12]))            # ptp == 1e-12 * max(1, |d|): zero
    assert not stats._zero_variance(np.array([0.0, 1.5e-12]))
    assert stats._zero_variance(np.array([1e6, 1e6 + 1e-7]))       # 1e-12 relative to 1e6
    assert not stats._zero_variance(np.array([1e6, 1e6 + 1e-5]))


def test_corrected_t_test_limits():
    r = stats.corrected_t_test([1.0, 3.0], 0.125)  # n = 2 suffices: mean 2, var 2
    assert r["statistic"] == pytest.approx(2 / math.sqrt((0.5 + 0.125) * 2)) and r["df"] == 1
    with pytest.raises(ValueError, match="at least 2 differences"):
        stats.corrected_t_test([1.0], 0.125)
    with pytest.raises(ValueError, match="zero variance"):  # a variance of rounding noise only
        stats.corrected_t_test([1.0, 1.0 + 1e-15, 1.0], 0.125)


def test_mde_limits_and_default_ratio():
    base = stats.minimum_detectable_difference(2.0, 5, 0.05)
    assert base == stats.minimum_detectable_difference(2.0, 5, 0.05, ratio=0.0)
    assert stats.minimum_detectable_difference(2.0, 5, 0.05, ratio=0.25) == pytest.approx(base * math.sqrt(1 + 5 * 0.25))
    assert math.isfinite(stats.minimum_detectable_difference(2.0, 2, 0.05))
    for sd, n in ((2.0, 1), (0.0, 5), (math.inf, 5), (math.nan, 5)):
        assert math.isnan(stats.minimum_detectable_difference(sd, n, 0.05)), (sd, n)


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, 1.5, -0.1])
def test_split_fractions_must_lie_in_the_open_unit_interval(test_fraction):
    with pytest.raises(DataError, match=r"split fractions must lie in \(0, 1\)"):
        stats.paired_tests(_runs(), ["baseline"], test_fraction=test_fraction)


def test_missing_columns_are_named():
    runs = _runs().drop(columns="seed")
    with pytest.raises(DataError, match=r"lacks column\(s\) \['seed'\]"):
        stats.paired_tests(runs, ["baseline"])
    with pytest.raises(DataError, match=r"lacks column\(s\) \['f1_macro'\]"):
        stats.friedman_nemenyi(_block_runs(), metric="f1_macro")


def test_sign_flip_counts_exact_ties_and_its_defaults():
    """Ties in exact arithmetic count although the float sums differ in the last bit: the p-value
    equals the enumeration in fractions. d = [100/3, 200/3, -100, 400/3] (percentage points)."""
    from fractions import Fraction
    from itertools import product

    d = [Fraction(100, 3), Fraction(200, 3), Fraction(-100), Fraction(400, 3)]
    t = sum(d) / 4
    want = Fraction(sum(abs(sum(s * x for s, x in zip(signs, d)) / 4) >= abs(t)
                        for signs in product((1, -1), repeat=4)), 16)
    assert want == Fraction(5, 8)
    r = stats.sign_flip_test([float(x) for x in d])
    assert r["exact"] and r["p"] == float(want)
    # the enumeration runs while 2^n <= n_permutations + 1, sampling beyond
    assert stats.sign_flip_test([1, 2, 3, 4], n_permutations=15)["exact"]
    assert not stats.sign_flip_test([1, 2, 3, 4], n_permutations=14)["exact"]
    with pytest.raises(ValueError, match="at least one unit"):
        stats.sign_flip_test([])
    assert stats.sign_flip_test([3.0]) == {"statistic": 3.0, "p": 1.0, "exact": True}


def test_sign_flip_sampled_p_by_its_definition():
    """Sampled: p = (1 + #{|T*| >= |T|}) / (n_permutations + 1), n_permutations draws in batches."""
    zero = stats.sign_flip_test(np.zeros(20), n_permutations=4500)  # every draw ties: p = 1
    assert zero["p"] == 1.0 and zero["exact"] is False
    strong = stats.sign_flip_test(np.ones(20) * 5.0, n_permutations=4500)  # only all-plus or all-minus reach T
    assert strong["p"] == 1 / 4501
    d = np.array([3.0, -1.0, 2.0, 0.5, 1.5, -0.5, 2.5, 1.0, -2.0, 0.7, 1.2, 0.3, -0.4, 1.1])
    exact = stats.sign_flip_test(d)  # 2^14 = 16384 > 10000: sampled, close to the enumeration
    enum = stats.sign_flip_test(d, n_permutations=2 ** 14)
    assert not exact["exact"] and enum["exact"] and abs(exact["p"] - enum["p"]) < 0.01
    assert stats.sign_flip_test(d) == stats.sign_flip_test(d, seed=0)  # the default seed is 0
    assert stats.sign_flip_test(d)["p"] != stats.sign_flip_test(d, seed=1)["p"]


def _pred(method, seed, index, subject, trial, correct):
    return pd.DataFrame({"dataset": "syn", "track": "t", "dimension": "arousal", "method": method, "seed": seed,
                         "index": index, "subject": subject, "trial": trial, "correct": np.asarray(correct, float)})


def test_trial_row_by_hand():
    """Two seeds with disjoint test segments; per trial the mean difference in correctness (in
    points), weighted by segments; the CI is the percentile bootstrap over trials (2000 draws of
    numpy's generator seeded 0)."""
    # seed 0: trials (0, 0) segments 0, 1 and (0, 1) segment 2; seed 1: trial (1, 0) segments 3, 4
    m = pd.concat([_pred("kd", 0, [0, 1, 2], [0, 0, 0], [0, 0, 1], [1, 1, 1]),
                   _pred("kd", 1, [3, 4], [1, 1], [0, 0], [1, 0])])
    r = pd.concat([_pred("base", 0, [0, 1, 2], [0, 0, 0], [0, 0, 1], [0, 1, 0]),
                   _pred("base", 1, [3, 4], [1, 1], [0, 0], [0, 0])])
    row, why = stats._trial_row(m, r, "correct", 100.0, 9999)
    assert why == ""
    d, w = np.array([50.0, 100.0, 50.0]), np.array([2.0, 1.0, 2.0])  # trials (0,0), (0,1), (1,0)
    assert row["n"] == 3 and row["effect"] == pytest.approx(300 / 5)
    assert row["_sd"] == pytest.approx(np.std(d, ddof=1)) and row["dz"] == pytest.approx(60 / np.std(d, ddof=1))
    enum = stats.sign_flip_test(d, w)
    assert row["p"] == enum["p"] and row["statistic"] == pytest.approx(60.0)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 3, size=(2000, 3))
    boot = (w[idx] * d[idx]).sum(axis=1) / w[idx].sum(axis=1)
    assert (row["ci_low"], row["ci_high"]) == tuple(float(x) for x in np.quantile(boot, [0.025, 0.975]))
    assert row["note"] == "3 test trials, 5 segment predictions pooled over 2 seed(s); exact"
    # one unit: no standard deviation; equal correctness everywhere: no test
    one, _ = stats._trial_row(m[m.seed == 1], r[r.seed == 1], "correct", 100.0, 9999)
    assert one["n"] == 1 and math.isnan(one["_sd"]) and math.isnan(one["dz"])
    same, _ = stats._trial_row(m, m.assign(method="base"), "correct", 100.0, 9999)
    assert math.isnan(same["p"]) and "equally right on every test trial" in same["note"]
    # two units: a standard deviation; points scale 1: dz also for a standard deviation below 1
    two, _ = stats._trial_row(m[m.seed == 0], r[r.seed == 0], "correct", 100.0, 9999)
    assert two["n"] == 2 and two["_sd"] == pytest.approx(np.std([50.0, 100.0], ddof=1))
    small, _ = stats._trial_row(m, r, "correct", 1.0, 9999)
    assert small["_sd"] == pytest.approx(np.std([0.5, 1.0, 0.5], ddof=1)) and small["_sd"] < 1
    assert small["dz"] == pytest.approx(0.6 / small["_sd"])
    # the method tested on a subset of the reference's segments: paired on those
    sub, why = stats._trial_row(m[m["index"] != 1], r, "correct", 100.0, 9999)
    assert why == "" and sub["n"] == 3 and sub["effect"] == pytest.approx((100 + 100 + 2 * 50) / 4)
    # no seed in common: nothing to pair
    none, why = stats._trial_row(m[m.seed == 0], r[r.seed == 1], "correct", 100.0, 9999)
    assert none is None and why == "no common test segments"
    # a seed whose test segments differ (neither set contains the other): no row
    other = r.assign(index=r["index"].where(r.seed == 0, r["index"] + 100))
    none, why = stats._trial_row(m, other, "correct", 100.0, 9999)
    assert none is None and why.startswith("seed 1: ")


def test_two_seeds_suffice_for_the_seed_tests_and_a_failed_reference_is_counted():
    runs = _runs()
    two = runs[(runs.seed < 2) & runs.method.isin(["baseline", "kd", "fitnets"]) & (runs.dimension == "valence")]
    t = stats.paired_tests(two, ["baseline"], metrics=("accuracy",))
    r = t[(t.test == "paired_t") & (t.method == "fitnets")].iloc[0]  # d = [2, -1]
    assert r.n == 2 and r.p == pytest.approx(ss.ttest_rel([12.0, 19.0], [10.0, 20.0]).pvalue)
    # the reference failed on a seed the method has: counted for the method's comparisons
    runs = pd.concat([two, pd.DataFrame([dict(dataset="synthetic", track="v2e", dimension="valence",
                                              method="baseline", seed=2, accuracy=np.nan, f1=np.nan,
                                              rmse=np.nan, status="failed"),
                                         dict(dataset="synthetic", track="v2e", dimension="valence",
                                              method="kd", seed=2, accuracy=30.0, f1=0.5, rmse=np.nan,
                                              status="ok")])], ignore_index=True)
    t = stats.paired_tests(runs, ["baseline"], metrics=("accuracy",))
    r = t[(t.test == "paired_t") & (t.method == "kd")].iloc[0]
    assert r.n_failed == 1 and "excluded failed runs: method 0, reference 1" in r.note
    assert "without a partner seed dropped: method 1, reference 0" in r.note


def test_runs_without_status_all_enter():
    runs = _runs()
    ok = runs[runs.status == "ok"]
    a = stats.paired_tests(ok, ["baseline"])
    b = stats.paired_tests(ok.drop(columns="status"), ["baseline"])
    pd.testing.assert_frame_equal(a, b)
    assert stats.friedman_nemenyi(_block_runs().query("status == 'ok'").drop(columns="status"))[0]["n_failed"] == 0


def test_a_test_whose_smallest_p_equals_the_level_is_not_run():
    """Wilcoxon with 5 seeds can reach 2/32 = 0.0625 at best: at alpha = 0.0625 it cannot be below
    alpha, so it has no row; at 0.07 it has."""
    runs = _runs()
    runs = runs[runs.method.isin(["baseline", "kd"]) & (runs.dimension == "valence") & (runs.status == "ok")]
    at = stats.paired_tests(runs, ["baseline"], metrics=("accuracy",), alpha=0.0625)
    above = stats.paired_tests(runs, ["baseline"], metrics=("accuracy",), alpha=0.07)
    assert "wilcoxon" not in set(at.test) and "wilcoxon" in set(above.test)


def test_wilcoxon_counts_zero_differences_and_says_so():
    rows = []
    for s in range(8):
        rows += [dict(dataset="d", track="t", dimension="a", method="base", seed=s, accuracy=50.0, status="ok"),
                 dict(dataset="d", track="t", dimension="a", method="m", seed=s, accuracy=50.0 + 2.0 * s,
                      status="ok")]  # d = 0, 2, 4, ...: one zero
    t = stats.paired_tests(pd.DataFrame(rows), ["base"], metrics=("accuracy",))
    w = t[t.test == "wilcoxon"].iloc[0]
    assert w.n == 7 and "1 zero difference(s) dropped" in w.note
    full = stats.paired_tests(pd.DataFrame(rows).assign(accuracy=lambda f: f.accuracy + (f.method == "m")),
                              ["base"], metrics=("accuracy",))
    w = full[full.test == "wilcoxon"].iloc[0]
    assert w.n == 8 and "dropped" not in w.note


def test_table_family_rescales_the_mde_of_two_seed_rows():
    from statsmodels.stats.power import TTestPower

    base = dict(dataset="d", track="t", dimension="a", metric="accuracy", reference="base", test="paired_t")
    df = pd.DataFrame([dict(base, method="m1", p=0.01, mde=4.0, n=2, alpha_family=0.05),
                       dict(base, method="m2", p=0.04, mde=3.0, n=5, alpha_family=0.05)])
    out = stats.table_family(df, "d", "t", "a", "accuracy", "base", ["m1", "m2"], "paired_t")  # alpha 0.05
    assert out["k"] == 2 and out["alpha"] == 0.025
    es = lambda n, a: TTestPower().solve_power(nobs=n, alpha=a, power=0.8, alternative="two-sided")
    assert out["mde"]["m1"] == pytest.approx(4.0 * es(2, 0.025) / es(2, 0.05))
    assert out["mde"]["m2"] == pytest.approx(3.0 * es(5, 0.025) / es(5, 0.05))
    assert out["p_holm"] == pytest.approx({"m1": 0.02, "m2": 0.04})


def test_friedman_edges_two_blocks_ties_and_no_runs():
    runs = _block_runs()
    two = runs[(runs.dataset == "deap") & runs.method.isin(["baseline", "kd", "crd"])]
    s, nem = stats.friedman_nemenyi(two)  # 2 blocks and 3 methods suffice
    assert s["p"] is not None and s["n_blocks"] == 2 and not nem.empty
    assert "1 failed run(s) excluded" in s["note"]
    tied = two.assign(accuracy=0.5)
    s, nem = stats.friedman_nemenyi(tied)
    assert s["p"] is None and "all methods tied in every block" in s["note"] and nem.empty
    s, nem = stats.friedman_nemenyi(runs.assign(status="failed"))
    assert s["n_blocks"] == 0 and s["p"] is None and "no ok runs with a value for accuracy" in s["note"]
    assert nem.empty
    # F1 is higher-is-better too; so is a metric the table does not know
    s, _ = stats.friedman_nemenyi(runs, metric="f1")
    assert s["ranks"]["crd"] == pytest.approx(1.0)
    s, _ = stats.friedman_nemenyi(runs.assign(score=runs.accuracy), metric="score")
    assert s["ranks"]["crd"] == pytest.approx(1.0)


def test_nemenyi_critical_difference_needs_two_methods_and_a_block():
    for k, n in ((1, 5), (3, 0)):
        with pytest.raises(ValueError, match="needs k >= 2 methods and N >= 1 blocks"):
            stats.nemenyi_critical_difference(k, n)


def test_load_run_details_reads_only_complete_classification_predictions(tmp_path):
    import json

    def run(name, task="classification", files=None, metrics=None):
        d = tmp_path / name
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps(metrics or {"task": task}))
        if files is not None:
            np.savez(d / "features.npz", **files)
        return dict(dataset="d", track="t", dimension="a", method=name, seed=0, status="ok", path=str(d))

    five = dict(logits=np.array([[2.0, 0.0], [0.0, 1.0]]), y=np.array([0, 0]), index=np.array([4, 5]),
                subject=np.array([1, 1]), trial=np.array([2, 3]))
    runs = pd.DataFrame([run("exact_keys", files=five),
                         run("regression", task="regression", files=five),
                         run("flat_logits", files=dict(five, logits=np.array([1.0, 0.0]))),
                         run("no_features")])
    folds, pred = stats.load_run_details(runs)
    assert folds.empty and set(pred.method) == {"exact_keys"}
    assert pred.correct.tolist() == [1.0, 0.0] and pred["index"].tolist() == [4, 5]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        stats.load_run_details(pd.DataFrame([dict(dataset="d", track="t", dimension="a", method="x", seed=0,
                                                  status="ok", path=str(bad))]))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{}")
    (broken / "features.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read predictions"):
        stats.load_run_details(pd.DataFrame([dict(dataset="d", track="t", dimension="a", method="x", seed=0,
                                                  status="ok", path=str(broken))]))


def test_write_stats_names_an_unreadable_or_incomplete_run_table(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="cannot read run table"):
        stats.write_stats(empty, tmp_path / "s.csv", {"v2e": ["baseline"]}, 0.1)
    no_dataset = tmp_path / "no_dataset.csv"
    _runs().drop(columns="dataset").to_csv(no_dataset, index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['dataset'\]"):
        stats.write_stats(no_dataset, tmp_path / "s.csv", {"v2e": ["baseline"]}, 0.1)


def test_trial_bootstrap_over_many_trials_by_hand():
    """The CI over 10 trials listed out of order: units in (subject, trial) order, 2000 bootstrap
    draws of the generator seeded 0, percentiles 2.5 and 97.5."""
    rng = np.random.default_rng(3)
    trials = [(s, t) for s in (2, 0, 1) for t in (4, 1, 3)] + [(0, 0)]
    rows_m, rows_r, idx = [], [], 0
    for s, t in trials:
        k = int(rng.integers(1, 4))  # 1-3 segments per trial
        cm, cr = rng.integers(0, 2, k), rng.integers(0, 2, k)
        rows_m.append(_pred("kd", 0, range(idx, idx + k), [s] * k, [t] * k, cm))
        rows_r.append(_pred("base", 0, range(idx, idx + k), [s] * k, [t] * k, cr))
        idx += k
    m, r = pd.concat(rows_m), pd.concat(rows_r)
    row, _ = stats._trial_row(m, r, "correct", 100.0, 9999)
    j = m.merge(r, on=["seed", "index"], suffixes=("_m", "_r"))
    j["d"] = (j.correct_m - j.correct_r) * 100.0
    units = sorted(trials)
    d = np.array([j[(j.subject_m == s) & (j.trial_m == t)].d.mean() for s, t in units])
    w = np.array([float(((j.subject_m == s) & (j.trial_m == t)).sum()) for s, t in units])
    boot_idx = np.random.default_rng(0).integers(0, 10, size=(2000, 10))
    boot = (w[boot_idx] * d[boot_idx]).sum(axis=1) / w[boot_idx].sum(axis=1)
    assert (row["ci_low"], row["ci_high"]) == tuple(float(x) for x in np.quantile(boot, [0.025, 0.975]))


def test_paired_tests_report_the_trial_level_effect_in_points():
    """8 one-segment trials (the test can reach 2/256): kd right on all, base on 3: +62.5 points."""
    base_correct = [1, 0, 1, 0, 0, 0, 1, 0]
    m = _pred("kd", 0, range(8), [0] * 8, range(8), [1] * 8)
    r = _pred("base", 0, range(8), [0] * 8, range(8), base_correct)
    runs = pd.DataFrame([dict(dataset="syn", track="t", dimension="arousal", method="kd", seed=0, accuracy=100.0,
                              status="ok"),
                         dict(dataset="syn", track="t", dimension="arousal", method="base", seed=0, accuracy=37.5,
                              status="ok")])
    t = stats.paired_tests(runs, ["base"], metrics=("accuracy",), predictions=pd.concat([m, r]))
    row = t[t.test == "trial_permutation"].iloc[0]
    assert row.effect == pytest.approx(62.5) and row.n == 8


def test_no_partner_seed_gives_no_seed_level_row():
    runs = pd.DataFrame([dict(dataset="d", track="t", dimension="a", method=mm, seed=s, accuracy=50.0 + s,
                              status="ok") for mm, seeds in (("m", (0, 1, 2)), ("base", (3, 4, 5))) for s in seeds])
    t = stats.paired_tests(runs, ["base"], metrics=("accuracy",))
    assert t.empty


def test_holm_adjust_equals_statsmodels():
    """The project's Holm (no garbage collection per call) gives statsmodels' numbers, ties and caps included."""
    from cmkd.analysis.stats.family import holm_adjust

    rng = np.random.default_rng(3)
    for p in ([0.01, 0.04, 0.03, 0.2], [0.01, 0.01, 0.5, 0.9, 0.9], rng.uniform(0, 0.2, 17), [0.7]):
        np.testing.assert_allclose(holm_adjust(p), multipletests(np.asarray(p), method="holm")[1], rtol=0, atol=1e-15)
