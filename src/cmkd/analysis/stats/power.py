"""What a test can detect: the minimum detectable difference (power analysis), the smallest
p-value a test can return at its n, and Tarone's family size."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from statsmodels.stats.power import TTestPower

from cmkd.analysis.stats.base import N_PERMUTATIONS, POWER


@lru_cache(maxsize=None)
def standard_effect(nobs: float, alpha: float, power: float = POWER) -> float:
    """The standardised effect ``d`` at which a two-sided one-sample t-test of ``nobs``
    observations at level ``alpha`` reaches ``power``
    (:meth:`statsmodels.stats.power.TTestPower.solve_power`). It depends on these three numbers
    only, and a stats file asks for the same few thousands of times: computed once each."""
    es = TTestPower().solve_power(effect_size=None, nobs=float(nobs), alpha=float(alpha), power=float(power),
                                  alternative="two-sided")
    return float(np.ravel(es)[0])


def detectable_difference(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """Smallest true difference a two-sided t-type test with standard error ``se`` and ``df``
    degrees of freedom detects with ``power`` at level ``alpha``: ``delta * se`` with ``delta`` the
    noncentrality at which the noncentral t reaches ``power``
    (:class:`statsmodels.stats.power.TTestPower` with ``nobs = df + 1``: its noncentrality is
    ``effect_size * sqrt(nobs)``). NaN when ``se`` or ``df`` is not positive and finite."""
    if not (se > 0 and math.isfinite(se) and df > 0 and math.isfinite(df)):
        return math.nan
    return standard_effect(float(df) + 1.0, float(alpha), float(power)) * math.sqrt(float(df) + 1.0) * float(se)


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
    if n < 2 or not (sd > 0) or not math.isfinite(sd):
        return math.nan
    return standard_effect(float(int(n)), float(alpha), float(power)) * float(sd) * math.sqrt(1.0 + int(n) * float(ratio))


def runs_for_mde(mde: float, df: float, n_runs: int, target: float, alpha: float, power: float = POWER,
                 max_runs: int = 100_000) -> float:
    """How many training runs a method-level comparison would need for its MDE to reach ``target``.

    The comparison ran ``n_runs`` runs and has minimum detectable difference ``mde`` with ``df``
    degrees of freedom at level ``alpha`` (:func:`detectable_difference`). With ``R`` runs of the
    same design the run term of its standard error scales as ``sqrt(n_runs / R)`` and its degrees
    of freedom as ``(R - 1) / (n_runs - 1)``: the run term dominates the method-level test's error
    when its df is near ``n_runs - 1``, which is the case this projects (the trial term does not
    shrink with runs, so where it matters the projection is a lower bound). Returns the smallest
    such ``R >= n_runs`` (``n_runs`` when ``mde <= target`` already), NaN when the inputs do not
    define it or ``max_runs`` does not reach it.
    """
    if not (math.isfinite(mde) and mde > 0 and math.isfinite(df) and df > 0 and n_runs >= 2 and target > 0):
        return math.nan
    if mde <= target:
        return float(n_runs)
    se = mde / (standard_effect(df + 1.0, float(alpha), float(power)) * math.sqrt(df + 1.0))

    def mde_at(r: int) -> float:
        return detectable_difference(se * math.sqrt(n_runs / r), df * (r - 1) / (n_runs - 1), alpha, power)

    if mde_at(max_runs) > target:
        return math.nan
    lo, hi = n_runs, max_runs  # mde_at(lo) > target >= mde_at(hi); MDE falls as runs are added
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if mde_at(mid) > target else (lo, mid)
    return float(hi)
