"""The file level: per-fold metrics, test predictions and split designs read from the runs'
folders, and :func:`write_stats` (``runs.csv`` -> ``stats.csv``)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from cmkd.analysis.stats.base import _KEY, _REQUIRED, STATS_COLUMNS, _check_columns, _is_ok
from cmkd.analysis.stats.paired import paired_tests
from cmkd.atomic import read_json, write_csv
from cmkd.errors import DataError
from cmkd.metrics import headline_metrics


def load_run_details(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-fold metrics and per-segment test predictions of the ok runs of ``runs``.

    Reads ``metrics.json`` (its ``folds``, written by cross-validated runs) and ``features.npz``
    (``logits, y, index, subject, trial``, and ``fold`` for cross-validated runs) from each run's
    ``path``. Returns ``(folds, predictions)``: ``folds`` has ``dataset, track, dimension, method,
    seed, fold, accuracy, f1, rmse, n_test, n_train, split_hash`` (``n_train``: all the fold's
    non-test segments, training and validation part); ``predictions`` has ``dataset, track,
    dimension, method, seed, index, subject, trial, fold, correct`` (classification runs only; fold
    0 for a holdout run). Runs without a ``path`` column, or whose files lack these entries (older
    runs), contribute nothing.
    """
    fold_rows, preds = [], []
    if "path" not in runs.columns:
        return pd.DataFrame(), pd.DataFrame()
    ok = _is_ok(runs)
    for row in runs[ok].itertuples(index=False):
        run_dir = Path(str(row.path))
        key = {"dataset": str(row.dataset), "track": str(row.track), "dimension": str(row.dimension),
               "method": str(row.method), "seed": int(row.seed)}
        mfile = run_dir / "metrics.json"
        task = "classification"
        if mfile.exists():
            m = read_json(mfile, "metrics file missing")
            task = m.get("task", task)
            for f in m.get("folds") or []:
                seg = f.get("n_segments", {})
                fold_rows.append({**key, "fold": int(f["fold"]),
                                  **{k: f["test"].get(k, math.nan) for k in headline_metrics()},
                                  "n_test": seg.get("test", math.nan), "n_train": _non_test(seg),
                                  "split_hash": f.get("split_hash")})
        ffile = run_dir / "features.npz"
        if task != "classification" or not ffile.exists():
            continue
        try:
            with np.load(ffile, allow_pickle=False) as z:
                if not {"logits", "y", "index", "subject", "trial"} <= set(z.files):
                    continue
                logits, y = z["logits"], z["y"]
                index, subject, trial = z["index"], z["subject"], z["trial"]
                fold = z["fold"] if "fold" in z.files else np.zeros(len(y), dtype=np.int64)
        except (OSError, ValueError) as exc:
            raise DataError(f"{ffile}: cannot read predictions ({exc})") from None
        if logits.ndim != 2 or len(logits) != len(y):
            continue
        correct = (np.argmax(logits, axis=1) == y.astype(np.int64)).astype(float)
        preds.append(pd.DataFrame({**{k: [v] * len(y) for k, v in key.items()}, "index": index.astype(np.int64),
                                   "subject": subject.astype(np.int64), "trial": trial.astype(np.int64),
                                   "fold": np.asarray(fold).astype(np.int64), "correct": correct}))
    folds = pd.DataFrame(fold_rows)
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame()
    return folds, predictions


def _non_test(seg: Mapping) -> float:
    """The non-test segments of a split (training + validation part) from its ``n_segments``."""
    if not isinstance(seg, Mapping) or seg.get("train") is None:
        return math.nan
    return float(seg.get("train", 0)) + float(seg.get("val", 0) or 0)


def load_run_designs(runs: pd.DataFrame) -> pd.DataFrame:
    """The split each ok run of ``runs`` ran, from its ``metrics.json``: ``dataset, track,
    dimension, method, seed, kind`` (``split.kind``), ``split_hash`` (provenance; for a
    cross-validated run the hash of its folds' hashes), ``n_test`` and ``n_nontest`` (training +
    validation segments; NaN for cross-validated runs, whose sizes are per fold). Runs without a
    ``path`` column or a metrics file contribute nothing."""
    cols = [*_KEY, "method", "seed", "kind", "split_hash", "n_test", "n_nontest"]
    if "path" not in runs.columns:
        return pd.DataFrame(columns=cols)
    out = []
    for row in runs[_is_ok(runs)].itertuples(index=False):
        mfile = Path(str(row.path)) / "metrics.json"
        if not mfile.exists():
            continue
        m = read_json(mfile, "metrics file missing")
        seg = m.get("n_segments") or {}
        folds = bool(m.get("folds"))
        out.append({"dataset": str(row.dataset), "track": str(row.track), "dimension": str(row.dimension),
                    "method": str(row.method), "seed": int(row.seed),
                    "kind": (m.get("split") or {}).get("kind"),
                    "split_hash": (m.get("provenance") or {}).get("split_hash"),
                    "n_test": math.nan if folds else seg.get("test", math.nan),
                    "n_nontest": math.nan if folds else _non_test(seg)})
    return pd.DataFrame(out, columns=cols)


def write_stats(
    runs_csv: str | os.PathLike,
    out_csv: str | os.PathLike,
    references_by_track: Mapping[str, Sequence[str]],
    test_fraction: float,
    metrics: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Read ``runs.csv`` (and, through its ``path`` column, each run's fold metrics and test
    predictions: :func:`load_run_details`, and their splits: :func:`load_run_designs`), run :func:`paired_tests` per track with that track's
    references (``references_by_track[track]``; a track not named there gets no rows) and write
    ``stats.csv`` atomically. Returns the table written.
    """
    try:
        runs = pd.read_csv(runs_csv)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{runs_csv}: cannot read run table: {exc}") from exc
    _check_columns(runs, _REQUIRED)
    for col in ("dataset", "track", "dimension", "method"):
        runs[col] = runs[col].astype(str)
    folds, predictions = load_run_details(runs)
    designs = load_run_designs(runs)
    parts = []
    for track, refs in references_by_track.items():
        sub = runs[runs["track"] == str(track)]
        if len(sub) and refs:
            parts.append(paired_tests(sub, list(refs), metrics, test_fraction, alpha,
                                      folds=folds, predictions=predictions, designs=designs))
    if parts:
        table = pd.concat(parts, ignore_index=True)
        table = table.sort_values(list(_KEY), kind="stable").reset_index(drop=True)
    else:
        table = pd.DataFrame(columns=list(STATS_COLUMNS))
    write_csv(out_csv, table)
    return table
