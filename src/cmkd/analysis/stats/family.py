"""Multiple comparisons: Holm's adjustment within a family, the significance marks, and the
family of one table (its own Holm correction and MDE)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cmkd.analysis.stats.base import MARK_TEST
from cmkd.analysis.stats.power import runs_for_mde, standard_effect


def holm_adjust(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, in the order given: sorted ascending, the
    ``i``-th smallest (0-based) times ``n - i``, made non-decreasing by a running maximum and
    capped at 1. The same numbers as ``statsmodels.stats.multitest.multipletests(p,
    method="holm")[1]``, which also runs a full garbage collection per call (0.1 s each on the
    heap of a stats file with thousands of rows)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="mergesort")
    n = p.size
    adjusted = np.maximum.accumulate(p[order] * np.arange(n, 0, -1))
    out = np.empty(n, dtype=float)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _holm(table: pd.DataFrame) -> pd.Series:
    out = pd.Series(np.nan, index=table.index, dtype=float)
    family = ["dataset", "track", "dimension", "metric", "test", "reference"]
    for _, grp in table.groupby(family, sort=False, dropna=False):
        p = grp["p"].astype(float)
        valid = p.notna()
        if valid.any():
            out.loc[p.index[valid]] = holm_adjust(p[valid].to_numpy())
    return out


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
                 reference: str, methods: Sequence[str], test, alpha: float = 0.05,
                 target: float | None = None) -> dict:
    """One table's comparisons with ``reference`` as their own Holm family.

    A table reports its own comparisons, so its marks are corrected over them only: Holm over
    the p-values of ``test`` (a test name, or a mapping method -> test name when the methods'
    designs call for different tests) for the table's ``methods`` (the rows ``stats.csv`` has:
    those whose test can reach alpha at their n), and the MDE at the table's level ``alpha / K``
    (K = the number of those comparisons), rescaled from each row's ``mde`` at its cell-wide
    ``alpha_family`` (``TTestPower`` effect sizes at the two levels with ``nobs = df + 1``; the
    correction factor and the standard error cancel). Returns ``{"alpha": alpha / K, "k": K,
    "p_holm": {method: p}, "mde": {method: mde}, "note": {method: note}, "runs": {method: (n, R)}}``
    (``k = 0`` when the table has no row of ``test``); ``runs`` only with ``target``: the training
    runs each comparison ran and would need (``(n, R)``) for its MDE at ``alpha / K`` to reach ``target``
    (:func:`cmkd.analysis.stats.power.runs_for_mde`).
    """
    by_method = dict(test) if isinstance(test, Mapping) else {m: test for m in methods}
    base = stats_df[(stats_df["dataset"].astype(str) == str(dataset))
                    & (stats_df["track"].astype(str) == str(track))
                    & (stats_df["dimension"].astype(str) == str(dimension))
                    & (stats_df["metric"] == metric) & (stats_df["reference"] == reference)]
    pick = pd.Series([by_method.get(m) for m in base["method"]], index=base.index, dtype=object)
    sel = base[(base["method"].isin(list(methods))) & (base["test"] == pick)]
    out = {"alpha": math.nan, "k": int(len(sel)), "p_holm": {}, "mde": {}, "note": {}, "runs": {}}
    if sel.empty:
        return out
    a_t = float(alpha) / len(sel)
    out["alpha"] = a_t
    p = sel["p"].astype(float)
    valid = p.notna()
    if valid.any():
        adj = holm_adjust(p[valid].to_numpy())
        out["p_holm"] = dict(zip(sel.loc[valid, "method"], (float(x) for x in adj)))
    for row in sel.itertuples(index=False):
        m = float(row.mde) if pd.notna(row.mde) else math.nan
        df = float(getattr(row, "df", math.nan))
        nobs = df + 1.0 if math.isfinite(df) else float(row.n)
        if math.isfinite(m) and nobs >= 2:
            m *= standard_effect(float(nobs), a_t) / standard_effect(float(nobs), float(row.alpha_family))
        out["mde"][row.method] = m
        if target is not None:
            out["runs"][row.method] = (int(row.n), runs_for_mde(m, df, int(row.n), float(target), a_t))
        note = getattr(row, "note", "")
        out["note"][row.method] = "" if pd.isna(note) else str(note)
    return out
