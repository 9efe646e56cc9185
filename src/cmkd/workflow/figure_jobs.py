"""The report's figures: which are planned (from the config, :mod:`cmkd.analysis.figure_plan`: a
figure with nothing to draw is not planned), where they go, which methods each kind leaves out."""
from __future__ import annotations

import json

from cmkd.analysis import figure_plan
from cmkd.analysis.figures import PROJECTIONS
from cmkd.workflow.grid import Grid
from cmkd.workflow.lookup import bar_tables

#: the projections of a cell's feature maps
FEATURE_KINDS = list(PROJECTIONS)  # the projections the feature maps draw (cmkd.analysis.figures)
#: the methods each kind of figure leaves out: ``other_protocol`` (runs on another split than the
#: config's: feature maps and rankings compare networks evaluated under one protocol only) and
#: ``trivial`` (the config's trivial baselines: no network, no epoch, no features)
EXCLUDED = {
    "feature_maps": ("other_protocol", "trivial"),
    "learning_curves": ("trivial",),
    "cd": ("other_protocol",),
    "gains": ("other_protocol", "trivial"),
}


def figure_dir(config: dict) -> str:
    return f"{config['results']}/summary/figures"


def excluded(grid: Grid, figure: str) -> list[str]:
    """The methods figure kind ``figure`` (a key of :data:`EXCLUDED`) leaves out."""
    groups = {"other_protocol": grid.other_protocol, "trivial": grid.listed_trivial}
    return [m for group in EXCLUDED[figure] for m in groups[group]]


def method_order(grid: Grid) -> list[str]:
    """Methods in the order the experiments list them (teacher, no-KD student, distilled students ...)."""
    return list(dict.fromkeys(c[3] for c in grid.cells))


def method_order_json(grid: Grid) -> str:
    return json.dumps(method_order(grid))


def cd_figures(grid: Grid) -> list[tuple[str, str, str]]:
    """``(track, group, metric)`` of every planned rank (critical difference) figure."""
    return figure_plan.cd_figures(grid.config, grid.cells, excluded(grid, "cd"))


def cd_group_methods(grid: Grid, track: str, group: str) -> list[str]:
    """Networks of a track that solve the same task from the same input: its students (the
    track's student modalities) or its teachers (the teacher modalities), by the modalities the
    evaluated network reads (AMBOKD trains on the teacher's modalities and is evaluated as a
    student); runs on another protocol left out."""
    return figure_plan.group_methods(grid.config, grid.cells, track, group, excluded(grid, "cd"))


def gains_tracks(grid: Grid) -> list[str]:
    """Tracks with a per-subject gain figure."""
    return figure_plan.gains_tracks(grid.config, grid.cells, excluded(grid, "gains"))


def gains_reference(grid: Grid, track: str) -> str:
    """A track's no-KD reference: its first reference method of class baseline."""
    return figure_plan.gains_reference(grid.config, track)


def feature_map_cells(grid: Grid) -> list[tuple[str, str, str]]:
    """(dataset, track, dimension) cells with feature maps."""
    return figure_plan.feature_cells(grid.cells, excluded(grid, "feature_maps"))


def curve_cells(grid: Grid) -> list[tuple[str, str, str]]:
    """(dataset, track, dimension) cells with learning curves."""
    return figure_plan.feature_cells(grid.cells, excluded(grid, "learning_curves"))


def class_names_json(config: dict) -> str:
    """Class names of the thresholded classification dimensions (``low``, ``high``), as JSON."""
    return json.dumps({d: ["low", "high"] for d, v in config["dimensions"].items()
                       if v["task"] == "classification" and "threshold" in v})


def plot_targets(grid: Grid) -> list[str]:
    """Every planned figure's PNG."""
    fig = figure_dir(grid.config)
    return (
        [f"{fig}/{ds}/{tr}/{dim}/features_{k}.png" for ds, tr, dim in feature_map_cells(grid) for k in FEATURE_KINDS]
        + [f"{fig}/{ds}/{tr}/{dim}/curves.png" for ds, tr, dim in curve_cells(grid)]
        + ([f"{fig}/published_vs_reproduced.png"] if figure_plan.has_published_cells(grid.config) else [])
        + [f"{fig}/cd/{tr}/{g}/{m}.png" for tr, g, m in cd_figures(grid)]
        + [f"{fig}/tables/{n}.png" for n in bar_tables(grid.config)]
        + [f"{fig}/gains/{tr}.png" for tr in gains_tracks(grid)]
    )
