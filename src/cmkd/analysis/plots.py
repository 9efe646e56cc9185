"""Figures of the report: feature maps, learning curves, published vs reproduced, CD diagrams, bars.

Every figure is drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas (no display, no
pyplot state shared between figures) and written as PNG and SVG, each atomically
(:func:`cmkd.atomic.atomic_path`), with fixed metadata so that the same inputs give the same files.

Figures
    :func:`feature_maps`
        t-SNE (:class:`sklearn.manifold.TSNE`) or UMAP (:class:`umap.UMAP`) of the test-set
        embeddings (``features.npz``) of every method of one dataset x track x dimension cell,
        one panel and one fit per method (teacher and student embeddings may differ in size),
        points coloured by class (or by the target for regression). The projection uses a fixed
        ``random_state``, so a rerun draws the same picture. Each panel's subtitle gives the
        silhouette score of the classes in the original embedding space (not in the 2-D map,
        which t-SNE/UMAP distort), a number that can be compared between panels.
    :func:`learning_curves`
        per epoch: every training loss term (``train_<term>``), the validation loss and the
        validation metric, one line per method (mean over seeds) over thin per-seed lines.
    :func:`published_vs_reproduced`
        every table cell with a published number: reproduced mean (± std over seeds) against
        the published value, with the identity line; cells of synthetic data sets are drawn
        hollow, since their published numbers come from the real data set and are a
        reference only.
    :func:`cd_diagram`
        Friedman test over cells and Nemenyi post-hoc (:func:`cmkd.analysis.stats.friedman_nemenyi`),
        drawn by :func:`cmkd.analysis.stats.critical_difference_diagram`.
    :func:`table_bars`
        one bar per row of a results table: mean over seeds, the 95 % confidence interval of the
        mean (t distribution, ``n - 1`` degrees of freedom, sample std), and the per-seed values
        as points; the published value, where there is one, as a diamond; for accuracy, the
        binomial chance level of the test parts (the table's ``chance`` column) as a dashed line.
    :func:`cmkd.analysis.subject_plots.gains_figure`
        per-subject gain of every method over the track's no-KD reference (``plots gains``).

Command line (wired by :mod:`cmkd.cli` as ``python -m cmkd plots ...`` and
``python -m cmkd stats ...``; ``python -m cmkd.analysis.plots plots|stats ...`` works as well):
see :func:`main_plots` and :func:`main_stats`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cmkd import atomic
from cmkd.errors import CmkdError, ConfigError, DataError

#: Projections :func:`feature_maps` draws.
KINDS = ("tsne", "umap")
#: At most this many test points per panel (a fixed random subset beyond it); keeps t-SNE and
#: UMAP fast on the paper grid (DEAP test parts have ~2,000 segments).
MAX_POINTS = 3000
_KEY = ["dataset", "track", "dimension"]
_RC = {
    "svg.hashsalt": "cmkd-bench",  # stable element ids: identical SVGs for identical inputs
    "svg.fonttype": "none",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_METADATA_PNG = {"Software": None}
_METADATA_SVG = {"Date": None, "Creator": None}


# ----------------------------------------------------------------------------------------------
# helpers


@contextmanager
def _style():
    import matplotlib
    import seaborn as sns

    with matplotlib.rc_context(_RC), sns.axes_style("whitegrid", {"axes.spines.top": False,
                                                                   "axes.spines.right": False}):
        yield


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _panel_grid(n: int, max_cols: int, panel_w: float, panel_h: float, pad_w: float = 0.0, pad_h: float = 0.0):
    """A figure with ``n`` panels on a grid at most ``max_cols`` wide: ``(fig, axes)``, ``axes``
    flat; the cells beyond ``n`` are switched off. Call inside :func:`_style`."""
    n = max(1, n)
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    fig = _figure(panel_w * ncols + pad_w, panel_h * nrows + pad_h)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes


def save_figure(fig, out_png: str | os.PathLike, out_svg: str | os.PathLike | None = None,
                dpi: int = 150) -> None:
    """Write ``fig`` as PNG (and SVG), each atomically, without time stamps."""
    from cmkd.atomic import atomic_path

    with matplotlib_rc():
        with atomic_path(out_png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata=_METADATA_PNG)
        if out_svg is not None:
            with atomic_path(out_svg, suffix=".svg") as tmp:
                fig.savefig(tmp, format="svg", metadata=_METADATA_SVG)


def matplotlib_rc():
    import matplotlib

    return matplotlib.rc_context({"svg.hashsalt": _RC["svg.hashsalt"], "svg.fonttype": "none"})


def _message(ax, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True, fontsize=9)


def default_order(methods: Iterable[str]) -> list[str]:
    """Teachers first, then no-KD baselines, then the others (each group alphabetical)."""
    def key(m: str):
        group = 0 if m.startswith("teacher") else 1 if m.startswith("baseline") else 2
        return group, m
    return sorted(dict.fromkeys(methods), key=key)


def _ordered(methods: Iterable[str], order: Sequence[str] | None) -> list[str]:
    methods = list(dict.fromkeys(methods))
    if not order:
        return default_order(methods)
    first = [m for m in order if m in methods]
    return first + default_order([m for m in methods if m not in first])


def _palette(n: int):
    import seaborn as sns

    return sns.color_palette("tab10" if n <= 10 else "husl", n)


# ----------------------------------------------------------------------------------------------
# feature maps


def load_features(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """``embedding`` (n, D), ``y`` (n,) and ``logits`` of a run's ``features.npz``."""
    path = Path(run_dir) / "features.npz"
    if not path.exists():
        raise DataError(f"{path}: features file missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read features ({e})") from None
    for k in ("embedding", "y"):
        if k not in out:
            raise DataError(f"{path}: no array '{k}' (has {sorted(out)})")
    if "fold" in out and out["embedding"].ndim == 2 and len(out["fold"]) == len(out["embedding"]):
        # a cross-validated run: each fold's model has its own feature space; draw fold 0's
        keep = out["fold"] == 0
        out = {k: (v[keep] if v.ndim >= 1 and len(v) == len(keep) else v) for k, v in out.items()}
    return out


