"""Input, output and params functions of the data, training and tuning rules.

A rule's function of the job's wildcards ``w`` is called as ``lambda w: f(GRID, w)``. A training
job holds every seed of its cell (``seeds_per_job: all``, the default: no ``seed`` wildcard) or one
seed (``seeds_per_job: 1``): :func:`job_seeds`.
"""
from __future__ import annotations

import json
import shlex

from cmkd.config import run_dir, run_spec
from cmkd.workflow.grid import Grid


# ----------------------------------------------------------------------------- data
def prepare_params(grid: Grid, w) -> str:
    """The loader parameters of data set ``w.dataset``, as JSON."""
    return json.dumps(grid.config["datasets"][w.dataset].get("params", {}) or {}, sort_keys=True)


def raw_root(grid: Grid, w) -> list[str]:
    """The raw data folder of ``w.dataset`` (an input of its prepare job; none for generated data)."""
    root = grid.config["datasets"][w.dataset].get("root")
    return [root] if root else []


def prepare_root_arg(grid: Grid, w) -> str:
    root = grid.config["datasets"][w.dataset].get("root")
    return f"--root {shlex.quote(str(root))}" if root else ""


# ----------------------------------------------------------------------------- runs
def run_pattern(grid: Grid) -> str:
    """The run folder (:data:`cmkd.config.RUN_DIR`) with the cell's wildcards and ``{seed}`` to fill."""
    return run_dir(grid.config, "{{dataset}}", "{{track}}", "{{dimension}}", "{{method}}", "{seed}")


def job_seeds(grid: Grid, w) -> list:
    """The seeds of a training job: its ``seed`` wildcard, or every seed of the grid."""
    return [w.seed] if grid.per_seed_jobs else list(grid.seeds)


def train_outputs(grid: Grid, name: str):
    """The ``name`` file (metrics.json, model.pt, ...) a training job writes: one per seed of the
    grid, or a ``{seed}`` pattern for one job per seed."""
    run = run_pattern(grid)
    if grid.per_seed_jobs:
        return f"{run.format(seed='{seed}')}/{name}"
    return [f"{run.format(seed=s)}/{name}" for s in grid.seeds]


def job_file(grid: Grid, kind: str, rule: str, ext: str) -> str:
    """A training job's log (``kind="logs"``) or benchmark file (``"benchmarks"``): one per cell,
    or one per seed."""
    seed = "/seed{seed}" if grid.per_seed_jobs else ""
    return f"{grid.results}/{kind}/{rule}/{{dataset}}/{{track}}/{{dimension}}/{{method}}{seed}.{ext}"


def teacher_checkpoints(grid: Grid, w, seeds=None) -> list[str]:
    """The model.pt of every run the method of ``w`` requires (teacher, teacher assistants), for
    ``seeds`` (default: the job's seeds)."""
    seeds = job_seeds(grid, w) if seeds is None else seeds
    reqs = grid.method(w.method).get("requires") or {}
    return [f"{run_dir(grid.config, w.dataset, w.track, w.dimension, t, s)}/model.pt"
            for t in reqs.values() for s in seeds]


def study_files(grid: Grid, w, seeds=None) -> list[str]:
    """The study results (study.json) a tuned run's training job reads, for ``seeds`` (default: the
    job's seeds); none for an untuned method."""
    if not grid.method(w.method).get("tuning"):
        return []
    seeds = job_seeds(grid, w) if seeds is None else seeds
    return [f"{run_dir(grid.config, w.dataset, w.track, w.dimension, w.method, s)}/study.json" for s in seeds]


def run_item(grid: Grid, w, seed) -> dict:
    """One run of a job: its complete specification and its folder."""
    return {
        "spec": run_spec(grid.config, w.dataset, w.track, w.dimension, w.method, int(seed)),
        "out": run_dir(grid.config, w.dataset, w.track, w.dimension, w.method, seed),
    }


def train_specs_json(grid: Grid, w) -> str:
    """The runs of a training job (``cmkd train --specs``), as JSON."""
    return json.dumps([run_item(grid, w, s) for s in job_seeds(grid, w)], sort_keys=True)


def study_specs_json(grid: Grid, w) -> str:
    """The study of one tuned run and seed (``cmkd tune --specs``), as JSON."""
    item = run_item(grid, w, w.seed)
    return json.dumps([{"spec": item["spec"], "out": f"{item['out']}/study.json"}], sort_keys=True)


def tuned_study_files(grid: Grid, tuned: list[str]) -> list[str]:
    """study.json of every tuned run of the grid (the tuning cost summary's inputs)."""
    return [f"{run_dir(grid.config, ds, tr, dim, m, s)}/study.json"
            for ds, tr, dim, m in grid.cells if m in tuned for s in grid.seeds]
