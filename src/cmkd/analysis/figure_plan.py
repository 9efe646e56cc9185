"""Which figures of the report can be drawn, decided from the config at plan time (torch-free).

A figure is planned only when the grid gives it something to draw: no placeholder image ("no
per-subject results of ...", "no ok runs with a value for rmse") ever enters the report.

* feature maps of a cell: at least one network run on the config's split (trivial baselines and
  runs on another split are left out of them); learning curves: one network;
* a rank (CD) figure of a track, group (students / teachers) and metric: at least two networks
  of the group run a dimension of that metric's task in the track (the task's primary metric,
  :func:`cmkd.metrics.primary_metric`: ``accuracy`` for a classification dimension, ``rmse`` for
  a regression dimension);
* the per-subject gain figure of a track: its no-KD reference (the track's first reference of
  class ``baseline``) and another network run one dataset x dimension cell;
* published vs reproduced: a table maps a row to a published number.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from cmkd.config import evaluated_modalities
from cmkd.metrics import PRIMARY, primary_metric

CD_GROUPS = ("students", "teachers")


def _task(cfg: Mapping, dimension: str) -> str:
    return cfg["dimensions"][dimension].get("task", "classification")


def group_methods(cfg: Mapping, cells: Iterable[Sequence[str]], track: str, group: str,
                  leave_out: Iterable[str] = ()) -> list[str]:
    """Networks of ``track`` that solve the same task from the same input: its students (the
    track's student modalities) or its teachers (teacher modalities), by the modalities the
    evaluated network reads (:func:`cmkd.config.evaluated_modalities`); ``leave_out`` excluded."""
    tr = cfg["tracks"][track]
    want = sorted(tr["student" if group == "students" else "teacher"])
    skip = set(leave_out)
    out: list[str] = []
    for _, t, _, m in cells:
        # by what the evaluated network reads (AMBOKD trains on the teacher's modalities, is a student)
        if t == track and m not in skip and m not in out and sorted(evaluated_modalities(dict(cfg), m, t)) == want:
            out.append(m)
    return out


def cd_figures(cfg: Mapping, cells: Sequence[Sequence[str]], leave_out: Iterable[str] = ()) -> list[tuple[str, str, str]]:
    """``(track, group, metric)`` of every rank figure with at least two networks to rank."""
    leave_out = list(leave_out)
    out = []
    for track in sorted({c[1] for c in cells}):
        for group in CD_GROUPS:
            members = set(group_methods(cfg, cells, track, group, leave_out))
            for metric in sorted({primary_metric(task) for task in PRIMARY}):
                ran = {m for _, t, dim, m in cells
                       if t == track and m in members and primary_metric(_task(cfg, dim)) == metric}
                if len(ran) >= 2:
                    out.append((track, group, metric))
    return out


def gains_reference(cfg: Mapping, track: str) -> str:
    """The track's no-KD reference of the per-subject gain figure: its first reference method of
    class ``baseline`` (``baseline`` when it names none)."""
    return next((m for m in cfg["tracks"][track].get("references") or []
                 if cfg["methods"].get(m, {}).get("class") == "baseline"), "baseline")


def gains_tracks(cfg: Mapping, cells: Sequence[Sequence[str]], leave_out: Iterable[str] = ()) -> list[str]:
    """Tracks whose per-subject gain figure has something to draw: the reference and another
    network (not in ``leave_out``) in one dataset x dimension cell."""
    skip = set(leave_out)
    out = []
    for track in sorted({c[1] for c in cells}):
        ref = gains_reference(cfg, track)
        by_cell: dict[tuple, set] = {}
        for ds, t, dim, m in cells:
            if t == track:
                by_cell.setdefault((ds, dim), set()).add(m)
        if any(ref in ms and (ms - {ref} - skip) for ms in by_cell.values()):
            out.append(track)
    return out


def feature_cells(cells: Sequence[Sequence[str]], leave_out: Iterable[str] = ()) -> list[tuple[str, str, str]]:
    """Dataset x track x dimension cells with at least one method not in ``leave_out``."""
    skip = set(leave_out)
    return sorted({tuple(c[:3]) for c in cells if c[3] not in skip})


def has_published_cells(cfg: Mapping) -> bool:
    """Whether a table maps a row to a published number (published vs reproduced has a point)."""
    return any(t.get("published") and any(v is not None for v in (t.get("rows") or {}).values())
               for t in cfg.get("tables") or [])
