"""Bar plot of one results table: one bar per row, the mean over seeds, the 95 % confidence
interval of the mean (t distribution, ``n - 1`` degrees of freedom, sample std), and the per-seed
values as points; the published value, where there is one, as a diamond; for the metric the
binomial chance level thresholds (accuracy), the chance level of the test parts (the table's
``chance`` column) as a dashed line."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cmkd.analysis.figures.intervals import mean_ci
from cmkd.analysis.figures.readers import read_runs, read_table
from cmkd.analysis.figures.style import despine, message, palette, panel_grid, save_figure, style
from cmkd.metrics import METRICS, primary_metric

#: the metric whose binomial chance level (:func:`cmkd.metrics.chance_level`) the tables give
CHANCE_METRIC = primary_metric("classification")


def table_bars(
    table_csv: str | os.PathLike,
    runs: pd.DataFrame | str | os.PathLike,
    out_png: str | os.PathLike,
    out_svg: str | os.PathLike | None,
    title: str = "",
    track: str | None = None,
) -> pd.DataFrame:
    """Bars of one results table: mean over seeds, 95 % CI of the mean, per-seed points.

    Rows and labels come from the table CSV (:func:`cmkd.analysis.tables.write_tables`), the per-seed
    values from ``runs`` (ok runs of the same dataset, dimension, method, and ``track`` when the
    table has one). One panel per dataset x dimension. Published values are diamonds (hollow
    for synthetic data: a reference only). Returns the bars drawn (mean, ci_low, ci_high, n).
    """
    table = read_table(table_csv)
    if not isinstance(runs, pd.DataFrame):
        runs = read_runs(runs)
    ok = runs[runs["status"].fillna("ok").astype(str) == "ok"] if "status" in runs.columns else runs
    if track:
        ok = ok[ok["track"].astype(str) == str(track)]
    bars = []
    for r in table.itertuples(index=False) if len(table) else []:
        sel = ok[(ok["dataset"] == str(r.dataset)) & (ok["dimension"] == str(r.dimension))
                 & (ok["method"] == str(r.method))]
        vals = sel[r.metric].astype(float).dropna().tolist() if r.metric in sel.columns else []
        m, lo, hi = mean_ci(vals)
        pub = getattr(r, "published", math.nan)
        if str(getattr(r, "published_scale", "")) == "unknown":  # not comparable: not drawn
            pub = math.nan
        bars.append({"dataset": r.dataset, "dimension": r.dimension, "method": r.method,
                     "label": getattr(r, "label", r.method), "metric": r.metric, "mean": m,
                     "ci_low": lo, "ci_high": hi, "n": len(vals), "values": vals,
                     "published": float(pub) if pd.notna(pub) else math.nan,
                     "chance": float(getattr(r, "chance", math.nan)) if pd.notna(getattr(r, "chance", math.nan)) else math.nan,
                     "synthetic": str(getattr(r, "synthetic", False)).strip().lower() in ("true", "1")})
    df = pd.DataFrame(bars)
    facets = list(dict.fromkeys(zip(df["dataset"], df["dimension"]))) if len(df) else []
    with style():
        nrows_bars = max([int(((df["dataset"] == d) & (df["dimension"] == x)).sum()) for d, x in facets] or [1])
        fig, axes = panel_grid(len(facets), 3, max(3.8, 0.9 * nrows_bars + 1.5), 4.2)
        if not facets:
            message(axes[0], "empty table")
        legend: dict = {}
        labels = list(dict.fromkeys(df["label"])) if len(df) else []
        colours = dict(zip(labels, palette(max(1, len(labels)))))
        for ax, (ds, dim) in zip(axes, facets):
            sub = df[(df["dataset"] == ds) & (df["dimension"] == dim)].reset_index(drop=True)
            x = np.arange(len(sub))
            ax.bar(x, sub["mean"].fillna(0.0), color=[colours[lab] for lab in sub["label"]], alpha=0.55,
                   edgecolor="0.2", linewidth=0.6)
            err = np.vstack([(sub["mean"] - sub["ci_low"]).to_numpy(), (sub["ci_high"] - sub["mean"]).to_numpy()])
            ax.errorbar(x, sub["mean"], yerr=np.nan_to_num(err), fmt="none", ecolor="0.1", capsize=4, lw=1)
            pts = pd.DataFrame([(i, v) for i, vals in enumerate(sub["values"]) for v in vals], columns=["x", "v"])
            if len(pts):
                jitter = (np.random.default_rng(0).random(len(pts)) - 0.5) * 0.25
                ax.scatter(pts["x"] + jitter, pts["v"], s=14, color="0.15", zorder=3, label="per seed")
            pub = sub[sub["published"].notna()]
            if len(pub):
                syn = bool(pub["synthetic"].any())
                ax.scatter(pub.index, pub["published"], marker="D", s=40, zorder=4,
                           facecolors="none" if syn else "crimson", edgecolors="crimson",
                           label="published" + (" (real data; reference only)" if syn else ""))
            ch = sub["chance"] if "chance" in sub else pd.Series(dtype=float)
            if len(ch.dropna()) and str(sub["metric"].iloc[0]) == CHANCE_METRIC:
                # the binomial chance level of each bar's test parts (one line where they agree)
                if float(ch.max() - ch.min()) < 0.05:
                    ax.axhline(float(ch.mean()), color="crimson", ls="--", lw=1.0, zorder=5,
                               label="chance level (binomial, α = 0.05)")
                else:
                    ax.hlines(ch, x - 0.45, x + 0.45, colors="crimson", linestyles="--", lw=1.0, zorder=5,
                              label="chance level (binomial, α = 0.05)")
            ax.set_xticks(x, sub["label"], rotation=30, ha="right", fontsize=8)
            metric = sub["metric"].iloc[0] if len(sub) else ""
            ax.set_ylabel(f"{metric} (mean, 95 % CI)", fontsize=8)
            ax.set_title(f"{ds} / {dim}", fontsize=9)
            if metric in METRICS and METRICS[metric].unit == "%":
                ax.set_ylim(0.0, 100.0)
            else:
                ax.set_ylim(bottom=0.0)
            for h, lab in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(lab, h)
            despine(ax)
        if legend:
            fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                       ncols=len(legend) if len(facets) > 1 else min(len(legend), 2), fontsize=8)
        fig.suptitle((title or Path(table_csv).stem) + "\nbars: mean over seeds; whiskers: 95 % CI of the mean (t)",
                     fontsize=10)
        save_figure(fig, out_png, out_svg)
    return df.drop(columns=["values"]) if len(df) else df
