"""Means over seeds with their t confidence intervals: :func:`mean_ci`, and :func:`interval_plot`,
the rank figure's stand-in where there are too few blocks for a critical difference diagram."""
from __future__ import annotations

import math
import textwrap
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as ss

from cmkd.analysis.figures.style import default_order, figure, message, palette, save_figure


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the ``confidence`` t interval of the mean (sample std, ``n - 1`` df).

    The interval is ``(nan, nan)`` for fewer than 2 values.
    """
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = float(ss.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half



def interval_plot(runs: pd.DataFrame, metric: str, out_png, out_svg, title: str) -> None:
    """Per method (rows) and block (markers): mean over seeds and its 95 % t interval."""
    ok = runs[runs["status"].fillna("ok").astype(str) == "ok"] if "status" in runs.columns else runs
    ok = ok[ok[metric].notna()]
    blocks = sorted({(str(d), str(t), str(m)) for d, t, m in zip(ok["dataset"], ok["track"], ok["dimension"])})
    methods = default_order(ok["method"].astype(str).unique())
    fig = figure(7.5, max(2.5, 0.32 * len(methods) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    if not methods:
        message(ax, f"no ok runs with a value for {metric}")
    colours = palette(max(1, len(blocks)))
    for b, (ds, tr, dim) in enumerate(blocks):
        sub = ok[(ok["dataset"].astype(str) == ds) & (ok["track"].astype(str) == tr) & (ok["dimension"].astype(str) == dim)]
        off = (b - (len(blocks) - 1) / 2) * 0.18
        for i, m in enumerate(methods):
            mean, lo, hi = mean_ci(sub.loc[sub["method"].astype(str) == m, metric].astype(float).tolist())
            if not math.isfinite(mean):
                continue
            ax.plot([mean], [i + off], "o", color=colours[b], label=f"{ds} / {dim}" if i == 0 else None)
            if math.isfinite(lo):
                ax.plot([lo, hi], [i + off, i + off], "-", color=colours[b], lw=1.2)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(methods)
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    if blocks and methods:
        ax.legend(fontsize=7, loc="best")
    ax.set_title("\n".join(textwrap.fill(line, 95) for line in title.split("\n")), fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png, out_svg)
