"""Multiple comparisons: Holm's adjustment within a family, the significance marks, and the
family of one table (its own Holm correction and MDE)."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from cmkd.analysis.stats.base import MARK_TEST, POWER


def _holm(table: pd.DataFrame) -> pd.Series:
    out = pd.Series(np.nan, index=table.index, dtype=float)
    family = ["dataset", "track", "dimension", "metric", "test", "reference"]
    for _, grp in table.groupby(family, sort=False, dropna=False):
        p = grp["p"].astype(float)
        valid = p.notna()
        if valid.any():
            out.loc[p.index[valid]] = multipletests(p[valid].to_numpy(), method="holm")[1]
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
