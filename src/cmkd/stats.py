"""Statistics of the benchmark: paired tests per cell, Friedman/Nemenyi across cells.

Input is the run table ``results/summary/runs.csv``: one row per run with the columns
``dataset, track, dimension, method, seed, accuracy, f1, rmse, status``. Only runs with
``status == "ok"`` enter a test; every other run (``"failed"``) is excluded but counted
(column ``n_failed`` of :func:`paired_tests`, ``n_failed`` of :func:`friedman_nemenyi`).

Paired tests (:func:`paired_tests`)
    Within one ``dataset x track x dimension`` cell, every method is compared with every
    reference method of that cell, paired by seed (inner join on ``seed``). Three tests:

    * ``paired_t``    -- :func:`scipy.stats.ttest_rel`;
    * ``corrected_t`` -- the corrected resampled t-test of Nadeau & Bengio (2003,
      Machine Learning 52:239-281, eq. for the "corrected resampled t"):
      ``t = mean(d) / sqrt((1/n + n_test/n_train) * var(d, ddof=1))``, ``df = n - 1``.
      A seed fixes the random split as well as the model, so the training sets of two seeds
      overlap and the ``n`` differences are not independent; the plain t-test then
      underestimates the variance. The correction term ``n_test/n_train`` is taken from the
      split ratios (``test_fraction / train_fraction``; 0.1 / 0.8 for the 8:1:1 split).
      No library implements this test; it is written here from the formula;
    * ``wilcoxon``    -- :func:`scipy.stats.wilcoxon`, two-sided, scipy's defaults otherwise.

    ``effect`` is the mean paired difference ``method - reference`` (so for ``rmse`` a
    negative effect means the method is better); ``ci_low``/``ci_high`` is the 95 % CI of the
    mean difference from the t distribution with ``n - 1`` degrees of freedom, with the
    corrected standard error on ``corrected_t`` rows and the plain one on ``paired_t`` and
    ``wilcoxon`` rows (the Wilcoxon test has no CI of the mean of its own). ``dz`` is Cohen's
    d_z = mean(d) / sd(d) (ddof=1), the same on the three rows of one comparison. Where a test
    is undefined, its CI (and ``dz`` for zero variance) is empty as well.

    ``p_holm`` is Holm's step-down adjustment
    (:func:`statsmodels.stats.multitest.multipletests`, ``method="holm"``) over one family:
    the comparisons of all methods with one reference, for one cell, metric and test. Rows
    without a p-value are not part of the family.

    A test that is undefined (fewer than 2 paired seeds, differences of zero variance for
    the t-tests, all differences zero for Wilcoxon) leaves ``statistic`` and ``p`` empty and
    says why in ``note``: no p-value is ever made up.

Significance marks (:func:`significance_marks`) use ``p_holm`` of the ``corrected_t`` rows only,
because it is the only one of the three tests that accounts for the overlap of the splits.

Across cells (:func:`friedman_nemenyi`)
    Each ``dataset x track x dimension`` cell is a block (mean over seeds); the Friedman test
    (:func:`scipy.stats.friedmanchisquare`) asks whether the methods differ at all, the
    Nemenyi test (:func:`scikit_posthocs.posthoc_nemenyi_friedman`) gives pairwise p-values, and
    :func:`critical_difference_diagram` draws them (:func:`scikit_posthocs.critical_difference_diagram`).
    Average ranks are 1 for the best method (highest accuracy/F1, lowest RMSE).
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as ss

from cmkd.errors import DataError

#: Columns of the table :func:`paired_tests` returns, in order (the last two are extras).
STATS_COLUMNS = (
    "dataset", "track", "dimension", "metric", "method", "reference", "test",
    "statistic", "p", "p_holm", "effect", "ci_low", "ci_high", "n", "note",
    "dz", "n_failed",
)
#: The tests of :func:`paired_tests`, in the order their rows appear.
TESTS = ("paired_t", "corrected_t", "wilcoxon")
#: Which direction is better per metric (used for ranks; effects keep the raw sign).
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "rmse": False}
#: The test whose Holm-adjusted p-value decides the significance marks.
MARK_TEST = "corrected_t"

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


def _split_ratio(test_fraction: float, train_fraction: float) -> float:
    test_fraction, train_fraction = float(test_fraction), float(train_fraction)
    if not (0 < test_fraction < 1) or not (0 < train_fraction < 1):
        raise DataError(
            f"split fractions must lie in (0, 1): test_fraction={test_fraction}, "
            f"train_fraction={train_fraction}"
        )
    return test_fraction / train_fraction


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


def _compare(d: np.ndarray, ratio: float) -> list[dict]:
    """The three test rows for one vector of paired differences (without key columns)."""
    n = int(d.size)
    rows = {t: {"test": t, "statistic": np.nan, "p": np.nan, "effect": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "n": n, "note": "", "dz": np.nan}
            for t in TESTS}
    if n == 0:
        for r in rows.values():
            r["note"] = "no paired seeds"
        return list(rows.values())
    mean = float(np.mean(d))
    for r in rows.values():
        r["effect"] = mean
    if n < 2:
        for r in rows.values():
            r["note"] = "fewer than 2 paired seeds: test undefined"
        return list(rows.values())

    sd = float(np.std(d, ddof=1))
    zero_var = _zero_variance(d)
    if not zero_var:
        dz = mean / sd
        for r in rows.values():
            r["dz"] = dz

    # paired t-test (scipy); the CI uses the plain standard error
    pt = rows["paired_t"]
    if zero_var:
        pt["note"] = "paired differences have zero variance: t undefined"
    else:
        res = ss.ttest_rel(d, np.zeros_like(d))
        pt["statistic"], pt["p"] = float(res.statistic), float(res.pvalue)
        pt["ci_low"], pt["ci_high"] = _t_ci(mean, sd / math.sqrt(n), n - 1)

    # corrected resampled t-test (formula; no library has it)
    ct = rows["corrected_t"]
    if zero_var:
        ct["note"] = "paired differences have zero variance: corrected t undefined"
    else:
        res = corrected_t_test(d, ratio)
        ct["statistic"], ct["p"] = res["statistic"], res["p"]
        ct["ci_low"], ct["ci_high"] = _t_ci(mean, res["se"], res["df"])

    # Wilcoxon signed-rank test (scipy); the CI shown is the plain t CI of the mean difference
    wx = rows["wilcoxon"]
    wx["ci_low"], wx["ci_high"] = pt["ci_low"], pt["ci_high"]
    if np.all(d == 0):
        wx["note"] = "all paired differences are zero: Wilcoxon undefined"
    else:
        res = ss.wilcoxon(d, alternative="two-sided")
        if np.isfinite(res.pvalue):
            wx["statistic"], wx["p"] = float(res.statistic), float(res.pvalue)
            zeros = int(np.sum(d == 0))
            if zeros:
                wx["note"] = f"{zeros} zero difference(s) dropped (zero_method='wilcox')"
        else:
            wx["note"] = "Wilcoxon returned no finite p-value"
    return list(rows.values())


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


def paired_tests(
    runs: pd.DataFrame,
    references: Sequence[str],
    metrics: Sequence[str] = ("accuracy", "f1", "rmse"),
    test_fraction: float = 0.1,
    train_fraction: float = 0.8,
) -> pd.DataFrame:
    """Paired tests of every method against every reference, per dataset x track x dimension.

    Returns a table with the columns :data:`STATS_COLUMNS`; three rows (``paired_t``,
    ``corrected_t``, ``wilcoxon``) per cell x metric x method x reference. A reference (or
    method) is compared when it has any run in the cell, failed or not; a comparison whose
    runs all failed gets ``n = 0`` and a note. A metric is tested in a cell when at least one
    ok run of the cell has a value for it. ``n_failed`` counts the excluded (not ``ok``) runs of
    the method and the reference in the cell. See the module docstring for the tests.
    """
    _check_columns(runs, _REQUIRED)
    ratio = _split_ratio(test_fraction, train_fraction)
    references = list(dict.fromkeys(references))
    metrics = [m for m in metrics if m in runs.columns]
    ok = _is_ok(runs)
    rows: list[dict] = []
    for key, cell in runs.groupby(list(_KEY), sort=True, dropna=False):
        cell_ok = cell[ok.loc[cell.index]]
        failed_by_method = cell[~ok.loc[cell.index]].groupby("method").size()
        methods = sorted(cell["method"].astype(str).unique())
        present_refs = [r for r in references if r in methods]
        for metric in metrics:
            if cell_ok[metric].astype(float).notna().sum() == 0:
                continue
            for ref in present_refs:
                ref_frame = cell_ok[cell_ok["method"].astype(str) == ref]
                ref_vals = _seed_values(ref_frame, metric, f"{'/'.join(map(str, key))}/{ref}")
                for method in methods:
                    if method == ref:
                        continue
                    m_frame = cell_ok[cell_ok["method"].astype(str) == method]
                    m_vals = _seed_values(m_frame, metric, f"{'/'.join(map(str, key))}/{method}")
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
                    for r in _compare(d, ratio):
                        note = "; ".join([x for x in [r["note"], *extra] if x])
                        rows.append({
                            "dataset": key[0], "track": key[1], "dimension": key[2],
                            "metric": metric, "method": method, "reference": ref,
                            **r, "note": note, "n_failed": n_failed,
                        })
    table = pd.DataFrame(rows, columns=[c for c in STATS_COLUMNS if c != "p_holm"])
    table["p_holm"] = _holm(table) if len(table) else pd.Series(dtype=float)
    table = table[list(STATS_COLUMNS)]
    table["n"] = table["n"].astype(int)
    table["n_failed"] = table["n_failed"].astype(int)
    return table.reset_index(drop=True)


def significance_marks(stats_df: pd.DataFrame, alpha: float = 0.05) -> dict[tuple, str]:
    """``(dataset, track, dimension, metric, method, reference) -> "*"`` or ``""``.

    A comparison is marked when the Holm-adjusted p-value of the **corrected resampled
    t-test** (:data:`MARK_TEST`) is below ``alpha``; an empty p-value never marks.
    """
    sel = stats_df[stats_df["test"] == MARK_TEST]
    marks: dict[tuple, str] = {}
    for row in sel.itertuples(index=False):
        p = row.p_holm
        key = (row.dataset, row.track, row.dimension, row.metric, row.method, row.reference)
        marks[key] = "*" if (p is not None and pd.notna(p) and float(p) < alpha) else ""
    return marks


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

    from cmkd.io import atomic_path

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


def write_stats(
    runs_csv: str | os.PathLike,
    out_csv: str | os.PathLike,
    references_by_track: Mapping[str, Sequence[str]],
    test_fraction: float,
    train_fraction: float,
    metrics: Sequence[str] = ("accuracy", "f1", "rmse"),
) -> pd.DataFrame:
    """Read ``runs.csv``, run :func:`paired_tests` per track with that track's references
    (``references_by_track[track]``; a track not named there gets no rows) and write
    ``stats.csv`` atomically. Returns the table written.
    """
    from cmkd.io import write_csv

    try:
        runs = pd.read_csv(runs_csv)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{runs_csv}: cannot read run table: {exc}") from exc
    _check_columns(runs, _REQUIRED)
    for col in ("dataset", "track", "dimension", "method"):
        runs[col] = runs[col].astype(str)
    parts = []
    for track, refs in references_by_track.items():
        sub = runs[runs["track"] == str(track)]
        if len(sub) and refs:
            parts.append(paired_tests(sub, list(refs), metrics, test_fraction, train_fraction))
    if parts:
        table = pd.concat(parts, ignore_index=True)
        table = table.sort_values(list(_KEY), kind="stable").reset_index(drop=True)
    else:
        table = pd.DataFrame(columns=list(STATS_COLUMNS))
    write_csv(out_csv, table)
    return table
