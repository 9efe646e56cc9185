"""Atomic writers: a killed job never leaves a half-written file behind.

Every writer writes to a temporary file in the destination folder and renames it over the
target (``os.replace`` is atomic on POSIX within one file system). A write that fails (a full
disk, an I/O error, a read-only file system) removes the temporary file and raises a
:class:`~cmkd.errors.DataError` naming the file that could not be written (:func:`write_error`).
"""
from __future__ import annotations

import csv
import errno
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from cmkd.errors import DataError


def write_error(path: str | os.PathLike, e: OSError) -> DataError:
    """The one-line error of a failed write: ``"<path>: could not write (<reason>)"``; a full disk
    says so."""
    reason = e.strerror or str(e)
    hint = "; free some space and run again" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return DataError(f"{path}: could not write ({reason}){hint}")


def preallocate(path: str | os.PathLike, size: int) -> None:
    """Reserve ``size`` bytes of ``path`` on disk (``os.posix_fallocate``), so that a memory-mapped
    write into it cannot hit a full disk (which the kernel reports as SIGBUS, a ``Bus error``
    that kills the process): a full disk is an :class:`OSError` here instead. A file system that
    cannot reserve space (no ``posix_fallocate``, ``EOPNOTSUPP``) is left as it is."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None or size <= 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only. An
    :class:`OSError` (full disk, I/O error, read-only file system) becomes a :class:`DataError`
    naming ``path``; the temporary file is removed whatever the failure."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise write_error(path, e) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise write_error(path, e) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def read_json(path: str | os.PathLike, missing: str) -> Any:
    """The JSON document in ``path``. A missing file is a :class:`DataError` ``"<path>: <missing>"``,
    one that does not parse ``"<path>: not valid JSON (<reason>)"``."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, dumps(obj))


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def _cell(value: Any) -> str:
    """A history value as text: empty for a missing one (None, NaN: as pandas writes it), the
    shortest round-trip form for a number."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(float(value)) else repr(float(value))
    return str(value)


def write_rows(path: str | os.PathLike, rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> None:
    """Write dict rows as CSV atomically, without pandas (a training job writes its history and
    never needs pandas otherwise): the columns are ``columns`` or every key in first-seen order; a
    missing value is an empty field."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(columns)
            for row in rows:
                w.writerow([_cell(row.get(c)) for c in columns])


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
