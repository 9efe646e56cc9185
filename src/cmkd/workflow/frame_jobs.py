"""The frozen face feature extraction jobs (rule ``frame_features``, data.smk) and what the training
and tuning jobs take from them.

One job per (data set, extraction settings) that a frozen face encoder of the grid reads - the
run's own face encoder or a teacher's (:func:`cmkd.feasibility.face_encoder`) - whose output is
the cache folder's ``meta.json`` under ``<results>/frame_features/<dataset>/<settings_key>/``
(:mod:`cmkd.frame_keys`: the key is a hash of the configured settings, so the path is known while
planning). A training job whose run reads frozen faces takes that ``meta.json`` as an input: it
starts after the extraction and never waits on the cache's lock.
"""
from __future__ import annotations

import json
from typing import Callable

from cmkd.config import prepared_dir
from cmkd.feasibility import face_encoder
from cmkd.frame_keys import cache_folder, is_frozen, settings_key
from cmkd.resources import extraction_estimate
from cmkd.workflow.grid import Grid

#: wildcard regex of a settings key
KEY_RE = r"[0-9a-f]{16}"


def run_encoder(config: dict, track: str, method: str) -> dict | None:
    """The frozen face encoder a run of ``method`` on ``track`` reads (its own or a teacher's; the
    config check makes them agree), or None."""
    for m in (method, *(config["methods"][method].get("requires") or {}).values()):
        enc = face_encoder(config, m, track)
        if enc is not None and is_frozen(enc[1]):
            return dict(enc[1])
    return None


def extractions(grid: Grid) -> dict[tuple[str, str], dict]:
    """``{(dataset, settings_key): encoder settings}`` of every extraction the grid needs (once per grid)."""
    if "frame_extractions" not in grid.cache:
        out: dict[tuple[str, str], dict] = {}
        cached: dict[tuple[str, str], dict | None] = {}
        for ds, tr, _dim, m in grid.cells:
            if (tr, m) not in cached:
                cached[(tr, m)] = run_encoder(grid.config, tr, m)
            enc = cached[(tr, m)]
            if enc is not None:
                out.setdefault((ds, settings_key(enc)), enc)
        grid.cache["frame_extractions"] = out
    return grid.cache["frame_extractions"]


def meta_file(grid: Grid, dataset: str, enc: dict) -> str:
    return f"{cache_folder(prepared_dir(grid.config, dataset), enc)}/meta.json"


def run_inputs(grid: Grid, w) -> list[str]:
    """The extraction output (meta.json) a training or tuning job of ``w`` reads: none when its run
    reads no frozen face."""
    enc = run_encoder(grid.config, w.track, w.method)
    return [] if enc is None else [meta_file(grid, w.dataset, enc)]


def _planned(grid: Grid, w) -> dict:
    enc = extractions(grid).get((w.dataset, w.fkey))
    if enc is None:  # a path no run of the grid reads (asked for by hand)
        raise ValueError(f"frame_features: no frozen face encoder of the grid has settings key {w.fkey} on {w.dataset}")
    return enc


def encoder_json(grid: Grid, w) -> str:
    """The frozen encoder's settings of extraction job ``w`` (``cmkd frame-features --encoder``), as JSON."""
    return json.dumps(_planned(grid, w), sort_keys=True)


def weights_input(grid: Grid, w) -> list[str]:
    """A ``pretrained_path`` weights file (an input: a new file redoes the extraction); none otherwise."""
    path = _planned(grid, w).get("pretrained_path")
    return [str(path)] if path else []


def extraction_resource(grid: Grid, key: str, gpu: bool) -> Callable:
    """``mem_mb`` or ``runtime`` of extraction job ``w`` (:func:`cmkd.resources.extraction_estimate`),
    scaled by Snakemake's attempt; ``gpu``: the job is given the training jobs' GPU."""
    return lambda w, attempt: extraction_estimate(grid.config, w.dataset, attempt, gpu)[key]


def target_files(grid: Grid) -> list[str]:
    """Every extraction output of the grid (for a look at the plan; the training jobs pull them)."""
    return [meta_file(grid, ds, enc) for (ds, _k), enc in sorted(extractions(grid).items())]
