"""The tests of one comparison (a method against a reference): the method-level test, the
corrected resampled t-test, the sign-flip permutation test, and the rows of ``stats.csv`` they give."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as ss

from cmkd.analysis.stats.base import N_BOOTSTRAP, N_PERMUTATIONS, _t_ci, _zero_variance
from cmkd.analysis.stats.power import smallest_p


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
