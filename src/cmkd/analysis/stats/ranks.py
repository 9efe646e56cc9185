"""Across cells: the Friedman test and Nemenyi post-hoc over blocks, the Nemenyi critical
difference, and the critical difference diagram."""
from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as ss

from cmkd.analysis.stats.base import _KEY, _check_columns, _is_ok
from cmkd.atomic import atomic_path
from cmkd.metrics import METRICS


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
    import scikit_posthocs as sp  # lazy: optional (loads matplotlib and seaborn)

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
    higher = METRICS[metric].higher_is_better if metric in METRICS else True
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


#: Fewer blocks than this: no critical difference diagram (per-method intervals instead).
MIN_CD_BLOCKS = 5


def nemenyi_critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks (Demsar 2006, JMLR 7:1-30, section 3.2.2).

    ``CD = q_alpha * sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the upper ``alpha`` point of the
    studentized range of ``k`` means with infinite degrees of freedom divided by ``sqrt(2)``
    (:data:`scipy.stats.studentized_range`; Demsar's Table 5a lists ``q_0.05`` = 1.960, 2.343,
    2.569, 2.728 ... for k = 2, 3, 4, 5 ...). Two methods whose average ranks over ``N`` blocks
    differ by more than CD differ at level ``alpha`` (family-wise).
    """
    if k < 2 or n_blocks < 1:
        raise ValueError(f"critical difference needs k >= 2 methods and N >= 1 blocks (k={k}, N={n_blocks})")
    q = float(ss.studentized_range.ppf(1.0 - alpha, k, np.inf)) / math.sqrt(2.0)
    return q * math.sqrt(k * (k + 1) / (6.0 * n_blocks))


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: optional (matplotlib: only the CD diagram draws)
    from matplotlib.figure import Figure  # lazy: optional (matplotlib: only the CD diagram draws)
    import scikit_posthocs as sp  # lazy: optional (loads matplotlib and seaborn)

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
