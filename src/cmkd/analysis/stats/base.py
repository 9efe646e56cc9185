"""What the statistics share: the columns and tests of ``stats.csv``, the questions the tests
answer, the mark tests, the constants of the tests, and small helpers over the run table."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats as ss

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
#: The method-level resolution a comparison table aims at, in points of a percentage metric: each
#: table's note says how many training runs per method its method-level MDE would need to reach it
#: (:func:`cmkd.analysis.stats.power.runs_for_mde`) and what they would cost.
MDE_TARGET_POINTS = 10.0
#: Sign flips of the trial-level permutation test (exact enumeration when 2^n is not larger).
N_PERMUTATIONS = 9999
N_BOOTSTRAP = 2000

_KEY = ("dataset", "track", "dimension")
_REQUIRED = ("dataset", "track", "dimension", "method", "seed")
_CONFIDENCE = 0.95


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