#: environment variable naming the directory of the on-disk cache of UMAP's compiled functions
NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def import_umap(cache_dir: str | os.PathLike | None = None):
    """Import umap-learn; with ``cache_dir`` (or ``$NUMBA_CACHE_DIR``) set, its numba functions are
    compiled once into that directory and loaded from it by every later process.

    umap-learn compiles about 24 CPU-seconds of numba code in every process that first runs UMAP,
    and its functions are declared without ``cache=True``, so each feature-map job (one per cell)
    would pay it again: about 500 CPU-seconds over the default's 21 cells. Here ``numba.njit`` and
    ``numba.jit`` default to ``cache=True`` while umap (and pynndescent) are imported; numba keys
    its cache on the function's source, signature and the CPU, so a cached function is the same
    machine code a fresh compile would give (the maps are identical; tested). Without a cache
    directory, or when umap is already imported, this is a plain import.
    """
    import sys

    if "umap" in sys.modules or (cache_dir is None and not os.environ.get(NUMBA_CACHE_ENV)):
        import umap

        return umap
    if cache_dir is not None:
        if "numba" in sys.modules and os.environ.get(NUMBA_CACHE_ENV) != str(cache_dir):
            raise ConfigError(f"--numba-cache: numba is already imported; set {NUMBA_CACHE_ENV} before it is")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        os.environ[NUMBA_CACHE_ENV] = str(cache_dir)
    import numba

    def cached(decorator):
        def wrapper(*args, **kwargs):
            if len(args) == 1 and callable(args[0]) and not kwargs:  # bare @numba.njit
                return decorator(cache=True)(args[0])
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)

        return wrapper

    njit, jit = numba.njit, numba.jit
    numba.njit, numba.jit = cached(njit), cached(jit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numba's "cannot cache" notes for the few closures it compiles
            import umap
    finally:
        numba.njit, numba.jit = njit, jit
    return umap


def project(x: np.ndarray, kind: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D map of the rows of ``x`` (n, D): t-SNE or UMAP with ``random_state=seed``.

    Features are standardised per dimension first (constant dimensions left at zero).
    t-SNE: PCA initialisation, perplexity ``min(30, (n - 1) / 3)`` (the PCA start and the
    Barnes-Hut optimisation involve no random draw, so the map does not depend on ``seed``); UMAP: ``n_neighbors =
    min(15, n - 1)``, spectral initialisation (random for fewer than 10 points), ``random_state``
    fixed (single-threaded). Deterministic for fixed inputs and seed. Fewer than 3 points, or ``D < 2``, raise :class:`DataError`.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    n = x.shape[0]
    if n < 3:
        raise DataError(f"{kind}: needs at least 3 points, got {n}")
    sd = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if x.shape[1] < 2:
        raise DataError(f"{kind}: needs features of at least 2 dimensions, got {x.shape[1]}")
    if kind == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=int(seed),
                    learning_rate="auto", n_jobs=1)
        return tsne.fit_transform(x).astype(np.float64)
    if kind == "umap":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap = import_umap()
            reducer = umap.UMAP(n_components=2, n_neighbors=int(min(15, n - 1)), min_dist=0.1,
                                random_state=int(seed), init="spectral" if n >= 10 else "random",
                                n_jobs=1)
            return np.asarray(reducer.fit_transform(x), dtype=np.float64)
    raise ConfigError(f"plots.kind: must be one of {', '.join(KINDS)}, got {kind!r}")


def _is_classes(y: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(y).dtype, np.integer)


def silhouette(x: np.ndarray, y: np.ndarray) -> float:
    """Silhouette score of the classes ``y`` in the embedding ``x`` (NaN when undefined)."""
    from sklearn.metrics import silhouette_score

    y = np.asarray(y)
    k = len(np.unique(y))
    if not _is_classes(y) or k < 2 or k >= len(y):
        return math.nan
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if not np.isfinite(x).all() or np.allclose(x, x[0]):
        return math.nan
    return float(silhouette_score(x, y))


def _subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def feature_maps(
    run_dirs_by_method: Mapping[str, Sequence[str | os.PathLike]],
    out_png: str | os.PathLike,
    out_svg: str | os.PathLike | None,
    method_order: Sequence[str] | None = None,
    title: str = "",
    kind: str = "tsne",
    seed: int = 0,
    seed_index: int = 0,
    class_names: Mapping[int, str] | None = None,
    max_points: int = MAX_POINTS,
) -> dict[str, np.ndarray]:
    """One panel per method: the 2-D ``kind`` map of its test-set embedding, coloured by class.

    ``run_dirs_by_method``: method -> run directories (one per seed); the ``seed_index``-th
    (the first seed by default) is drawn. Every panel is its own fit (embedding sizes may
    differ between methods). A method whose features are missing or unusable gets a panel that
    says why instead of failing the whole figure. Returns method -> 2-D coordinates drawn.
    """
    if kind not in KINDS:
        raise ConfigError(f"plots.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    methods = _ordered(run_dirs_by_method, method_order)
    coords: dict[str, np.ndarray] = {}
    label = {"tsne": "t-SNE", "umap": "UMAP"}[kind]
    with _style():
        fig, axes = _panel_grid(len(methods), 4, 3.4, 3.3, 0.6, 0.7)
        handles = None
        cont = None
        for ax, method in zip(axes, methods):
            dirs = list(run_dirs_by_method[method])
            if not dirs:
                _message(ax, f"{method}\nno runs")
                continue
            rd = dirs[min(seed_index, len(dirs) - 1)]
            try:
                f = load_features(rd)
                emb, y = np.asarray(f["embedding"]), np.asarray(f["y"])
                if emb.size == 0 or len(emb) != len(y):
                    raise DataError(f"{rd}: no embedding of the {len(y)} test points")
                keep = _subsample(len(y), max_points, seed)
                emb, y = emb.reshape(len(emb), -1)[keep], y[keep]
                xy = project(emb, kind, seed)
            except DataError as e:
                _message(ax, f"{method}\n{e}")
                continue
            coords[method] = xy
            sil = silhouette(emb, y)
            if _is_classes(y):
                classes = np.unique(y)
                pal = _palette(len(classes))
                for c, col in zip(classes, pal):
                    sel = y == c
                    name = (class_names or {}).get(int(c), f"class {int(c)}")
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=col, alpha=0.8, linewidths=0,
                               label=name)
                handles = ax.get_legend_handles_labels()
            else:
                cont = ax.scatter(xy[:, 0], xy[:, 1], c=y.astype(float), s=12, cmap="viridis",
                                  linewidths=0)
            sub = f"D={emb.shape[1]}, n={len(y)}"
            if not math.isnan(sil):
                sub += f", silhouette={sil:.2f}"
            ax.set_title(f"{method}\n{sub}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"{label} 1", fontsize=8)
            ax.set_ylabel(f"{label} 2", fontsize=8)
        if not methods:
            _message(axes[0], "no runs to draw")
        if handles is not None and handles[0]:
            fig.legend(*handles, loc="outside lower center", ncols=min(len(handles[0]), 6),
                       fontsize=8, markerscale=1.5)
        elif cont is not None:
            fig.colorbar(cont, ax=list(axes[:len(methods)]), shrink=0.8, label="target")
        fig.suptitle(f"{title}\n{label} of test-set features (seed index {seed_index}, "
                     f"random_state={seed})" if title else f"{label} of test-set features",
                     fontsize=10)
        save_figure(fig, out_png, out_svg)
    return coords


# ----------------------------------------------------------------------------------------------
# learning curves


def read_csv_checked(path: str | os.PathLike, missing: str, unreadable: str, empty_ok: bool = False,
                     **read_kw) -> pd.DataFrame:
    """``pd.read_csv(path, **read_kw)``. A missing file is a :class:`DataError` ``"<path>: <missing>"``,
    one pandas cannot parse ``"<path>: <unreadable> (<pandas' reason>)"``; an empty file is an empty
    frame with ``empty_ok`` and unreadable without."""
    try:
        return pd.read_csv(path, **read_kw)
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except pd.errors.EmptyDataError as e:
        if empty_ok:
            return pd.DataFrame()
        raise DataError(f"{path}: {unreadable} ({e})") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: {unreadable} ({e})") from None


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    h = read_csv_checked(path, "history file missing", "cannot read history")
    if "epoch" not in h.columns:
        raise DataError(f"{path}: history has no 'epoch' column (has {list(h.columns)})")
    return h


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
    for c in ("val_accuracy", "val_f1", "val_rmse"):
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
    methods = _ordered(histories_by_method, method_order)
    hist = {m: [read_history(p) for p in histories_by_method[m]] for m in methods}
    panels = _curve_panels([h for hs in hist.values() for h in hs])
    colours = dict(zip(methods, _palette(len(methods))))
    with _style():
        fig, axes = _panel_grid(len(panels), 3, 4.0, 3.0, 0.4, 0.9)
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
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not panels:
            _message(axes[0], "no history to draw")
        handles = [(colours[m], m) for m in methods]
        if handles:
            from matplotlib.lines import Line2D

            fig.legend([Line2D([], [], color=c, lw=1.8) for c, _ in handles], [m for _, m in handles],
                       loc="outside lower center", ncols=min(len(handles), 6), fontsize=8)
        fig.suptitle((title + "\n" if title else "") +
                     "mean over seeds (thick) and each seed (thin)", fontsize=10)
        save_figure(fig, out_png, out_svg)
    return panels


# ----------------------------------------------------------------------------------------------
# published vs reproduced


def _read_table(path: str | os.PathLike) -> pd.DataFrame:
    return read_csv_checked(path, "table file missing", "cannot read table", empty_ok=True)


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
        df = _read_table(p)
        if df.empty or "published" not in df.columns:
            continue
        missing = [c for c in ("dataset", "dimension", "method", "metric", "mean") if c not in df.columns]
        if missing:
            raise DataError(f"{p}: table lacks column(s) {missing}")
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
    colours = dict(zip(tables, _palette(max(1, len(tables)))))
    with _style():
        n = max(1, len(metrics))
        fig = _figure(max(7.0, 5.2 * n + 0.4), 5.6)
        axes = fig.subplots(1, n, squeeze=False).ravel()
        if not metrics:
            _message(axes[0], "no table cell has a published number")
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


# ----------------------------------------------------------------------------------------------
# critical difference diagram


def cd_diagram(
    runs: pd.DataFrame | str | os.PathLike,
    out_png: str | os.PathLike,
    out_svg: str | os.PathLike,
    metric: str = "accuracy",
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
    from cmkd.analysis import stats
    from cmkd.atomic import write_json

    if not isinstance(runs, pd.DataFrame):
        runs = _read_runs(runs)
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


def interval_plot(runs: pd.DataFrame, metric: str, out_png, out_svg, title: str) -> None:
    """Per method (rows) and block (markers): mean over seeds and its 95 % t interval."""
    ok = runs[runs["status"].fillna("ok").astype(str) == "ok"] if "status" in runs.columns else runs
    ok = ok[ok[metric].notna()]
    blocks = sorted({(str(d), str(t), str(m)) for d, t, m in zip(ok["dataset"], ok["track"], ok["dimension"])})
    methods = default_order(ok["method"].astype(str).unique())
    fig = _figure(7.5, max(2.5, 0.32 * len(methods) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    if not methods:
        _message(ax, f"no ok runs with a value for {metric}")
    colours = _palette(max(1, len(blocks)))
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
    import textwrap

    ax.set_title("\n".join(textwrap.fill(line, 95) for line in title.split("\n")), fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png, out_svg)


# ----------------------------------------------------------------------------------------------
# bar plot per table


def _read_runs(path: str | os.PathLike) -> pd.DataFrame:
    runs = read_csv_checked(path, "run table missing", "cannot read run table")
    for c in ("dataset", "track", "dimension", "method"):
        if c in runs.columns:
            runs[c] = runs[c].astype(str)
    return runs


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the ``confidence`` t interval of the mean (sample std, ``n - 1`` df).

    The interval is ``(nan, nan)`` for fewer than 2 values.
    """
    from scipy import stats as ss

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if v.size < 2:
        return m, math.nan, math.nan
    half = float(ss.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half


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
    import seaborn as sns

    table = _read_table(table_csv)
    if not isinstance(runs, pd.DataFrame):
        runs = _read_runs(runs)
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
    with _style():
        nrows_bars = max([int(((df["dataset"] == d) & (df["dimension"] == x)).sum()) for d, x in facets] or [1])
        fig, axes = _panel_grid(len(facets), 3, max(3.8, 0.9 * nrows_bars + 1.5), 4.2)
        if not facets:
            _message(axes[0], "empty table")
        legend: dict = {}
        labels = list(dict.fromkeys(df["label"])) if len(df) else []
        colours = dict(zip(labels, _palette(max(1, len(labels)))))
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
            if len(ch.dropna()) and str(sub["metric"].iloc[0]) == "accuracy":
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
            if metric in ("accuracy", "f1"):
                ax.set_ylim(0.0, 100.0)
            else:
                ax.set_ylim(bottom=0.0)
            for h, lab in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(lab, h)
            sns.despine(ax=ax)
        if legend:
            fig.legend(list(legend.values()), list(legend), loc="outside lower center",
                       ncols=len(legend) if len(facets) > 1 else min(len(legend), 2), fontsize=8)
        fig.suptitle((title or Path(table_csv).stem) + "\nbars: mean over seeds; whiskers: 95 % CI of the mean (t)",
                     fontsize=10)
        save_figure(fig, out_png, out_svg)
    return df.drop(columns=["values"]) if len(df) else df


# ----------------------------------------------------------------------------------------------
# command line


def _json_list(value: str | None, where: str) -> list:
    if not value:
        return []
    try:
        v = json.loads(value)
    except json.JSONDecodeError:
        return [s for s in value.split(",") if s]
    if not isinstance(v, list):
        raise ConfigError(f"{where}: expected a JSON list, got {value!r}")
    return [str(x) for x in v]


def _cells(runs: pd.DataFrame, exclude: Sequence[str]) -> dict[tuple, dict[str, list[str]]]:
    """(dataset, track, dimension) -> method -> run dirs of ok runs, in seed order."""
    if "path" not in runs.columns:
        raise DataError("run table has no 'path' column (written by `python -m cmkd aggregate`)")
    ok = runs["status"].fillna("ok").astype(str).eq("ok") if "status" in runs.columns else True
    out: dict[tuple, dict[str, list[str]]] = {}
    for key, g in runs.groupby(_KEY, sort=True):
        out[key] = {}
        for m, gm in g.groupby("method", sort=True):
            if m in exclude:
                continue
            good = gm[ok.loc[gm.index]] if not isinstance(ok, bool) else gm
            out[key][m] = [str(p) for p in good.sort_values("seed")["path"]]
    return out


def runs_from_metrics(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The run-table columns the feature maps read (cell, seed, status, path), from the runs'
    ``metrics.json`` files instead of ``runs.csv``: a cell's maps need only that cell's runs."""
    from cmkd.analysis.tables import run_cell

    rows = []
    for f in files:
        m = atomic.read_json(f, "metrics file missing")
        rows.append({**run_cell(m, f), "status": m.get("status", "ok"), "path": str(Path(f).parent)})
    return pd.DataFrame(rows, columns=[*_KEY, "method", "seed", "status", "path"])


def cmd_features(a) -> None:
    if a.numba_cache and "umap" in a.kinds:
        import_umap(a.numba_cache)
    if (a.runs is None) == (not a.metrics):
        raise ConfigError("plots features: give either --runs (every cell of runs.csv) or --metrics (the runs' metrics.json)")
    runs = _read_runs(a.runs) if a.runs is not None else runs_from_metrics(a.metrics)
    order, exclude = _json_list(a.order, "--order"), _json_list(a.exclude, "--exclude")
    try:
        names = json.loads(a.class_names) if a.class_names else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--class-names: not valid JSON ({e})") from None
    if not isinstance(names, dict):
        raise ConfigError("--class-names: must map a dimension to a list of class names")
    for (ds, tr, dim), by_method in _cells(runs, exclude).items():
        cn = {i: f"{n} ({i})" for i, n in enumerate(names.get(dim) or [])}
        for kind in a.kinds:
            base = Path(a.out_dir) / ds / tr / dim / f"features_{kind}"
            feature_maps(by_method, base.with_suffix(".png"), base.with_suffix(".svg"), order,
                         title=f"{ds} / {tr} / {dim}", kind=kind, seed=a.seed, seed_index=a.seed_index,
                         class_names=cn, max_points=a.max_points)
            print(f"wrote {base}.png", flush=True)


def cmd_curves(a) -> None:
    by_method: dict[str, list[str]] = {}
    for p in a.histories:
        by_method.setdefault(Path(p).parent.parent.name, []).append(p)
    learning_curves(by_method, a.out_png, a.out_svg, _json_list(a.order, "--order"), title=a.title)


def cmd_scatter(a) -> None:
    published_vs_reproduced(a.tables, a.out_png, a.out_svg, title=a.title)


def cmd_cd(a) -> None:
    s = cd_diagram(a.runs, a.out_png, a.out_svg, metric=a.metric, title=a.title, track=a.track or None,
                   exclude=_json_list(a.exclude, "--exclude"), alpha=a.alpha, out_json=a.out_json,
                   methods=_json_list(a.methods, "--methods") if a.methods else None, group=a.group)
    print(json.dumps({k: s[k] for k in ("metric", "statistic", "p", "n_blocks", "ranks", "note")}), flush=True)


def cmd_bars(a) -> None:
    table_bars(a.table, a.runs, a.out_png, a.out_svg, title=a.title, track=a.track or None)


def cmd_gains(a) -> None:
    from cmkd.analysis.subject_plots import gains_figure

    labels = json.loads(a.labels) if a.labels else {}
    gains_figure(a.subjects, a.out_png, a.out_svg, reference=a.reference, track=a.track or None,
                 exclude=_json_list(a.exclude, "--exclude"), order=_json_list(a.order, "--order"), labels=labels,
                 title=a.title)


def main_plots(argv: Sequence[str] | None = None) -> int:
    """``python -m cmkd plots {features,curves,scatter,cd,bars} ...``; returns 0.

    Raises :class:`cmkd.errors.CmkdError` on bad input (the CLI prints it and exits with 2).
    """
    p = argparse.ArgumentParser(prog="python -m cmkd plots", description="figures of the report")
    sub = p.add_subparsers(dest="figure", required=True)

    s = sub.add_parser("features", help="t-SNE/UMAP maps of test features, every cell of runs.csv or of the runs given")
    s.add_argument("--runs", help="runs.csv (its 'path' column locates features.npz)")
    s.add_argument("--metrics", nargs="+", help="instead of --runs: the runs' metrics.json (features.npz beside each)")
    s.add_argument("--out-dir", required=True, help="writes <out-dir>/<dataset>/<track>/<dimension>/features_<kind>.png|svg")
    s.add_argument("--kinds", nargs="+", default=["tsne"], choices=KINDS)
    s.add_argument("--order", help="method order as JSON list")
    s.add_argument("--exclude", help="methods left out, JSON list")
    s.add_argument("--seed", type=int, default=0, help="random_state of the projection")
    s.add_argument("--seed-index", type=int, default=0, help="which run seed to draw (0 = the first)")
    s.add_argument("--max-points", type=int, default=MAX_POINTS)
    s.add_argument("--numba-cache", default=None,
                   help="directory of the on-disk cache of UMAP's compiled numba functions, shared by the jobs "
                        "(saves ~20 CPU-s of compilation per job after the first; see import_umap)")
    s.add_argument("--class-names", help='JSON: {"<dimension>": ["low", "high"], ...} (label index -> name)')
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("curves", help="learning curves of one cell")
    s.add_argument("histories", nargs="+", help=".../<method>/seed<N>/history.csv")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.add_argument("--order", help="method order as JSON list")
    s.add_argument("--title", default="")
    s.set_defaults(func=cmd_curves)

    s = sub.add_parser("scatter", help="published vs reproduced, every table cell with a published number")
    s.add_argument("tables", nargs="+", help="table CSVs written by `python -m cmkd tables`")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.add_argument("--title", default="Published vs reproduced")
    s.set_defaults(func=cmd_scatter)

    s = sub.add_parser("cd", help="critical difference diagram (Friedman + Nemenyi over cells)")
    s.add_argument("--runs", required=True)
    s.add_argument("--metric", default="accuracy", choices=("accuracy", "f1", "rmse"))
    s.add_argument("--track", default="")
    s.add_argument("--exclude", help="methods left out, JSON list")
    s.add_argument("--alpha", type=float, default=0.05)
    s.add_argument("--methods", help="only these methods (JSON list): the like networks of one group")
    s.add_argument("--group", default="", help="name of the group (students, teachers) for the title")
    s.add_argument("--title", default="")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg", required=True)
    s.add_argument("--out-json")
    s.set_defaults(func=cmd_cd)

    s = sub.add_parser("bars", help="bar plot of one results table (mean, 95 %% CI, seeds)")
    s.add_argument("--table", required=True, help="table CSV written by `python -m cmkd tables`")
    s.add_argument("--runs", required=True)
    s.add_argument("--track", default="")
    s.add_argument("--title", default="")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.set_defaults(func=cmd_bars)

    s = sub.add_parser("gains", help="per-subject gain of every method over the no-KD reference (box + points)")
    s.add_argument("--subjects", required=True, help="subjects.csv written by `python -m cmkd aggregate --subjects-out`")
    s.add_argument("--reference", required=True, help="the no-KD method every gain is taken over")
    s.add_argument("--track", default="")
    s.add_argument("--exclude", help="methods left out, JSON list")
    s.add_argument("--order", help="method order as JSON list")
    s.add_argument("--labels", help="JSON: method -> label")
    s.add_argument("--title", default="")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.set_defaults(func=cmd_gains)

    a = p.parse_args(list(argv) if argv is not None else None)
    a.func(a)
    return 0


def main_stats(argv: Sequence[str] | None = None) -> int:
    """``python -m cmkd stats --runs runs.csv --out stats.csv --references JSON ...``; returns 0.

    ``--references``: JSON object track -> list of reference methods (config
    ``tracks.<t>.references``, default ``["baseline"]``); ``--test-fraction`` from the config's
    split ratios: the Nadeau-Bengio ratio of runs that recorded no split sizes (the others' ratio
    comes from their own splits).
    """
    from cmkd.analysis.stats import write_stats

    p = argparse.ArgumentParser(prog="python -m cmkd stats", description="paired tests per cell (cmkd.analysis.stats)")
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--references", required=True, help='JSON: {"<track>": ["baseline", ...]}')
    p.add_argument("--test-fraction", type=float, default=0.1)
    p.add_argument("--metrics", nargs="+", default=["accuracy", "f1", "rmse"])
    a = p.parse_args(list(argv) if argv is not None else None)
    try:
        refs = json.loads(a.references)
    except json.JSONDecodeError as e:
        raise ConfigError(f"tracks.<track>.references: --references is not valid JSON ({e})") from None
    if not isinstance(refs, dict) or not all(isinstance(v, list) for v in refs.values()):
        raise ConfigError("tracks.<track>.references: must map each track to a list of methods")
    table = write_stats(a.runs, a.out, refs, a.test_fraction, a.metrics)
    print(f"wrote {a.out}: {len(table)} rows", flush=True)
    return 0


def _main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("plots", "stats"):
        print("usage: python -m cmkd.analysis.plots {plots,stats} ...", file=sys.stderr)
        return 2
    try:
        return (main_plots if argv[0] == "plots" else main_stats)(argv[1:])
    except CmkdError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_main())
