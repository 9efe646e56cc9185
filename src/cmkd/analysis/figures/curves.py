"""Learning curves of one cell: per epoch, every training loss term (``train_<term>``), the
validation loss and the validation metrics, one line per method (mean over seeds) over thin
per-seed lines."""
from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from cmkd.analysis.figures.readers import read_history
from cmkd.analysis.figures.style import message, ordered, palette, panel_grid, save_figure, style
from cmkd.metrics import headline_metrics


def _curve_panels(histories: Iterable[pd.DataFrame]) -> list[str]:
    cols: list[str] = []
    for h in histories:
        cols += [c for c in h.columns if c not in cols]
    train = [c for c in cols if c.startswith("train_") and not c.startswith("train_diag_")]
    train = (["train_total"] if "train_total" in train else []) + sorted(c for c in train if c != "train_total")
    val = []
    if "val_loss" in cols:
        val.append("val_loss")
    frames = list(histories)
    for c in (f"val_{m}" for m in headline_metrics()):
        if c in cols and any(c in h and h[c].notna().any() for h in frames):
            val.append(c)
    return train + val


def learning_curves(
    histories_by_method: Mapping[str, Sequence[str | os.PathLike]],
    out_png: str | os.PathLike,
    out_svg: str | os.PathLike | None,
    method_order: Sequence[str] | None = None,
    title: str = "",
) -> list[str]:
    """Per epoch: each training loss term, the validation loss and metrics; one panel each.

    ``histories_by_method``: method -> ``history.csv`` files (one per seed). A method is a
    coloured line (mean over the seeds that reached that epoch) over thin lines (each seed).
    A panel shows only the methods that log its term. Returns the panel names drawn.
    """
    methods = ordered(histories_by_method, method_order)
    hist = {m: [read_history(p) for p in histories_by_method[m]] for m in methods}
    panels = _curve_panels([h for hs in hist.values() for h in hs])
    colours = dict(zip(methods, palette(len(methods))))
    with style():
        fig, axes = panel_grid(len(panels), 3, 4.0, 3.0, 0.4, 0.9)
        for ax, col in zip(axes, panels):
            for m in methods:
                runs = [h[["epoch", col]].dropna() for h in hist[m] if col in h.columns]
                runs = [r for r in runs if len(r)]
                if not runs:
                    continue
                for r in runs:
                    ax.plot(r["epoch"], r[col], color=colours[m], lw=0.6, alpha=0.35)
                mean = pd.concat(runs).groupby("epoch")[col].mean()
                ax.plot(mean.index, mean.to_numpy(), color=colours[m], lw=1.8, label=m,
                        marker="o" if len(mean) < 3 else None, ms=3)
            ax.set_title(col, fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not panels:
            message(axes[0], "no history to draw")
        handles = [(colours[m], m) for m in methods]
        if handles:
            fig.legend([Line2D([], [], color=c, lw=1.8) for c, _ in handles], [m for _, m in handles],
                       loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)
        fig.suptitle((title + "\n" if title else "") +
                     "mean over seeds (thick) and each seed (thin)", fontsize=10)
        save_figure(fig, out_png, out_svg)
    return panels
