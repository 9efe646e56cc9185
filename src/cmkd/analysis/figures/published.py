"""Published vs reproduced: every table cell with a published number, the reproduced mean (± std
over seeds) against the published value, with the identity line; cells of synthetic data sets
are drawn hollow, since their published numbers come from the real data set and are a reference
only."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from cmkd.analysis.figures.readers import read_table
from cmkd.analysis.figures.style import figure, message, palette, save_figure, style
from cmkd.errors import DataError


def published_vs_reproduced(
    table_csvs: Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    out_svg: str | os.PathLike | None,
    title: str = "Published vs reproduced",
) -> pd.DataFrame:
    """Scatter of every table cell with a published number; identity line; synthetic hollow.

    Reads the CSVs written by :func:`cmkd.analysis.tables.write_tables` (columns ``dataset, dimension,
    method, label, metric, mean, std, n, published, diff, synthetic``); the table name is the
    file stem. One panel per metric (accuracy and F1 in %, RMSE on [0, 1]). Error bars: sample
    std over seeds. Returns the points drawn (with a ``table`` column).
    """
    frames = []
    for p in table_csvs:
        df = read_table(p)
        if df.empty or "published" not in df.columns:
            continue
        missing = [c for c in ("dataset", "dimension", "method", "metric", "mean") if c not in df.columns]
        if missing:
            raise DataError(f"{p}: table lacks column(s) {missing}")
        if "kind" in df.columns:  # a gains table's rows are averaged differences, not a metric: not drawn
            df = df[df["kind"].fillna("").astype(str) != "gain"]
        df = df.assign(table=Path(p).stem)
        frames.append(df)
    pts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["table", "dataset", "dimension", "method", "metric", "mean", "std", "published", "synthetic"])
    if "published_scale" in pts.columns:  # a published number on an unknown scale is not compared
        pts = pts[pts["published_scale"].fillna("").astype(str) != "unknown"]
    pts = pts[pd.to_numeric(pts["published"], errors="coerce").notna()
              & pd.to_numeric(pts["mean"], errors="coerce").notna()].copy()
    pts["published"] = pts["published"].astype(float)
    pts["mean"] = pts["mean"].astype(float)
    if "std" not in pts.columns:
        pts["std"] = np.nan
    if "synthetic" not in pts.columns:
        pts["synthetic"] = False
    pts["synthetic"] = pts["synthetic"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))
    metrics = list(dict.fromkeys(pts["metric"])) if len(pts) else []
    tables = list(dict.fromkeys(pts["table"])) if len(pts) else []
    colours = dict(zip(tables, palette(max(1, len(tables)))))
    with style():
        n = max(1, len(metrics))
        fig = figure(max(7.0, 5.2 * n + 0.4), 5.6)
        axes = fig.subplots(1, n, squeeze=False).ravel()
        if not metrics:
            message(axes[0], "no table cell has a published number")
        for ax, metric in zip(axes, metrics):
            sub = pts[pts["metric"] == metric]
            for tab in tables:
                for syn in (False, True):
                    s = sub[(sub["table"] == tab) & (sub["synthetic"] == syn)]
                    if s.empty:
                        continue
                    col = colours[tab]
                    ax.errorbar(s["published"], s["mean"], yerr=s["std"].fillna(0.0), fmt="none",
                                ecolor=col, elinewidth=0.8, alpha=0.6)
                    ax.scatter(s["published"], s["mean"], s=36, marker="o",
                               facecolors="none" if syn else col, edgecolors=col, linewidths=1.3,
                               label=f"{tab}{' (synthetic)' if syn else ''}", zorder=3)
            for r in sub.itertuples(index=False):
                ax.annotate(f"{r.method}/{r.dimension}", (r.published, r.mean), fontsize=6,
                            xytext=(3, 3), textcoords="offset points", alpha=0.8)
            lo = float(np.nanmin([sub["published"].min(), (sub["mean"] - sub["std"].fillna(0)).min()]))
            hi = float(np.nanmax([sub["published"].max(), (sub["mean"] + sub["std"].fillna(0)).max()]))
            pad = 0.05 * max(hi - lo, 1e-6)
            lims = (lo - pad, hi + pad)
            ax.plot(lims, lims, color="0.4", lw=1, ls="--", label="identity", zorder=1)
            ax.set_xlim(lims)
            ax.set_ylim(lims)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xlabel(f"published {metric}", fontsize=9)
            ax.set_ylabel(f"reproduced {metric} (mean ± std)", fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
        note = ""
        if len(pts) and pts["synthetic"].any():
            note = ("\nhollow: synthetic data; the published numbers are from the real data set"
                    "\n(a reference only, not comparable)")
        fig.suptitle(title + note, fontsize=10)
        save_figure(fig, out_png, out_svg)
    return pts.reset_index(drop=True)

