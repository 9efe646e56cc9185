"""What the workflow's ``all`` rule asks for and the run files of a cell."""
from __future__ import annotations

from typing import Iterable

from cmkd.config import run_dir
from cmkd.workflow.figure_jobs import plot_targets
from cmkd.workflow.grid import Grid
from cmkd.workflow.lookup import table_names


# ----------------------------------------------------------------------------- run files
def metrics_path(config: dict, ds: str, tr: str, dim: str, m: str, seed) -> str:
    return f"{run_dir(config, ds, tr, dim, m, seed)}/metrics.json"


def all_metrics(grid: Grid) -> list[str]:
    """metrics.json of every run of the grid (every cell, every seed)."""
    return [metrics_path(grid.config, ds, tr, dim, m, s) for ds, tr, dim, m in grid.cells for s in grid.seeds]


def cell_run_files(grid: Grid, w, name: str, exclude: Iterable[str] = ()) -> list[str]:
    """The ``name`` file (metrics.json, features.npz, ...) of every run of the cell ``w`` (dataset,
    track, dimension), all seeds, methods in ``exclude`` left out."""
    exclude = set(exclude)
    return [
        f"{run_dir(grid.config, ds, tr, dim, m, s)}/{name}"
        for ds, tr, dim, m in grid.cells
        if (ds, tr, dim) == (w.dataset, w.track, w.dimension) and m not in exclude
        for s in grid.seeds
    ]


# ----------------------------------------------------------------------------- targets
def summary_targets(config: dict) -> list[str]:
    """runs.csv and every table's HTML page."""
    r = config["results"]
    return [f"{r}/summary/runs.csv"] + [f"{r}/summary/tables/{n}.html" for n in table_names(config)]


def tuned_methods(config: dict) -> list[str]:
    """Methods with a tuning study (cmkd.tuning.expand's tuned twins), sorted."""
    return sorted(m for m, e in config["methods"].items() if e.get("tuning"))


def tuning_targets(config: dict, tuning: dict | None) -> list[str]:
    """The tuning cost summary, when tuning is on and a method is tuned."""
    r = config["results"]
    return [f"{r}/summary/tuning.csv", f"{r}/summary/tuning.html"] if tuning and tuned_methods(config) else []


def default_targets(grid: Grid, tuning: dict | None = None) -> list[str]:
    """Everything the ``all`` rule asks for: runs.csv and the tables, the statistics, the claims,
    every planned figure and, with tuning on, the tuning cost."""
    r = grid.results
    return [*summary_targets(grid.config), f"{r}/summary/stats.csv", f"{r}/summary/claims.csv",
            *plot_targets(grid), *tuning_targets(grid.config, tuning)]
