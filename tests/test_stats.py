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
    return stats.paired_tests(_runs(), ["baseline"], test_fraction=0.1, train_fraction=0.8)


def test_columns_and_shape(table):
    assert list(table.columns[: len(REQUIRED)]) == REQUIRED
    assert list(table.columns) == list(stats.STATS_COLUMNS)
    # valence: 4 methods x {accuracy, f1} x 2 t-tests; valence_reg: 1 method x rmse x 2 t-tests.
    # No Wilcoxon rows: with 5 seeds its smallest two-sided p is 2/2^5 = 0.0625 >= 0.05; no takd
    # rows: 1 paired seed
    assert len(table) == 4 * 2 * 2 + 1 * 1 * 2
    assert set(table.test) == {"paired_t", "corrected_t"}
    assert not (table.method == table.reference).any()
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
    # d = kd - baseline = [1, 2, 3, 4, 5], n = 5, n_test/n_train = 0.1/0.8 = 0.125
    # mean(d) = 3; var(d, ddof=1) = (4 + 1 + 0 + 1 + 4) / 4 = 2.5
    # corrected variance of the mean = (1/5 + 0.125) * 2.5 = 0.325 * 2.5 = 0.8125
    # t = 3 / sqrt(0.8125) = 3 / 0.90138781886... = 3.32820117735...  (t^2 = 144/13)
    # df = 4; with 4 df the two-sided p has a closed form: sin(a) = t / sqrt(4 + t^2) = 6/7,
    # cos^2(a) = 13/49, p = 1 - sin(a) * (1 + cos^2(a)/2) = 1 - (6/7)(111/98) = 10/343
    #   = 0.0291545189...
    # (the plain paired t would be 3 / sqrt(2.5/5) = 4.2426..., p = 0.0132...: the correction
    # widens the standard error by sqrt(0.325/0.2) = 1.2748)
    r = _row(table, "corrected_t", "kd")
    assert r.statistic == pytest.approx(3.328201177351375, rel=1e-12)
    assert r.statistic == pytest.approx(3 / math.sqrt(0.8125), rel=1e-12)
    assert r.p == pytest.approx(10 / 343, rel=1e-10)
    assert r.n == 5
    assert r.effect == pytest.approx(3.0)
    # 95 % CI: 3 -+ t_{0.975, 4} * sqrt(0.8125) = 3 -+ 2.776445 * 0.901388 = 3 -+ 2.502654
    half = ss.t.ppf(0.975, 4) * math.sqrt(0.8125)
    assert half == pytest.approx(2.502654, abs=1e-6)
    assert r.ci_low == pytest.approx(3 - half, rel=1e-12)
    assert r.ci_high == pytest.approx(3 + half, rel=1e-12)
    # the plain t CI uses sd/sqrt(n) = sqrt(0.5)
    pt = _row(table, "paired_t", "kd")
    assert pt.ci_high - pt.effect == pytest.approx(ss.t.ppf(0.975, 4) * math.sqrt(0.5))
    # Cohen's d_z = 3 / sqrt(2.5) on every row of the comparison
    for test in ("paired_t", "corrected_t"):
        assert _row(table, test, "kd").dz == pytest.approx(3 / math.sqrt(2.5))
    # the function on its own, and the ratio from the split fractions
    res = stats.corrected_t_test([1, 2, 3, 4, 5], 0.125)
    assert res["statistic"] == pytest.approx(3.328201177351375)
    assert res["df"] == 4
    other = stats.paired_tests(_runs(), ["baseline"], test_fraction=0.2, train_fraction=0.6)
    # (1/5 + 1/3) * 2.5 = 4/3 -> t = 3 / sqrt(4/3)
    assert _row(other, "corrected_t", "kd").statistic == pytest.approx(3 / math.sqrt(4 / 3))


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
    # the default marks come from the trial-level test, absent here (no predictions)
    assert stats.significance_marks(table) == {}


def test_write_stats_roundtrip(tmp_path):
    runs_csv = tmp_path / "runs.csv"
    _runs().to_csv(runs_csv, index=False)
    out = tmp_path / "summary" / "stats.csv"
    written = stats.write_stats(runs_csv, out, {"v2e": ["baseline"], "e2o": ["baseline"]},
                                test_fraction=0.1, train_fraction=0.8)
    back = pd.read_csv(out)
    assert list(back.columns) == list(stats.STATS_COLUMNS)
    assert len(back) == len(written) == 18
    r = _row(back, "corrected_t", "kd")
    assert r.p == pytest.approx(10 / 343, rel=1e-10)
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
