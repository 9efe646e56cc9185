"""Feature maps: t-SNE (:class:`sklearn.manifold.TSNE`) or UMAP (:class:`umap.UMAP`) of the
test-set embeddings (``features.npz``) of every method of one dataset x track x dimension cell,
one panel and one fit per method (teacher and student embeddings may differ in size), points
coloured by class (or by the target for regression). The projection uses a fixed
``random_state``, so a rerun draws the same picture. Each panel's subtitle gives the silhouette
score of the classes in the original embedding space (not in the 2-D map, which t-SNE/UMAP
distort), a number that can be compared between panels.
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from cmkd.analysis.figures import MAX_POINTS, PROJECTIONS
from cmkd.analysis.figures.style import message, ordered, palette, panel_grid, save_figure, style
from cmkd.errors import ConfigError, DataError


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
    if "umap" in sys.modules or (cache_dir is None and not os.environ.get(NUMBA_CACHE_ENV)):
        import umap  # lazy: optional (umap-learn and numba: only UMAP maps need them)

        return umap
    if cache_dir is not None:
        if "numba" in sys.modules and os.environ.get(NUMBA_CACHE_ENV) != str(cache_dir):
            raise ConfigError(f"--numba-cache: numba is already imported; set {NUMBA_CACHE_ENV} before it is")
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        os.environ[NUMBA_CACHE_ENV] = str(cache_dir)
    import numba  # lazy: optional (umap-learn and numba: only UMAP maps need them)

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
            import umap  # lazy: optional (umap-learn and numba: only UMAP maps need them)
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
    raise ConfigError(f"plots.kind: must be one of {', '.join(PROJECTIONS)}, got {kind!r}")


def _is_classes(y: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(y).dtype, np.integer)


def silhouette(x: np.ndarray, y: np.ndarray) -> float:
    """Silhouette score of the classes ``y`` in the embedding ``x`` (NaN when undefined)."""
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
    if kind not in PROJECTIONS:
        raise ConfigError(f"plots.kind: must be one of {', '.join(PROJECTIONS)}, got {kind!r}")
    methods = ordered(run_dirs_by_method, method_order)
    coords: dict[str, np.ndarray] = {}
    label = {"tsne": "t-SNE", "umap": "UMAP"}[kind]
    with style():
        fig, axes = panel_grid(len(methods), 4, 3.4, 3.3, 0.6, 0.7)
        handles = None
        cont = None
        for ax, method in zip(axes, methods):
            dirs = list(run_dirs_by_method[method])
            if not dirs:
                message(ax, f"{method}\nno runs")
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
                message(ax, f"{method}\n{e}")
                continue
            coords[method] = xy
            sil = silhouette(emb, y)
            if _is_classes(y):
                classes = np.unique(y)
                pal = palette(len(classes))
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
            message(axes[0], "no runs to draw")
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

