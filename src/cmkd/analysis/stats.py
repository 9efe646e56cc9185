"""Statistics of the benchmark: paired tests per cell, Friedman/Nemenyi across cells.

Input is the run table ``results/summary/runs.csv``: one row per run with the columns
``dataset, track, dimension, method, seed, accuracy, f1, rmse, status``. Only runs with
``status == "ok"`` enter a test; every other run (``"failed"``) is excluded but counted
(column ``n_failed`` of :func:`paired_tests`, ``n_failed`` of :func:`friedman_nemenyi`).

Paired tests (:func:`paired_tests`)
    Within one ``dataset x track x dimension`` cell, every method is compared with every
    reference method of that cell.

    * ``method_level`` -- the headline: is the method better than the reference? Its units are
      the training runs (seed x fold, both methods on the same split) and, for accuracy, their
      test trials; its null holds run-to-run and trial-to-trial variance
      (:func:`method_level_test`: moments of the crossed random-effects model, Welch-Satterthwaite
      df). Calibrated by simulation in the test suite (family-wise error after Holm, power at its
      MDE).

    Seed-level tests pair runs by seed (inner join on ``seed``) and answer the
    training-variability question (would another training run give the same difference?):

    * ``paired_t``    -- :func:`scipy.stats.ttest_rel` over seeds; the test of a fixed split
      (:data:`FIXED_SPLIT_KINDS`, or one split hash for every seed: no resampling, so no
      correction applies);
    * ``corrected_t`` -- resampled holdout splits: the corrected resampled t-test of Nadeau &
      Bengio (2003, Machine Learning 52:239-281): ``t = mean(d) / sqrt((1/n + n_test/n_train) *
      var(d, ddof=1))``, ``df = n - 1``, over the seeds whose method and reference runs share the
      split (equal split hash); ``n_test/n_train`` per cell from the splits that ran, with
      ``n_train`` = all non-test data (training + validation part); from the config's test
      fraction only for runs that recorded no split;
    * ``corrected_kfold_t`` -- cross-validated runs (``split.kind`` kfold/loso): the corrected
      repeated k-fold t-test of Bouckaert & Frank (2004, PAKDD, LNCS 3056:3-12), the same
      formula over the ``r x k`` (seed, fold) differences of the folds that ran the same split
      (equal split hash per fold: a fold number alone pairs nothing), ``n_test/n_train`` from
      those folds' segment counts (``1/(k-1)``), ``df = r k - 1``; it replaces ``corrected_t``
      there;
    * ``wilcoxon``    -- :func:`scipy.stats.wilcoxon` over seeds, two-sided.

    The trial-level test answers whether these trained models differ on these test trials
    (``trial_permutation``): it pairs the two methods' predictions on the test segments both saw
    in the same seed (``features.npz``), averages the difference in correctness per trial
    (segments pooled over seeds) and runs a paired sign-flip permutation test over trials
    (:func:`sign_flip_test`); its CI is a percentile bootstrap over trials. Run-to-run variance
    is not in its null: it is never the headline. Accuracy only.

    A test that cannot reach alpha at its n is not run and has no row: :func:`smallest_p`
    gives the smallest p a test can return (Wilcoxon with 3 seeds: 0.25), and Tarone's family
    size (:func:`tarone_size`) keeps only comparisons that can reach ``alpha/K``. ``mde`` is the
    minimum detectable difference at ``alpha_family`` with 80 % power
    (:func:`minimum_detectable_difference`, statsmodels' ``TTestPower``; for the method-level
    test :func:`detectable_difference` of its standard error and df).

    ``effect`` is the mean paired difference ``method - reference`` (so for ``rmse`` a
    negative effect means the method is better); ``ci_low``/``ci_high`` is its 95 % CI (t
    distribution, corrected standard error on the corrected rows). ``dz`` is Cohen's d_z.
    ``p_holm`` is Holm's step-down adjustment
    (:func:`statsmodels.stats.multitest.multipletests`, ``method="holm"``) over one family
    (column ``family``, :data:`FAMILY`): the comparisons of all methods with one reference, for
    one cell, metric and test. Rows without a p-value (zero variance) are not part of the family
    and say why in ``note``: no p-value is ever made up.

Significance marks (:func:`significance_marks`) use ``p_holm`` of the method-level test
(:data:`MARK_TEST`) for the headline mark; the tables add the corrected test's
(:data:`SEED_MARK_TESTS`) and the trial-level test's (:data:`TRIAL_MARK_TEST`) marks beside it
(:func:`cmkd.analysis.tables.add_power`).

Across cells (:func:`friedman_nemenyi`)
    Each ``dataset x track x dimension`` cell is a block (mean over seeds); the Friedman test
    (:func:`scipy.stats.friedmanchisquare`) asks whether the methods differ at all, the
    Nemenyi test (:func:`scikit_posthocs.posthoc_nemenyi_friedman`) gives pairwise p-values, and
    :func:`critical_difference_diagram` draws them (:func:`scikit_posthocs.critical_difference_diagram`);
    :func:`nemenyi_critical_difference` gives the critical difference from the studentized range.
    Only like networks are ranked together, and only over at least :data:`MIN_CD_BLOCKS` blocks
    (:func:`cmkd.analysis.plots.cd_diagram`).
    Average ranks are 1 for the best method (highest accuracy/F1, lowest RMSE).
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as ss

from cmkd.atomic import read_json
from cmkd.data.protocols import PROTOCOL_KINDS
from cmkd.errors import DataError

#: Columns of the table :func:`paired_tests` returns, in order (the last ones are extras).
STATS_COLUMNS = (
    "dataset", "track", "dimension", "metric", "method", "reference", "test",
    "statistic", "p", "p_holm", "effect", "ci_low", "ci_high", "n", "note",
    "dz", "n_failed", "alpha_family", "mde", "question", "df", "family",
)
#: The tests of :func:`paired_tests`, in the order their rows appear.
TESTS = ("method_level", "paired_t", "corrected_t", "corrected_kfold_t", "wilcoxon", "trial_permutation")
#: What each test asks (column ``question`` of stats.csv; the report prints it).
QUESTIONS = {
    "method_level": "methods: is one training procedure better than the other? (training runs = seed x fold as "
                    "units; run-to-run and trial-to-trial variance in the null)",
    "paired_t": "seeds: would another training run (seed) give the same difference? (seeds as independent)",
    "corrected_t": "seeds: would another training run and split give the same difference? "
                   "(Nadeau-Bengio correction for overlapping training sets)",
    "corrected_kfold_t": "folds x repetitions: would another training run give the same difference? "
                         "(Bouckaert-Frank corrected repeated k-fold t-test)",
    "wilcoxon": "seeds: signed-rank version of the seed question",
    "trial_permutation": "test trials: do the trained models differ on these test trials? "
                         "(test sampling; training variability held fixed)",
}
#: Which direction is better per metric (used for ranks; effects keep the raw sign).
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "rmse": False}
#: The test whose Holm-adjusted p-value decides the main (headline) significance marks: the
#: method-level test (:func:`method_level_test`; training runs as units, run and trial variance in
#: the null). :data:`TRIAL_MARK_TEST` gives the trial-level mark ("these trained models differ on
#: these trials"), :data:`SEED_MARK_TESTS` the corrected resampled t-tests.
MARK_TEST = "method_level"
TRIAL_MARK_TEST = "trial_permutation"
SEED_MARK_TESTS = ("corrected_kfold_t", "corrected_t")
#: Split kinds that do not depend on the seed (no resampling of the training set): the
#: Nadeau-Bengio correction does not apply there (cmkd.data.protocols.PROTOCOL_KINDS).
FIXED_SPLIT_KINDS = PROTOCOL_KINDS
#: The Holm family of every test, as the reports name it.
FAMILY = "all methods against one reference in one dataset x track x dimension cell, for one metric and test"
#: Power at which the minimum detectable difference is given.
POWER = 0.8
#: Sign flips of the trial-level permutation test (exact enumeration when 2^n is not larger).
N_PERMUTATIONS = 9999
N_BOOTSTRAP = 2000

_KEY = ("dataset", "track", "dimension")
_REQUIRED = ("dataset", "track", "dimension", "method", "seed")
_CONFIDENCE = 0.95


# ----------------------------------------------------------------------------------------------
# helpers


def _check_columns(runs: pd.DataFrame, needed: Iterable[str]) -> None:
    missing = [c for c in needed if c not in runs.columns]
    if missing:
        raise DataError(f"run table lacks column(s) {missing}; it has {list(runs.columns)}")


def _is_ok(runs: pd.DataFrame) -> pd.Series:
    """True for runs that enter the tests: ``status == "ok"`` (all runs when no status column)."""
    if "status" not in runs.columns:
        return pd.Series(True, index=runs.index)
    return runs["status"].astype(str).str.strip().str.lower().eq("ok")


def _split_ratio(test_fraction: float) -> float:
    """``n_test / n_train`` of a holdout split from its test fraction, with ``n_train`` = all the
    non-test data (training and validation part): the data a model of the split was fitted and
    selected on, which is what overlaps between two resamples (Nadeau & Bengio 2003, section 4)."""
    test_fraction = float(test_fraction)
    if not (0 < test_fraction < 1):
        raise DataError(f"split fractions must lie in (0, 1): test_fraction={test_fraction}")
    return test_fraction / (1.0 - test_fraction)


def _zero_variance(d: np.ndarray) -> bool:
    """True when all differences are equal (up to floating-point noise)."""
    scale = max(1.0, float(np.max(np.abs(d))))
    return float(np.ptp(d)) <= 1e-12 * scale


def _seed_values(frame: pd.DataFrame, metric: str, where: str) -> pd.Series:
    """The metric of one method in one cell, indexed by seed, NaNs dropped."""
    dup = frame["seed"][frame["seed"].duplicated()]
    if len(dup):
        raise DataError(f"{where}: seed(s) {sorted(dup.unique().tolist())} appear more than once")
    return frame.set_index("seed")[metric].astype(float).dropna()


def _t_ci(mean: float, se: float, df: int) -> tuple[float, float]:
    half = ss.t.ppf(0.5 + _CONFIDENCE / 2, df) * se
    return mean - half, mean + half


def corrected_t_test(d: Sequence[float], test_train_ratio: float) -> dict:
    """Nadeau & Bengio (2003) corrected resampled t-test of paired differences ``d``.

    ``t = mean(d) / sqrt((1/n + n_test/n_train) * var(d, ddof=1))`` with ``n - 1`` degrees of
    freedom; two-sided p. Returns ``statistic, p, se, df`` (``se`` is the corrected standard
    error of the mean). Needs ``n >= 2`` and ``var(d) > 0``; raises :class:`ValueError` otherwise.
    """
    d = np.asarray(d, dtype=float)
    n = d.size
    if n < 2:
        raise ValueError("corrected t-test needs at least 2 differences")
    var = float(np.var(d, ddof=1))
    if var <= 0 or _zero_variance(d):
        raise ValueError("corrected t-test is undefined for differences of zero variance")
    se = math.sqrt((1.0 / n + float(test_train_ratio)) * var)
    t = float(np.mean(d)) / se
    df = n - 1
    p = float(2.0 * ss.t.sf(abs(t), df))
    return {"statistic": t, "p": p, "se": se, "df": df}


def method_level_test(d: Sequence[float], run: Sequence, trial: Sequence | None = None) -> dict:
    """Method-level test of paired differences ``d`` (method - reference), one per training run and
    test trial: the two-stage (runs, then trials) t-test of the benchmark's headline mark.

    The unit is the training run (a seed x fold pair, both methods trained on the same split): a
    difference of two training *procedures* must hold across training runs (run-to-run variance:
    initialisation, data order, the resampled training set) and across test trials (trial-to-trial
    variance: the test trials are a sample). With the crossed random-effects model
    ``d[r, t] = mu + u[r] + v[t] + e[r, t]`` (``u`` run, ``v`` trial, ``e`` residual) the pooled
    mean ``mu_hat`` has ``Var = s_u^2 / R + s_v^2 / T + s_e^2 / N`` (``R`` runs, ``T`` trials,
    ``N`` run x trial cells). It is estimated by moments, as for the pigeonhole bootstrap of
    crossed data (Owen 2007, Ann. Appl. Stat. 1:386-411, section 3): the variance of the run means
    over ``R`` estimates ``s_u^2 / R + s_e^2 / N`` (plus a little of ``s_v^2``), the variance of
    the trial means over ``T`` estimates ``s_v^2 / T + (s_u^2 + s_e^2) / N`` and the variance of
    the cells over ``N`` estimates ``(s_u^2 + s_v^2 + s_e^2) / N``, so
    ``se^2 = var(run means) / R + max(0, var(trial means) / T - var(cells) / N)``: the run term,
    always, and the trial-to-trial variance beyond what the run term holds. The statistic
    ``t = mu_hat / se`` is referred to a t distribution with Welch-Satterthwaite degrees of freedom
    (run term ``R - 1``, trial term ``T - 1``, cell term ``N - 1``): with few runs the run term's
    ``R - 1`` dominate. Without ``trial`` (no per-trial predictions: one value per run) it is the
    t-test over runs (``df = R - 1``).

    Returns ``statistic, p, se, df, effect, n_runs, n_trials``. Raises :class:`ValueError` for
    fewer than 2 runs or a standard error of zero.
    """
    d = np.asarray(d, dtype=float)
    run_idx, run_codes = pd.factorize(np.asarray(run))
    r_n = int(len(run_codes))
    if r_n < 2:
        raise ValueError("method-level test needs at least 2 training runs")
    n = int(d.size)
    run_mean = np.bincount(run_idx, d, r_n) / np.bincount(run_idx, minlength=r_n)
    a = float(np.var(run_mean, ddof=1)) / r_n
    terms = [(a, r_n - 1)]
    if trial is None:
        t_n = 0
        se2, df = a, float(r_n - 1)
    else:
        t_idx, t_codes = pd.factorize(np.asarray(trial))
        t_n = int(len(t_codes))
        t_mean = np.bincount(t_idx, d, t_n) / np.bincount(t_idx, minlength=t_n)
        b = float(np.var(t_mean, ddof=1)) / t_n if t_n > 1 else 0.0
        c = float(np.var(d, ddof=1)) / n if n > 1 else 0.0
        se2 = a + max(b - c, 0.0)
        if b > c:
            terms += [(b, t_n - 1), (c, n - 1)]
        df = se2 ** 2 / sum(x ** 2 / k for x, k in terms if k > 0 and x > 0) if se2 > 0 else math.nan
    scale = max(1.0, float(np.max(np.abs(d)))) if n else 1.0
    if not (se2 > (1e-12 * scale) ** 2):
        raise ValueError("method-level test is undefined: the differences do not vary over runs or trials")
    se = math.sqrt(se2)
    mean = float(np.mean(d))
    t = mean / se
    p = float(2.0 * ss.t.sf(abs(t), df))
    return {"statistic": t, "p": p, "se": se, "df": float(df), "effect": mean, "n_runs": r_n, "n_trials": t_n}


def detectable_difference(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """Smallest true difference a two-sided t-type test with standard error ``se`` and ``df``
    degrees of freedom detects with ``power`` at level ``alpha``: ``delta * se`` with ``delta`` the
    noncentrality at which the noncentral t reaches ``power``
    (:class:`statsmodels.stats.power.TTestPower` with ``nobs = df + 1``: its noncentrality is
    ``effect_size * sqrt(nobs)``). NaN when ``se`` or ``df`` is not positive and finite."""
    from statsmodels.stats.power import TTestPower

    if not (se > 0 and math.isfinite(se) and df > 0 and math.isfinite(df)):
        return math.nan
    es = TTestPower().solve_power(effect_size=None, nobs=float(df) + 1.0, alpha=float(alpha),
                                  power=float(power), alternative="two-sided")
    return float(np.ravel(es)[0]) * math.sqrt(float(df) + 1.0) * float(se)


def smallest_p(test: str, n: int, n_permutations: int = N_PERMUTATIONS) -> float:
    """The smallest two-sided p-value ``test`` can return with ``n`` paired units.

    t-tests: any p once ``n >= 2`` (the t distribution is unbounded); Wilcoxon signed-rank
    (exact, ``n`` non-zero differences): ``2 / 2**n`` (all differences of one sign); the sign-flip
    permutation test: ``2 / 2**n`` when enumerated exactly, else ``1 / (n_permutations + 1)``.
    """
    n = int(n)
    if test in ("method_level", "paired_t", "corrected_t", "corrected_kfold_t"):
        return 0.0 if n >= 2 else 1.0
    if n < 1:
        return 1.0
    exact = 2.0 / 2.0 ** n
    if test == "wilcoxon":
        return exact
    if test == "trial_permutation":
        # enumerated (2^n <= n_permutations + 1): 2 / 2^n, which is then >= 2 / (n_permutations + 1);
        # sampled: never below 1 / (n_permutations + 1). Both cases are this maximum.
        return max(exact, 1.0 / (n_permutations + 1))
    raise ValueError(f"unknown test {test!r}")


def tarone_size(p_min: Sequence[float], alpha: float = 0.05) -> int:
    """Tarone's (1990, Biometrics 46:515-522) family size for tests with a smallest p-value.

    The smallest ``K >= 1`` for which at most ``K`` tests can reach ``alpha / K``
    (``#{p_min < alpha/K} <= K``). Only those tests enter the family; the others cannot reject
    at that level whatever the data, so running them only costs power. With continuous tests
    (``p_min = 0``) ``K`` is the number of tests, as in Bonferroni/Holm.
    """
    p_min = np.asarray(p_min, dtype=float)
    k = 1
    while int(np.sum(p_min < alpha / k)) > k:  # ends at the latest at K = the number of tests
        k += 1
    return k


def minimum_detectable_difference(sd: float, n: int, alpha: float, power: float = POWER,
                                  ratio: float = 0.0) -> float:
    """Smallest true mean difference a two-sided paired t-type test detects with ``power``.

    The paired t-test of ``n`` differences with standard deviation ``sd`` has the noncentrality
    ``delta / (sd / sqrt(n))``; :class:`statsmodels.stats.power.TTestPower` solves it for the
    standardised effect ``d_z`` and ``delta = d_z * sd``. A corrected test (standard error
    ``sd * sqrt(1/n + ratio)``, ratio = n_test/n_train) has the same df and a noncentrality smaller
    by ``sqrt(1 + n * ratio)``, so its MDE is larger by that factor. NaN when ``n < 2`` or
    ``sd`` is not positive.
    """
    from statsmodels.stats.power import TTestPower

    if n < 2 or not (sd > 0) or not math.isfinite(sd):
        return math.nan
    es = TTestPower().solve_power(effect_size=None, nobs=int(n), alpha=float(alpha), power=float(power),
                                  alternative="two-sided")
    return float(np.ravel(es)[0]) * float(sd) * math.sqrt(1.0 + int(n) * float(ratio))


def sign_flip_test(d: Sequence[float], w: Sequence[float] | None = None,
                   n_permutations: int = N_PERMUTATIONS, seed: int = 0) -> dict:
    """Paired permutation test of the weighted mean of unit differences ``d`` (weights ``w``).

    Under H0 (the two methods' predictions are exchangeable on every unit) each unit's
    difference keeps or flips its sign with probability 1/2. Exact over all ``2^n`` sign
    patterns when that is at most ``n_permutations + 1``; otherwise ``n_permutations`` random
    patterns (generator seeded with ``seed``) and ``p = (1 + #{|T*| >= |T|}) / (n_permutations + 1)``.
    Returns ``statistic`` (the weighted mean), ``p`` and ``exact``.
    """
    d = np.asarray(d, dtype=float)
    w = np.ones_like(d) if w is None else np.asarray(w, dtype=float)
    n = d.size
    if n == 0:
        raise ValueError("permutation test needs at least one unit")
    wd = w * d / w.sum()
    t_obs = float(wd.sum())
    tol = 1e-12 * max(1.0, abs(t_obs))
    if 2 ** n <= n_permutations + 1:
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1) * 2 - 1
        t = signs @ wd
        p = float(np.mean(np.abs(t) >= abs(t_obs) - tol))
        return {"statistic": t_obs, "p": p, "exact": True}
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < n_permutations:
        b = min(2000, n_permutations - done)
        signs = rng.integers(0, 2, size=(b, n)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ wd) >= abs(t_obs) - tol))
        done += b
    return {"statistic": t_obs, "p": (1 + hits) / (n_permutations + 1), "exact": False}


def _row(test: str, n: int) -> dict:
    return {"test": test, "statistic": np.nan, "p": np.nan, "effect": np.nan, "ci_low": np.nan,
            "ci_high": np.nan, "n": int(n), "note": "", "dz": np.nan, "_sd": np.nan, "_ratio": 0.0,
            "df": float(n - 1) if n >= 2 else np.nan, "_se": np.nan,
            "_pmin": smallest_p(test, n)}  # Wilcoxon: set again from the non-zero differences


def _t_rows(d: np.ndarray, ratio: float | None, ratio_test: str = "corrected_t") -> list[dict]:
    """Seed-level rows for one vector of paired differences: paired t, a corrected t (when
    ``ratio`` is given; ``ratio_test`` names it) and Wilcoxon."""
    n = int(d.size)
    tests = ["paired_t"] + ([ratio_test] if ratio is not None else []) + ["wilcoxon"]
    rows = {t: _row(t, n) for t in tests}
    if n == 0:
        return []
    mean = float(np.mean(d))
    for r in rows.values():
        r["effect"] = mean
    if n < 2:
        return list(rows.values())  # dropped later: no t-test at n < 2
    sd = float(np.std(d, ddof=1))
    zero_var = _zero_variance(d)
    if not zero_var:
        for r in rows.values():
            r["dz"] = mean / sd
    pt = rows["paired_t"]
    pt["_sd"] = np.nan if zero_var else sd
    if zero_var:
        pt["note"] = "paired differences have zero variance: t undefined"
    else:
        res = ss.ttest_rel(d, np.zeros_like(d))
        pt["statistic"], pt["p"] = float(res.statistic), float(res.pvalue)
        pt["ci_low"], pt["ci_high"] = _t_ci(mean, sd / math.sqrt(n), n - 1)
    if ratio is not None:
        ct = rows[ratio_test]
        ct["_sd"], ct["_ratio"] = (np.nan if zero_var else sd), float(ratio)
        if zero_var:
            ct["note"] = "paired differences have zero variance: corrected t undefined"
        else:
            res = corrected_t_test(d, ratio)
            ct["statistic"], ct["p"] = res["statistic"], res["p"]
            ct["ci_low"], ct["ci_high"] = _t_ci(mean, res["se"], res["df"])
    wx = rows["wilcoxon"]
    wx["ci_low"], wx["ci_high"] = pt["ci_low"], pt["ci_high"]
    nonzero = int(np.sum(d != 0))
    wx["n"] = nonzero
    wx["_pmin"] = smallest_p("wilcoxon", nonzero)
    if nonzero == 0:
        wx["note"] = "all paired differences are zero: Wilcoxon undefined"
    else:
        res = ss.wilcoxon(d, alternative="two-sided")
        if np.isfinite(res.pvalue):
            wx["statistic"], wx["p"] = float(res.statistic), float(res.pvalue)
            if nonzero < n:
                wx["note"] = f"{n - nonzero} zero difference(s) dropped (zero_method='wilcox')"
        else:
            wx["note"] = "Wilcoxon returned no finite p-value"
    return list(rows.values())


def _trial_row(m: pd.DataFrame, r: pd.DataFrame, value: str, scale: float,
               n_permutations: int) -> tuple[dict | None, str]:
    """The trial-level row of one comparison from per-segment predictions (``seed, index,
    subject, trial, <value>``), paired on the segments both methods were tested on in the same
    seed; ``None`` and the reason when a seed's test segments of one method are not all tested by
    the other (e.g. two holdout splits of different kinds)."""
    for s in sorted(set(m["seed"]) | set(r["seed"])):
        a = set(m.loc[m["seed"] == s, "index"].tolist())
        b = set(r.loc[r["seed"] == s, "index"].tolist())
        if not (a <= b or b <= a):
            return None, f"seed {s}: the method and the reference were tested on different segments"
    j = m.merge(r, on=["seed", "index"], suffixes=("_m", "_r"))
    if j.empty:
        return None, "no common test segments"
    j["d"] = (j[f"{value}_m"] - j[f"{value}_r"]).astype(float) * scale
    units = j.groupby(["subject_m", "trial_m"], sort=True)["d"].agg(["mean", "size"])
    d, w = units["mean"].to_numpy(float), units["size"].to_numpy(float)
    n = int(d.size)
    row = _row("trial_permutation", n)
    row["effect"] = float(np.sum(w * d) / np.sum(w))
    if n >= 2:
        row["_sd"] = float(np.std(d, ddof=1))
        if row["_sd"] > 0:
            row["dz"] = row["effect"] / row["_sd"]
    if np.all(d == 0):
        row["note"] = "the two methods are equally right on every test trial: test undefined"
        return row, ""
    res = sign_flip_test(d, w, n_permutations)
    row["statistic"], row["p"] = res["statistic"], res["p"]
    # 95 % CI: bootstrap over trials (the units the test permutes), percentile
    rng = np.random.default_rng(0)
    idx = rng.integers(0, n, size=(N_BOOTSTRAP, n))
    boot = (w[idx] * d[idx]).sum(axis=1) / w[idx].sum(axis=1)
    row["ci_low"], row["ci_high"] = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
    seeds = j["seed"].nunique()
    row["note"] = (f"{n} test trials, {len(j)} segment predictions pooled over {seeds} seed(s); "
                   + ("exact" if res["exact"] else f"{n_permutations} random sign flips"))
    return row, ""


def _holm(table: pd.DataFrame) -> pd.Series:
    from statsmodels.stats.multitest import multipletests

    out = pd.Series(np.nan, index=table.index, dtype=float)
    family = ["dataset", "track", "dimension", "metric", "test", "reference"]
    for _, grp in table.groupby(family, sort=False, dropna=False):
        p = grp["p"].astype(float)
        valid = p.notna()
        if valid.any():
            out.loc[p.index[valid]] = multipletests(p[valid].to_numpy(), method="holm")[1]
    return out


# ----------------------------------------------------------------------------------------------
# paired tests


def _fold_pairs(fm: pd.DataFrame, fr: pd.DataFrame, seeds, metric: str) -> tuple[pd.DataFrame, int]:
    """The (seed, fold) runs of the method and the reference that ran the same fold split (equal
    ``split_hash``, recorded per fold in ``metrics.json``), with the metric on both sides; and the
    number of fold runs without such a partner. A fold number alone pairs nothing: fold 0 of a
    leaky 5-fold design and fold 0 of a 2-fold design test different data."""
    fj = fm.merge(fr, on=["seed", "fold"], suffixes=("_m", "_r"))
    fj = fj[fj["seed"].isin(list(seeds))].dropna(subset=[f"{metric}_m", f"{metric}_r"])
    if "split_hash_m" in fj:
        same = fj["split_hash_m"].notna() & (fj["split_hash_m"].astype(str) == fj["split_hash_r"].astype(str))
    else:
        same = pd.Series(False, index=fj.index)
    fj = fj[same]
    unpaired = int(len(fm[fm["seed"].isin(list(seeds))]) + len(fr[fr["seed"].isin(list(seeds))]) - 2 * len(fj))
    return fj, unpaired


def _holdout_design(dm: pd.DataFrame | None, dr: pd.DataFrame | None, seeds) -> dict:
    """What the holdout runs of a comparison ran: ``fixed`` (a seed-independent split: a kind of
    :data:`FIXED_SPLIT_KINDS`, or one split hash for every seed), the seeds whose method and
    reference runs share the split (equal split hash), and ``n_test / n_train`` over those runs
    (``n_train`` = training + validation segments). Unknown (no recorded design): ``None``."""
    if dm is None or dr is None or not len(dm) or not len(dr):
        return {"known": False}
    j = dm.merge(dr, on="seed", suffixes=("_m", "_r"))
    j = j[j["seed"].isin(list(seeds))]
    if j.empty or j["split_hash_m"].isna().all() or j["split_hash_r"].isna().all():
        return {"known": False}  # runs that recorded no split (older runs, hand-made tables)
    kinds = sorted(set(j["kind_m"].dropna().astype(str)) | set(j["kind_r"].dropna().astype(str)))
    fixed_kind = [k for k in kinds if k in FIXED_SPLIT_KINDS]
    hashes_m, hashes_r = j["split_hash_m"].dropna().astype(str), j["split_hash_r"].dropna().astype(str)
    one_split = len(j) >= 2 and hashes_m.nunique() == 1 and hashes_r.nunique() == 1 and len(hashes_m) == len(j)
    same = j[j["split_hash_m"].notna() & (j["split_hash_m"].astype(str) == j["split_hash_r"].astype(str))]
    ratio = math.nan
    if len(same) and same["n_test_m"].notna().all() and same["n_nontest_m"].notna().all():
        ratio = float(same["n_test_m"].mean() / same["n_nontest_m"].mean())
    return {"known": True, "fixed": bool(fixed_kind) or one_split,
            "why": (f"fixed split ({', '.join(fixed_kind)})" if fixed_kind else "one split for every seed"),
            "seeds": set(same["seed"].tolist()), "ratio": ratio, "kinds": kinds}


def _method_level_row(d: np.ndarray, run: np.ndarray, trial: np.ndarray | None, note: str) -> dict:
    row = _row("method_level", int(np.unique(np.asarray(run).astype(str)).size))
    if d.size:
        row["effect"] = float(np.mean(d))
    try:
        res = method_level_test(d, run, trial)
    except ValueError as exc:
        row["note"] = "; ".join(x for x in (f"method-level test not run: {exc}", note) if x)
        return row
    row.update(statistic=res["statistic"], p=res["p"], effect=res["effect"], df=res["df"], _se=res["se"])
    row["ci_low"], row["ci_high"] = _t_ci(res["effect"], res["se"], res["df"])
    what = (f"{res['n_runs']} training run(s) x {res['n_trials']} test trial(s)" if trial is not None
            else f"{res['n_runs']} training run(s), no per-trial predictions (trial variance only within runs)")
    row["note"] = "; ".join(x for x in (what, f"df = {res['df']:.3g} (Welch-Satterthwaite)", note) if x)
    return row


def paired_tests(
    runs: pd.DataFrame,
    references: Sequence[str],
    metrics: Sequence[str] = ("accuracy", "f1", "rmse"),
    test_fraction: float = 0.1,
    alpha: float = 0.05,
    folds: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    n_permutations: int = N_PERMUTATIONS,
    designs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Paired tests of every method against every reference, per dataset x track x dimension.

    Returns a table with the columns :data:`STATS_COLUMNS`. Method-level row (the headline mark):
    ``method_level`` (:func:`method_level_test`) over the training runs both methods ran on the
    same split (seed x fold; the seed when the two ran different fold designs) and, for accuracy
    with ``predictions``, their test trials. Seed-level rows (one value per seed from ``runs``):
    ``paired_t``, ``wilcoxon`` and the corrected resampled t-test that fits the design:
    ``corrected_kfold_t`` over the (seed, fold) pairs of ``folds`` that ran the same fold split
    (equal split hash) when both methods ran a cross-validation protocol; ``corrected_t`` over the
    seeds whose holdout splits are the same for both, with ``n_test/n_train`` from those runs'
    ``designs`` (``n_train`` = training + validation data; without recorded designs from
    ``test_fraction``: ``test_fraction / (1 - test_fraction)``); neither on a fixed split
    (:data:`FIXED_SPLIT_KINDS`, or one split for every seed: no resampling, the paired t over
    seeds is the test there) nor between different protocols. Trial-level row (``predictions``,
    accuracy only): ``trial_permutation``.

    A test that cannot reach ``alpha`` at its n after the family's Holm correction
    (:func:`smallest_p` times the family size is not below ``alpha``; t-tests with fewer than 2
    pairs) is not run and has no row. ``alpha_family`` is ``alpha / m`` (Holm's first step, m =
    the comparisons of the family, :data:`FAMILY`) and ``mde`` the minimum detectable difference
    at that level with 80 % power (:func:`minimum_detectable_difference`; for the method-level
    test :func:`detectable_difference` of its standard error and df; for the trial-level test from
    the standard deviation of the per-trial differences; empty for Wilcoxon). See the module
    docstring.
    """
    _check_columns(runs, _REQUIRED)
    ratio = _split_ratio(test_fraction)
    references = list(dict.fromkeys(references))
    metrics = [m for m in metrics if m in runs.columns]
    ok = _is_ok(runs)
    rows: list[dict] = []
    fold_groups = dict(iter(folds.groupby(list(_KEY), sort=False))) if folds is not None and len(folds) else {}
    pred_groups = (dict(iter(predictions.groupby(list(_KEY), sort=False)))
                   if predictions is not None and len(predictions) else {})
    design_groups = (dict(iter(designs.groupby(list(_KEY), sort=False)))
                     if designs is not None and len(designs) else {})
    for key, cell in runs.groupby(list(_KEY), sort=True, dropna=False):
        cell_ok = cell[ok.loc[cell.index]]
        failed_by_method = cell[~ok.loc[cell.index]].groupby("method").size()
        methods = sorted(cell["method"].astype(str).unique())
        present_refs = [r for r in references if r in methods]
        cf = fold_groups.get(tuple(key))
        cp = pred_groups.get(tuple(key))
        cd = design_groups.get(tuple(key))
        where = "/".join(map(str, key))
        for metric in metrics:
            if cell_ok[metric].astype(float).notna().sum() == 0:
                continue
            for ref in present_refs:
                ref_frame = cell_ok[cell_ok["method"].astype(str) == ref]
                ref_vals = _seed_values(ref_frame, metric, f"{where}/{ref}")
                for method in methods:
                    if method == ref:
                        continue
                    m_frame = cell_ok[cell_ok["method"].astype(str) == method]
                    m_vals = _seed_values(m_frame, metric, f"{where}/{method}")
                    joined = pd.concat({"m": m_vals, "r": ref_vals}, axis=1, join="inner")
                    d = (joined["m"] - joined["r"]).to_numpy(dtype=float)
                    n_failed = int(failed_by_method.get(method, 0) + failed_by_method.get(ref, 0))
                    extra = []
                    if n_failed:
                        extra.append(
                            f"excluded failed runs: method {int(failed_by_method.get(method, 0))},"
                            f" reference {int(failed_by_method.get(ref, 0))}"
                        )
                    m_alone, r_alone = len(m_vals) - len(joined), len(ref_vals) - len(joined)
                    if m_alone or r_alone:
                        extra.append(
                            f"runs without a partner seed dropped: method {m_alone}, "
                            f"reference {r_alone}"
                        )
                    out = []
                    fm = cf[cf["method"] == method] if cf is not None else None
                    fr = cf[cf["method"] == ref] if cf is not None else None
                    has_m, has_r = fm is not None and len(fm) > 0, fr is not None and len(fr) > 0
                    seed_rows = _t_rows(d, None)
                    pt = next((r for r in seed_rows if r["test"] == "paired_t"), None)
                    run_d, run_id, design_note = None, None, ""
                    same_design = False
                    if has_m and has_r:
                        # cross-validated: seeds are repetitions, folds the resamples; only folds of one split pair
                        fj, unpaired = _fold_pairs(fm, fr, joined.index, metric)
                        out += seed_rows
                        same_design = len(fj) > 0 and unpaired == 0
                        if len(fj):
                            fd = (fj[f"{metric}_m"] - fj[f"{metric}_r"]).to_numpy(float)
                            k_ratio = float(fj["n_test_m"].mean() / fj["n_train_m"].mean())
                            kr = [r for r in _t_rows(fd, k_ratio, "corrected_kfold_t")
                                  if r["test"] == "corrected_kfold_t"]
                            for r in kr:
                                r["note"] = "; ".join(x for x in (
                                    r["note"], f"{fj['seed'].nunique()} repetition(s) x {fj['fold'].nunique()} "
                                    f"fold(s) of the same split; n_test/n_train = {k_ratio:.3g} "
                                    "(n_train: training + validation segments of the fold)",
                                    f"{unpaired} fold run(s) of another split not paired" if unpaired else "") if x)
                            out += kr
                            run_d, run_id = fd, (fj["seed"].astype(str) + "/" + fj["fold"].astype(str)).to_numpy()
                        else:
                            design_note = ("the folds of the method and the reference are of different designs "
                                           "(no fold with the same split hash): no corrected k-fold t-test; "
                                           "method-level runs paired by seed")
                    elif has_m or has_r:
                        out += seed_rows
                        design_note = ("the method and the reference ran different protocols (cross-validation "
                                       "vs holdout): no corrected resampled t-test; method-level runs paired by seed")
                    else:
                        hd = _holdout_design(cd[cd["method"] == method] if cd is not None else None,
                                             cd[cd["method"] == ref] if cd is not None else None, joined.index)
                        if not hd["known"]:  # no recorded design: the config's fractions
                            out += _t_rows(d, ratio)
                            same_design = True
                        elif hd["fixed"]:
                            out += seed_rows
                            design_note = (f"{hd['why']}: no resampling of the training set, so no Nadeau-Bengio "
                                           "correction; the paired t over seeds is the test (training-run variance "
                                           "only)")
                            same_design = True
                        else:
                            keep = joined.index.isin(list(hd["seeds"]))
                            r_ratio = hd["ratio"] if math.isfinite(hd["ratio"]) else ratio
                            ct = [r for r in _t_rows(d[keep], r_ratio) if r["test"] == "corrected_t"]
                            for r in ct:
                                r["note"] = "; ".join(x for x in (
                                    r["note"], f"n_test/n_train = {r_ratio:.3g} (n_train: training + validation "
                                    "segments of the runs)",
                                    f"{int((~keep).sum())} seed(s) with different splits not paired"
                                    if (~keep).any() else "") if x)
                            out += seed_rows + ct
                            same_design = bool(keep.all())
                    if design_note and pt is not None:
                        pt["note"] = "; ".join(x for x in (pt["note"], design_note) if x)
                    # method-level: training runs as units (seed x fold of one split; else the seed)
                    ml = None
                    if metric == "accuracy" and cp is not None:
                        pm = cp[(cp["method"] == method) & cp["seed"].isin(joined.index)]
                        pr = cp[(cp["method"] == ref) & cp["seed"].isin(joined.index)]
                        j = pm.merge(pr, on=["seed", "index"], suffixes=("_m", "_r"))
                        if len(j):
                            j = j.assign(d=(j["correct_m"] - j["correct_r"]).astype(float) * 100.0)
                            by_fold = same_design and "fold_m" in j and bool((j["fold_m"] == j["fold_r"]).all())
                            j["run"] = (j["seed"].astype(str) + ("/" + j["fold_m"].astype(str) if by_fold else ""))
                            j["unit"] = j["subject_m"].astype(str) + "/" + j["trial_m"].astype(str)
                            cells = j.groupby(["run", "unit"], sort=True)["d"].mean().reset_index()
                            ml = _method_level_row(cells["d"].to_numpy(float), cells["run"].to_numpy(),
                                                   cells["unit"].to_numpy(), "" if by_fold else
                                                   "runs paired by seed (different fold designs)" if (has_m or has_r)
                                                   else "")
                    if ml is None:
                        if run_d is None:
                            run_d, run_id = d, joined.index.astype(str).to_numpy()
                        if len(run_d):
                            ml = _method_level_row(run_d, run_id, None, "")
                    if ml is not None:
                        out.insert(0, ml)
                    if metric == "accuracy" and cp is not None:
                        pm = cp[(cp["method"] == method) & cp["seed"].isin(joined.index)]
                        pr = cp[(cp["method"] == ref) & cp["seed"].isin(joined.index)]
                        if len(pm) and len(pr):
                            tr, why = _trial_row(pm, pr, "correct", 100.0, n_permutations)
                            if tr is not None:
                                out.append(tr)
                    for r in out:
                        note = "; ".join([x for x in [r["note"], *extra] if x])
                        rows.append({
                            "dataset": key[0], "track": key[1], "dimension": key[2],
                            "metric": metric, "method": method, "reference": ref,
                            **r, "note": note, "n_failed": n_failed,
                        })
    private = ["_sd", "_ratio", "_pmin", "_se"]
    cols = [c for c in STATS_COLUMNS if c not in ("p_holm", "alpha_family", "mde", "question", "family")] + private
    table = pd.DataFrame(rows, columns=cols)
    if len(table):
        family = ["dataset", "track", "dimension", "metric", "test", "reference"]
        k = table.groupby(family, sort=False, dropna=False)["_pmin"].transform(
            lambda p: tarone_size(p.to_numpy(float), alpha)).astype(float)
        alpha_fam = float(alpha) / k
        keep = table["_pmin"].astype(float) < alpha_fam
        table = table[keep].copy()
        table["alpha_family"] = alpha_fam[keep]
        table["mde"] = [
            detectable_difference(se, df, a) if t == "method_level"
            else minimum_detectable_difference(sd, n, a, POWER, rt) if t != "wilcoxon" else math.nan
            for t, sd, n, a, rt, se, df in zip(table["test"], table["_sd"].astype(float), table["n"],
                                               table["alpha_family"], table["_ratio"].astype(float),
                                               table["_se"].astype(float), table["df"].astype(float))
        ]
        table["question"] = table["test"].map(QUESTIONS)
        table["family"] = FAMILY
    order = {t: i for i, t in enumerate(TESTS)}
    table = table.drop(columns=private)
    if len(table):
        table = table.assign(_o=table["test"].map(order)).sort_values(
            [*_KEY, "metric", "reference", "method", "_o"], kind="stable").drop(columns="_o")
    table["p_holm"] = _holm(table) if len(table) else pd.Series(dtype=float)
    for c in ("alpha_family", "mde", "question", "family"):
        if c not in table:
            table[c] = pd.Series(dtype=float if c not in ("question", "family") else object)
    table = table[list(STATS_COLUMNS)]
    table["n"] = table["n"].astype(int)
    table["n_failed"] = table["n_failed"].astype(int)
    return table.reset_index(drop=True)


def significance_marks(stats_df: pd.DataFrame, alpha: float = 0.05,
                       tests: Sequence[str] = (MARK_TEST,)) -> dict[tuple, str]:
    """``(dataset, track, dimension, metric, method, reference) -> "*"`` or ``""``.

    A comparison is marked when the Holm-adjusted p-value of the first of ``tests`` present for
    it (default: the method-level test :data:`MARK_TEST`) is below ``alpha``; an empty p-value never
    marks. A comparison without a row of any of ``tests`` is absent (the test was not run: its n
    cannot reach ``alpha``, or the method saw other test trials).
    """
    sel = stats_df[stats_df["test"].isin(list(tests))]
    rank = {t: i for i, t in enumerate(tests)}
    sel = sel.assign(_r=sel["test"].map(rank)).sort_values("_r", kind="stable")
    marks: dict[tuple, str] = {}
    for row in sel.itertuples(index=False):
        key = (row.dataset, row.track, row.dimension, row.metric, row.method, row.reference)
        if key in marks:
            continue
        p = row.p_holm
        marks[key] = "*" if (p is not None and pd.notna(p) and float(p) < alpha) else ""
    return marks


def table_family(stats_df: pd.DataFrame, dataset: str, track: str, dimension: str, metric: str,
                 reference: str, methods: Sequence[str], test, alpha: float = 0.05) -> dict:
    """One table's comparisons with ``reference`` as their own Holm family.

    A table reports its own comparisons, so its marks are corrected over them only: Holm over
    the p-values of ``test`` (a test name, or a mapping method -> test name when the methods'
    designs call for different tests) for the table's ``methods`` (the rows ``stats.csv`` has:
    those whose test can reach alpha at their n), and the MDE at the table's level ``alpha / K``
    (K = the number of those comparisons), rescaled from each row's ``mde`` at its cell-wide
    ``alpha_family`` (``TTestPower`` effect sizes at the two levels with ``nobs = df + 1``; the
    correction factor and the standard error cancel). Returns ``{"alpha": alpha / K, "k": K,
    "p_holm": {method: p}, "mde": {method: mde}, "note": {method: note}}`` (``k = 0`` when the
    table has no row of ``test``).
    """
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestPower

    by_method = dict(test) if isinstance(test, Mapping) else {m: test for m in methods}
    base = stats_df[(stats_df["dataset"].astype(str) == str(dataset))
                    & (stats_df["track"].astype(str) == str(track))
                    & (stats_df["dimension"].astype(str) == str(dimension))
                    & (stats_df["metric"] == metric) & (stats_df["reference"] == reference)]
    pick = pd.Series([by_method.get(m) for m in base["method"]], index=base.index, dtype=object)
    sel = base[(base["method"].isin(list(methods))) & (base["test"] == pick)]
    out = {"alpha": math.nan, "k": int(len(sel)), "p_holm": {}, "mde": {}, "note": {}}
    if sel.empty:
        return out
    a_t = float(alpha) / len(sel)
    out["alpha"] = a_t
    p = sel["p"].astype(float)
    valid = p.notna()
    if valid.any():
        adj = multipletests(p[valid].to_numpy(), method="holm")[1]
        out["p_holm"] = dict(zip(sel.loc[valid, "method"], (float(x) for x in adj)))
    power = TTestPower()

    def es(nobs, a):
        return float(np.ravel(power.solve_power(nobs=float(nobs), alpha=float(a), power=POWER,
                                                alternative="two-sided"))[0])

    for row in sel.itertuples(index=False):
        m = float(row.mde) if pd.notna(row.mde) else math.nan
        df = float(getattr(row, "df", math.nan))
        nobs = df + 1.0 if math.isfinite(df) else float(row.n)
        if math.isfinite(m) and nobs >= 2:
            m *= es(nobs, a_t) / es(nobs, row.alpha_family)
        out["mde"][row.method] = m
        note = getattr(row, "note", "")
        out["note"][row.method] = "" if pd.isna(note) else str(note)
    return out


# ----------------------------------------------------------------------------------------------
# Friedman / Nemenyi across cells


def friedman_nemenyi(
    runs: pd.DataFrame,
    metric: str = "accuracy",
    block_cols: Sequence[str] = _KEY,
) -> tuple[dict, pd.DataFrame]:
    """Friedman test over blocks (cells, mean over seeds) and Nemenyi post-hoc p-values.

    Returns ``(summary, nemenyi)``. ``summary`` holds ``metric, statistic, p, n_blocks,
    methods, ranks`` (average rank per method, 1 = best), ``dropped_methods, n_failed,
    note``; ``nemenyi`` is the method x method p-value table of
    :func:`scikit_posthocs.posthoc_nemenyi_friedman` (empty when the test is not run).
    Only methods present in every block are ranked; the others are dropped with a note.
    With fewer than 2 blocks or 3 methods, ``statistic`` and ``p`` are ``None``.
    """
    import scikit_posthocs as sp

    block_cols = list(block_cols)
    _check_columns(runs, [*block_cols, "method", metric])
    ok = _is_ok(runs)
    summary: dict = {"metric": metric, "statistic": None, "p": None, "n_blocks": 0,
                     "methods": [], "ranks": {}, "dropped_methods": [],
                     "n_failed": int((~ok).sum()), "note": ""}
    notes: list[str] = []
    if summary["n_failed"]:
        notes.append(f"{summary['n_failed']} failed run(s) excluded")
    data = runs[ok & runs[metric].notna()]
    means = data.groupby([*block_cols, "method"], dropna=False)[metric].mean().unstack("method")
    if means.empty:
        summary["note"] = "; ".join(notes + [f"no ok runs with a value for {metric}"])
        return summary, pd.DataFrame()
    complete = [m for m in means.columns if means[m].notna().all()]
    dropped = [m for m in means.columns if m not in complete]
    if dropped:
        notes.append(f"dropped method(s) absent from some block: {', '.join(map(str, dropped))}")
    matrix = means[complete].astype(float)
    matrix.columns = [str(c) for c in matrix.columns]
    higher = HIGHER_IS_BETTER.get(metric, True)
    ranks = matrix.rank(axis=1, ascending=not higher, method="average").mean(axis=0)
    summary.update(n_blocks=int(len(matrix)), methods=list(matrix.columns),
                   ranks={m: float(r) for m, r in ranks.items()}, dropped_methods=
                   [str(m) for m in dropped])
    if len(matrix) < 2 or matrix.shape[1] < 3:
        notes.append(f"Friedman test needs at least 2 blocks and 3 methods "
                     f"(have {len(matrix)} block(s), {matrix.shape[1]} method(s))")
        summary["note"] = "; ".join(notes)
        return summary, pd.DataFrame()
    res = ss.friedmanchisquare(*[matrix[c].to_numpy() for c in matrix.columns])
    if not np.isfinite(res.pvalue):
        notes.append("Friedman statistic undefined (all methods tied in every block)")
        summary["note"] = "; ".join(notes)
        return summary, pd.DataFrame()
    summary["statistic"], summary["p"] = float(res.statistic), float(res.pvalue)
    nemenyi = sp.posthoc_nemenyi_friedman(matrix.reset_index(drop=True))
    summary["note"] = "; ".join(notes)
    return summary, nemenyi


#: Fewer blocks than this: no critical difference diagram (per-method intervals instead).
MIN_CD_BLOCKS = 5


def nemenyi_critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks (Demsar 2006, JMLR 7:1-30, section 3.2.2).

    ``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the upper ``alpha`` point of the
    studentized range of ``k`` means with infinite degrees of freedom divided by ``sqrt(2)``
    (:data:`scipy.stats.studentized_range`; Demsar's Table 5a lists ``q_0.05`` = 1.960, 2.343,
    2.569, 2.728 ... for k = 2, 3, 4, 5 ...). Two methods whose average ranks over ``N`` blocks
    differ by more than CD differ at level ``alpha`` (family-wise).
    """
    if k < 2 or n_blocks < 1:
        raise ValueError(f"critical difference needs k >= 2 methods and N >= 1 blocks (k={k}, N={n_blocks})")
    q = float(ss.studentized_range.ppf(1.0 - alpha, k, np.inf)) / math.sqrt(2.0)
    return q * math.sqrt(k * (k + 1) / (6.0 * n_blocks))


def critical_difference_diagram(
    ranks: Mapping[str, float] | pd.Series,
    pvalues: pd.DataFrame,
    path_png: str | os.PathLike,
    path_svg: str | os.PathLike,
    title: str,
    alpha: float = 0.05,
) -> None:
    """Draw a critical difference diagram (scikit-posthocs) and write it as PNG and SVG.

    ``ranks`` are average ranks (1 = best), ``pvalues`` the Nemenyi table of
    :func:`friedman_nemenyi`; methods not significantly different at ``alpha`` are joined by a
    bar. When there is nothing to draw (fewer than 2 ranked methods or no p-values) the figure
    says so in words, so the rule's outputs still exist. Uses the Agg canvas (no display);
    both files are written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    import scikit_posthocs as sp

    from cmkd.atomic import atomic_path

    ranks = pd.Series(dict(ranks) if not isinstance(ranks, pd.Series) else ranks, dtype=float)
    fig = Figure(figsize=(7.0, max(2.5, 0.35 * len(ranks) + 1.2)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    drawable = (len(ranks) >= 2 and pvalues is not None and not pvalues.empty
                and set(ranks.index) <= set(pvalues.index))
    if drawable:
        sig = pvalues.loc[list(ranks.index), list(ranks.index)]
        sp.critical_difference_diagram(ranks, sig, ax=ax, alpha=alpha)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "not enough methods/blocks for a critical difference diagram",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    with atomic_path(path_svg, suffix=".svg") as tmp:
        fig.savefig(tmp, format="svg")


# ----------------------------------------------------------------------------------------------
# file level


def load_run_details(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-fold metrics and per-segment test predictions of the ok runs of ``runs``.

    Reads ``metrics.json`` (its ``folds``, written by cross-validated runs) and ``features.npz``
    (``logits, y, index, subject, trial``, and ``fold`` for cross-validated runs) from each run's
    ``path``. Returns ``(folds, predictions)``: ``folds`` has ``dataset, track, dimension, method,
    seed, fold, accuracy, f1, rmse, n_test, n_train, split_hash`` (``n_train``: all the fold's
    non-test segments, training and validation part); ``predictions`` has ``dataset, track,
    dimension, method, seed, index, subject, trial, fold, correct`` (classification runs only; fold
    0 for a holdout run). Runs without a ``path`` column, or whose files lack these entries (older
    runs), contribute nothing.
    """
    from pathlib import Path

    fold_rows, preds = [], []
    if "path" not in runs.columns:
        return pd.DataFrame(), pd.DataFrame()
    ok = _is_ok(runs)
    for row in runs[ok].itertuples(index=False):
        run_dir = Path(str(row.path))
        key = {"dataset": str(row.dataset), "track": str(row.track), "dimension": str(row.dimension),
               "method": str(row.method), "seed": int(row.seed)}
        mfile = run_dir / "metrics.json"
        task = "classification"
        if mfile.exists():
            m = read_json(mfile, "metrics file missing")
            task = m.get("task", task)
            for f in m.get("folds") or []:
                seg = f.get("n_segments", {})
                fold_rows.append({**key, "fold": int(f["fold"]),
                                  **{k: f["test"].get(k, math.nan) for k in ("accuracy", "f1", "rmse")},
                                  "n_test": seg.get("test", math.nan), "n_train": _non_test(seg),
                                  "split_hash": f.get("split_hash")})
        ffile = run_dir / "features.npz"
        if task != "classification" or not ffile.exists():
            continue
        try:
            with np.load(ffile, allow_pickle=False) as z:
                if not {"logits", "y", "index", "subject", "trial"} <= set(z.files):
                    continue
                logits, y = z["logits"], z["y"]
                index, subject, trial = z["index"], z["subject"], z["trial"]
                fold = z["fold"] if "fold" in z.files else np.zeros(len(y), dtype=np.int64)
        except (OSError, ValueError) as exc:
            raise DataError(f"{ffile}: cannot read predictions ({exc})") from None
        if logits.ndim != 2 or len(logits) != len(y):
            continue
        correct = (np.argmax(logits, axis=1) == y.astype(np.int64)).astype(float)
        preds.append(pd.DataFrame({**{k: [v] * len(y) for k, v in key.items()}, "index": index.astype(np.int64),
                                   "subject": subject.astype(np.int64), "trial": trial.astype(np.int64),
                                   "fold": np.asarray(fold).astype(np.int64), "correct": correct}))
    folds = pd.DataFrame(fold_rows)
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    return folds, predictions


def _non_test(seg: Mapping) -> float:
    """The non-test segments of a split (training + validation part) from its ``n_segments``."""
    if not isinstance(seg, Mapping) or seg.get("train") is None:
        return math.nan
    return float(seg.get("train", 0)) + float(seg.get("val", 0) or 0)


def load_run_designs(runs: pd.DataFrame) -> pd.DataFrame:
    """The split each ok run of ``runs`` ran, from its ``metrics.json``: ``dataset, track,
    dimension, method, seed, kind`` (``split.kind``), ``split_hash`` (provenance; for a
    cross-validated run the hash of its folds' hashes), ``n_test`` and ``n_nontest`` (training +
    validation segments; NaN for cross-validated runs, whose sizes are per fold). Runs without a
    ``path`` column or a metrics file contribute nothing."""
    from pathlib import Path

    cols = [*_KEY, "method", "seed", "kind", "split_hash", "n_test", "n_nontest"]
    if "path" not in runs.columns:
        return pd.DataFrame(columns=cols)
    out = []
    for row in runs[_is_ok(runs)].itertuples(index=False):
        mfile = Path(str(row.path)) / "metrics.json"
        if not mfile.exists():
            continue
        m = read_json(mfile, "metrics file missing")
        seg = m.get("n_segments") or {}
        folds = bool(m.get("folds"))
        out.append({"dataset": str(row.dataset), "track": str(row.track), "dimension": str(row.dimension),
                    "method": str(row.method), "seed": int(row.seed),
                    "kind": (m.get("split") or {}).get("kind"),
                    "split_hash": (m.get("provenance") or {}).get("split_hash"),
                    "n_test": math.nan if folds else seg.get("test", math.nan),
                    "n_nontest": math.nan if folds else _non_test(seg)})
    return pd.DataFrame(out, columns=cols)


def write_stats(
    runs_csv: str | os.PathLike,
    out_csv: str | os.PathLike,
    references_by_track: Mapping[str, Sequence[str]],
    test_fraction: float,
    metrics: Sequence[str] = ("accuracy", "f1", "rmse"),
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Read ``runs.csv`` (and, through its ``path`` column, each run's fold metrics and test
    predictions: :func:`load_run_details`, and their splits: :func:`load_run_designs`), run :func:`paired_tests` per track with that track's
    references (``references_by_track[track]``; a track not named there gets no rows) and write
    ``stats.csv`` atomically. Returns the table written.
    """
    from cmkd.atomic import write_csv

    try:
        runs = pd.read_csv(runs_csv)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{runs_csv}: cannot read run table: {exc}") from exc
    _check_columns(runs, _REQUIRED)
    for col in ("dataset", "track", "dimension", "method"):
        runs[col] = runs[col].astype(str)
    folds, predictions = load_run_details(runs)
    designs = load_run_designs(runs)
    parts = []
    for track, refs in references_by_track.items():
        sub = runs[runs["track"] == str(track)]
        if len(sub) and refs:
            parts.append(paired_tests(sub, list(refs), metrics, test_fraction, alpha,
                                      folds=folds, predictions=predictions, designs=designs))
    if parts:
        table = pd.concat(parts, ignore_index=True)
        table = table.sort_values(list(_KEY), kind="stable").reset_index(drop=True)
    else:
        table = pd.DataFrame(columns=list(STATS_COLUMNS))
    write_csv(out_csv, table)
    return table
