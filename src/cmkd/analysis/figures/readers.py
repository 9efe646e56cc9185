"""The figures' inputs: run table, results tables, training histories, each read with one
:class:`cmkd.errors.DataError` naming a missing or unreadable file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from cmkd import atomic
from cmkd.analysis.tables import run_cell
from cmkd.errors import DataError

#: the columns that name a cell of the grid
CELL_KEY = ["dataset", "track", "dimension"]


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


def read_runs(path: str | os.PathLike) -> pd.DataFrame:
    """``runs.csv`` (``python -m cmkd aggregate``), the cell columns as strings."""
    runs = read_csv_checked(path, "run table missing", "cannot read run table")
    for c in ("dataset", "track", "dimension", "method"):
        if c in runs.columns:
            runs[c] = runs[c].astype(str)
    return runs


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A results table CSV (``python -m cmkd tables``); an empty file is an empty frame."""
    return read_csv_checked(path, "table file missing", "cannot read table", empty_ok=True)


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """A run's ``history.csv`` (one row per epoch)."""
    h = read_csv_checked(path, "history file missing", "cannot read history")
    if "epoch" not in h.columns:
        raise DataError(f"{path}: history has no 'epoch' column (has {list(h.columns)})")
    return h


def runs_from_metrics(files: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The run-table columns the feature maps read (cell, seed, status, path), from the runs'
    ``metrics.json`` files instead of ``runs.csv``: a cell's maps need only that cell's runs."""
    rows = []
    for f in files:
        m = atomic.read_json(f, "metrics file missing")
        rows.append({**run_cell(m, f), "status": m.get("status", "ok"), "path": str(Path(f).parent)})
    return pd.DataFrame(rows, columns=[*CELL_KEY, "method", "seed", "status", "path"])


def runs_by_cell(runs: pd.DataFrame, exclude: Sequence[str] = ()) -> dict[tuple, dict[str, list[str]]]:
    """(dataset, track, dimension) -> method -> run dirs of ok runs, in seed order."""
    if "path" not in runs.columns:
        raise DataError("run table has no 'path' column (written by `python -m cmkd aggregate`)")
    ok = runs["status"].fillna("ok").astype(str).eq("ok") if "status" in runs.columns else True
    out: dict[tuple, dict[str, list[str]]] = {}
    for key, g in runs.groupby(CELL_KEY, sort=True):
        out[key] = {}
        for m, gm in g.groupby("method", sort=True):
            if m in exclude:
                continue
            good = gm[ok.loc[gm.index]] if not isinstance(ok, bool) else gm
            out[key][m] = [str(p) for p in good.sort_values("seed")["path"]]
    return out
