"""Per-subject spread of each method's gain over the no-KD reference (``plots gains``).

A mean gain over seeds can be carried by a few subjects. From ``subjects.csv`` (one row per run
and test subject, :func:`cmkd.analysis.tables.aggregate_runs`), each subject's metric is averaged over the
seeds (the subject's test segments of every seed), then the gain of every method over the
reference is taken per subject: ``method - reference`` for metrics where higher is better,
``reference - method`` for the others (RMSE), so that a positive gain is always an improvement
(:func:`cmkd.metrics.higher_is_better`). One panel per dataset x dimension; per method a box
(quartiles) over the subjects' gains, the subjects as points, and ``k/N``: the number of subjects
the method improves.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from cmkd.analysis.figures.readers import read_csv_checked
from cmkd.analysis.figures.style import message, panel_grid, save_figure, style
from cmkd.errors import DataError
from cmkd.metrics import higher_is_better, primary_metric


def read_subjects(path: str | os.PathLike) -> pd.DataFrame:
    df = read_csv_checked(path, "per-subject metrics file missing (aggregate --subjects-out)",
                          "cannot read per-subject metrics", dtype={"subject": str, "session": str})
    missing = {"dataset", "track", "dimension", "method", "seed", "subject", "group"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: per-subject metrics lack column(s) {sorted(missing)}")
    for c in ("dataset", "track", "dimension", "method"):
        df[c] = df[c].astype(str)
    return df


def subject_gains(subjects: pd.DataFrame, reference: str, track: str | None = None,
                  metrics: dict | None = None, exclude: Sequence[str] = (),
                  order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-subject gains over ``reference``: columns dataset, dimension, method, subject, metric,
    gain, n_seeds. ``metrics`` maps a dimension to its metric (default: the regression task's
    primary metric where the dimension has values of it and none of the classification task's,
    else the classification task's: :func:`cmkd.metrics.primary_metric`)."""
    reg, cls = primary_metric("regression"), primary_metric("classification")
    df = subjects[subjects["group"].astype(str) == "subject"]
    if track:
        df = df[df["track"] == str(track)]
    rows = []
    for (ds, dim), g in df.groupby(["dataset", "dimension"], sort=True):
        metric = (metrics or {}).get(dim) or (reg if g[reg].notna().any() and g[cls].isna().all() else cls)
        per = g.groupby(["method", "subject"])[metric].agg(["mean", "count"]).reset_index()
        ref = per[per["method"] == reference].set_index("subject")
        if ref.empty:
            continue
        methods = [m for m in per["method"].unique() if m != reference and m not in exclude]
        if order:
            rank = {m: i for i, m in enumerate(order)}
            methods.sort(key=lambda m: (rank.get(m, len(rank)), m))
        for m in methods:
            pm = per[per["method"] == m].set_index("subject")
            common = pm.index.intersection(ref.index)
            for s in sorted(common):
                d = float(pm.at[s, "mean"] - ref.at[s, "mean"])
                rows.append({"dataset": ds, "dimension": dim, "method": m, "subject": s, "metric": metric,
                             "gain": d if higher_is_better(metric) else -d, "n_seeds": int(pm.at[s, "count"])})
    return pd.DataFrame(rows, columns=["dataset", "dimension", "method", "subject", "metric", "gain", "n_seeds"])


def gains_figure(subjects_csv: str | os.PathLike, out_png: str | os.PathLike, out_svg: str | os.PathLike | None,
                 reference: str, track: str | None = None, exclude: Sequence[str] = (),
                 order: Sequence[str] | None = None, labels: dict | None = None, title: str = "") -> pd.DataFrame:
    """Draw the per-subject gains of every method of ``track`` over ``reference``; return them."""
    gains = subject_gains(read_subjects(subjects_csv), reference, track, exclude=exclude, order=order)
    labels = labels or {}
    facets = list(dict.fromkeys(zip(gains["dataset"], gains["dimension"]))) if len(gains) else []
    with style():
        width = max([gains[(gains["dataset"] == d) & (gains["dimension"] == x)]["method"].nunique() for d, x in facets] or [1])
        fig, axes = panel_grid(max(1, len(facets)), 2, max(5.2, 0.7 * width + 1.5), 4.2)
        if not facets:
            message(axes[0], f"no per-subject results of '{reference}' and another method")
        for ax, (ds, dim) in zip(axes, facets):
            sub = gains[(gains["dataset"] == ds) & (gains["dimension"] == dim)]
            methods = list(dict.fromkeys(sub["method"]))
            data = [sub[sub["method"] == m]["gain"].to_numpy() for m in methods]
            x = np.arange(len(methods))
            ax.boxplot(data, positions=x, widths=0.55, showfliers=False, patch_artist=False,
                       medianprops={"color": "0.2"}, whiskerprops={"color": "0.5"}, capprops={"color": "0.5"})
            rng = np.random.default_rng(0)
            for i, v in enumerate(data):
                ax.scatter(i + (rng.random(len(v)) - 0.5) * 0.3, v, s=14, color="tab:blue", alpha=0.8, zorder=3)
                k = int((v > 1e-9).sum())  # improved beyond rounding
                ax.annotate(f"{k}/{len(v)}", (i, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                            fontsize=7, color="0.3")
            ax.axhline(0.0, color="crimson", lw=1.0, ls="--", zorder=1)
            metric = str(sub["metric"].iloc[0])
            sense = "method − reference" if higher_is_better(metric) else "reference − method"
            ax.set_ylabel(f"gain in {metric} per subject ({sense})", fontsize=8)
            ax.set_xticks(x, [labels.get(m, m) for m in methods], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{ds} / {dim}", fontsize=9, pad=14)
        fig.suptitle((title or f"Per-subject gain over {reference}" + (f" ({track})" if track else ""))
                     + "\nbox: quartiles over subjects; points: subjects (mean over seeds)"
                     + "\nk/N above a box: subjects improved", fontsize=9)
        save_figure(fig, out_png, out_svg)
    return gains

