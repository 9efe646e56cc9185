"""The grid a workflow plans: the validated config, its cells and seeds, computed once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cmkd.config import context_split, deep_merge, effective_run_config, iter_cells, trivial_method_names
from cmkd.data import split_kinds

#: wildcard regex of a name (data set, dimension, method)
NAME_RE = r"[a-z0-9_]+"


#: split parameters that make another protocol (other folds, one model per subject) where the kind declares them
PROTOCOL_PARAMS = ("n_folds", "folds_by", "models")


def protocol_of(split: Mapping) -> tuple:
    """The protocol of a split (its kind's declared defaults filled: :func:`cmkd.data.split_kinds.settings`):
    its kind and, where the kind declares them, how many folds and how trials are dealt into them, and
    whether one model per subject is trained.
    Runs on another protocol are left out of figures and rankings."""
    sp = split_kinds.settings(split)
    kind = split_kinds.get(sp["kind"])
    return (kind.name, *(sp[p] for p in PROTOCOL_PARAMS if p in kind.params))


def cell_protocol(config: Mapping, dataset: str, track: str, method: str | None = None) -> tuple:
    """:func:`protocol_of` a run's effective split (:func:`cmkd.config.effective_run_config`), or
    without ``method`` of the (data set, track)'s split that a method's own split is compared with."""
    if method is None:
        return protocol_of(context_split(config, dataset, track))
    return protocol_of(effective_run_config(config, dataset, track, None, method)["split_settings"])


def other_protocol_methods(config: Mapping, cells: list | None = None) -> list[str]:
    """Methods trained on another split than their (data set, track)'s in some cell of the grid (the
    leaky segment-level split of the leakage table, the k-fold/LOSO runs of the protocols table),
    sorted: left out of feature maps and rankings, which compare networks evaluated under one
    protocol only. A method no cell runs: its own split over the config's, against the config's."""
    cells = list(iter_cells(config)) if cells is None else cells
    ref = {ctx: cell_protocol(config, *ctx) for ctx in dict.fromkeys((c[0], c[1]) for c in cells)}
    runs: dict[str, set] = {}
    for ds, tr, _dim, m in cells:
        runs.setdefault(m, set()).add((ds, tr))
    top = protocol_of(config["split"])

    def other(m: str) -> bool:
        if m not in runs:
            return protocol_of(deep_merge(config["split"], config["methods"][m].get("split"))) != top
        return any(cell_protocol(config, ds, tr, m) != ref[(ds, tr)] for ds, tr in runs[m])

    return sorted(m for m in config["methods"] if other(m))


@dataclass
class Grid:
    """The validated config of a workflow and what every rule reads from it.

    ``cells``: every (dataset, track, dimension, method) of the grid (:func:`cmkd.config.iter_cells`);
    ``seeds``; ``trivial``: methods whose class is a trivial baseline (their own training rule, no
    GPU); ``listed_trivial``: the config's ``trivial_methods`` (no feature map, no learning curve);
    ``other_protocol``: :func:`other_protocol_methods`."""

    config: dict
    cells: list = field(default_factory=list)
    seeds: list = field(default_factory=list)
    trivial: list = field(default_factory=list)
    listed_trivial: list = field(default_factory=list)
    other_protocol: list = field(default_factory=list)
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, config: dict) -> "Grid":
        cells = list(iter_cells(config))
        return cls(
            config=config,
            cells=cells,
            seeds=[int(s) for s in config["seeds"]],
            trivial=sorted(trivial_method_names(config)),
            listed_trivial=sorted(config.get("trivial_methods") or []),
            other_protocol=other_protocol_methods(config, cells),
        )

    @property
    def results(self) -> str:
        return self.config["results"]

    @property
    def per_seed_jobs(self) -> bool:
        """``seeds_per_job: 1``: one training job per seed; ``all`` (default): one per cell."""
        return self.config.get("seeds_per_job", "all") != "all"

    def method(self, name: str) -> dict[str, Any]:
        return self.config["methods"][name]


def trivial_method_re(grid: Grid) -> str:
    """Wildcard regex of the method of a trivial-baseline training job (nothing when there is
    none); the wildcard's regex sits inside the path's, so a trivial name is refused when a "/" or
    the end of the path does not follow."""
    if not grid.trivial:
        return r"(?!)"  # matches nothing
    return rf"(?:{'|'.join(grid.trivial)})(?=/|$)"


def network_method_re(grid: Grid) -> str:
    """Wildcard regex of the method of a network training job: any name but a trivial baseline's."""
    if not grid.trivial:
        return NAME_RE
    return rf"(?!(?:{'|'.join(grid.trivial)})(?:/|$)){NAME_RE}"
