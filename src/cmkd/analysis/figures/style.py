"""Shared styling of the figures: the style context, figure and panel grid, palette, method
order, and :func:`save_figure` (PNG and SVG, each atomic, without time stamps)."""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Iterable, Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cmkd.atomic import atomic_path

_RC = {
    "svg.hashsalt": "cmkd-bench",  # stable element ids: identical SVGs for identical inputs
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA_PNG = {"Software": None}
_METADATA_SVG = {"Date": None, "Creator": None}


#: seaborn's ``axes_style("whitegrid")`` (seaborn 0.13) with the top and right spines off, as
#: matplotlib settings: importing seaborn costs a plotting job 0.7 CPU-s (its scipy.stats imports),
#: and the default runs about 50 of them. Its ``image.cmap`` ("rocket", a colormap seaborn registers)
#: is left out: no figure here draws an image without naming its colormap.
_WHITEGRID = {
    "figure.facecolor": "white", "axes.labelcolor": ".15", "xtick.direction": "out", "ytick.direction": "out",
    "xtick.color": ".15", "ytick.color": ".15", "axes.axisbelow": True, "grid.linestyle": "-", "text.color": ".15",
    "font.family": ["sans-serif"],
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "lines.solid_capstyle": "round", "patch.edgecolor": "w", "patch.force_edgecolor": True,
    "xtick.top": False, "ytick.right": False, "axes.grid": True, "axes.facecolor": "white", "axes.edgecolor": ".8",
    "grid.color": ".8", "axes.spines.left": True, "axes.spines.bottom": True, "axes.spines.right": False,
    "axes.spines.top": False, "xtick.bottom": False, "ytick.left": False,
}


@contextmanager
def style():
    """The figures' style (white grid, no top/right spines, stable SVG ids)."""
    with matplotlib.rc_context(_RC), matplotlib.rc_context(_WHITEGRID):
        yield


def despine(ax) -> None:
    """No top and right spines (seaborn's ``despine`` defaults)."""
    ax.spines[["top", "right"]].set_visible(False)


def figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def panel_grid(n: int, max_cols: int, panel_w: float, panel_h: float, pad_w: float = 0.0, pad_h: float = 0.0):
    """A figure with ``n`` panels on a grid at most ``max_cols`` wide: ``(fig, axes)``, ``axes``
    flat; the cells beyond ``n`` are switched off. Call inside :func:`style`."""
    n = max(1, n)
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    fig = figure(panel_w * ncols + pad_w, panel_h * nrows + pad_h)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def matplotlib_rc():
    """The part of the style that makes SVGs reproducible (stable ids, text as text)."""
    return matplotlib.rc_context({"svg.hashsalt": _RC["svg.hashsalt"], "svg.fonttype": "none"})


def save_figure(fig, out_png: str | os.PathLike, out_svg: str | os.PathLike | None = None,
                dpi: int = 150) -> None:
    """Write ``fig`` as PNG (and SVG), each atomically, without time stamps."""
    with matplotlib_rc():
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata=_METADATA_PNG)
        if out_svg is not None:
            with atomic_path(out_svg, suffix=".svg") as tmp:
                fig.savefig(tmp, format="svg", metadata=_METADATA_SVG)


def message(ax, text: str) -> None:
    """A panel that says why it has nothing to draw."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True, fontsize=9)


def default_order(methods: Iterable[str]) -> list[str]:
    """Teachers first, then no-KD baselines, then the others (each group alphabetical)."""
    def key(m: str):
        group = 0 if m.startswith("teacher") else 1 if m.startswith("baseline") else 2
        return group, m
    return sorted(dict.fromkeys(methods), key=key)


def ordered(methods: Iterable[str], order: Sequence[str] | None) -> list[str]:
    """``methods`` in ``order`` first, the rest after them in :func:`default_order`."""
    methods = list(dict.fromkeys(methods))
    if not order:
        return default_order(methods)
    first = [m for m in order if m in methods]
    return first + default_order([m for m in methods if m not in first])


def palette(n: int):
    """``n`` distinct colours: matplotlib's tab10 up to 10, seaborn's husl palette beyond."""
    if n <= 10:
        return [tuple(c) for c in matplotlib.colormaps["tab10"].colors[:n]]
    import seaborn as sns  # lazy: optional (only for more than 10 colours)

    return sns.color_palette("husl", n)
