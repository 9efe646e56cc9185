"""The grid a workflow plans: the validated config, its cells and seeds, computed once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cmkd.config import iter_cells, trivial_method_names

#: wildcard regex of a name (data set, dimension, method)
NAME_RE = r"[a-z0-9_]+"


def protocol_of(config: Mapping, method_split: Mapping | None) -> tuple:
    """kind (and, for k-fold, the number of folds and how trials are dealt) of a method's split
    merged over the config's: runs on another protocol are left out of figures and rankings."""
    sp = {**config["split"], **(method_split or {})}
    return (sp["kind"], sp.get("n_folds"), sp.get("folds_by", "pooled")) if sp["kind"] == "kfold" else (sp["kind"],)


def other_protocol_methods(config: Mapping) -> list[str]:
    """Methods trained on another split than the config's (the leaky segment-level split of the
    leakage table, the k-fold/LOSO runs of the protocols table), sorted: left out of feature maps
    and rankings, which compare networks evaluated under one protocol only."""
    ref = protocol_of(config, None)
    return sorted(m for m, v in config["methods"].items() if protocol_of(config, v.get("split")) != ref)


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
        return cls(
            config=config,
            cells=list(iter_cells(config)),
            seeds=[int(s) for s in config["seeds"]],
            trivial=sorted(trivial_method_names(config)),
            listed_trivial=sorted(config.get("trivial_methods") or []),
            other_protocol=other_protocol_methods(config),
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
