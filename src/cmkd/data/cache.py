"""Cache keys, parameter checking and incremental staging for the raw-data loaders.

A prepared directory (see :mod:`cmkd.data.prepared`) records in ``meta.json`` the
``source_hash`` it was built from: a hash of the list of raw input files (relative path, size
and modification time, or a hash of their bytes) together with the loader's version and its
fully resolved preprocessing parameters. :func:`is_fresh` reuses a directory only when that key
equals the key of the current inputs and parameters; anything else (a touched file, a changed
parameter, a new loader version, a damaged directory) means the directory is rebuilt.

:class:`BlockStager` lets a loader append one subject's arrays at a time to raw files beside
the output directory and hand memory-mapped views of the whole to ``write_prepared``, so that
preparing a data set never holds more than one subject's arrays in memory.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from cmkd.data.prepared import hash_params, write_prepared
from cmkd.errors import ConfigError, DataError
from cmkd.params import resolve

log = logging.getLogger("cmkd.data")

HASH_MODES = ("stat", "content")


def resolve_params(params: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str) -> dict:
    """Return ``defaults`` updated with ``params``; an unknown key is a :class:`ConfigError`."""
    out = resolve(params, defaults, where)
    if out.get("source_hash_mode", "stat") not in HASH_MODES:
        raise ConfigError(f"{where}: source_hash_mode must be one of {list(HASH_MODES)}, got {out['source_hash_mode']!r}")
    return out


def resolve_prepare(params: Mapping[str, Any] | None, defaults: Mapping[str, Any], where: str, check,
                    root: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[dict, list[str], Path, Path]:
    """``(p, modalities, root, out_dir)`` at the start of a loader's ``prepare``: ``params`` resolved
    against ``defaults`` (:func:`resolve_params`), checked by the loader's ``check(p, where)`` (which
    returns the modalities), and the two folders as paths."""
    p = resolve_params(params, defaults, where)
    return p, check(p, where), Path(root), Path(out_dir)


def check_modalities(value: Any, allowed: Iterable[str], where: str,
                     not_recorded: Mapping[str, str] | None = None) -> list[str]:
    """Validate the ``modalities`` parameter: a non-empty list of known names, duplicates dropped.

    ``not_recorded`` maps a modality the data set does not have to the reason (said in the error).
    """
    allowed = list(allowed)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where}: modalities must be a non-empty list drawn from {allowed}, got {value!r}")
    for m in value:
        if not_recorded and m in not_recorded:
            raise ConfigError(f"{where}: no modality '{m}': {not_recorded[m]}")
    bad = [m for m in value if m not in allowed]
    if bad:
        raise ConfigError(f"{where}: unknown modality {bad}; this data set offers {allowed}")
    return [m for m in allowed if m in value]  # canonical order


def _content_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_fingerprints(files: Iterable[tuple[str, Path]], mode: str = "stat") -> list[list]:
    """Describe input files for the cache key.

    ``files`` holds ``(label, path)`` pairs, the label being the path relative to its data
    root (so that moving a data set does not invalidate its cache). ``mode`` "stat" records
    size and modification time (ns); "content" records a SHA-256 of the bytes.
    """
    out = []
    for label, path in sorted(files, key=lambda lp: lp[0]):
        try:
            st = os.stat(path)
        except OSError as e:
            raise DataError(f"{path}: cannot stat input file ({e.strerror})") from None
        if mode == "content":
            out.append([label, st.st_size, _content_hash(Path(path))])
        else:
            out.append([label, st.st_size, st.st_mtime_ns])
    return out


def source_key(dataset: str, loader_version: int, files: list, params: Mapping[str, Any]) -> str:
    """The cache key of a prepared directory: inputs + loader version + resolved parameters."""
    return hash_params({"dataset": dataset, "loader_version": loader_version, "files": files,
                        "params": dict(params)})


def reuse_key(where: str, dataset: str, loader_version: int, inputs: Iterable[tuple[str, Path]], hash_mode: str,
              hashed: Mapping[str, Any], out_dir: str | os.PathLike) -> tuple[str, bool]:
    """``(key, fresh)``: the :func:`source_key` of ``inputs`` (fingerprinted with ``hash_mode``) and
    the ``hashed`` parameters, and whether ``out_dir`` was built from it (:func:`is_fresh`; logged,
    with ``where`` naming the data set, when the directory is reused)."""
    key = source_key(dataset, loader_version, file_fingerprints(inputs, hash_mode), hashed)
    fresh = is_fresh(out_dir, key)
    if fresh:
        log.info("%s: %s is up to date (source hash %s...); reused", where, out_dir, key[:12])
    return key, fresh


def is_fresh(out_dir: str | os.PathLike, source_hash: str) -> bool:
    """True when ``out_dir`` is a complete prepared directory built from ``source_hash``.

    Complete means: ``meta.json`` parses, its ``source_hash`` equals the given key, and every
    array it lists has its ``.npy`` file. Anything else returns False (the caller rebuilds).
    """
    out_dir = Path(out_dir)
    meta_file = out_dir / "meta.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("source_hash") != source_hash:
        return False
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict) or not arrays:
        return False
    return all((out_dir / f"{name}.npy").is_file() for name in arrays)


class BlockStager:
    """Append blocks of named arrays (one block per subject) to raw files; read them back mapped.

    Every block must hold the same array names, and each name keeps its dtype and trailing
    shape; the first axis (segments) grows. Files live in a hidden temporary folder beside
    ``out_dir``, removed by :meth:`close` (also on error when used as a context manager).
    """

    def __init__(self, out_dir: str | os.PathLike):
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".staging", dir=out_dir.parent))
        self._spec: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        self._rows: dict[str, int] = {}
        self._maps: list[np.memmap] = []

    def __enter__(self) -> "BlockStager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def n_rows(self) -> int:
        return next(iter(self._rows.values()), 0)

    def append(self, block: Mapping[str, np.ndarray]) -> None:
        if self._spec and set(block) != set(self._spec):
            raise RuntimeError(f"block arrays {sorted(block)} differ from earlier blocks {sorted(self._spec)}")
        n = {a.shape[0] for a in block.values()}
        if len(n) != 1:
            raise RuntimeError(f"block arrays disagree on the number of rows: { {k: v.shape for k, v in block.items()} }")
        for name, a in block.items():
            a = np.ascontiguousarray(a)
            spec = (a.dtype, a.shape[1:])
            if name not in self._spec:
                self._spec[name] = spec
                self._rows[name] = 0
            elif self._spec[name] != spec:
                raise RuntimeError(f"array '{name}': block has dtype/shape {spec}, earlier blocks {self._spec[name]}")
            with open(self.dir / f"{name}.bin", "ab") as f:
                a.tofile(f)
            self._rows[name] += a.shape[0]

    def arrays(self) -> dict[str, np.ndarray]:
        """Read-only memory maps of everything appended so far, by name."""
        out: dict[str, np.ndarray] = {}
        for name, (dtype, tail) in self._spec.items():
            shape = (self._rows[name],) + tuple(tail)
            if self._rows[name] == 0:
                out[name] = np.empty(shape, dtype)
                continue
            m = np.memmap(self.dir / f"{name}.bin", dtype=dtype, mode="r", shape=shape)
            self._maps.append(m)
            out[name] = m
        return out

    def close(self) -> None:
        # mapped arrays still referenced elsewhere stay valid: POSIX keeps unlinked files mapped
        self._maps.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def write_staged(out_dir: str | os.PathLike, stage: "BlockStager", meta: Mapping[str, Any], *, dataset: str,
                 loader_version: int, source_hash: str, skipped: list, params: Mapping[str, Any]) -> Path:
    """Write the rows staged in ``stage`` as the prepared directory ``out_dir`` (:func:`write_prepared`).

    ``meta.json`` holds the loader's own ``meta`` and what every loader records: ``dataset``,
    ``loader_version``, ``source_hash`` (the key :func:`is_fresh` compares), ``skipped`` (the items
    left out, with reasons) and ``params`` (the parameters hashed into the key)."""
    return write_prepared(out_dir, stage.arrays(), {"dataset": dataset, "loader_version": loader_version,
                                                    "source_hash": source_hash, **meta, "skipped": skipped,
                                                    "params": params})


def group_skipped(skipped: Iterable[Mapping[str, str]], max_items: int = 5) -> list[str]:
    """One line per distinct reason: ``"<count> x <reason> (<first items>, ...)"``, most frequent first."""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(str(s["reason"]), []).append(str(s["item"]))
    lines = []
    for reason, items in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ", ".join(items[:max_items]) + (", ..." if len(items) > max_items else "")
        lines.append(f"{len(items)} x {reason} ({shown})")
    return lines


def log_skipped(where: str, skipped: Iterable[Mapping[str, str]], what: str = "items") -> None:
    """Log the skipped items grouped by reason: one warning per reason, with its count."""
    skipped = list(skipped)
    if not skipped:
        return
    log.warning("%s: %d %s skipped, by reason:", where, len(skipped), what)
    for line in group_skipped(skipped):
        log.warning("%s:   %s", where, line)
