"""Rank figures: the critical difference diagram of the methods over the cells of a track
(Friedman test over cells and Nemenyi post-hoc, :func:`cmkd.analysis.stats.friedman_nemenyi`,
drawn by :func:`cmkd.analysis.stats.critical_difference_diagram`), or per-block intervals
(:func:`cmkd.analysis.figures.intervals.interval_plot`) where there are too few cells to rank."""
from __future__ import annotations

import math
import os
from typing import Sequence

import pandas as pd

from cmkd.analysis import stats
from cmkd.analysis.figures.intervals import interval_plot
from cmkd.analysis.figures.readers import read_runs
from cmkd.analysis.figures.style import matplotlib_rc
from cmkd.atomic import write_json
from cmkd.errors import DataError
from cmkd.metrics import primary_metric


def cd_diagram(
    runs: pd.DataFrame | str | os.PathLike,
    out_png: str | os.PathLike,
    out_svg: str | os.PathLike,
    metric: str = primary_metric("classification"),
    title: str = "",
    track: str | None = None,
    exclude: Sequence[str] = (),
    alpha: float = 0.05,
    out_json: str | os.PathLike | None = None,
    methods: Sequence[str] | None = None,
    group: str = "",
) -> dict:
    """Critical difference diagram of the methods over the cells (blocks) of ``runs``.

    Only like networks are ranked together: ``methods`` (when given) are the networks of one
    ``group`` of a track that solve the same task from the same input (its students, or its
    teachers). With fewer than :data:`cmkd.analysis.stats.MIN_CD_BLOCKS` blocks (data sets x dimensions)
    a Friedman/Nemenyi ranking cannot separate anything, so per-method means with 95 % intervals
    over seeds are drawn per block instead (:func:`interval_plot`) and the title says why.

    Runs of ``track`` only (all tracks when None), without the methods in ``exclude``;
    :func:`cmkd.analysis.stats.friedman_nemenyi` ranks the methods per ``dataset x track x dimension``
    block (mean over seeds) and :func:`cmkd.analysis.stats.critical_difference_diagram` draws them. The
    Friedman statistic, p and the number of blocks go into the title. Returns the Friedman
    summary, with the Nemenyi table as a nested dict under ``nemenyi``; also written to
    ``out_json`` when given.
    """
    if not isinstance(runs, pd.DataFrame):
        runs = read_runs(runs)
    sel = runs
    if track:
        sel = sel[sel["track"].astype(str) == str(track)]
    if exclude:
        sel = sel[~sel["method"].astype(str).isin([str(m) for m in exclude])]
    if methods is not None:
        sel = sel[sel["method"].astype(str).isin([str(m) for m in methods])]
    if metric not in sel.columns:
        raise DataError(f"run table has no column '{metric}'")
    summary, nemenyi = stats.friedman_nemenyi(sel, metric=metric)
    who = f"{group} of {track}" if group and track else (group or track or "all methods")
    if summary["n_blocks"] < stats.MIN_CD_BLOCKS:
        why = (f"{summary['n_blocks']} block(s) (data sets x dimensions) < {stats.MIN_CD_BLOCKS}: "
               "no critical difference diagram (a rank test over so few blocks cannot separate methods); "
               "mean and 95 % interval over seeds per block instead")
        with matplotlib_rc():
            interval_plot(sel, metric, out_png, out_svg, f"{title or who}: {metric}\n{why}")
        summary = dict(summary, nemenyi={}, track=track, group=group, excluded=list(exclude),
                       methods_compared=sorted(sel["method"].astype(str).unique().tolist()),
                       drawn="intervals", why=why)
        if out_json is not None:
            write_json(out_json, summary)
        return summary
    k = len(summary["methods"])
    cd = stats.nemenyi_critical_difference(k, summary["n_blocks"], alpha) if k >= 2 else math.nan
    head = title or f"{who}: {metric}, average rank over blocks (1 = best)"
    if summary["p"] is not None:
        head += f"\nFriedman chi2={summary['statistic']:.2f}, p={summary['p']:.3g}, " \
                f"{summary['n_blocks']} blocks, Nemenyi alpha={alpha}"
    else:
        head += f"\n{summary['n_blocks']} block(s): {summary['note'] or 'no test'}"
    with matplotlib_rc():
        stats.critical_difference_diagram(summary["ranks"], nemenyi, out_png, out_svg, head, alpha=alpha)
    summary = dict(summary, nemenyi=({str(i): {str(j): float(v) for j, v in row.items()}
                                      for i, row in nemenyi.iterrows()} if len(nemenyi) else {}),
                   track=track, group=group, excluded=list(exclude), drawn="cd", critical_difference=cd)
    if out_json is not None:
        write_json(out_json, summary)
    return summary
