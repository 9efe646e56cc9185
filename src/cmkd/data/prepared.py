"""The prepared-data format shared by every data set (synthetic, DEAP, MAHNOB-HCI, SEED, SEED-IV, SEED-V).

A prepared directory holds one memory-mappable ``.npy`` per array and a ``meta.json``. The first
axis of every array is one 4 s segment. Arrays:

- ``subject``, ``trial``, ``segment`` (int64): who, which trial, which 4 s window of the trial;
- ``valence``, ``arousal``, ``dominance``, ``liking`` (float32): raw 1-9 ratings, repeated for
  every segment of the trial (a data set without a rating omits that array);
- one array per modality present: ``eeg`` (N, C, T) float32, ``eog`` (N, 2, T) float32,
  ``face`` (N, F, 3, H, W) uint8, ``eye`` (N, 31) float32 (SEED-V: 33); the SEED family adds ``eeg_de`` (N, 62, 5),
  ``label`` (N,) int64 and ``session`` (N,) int64.

``meta.json`` holds ``dataset``, ``sampling_rates`` (Hz per time-series modality), ``channels``
(names per modality), ``source_hash`` (hash of the raw inputs and preprocessing parameters, the
cache key), ``content_hash`` (hash of the arrays written) and ``arrays`` (shape and dtype of each).

The directory is written to a temporary sibling and renamed into place, so a killed job leaves
no directory that looks complete. A write that fails (full disk, I/O error, read-only file
system) removes the temporary sibling and raises a :class:`DataError` naming the file that could
not be written; memory-mapped files are preallocated first (:func:`cmkd.atomic.preallocate`), so a
full disk is that error and not a ``Bus error``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cmkd.data import MODALITIES as _MODALITIES
from cmkd.errors import DataError
from cmkd.atomic import dumps, preallocate, read_json, write_error

INDEX_ARRAYS = ("subject", "trial", "segment")
RATING_ARRAYS = ("valence", "arousal", "dominance", "liking")
MODALITIES = _MODALITIES  # the modality table: cmkd.data.MODALITY_KINDS
EYE_FEATURES = (31, 33)  # eye-movement features: SEED-IV (and the synthetic set) 31, SEED-V 33

# expected number of dimensions and dtype kind per known array ('f' float, 'i' int, 'u' uint)
_EXPECTED: dict[str, tuple[int, str]] = {
    "subject": (1, "i"), "trial": (1, "i"), "segment": (1, "i"), "session": (1, "i"),
    "label": (1, "i"),
    "valence": (1, "f"), "arousal": (1, "f"), "dominance": (1, "f"), "liking": (1, "f"),
    "eeg": (3, "f"), "eog": (3, "f"), "face": (5, "u"), "eye": (2, "f"), "eeg_de": (3, "f"),
}


def signal_meta(modalities, sampling_rate: float, channels: Mapping[str, list], unit: str = "uV") -> dict:
    """The ``sampling_rates``, ``channels`` and ``units`` entries of meta.json for the
    time-series modalities in ``channels`` that were prepared (``modalities``)."""
    present = [m for m in channels if m in modalities]
    return {
        "sampling_rates": {m: sampling_rate for m in present},
        "channels": {m: list(channels[m]) for m in present},
        "units": {m: unit for m in present},
    }


def hash_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of the arrays, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.shape).encode())
        h.update(a.dtype.str.encode())
        # hash in chunks so that memory-mapped arrays are not copied whole
        flat = a.reshape(-1)
        step = max(1, (1 << 24) // max(1, a.itemsize))
        for i in range(0, flat.size, step):
            h.update(flat[i:i + step].tobytes())
    return h.hexdigest()


def hash_params(obj: Any) -> str:
    """A stable hash of a JSON-serialisable object (config fragment, preprocessing params)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def validate_arrays(arrays: Mapping[str, np.ndarray], where: str = "arrays") -> int:
    """Check the arrays against the format; return the number of segments N.

    Raises :class:`DataError` naming the array and what was expected.
    """
    missing = [k for k in INDEX_ARRAYS if k not in arrays]
    if missing:
        raise DataError(f"{where}: missing required array(s) {missing}")
    n = None
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray):
            raise DataError(f"{where}: array '{name}' is a {type(a).__name__}, expected numpy.ndarray")
        if name in _EXPECTED:
            ndim, kind = _EXPECTED[name]
            if a.ndim != ndim:
                raise DataError(f"{where}: array '{name}' has shape {a.shape} ({a.ndim}-d), expected {ndim}-d")
            if a.dtype.kind != kind and not (kind == "i" and a.dtype.kind == "u"):
                raise DataError(f"{where}: array '{name}' has dtype {a.dtype}, expected kind '{kind}'")
        if n is None:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise DataError(f"{where}: array '{name}' has {a.shape[0]} rows, expected {n} (one per segment)")
    if "eog" in arrays and arrays["eog"].shape[1] != 2:
        raise DataError(f"{where}: array 'eog' has {arrays['eog'].shape[1]} channels, expected 2")
    if "eye" in arrays and arrays["eye"].shape[1] not in EYE_FEATURES:
        raise DataError(f"{where}: array 'eye' has {arrays['eye'].shape[1]} features, expected one of {list(EYE_FEATURES)}")
    if "face" in arrays and arrays["face"].shape[2] != 3:
        raise DataError(f"{where}: array 'face' has shape {arrays['face'].shape}, expected (N, F, 3, H, W)")
    return int(n or 0)


def _make_tmp(out_dir: Path) -> Path:
    """A temporary sibling of ``out_dir`` (its parents created); a failure names ``out_dir``."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    except OSError as e:
        raise write_error(out_dir, e) from None


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)


def write_prepared(out_dir: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Validate and write a prepared directory atomically; return its path.

    ``meta`` must hold ``dataset``; ``source_hash`` should be the hash of raw inputs and
    preprocessing parameters. ``content_hash`` and ``arrays`` are added here.
    """
    out_dir = Path(out_dir)
    n = validate_arrays(arrays, where=str(out_dir))
    if "dataset" not in meta:
        raise DataError(f"{out_dir}: meta has no 'dataset'")
    full_meta = dict(meta)
    full_meta["n_segments"] = n
    full_meta["arrays"] = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in sorted(arrays.items())}
    full_meta["content_hash"] = hash_arrays(arrays)
    full_meta.setdefault("format_version", 1)
    tmp = _make_tmp(out_dir)
    target = out_dir
    try:
        for name, a in arrays.items():
            target = out_dir / f"{name}.npy"
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
        target = out_dir / "meta.json"
        (tmp / "meta.json").write_text(dumps(full_meta), encoding="utf-8")
        target = out_dir
        _move_into_place(tmp, out_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(target, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


@dataclass
class Prepared:
    """A prepared data set opened for reading (arrays memory-mapped, loaded on first access)."""

    path: Path
    meta: dict
    _cache: dict = field(default_factory=dict, repr=False)
    #: arrays read from another file than ``<path>/<name>.npy`` (:meth:`with_array`)
    files: dict = field(default_factory=dict, repr=False)

    def file(self, name: str) -> Path:
        """The ``.npy`` file of array ``name``."""
        return Path(self.files[name]) if name in self.files else self.path / f"{name}.npy"

    def with_array(self, name: str, file: str | os.PathLike, extra_meta: Mapping[str, Any] | None = None) -> "Prepared":
        """A view of this data set whose array ``name`` is read from ``file`` (rows aligned with
        the segments; e.g. the cached frame features of :mod:`cmkd.run.frame_features` in place
        of the frames); ``extra_meta`` is merged into the view's ``meta.json`` contents. The
        ``content_hash`` (:attr:`data_hash`) stays the prepared set's."""
        with open(file, "rb") as f:
            shape, dtype, _ = _npy_data_offset(f)
        if not shape or shape[0] != self.n:
            raise DataError(f"{file}: {shape[0] if shape else 0} rows, the prepared data set {self.path} has {self.n}")
        meta = {**self.meta, **dict(extra_meta or {})}
        meta["arrays"] = {**self.meta["arrays"], name: {"shape": list(shape), "dtype": np.dtype(dtype).str}}
        return Prepared(path=self.path, meta=meta, files={**self.files, name: Path(file)})

    @property
    def n(self) -> int:
        return int(self.meta["n_segments"])

    @property
    def names(self) -> list[str]:
        return sorted(self.meta["arrays"])

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.meta["arrays"]]

    def __contains__(self, name: str) -> bool:
        return name in self.meta["arrays"]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            if name not in self.meta["arrays"]:
                raise DataError(f"{self.path}: no array '{name}' (has {self.names})")
            f = self.file(name)
            try:
                a = np.load(f, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise DataError(f"{f}: file missing from prepared directory") from None
            except Exception as e:  # corrupt header, truncated file
                raise DataError(f"{f}: cannot read ({e})") from None
            spec = self.meta["arrays"][name]
            if list(a.shape) != spec["shape"] or a.dtype.str != spec["dtype"]:
                raise DataError(
                    f"{f}: shape {list(a.shape)} dtype {a.dtype.str} differ from meta.json "
                    f"({spec['shape']} {spec['dtype']}); the prepared directory is corrupt: delete it and prepare again")
            self._cache[name] = a
        return self._cache[name]

    @property
    def data_hash(self) -> str:
        return self.meta["content_hash"]


def load_prepared(path: str | os.PathLike) -> Prepared:
    """Open a prepared directory; raise :class:`DataError` naming the file on any problem."""
    path = Path(path)
    meta_file = path / "meta.json"
    if not path.is_dir():
        raise DataError(f"{path}: prepared data directory not found (run `python -m cmkd prepare` first)")
    meta = read_json(meta_file, "missing; the prepared directory is incomplete")
    for key in ("dataset", "arrays", "n_segments", "content_hash"):
        if key not in meta:
            raise DataError(f"{meta_file}: missing key '{key}'")
    return Prepared(path=path, meta=meta)


def check_finite(prep: Prepared, names: list[str]) -> None:
    """Raise :class:`DataError` naming the array, segment and channel of the first NaN/inf."""
    from cmkd.data.stream import RowReader  # lazy: torch; plain file reads: a scanned memory map would stay in the RSS

    for name in names:
        a = prep[name]  # checks the file against meta.json
        if a.dtype.kind != "f":
            continue
        reader = RowReader(prep.file(name))
        step = max(1, (8 << 20) // max(1, reader.row_bytes))
        for start in range(0, a.shape[0], step):
            block = reader.rows(np.arange(start, min(a.shape[0], start + step)))
            bad = ~np.isfinite(block)
            if bad.any():
                idx = np.argwhere(bad)[0]
                seg = start + int(idx[0])
                chan = ""
                if block.ndim >= 3:
                    names_ch = prep.meta.get("channels", {}).get(name)
                    c = int(idx[1])
                    chan = f", channel {names_ch[c] if names_ch and c < len(names_ch) else c}"
                raise DataError(f"{prep.file(name)}: non-finite value in segment {seg}{chan}")


def _npy_data_offset(f) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and byte offset of the data in an open ``.npy`` file."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(f)
    if fortran:
        raise DataError(f"{getattr(f, 'name', '.npy')}: Fortran-ordered array, expected C order")
    return tuple(shape), dtype, f.tell()


def hash_npy_files(directory: str | os.PathLike, names) -> str:
    """:func:`hash_arrays` of the ``<name>.npy`` files in ``directory``, read with plain file reads in
    chunks: the same hash, without mapping the arrays (mapped pages count towards a job's RSS)."""
    h = hashlib.sha256()
    for name in sorted(names):
        with open(Path(directory) / f"{name}.npy", "rb") as f:
            shape, dtype, _ = _npy_data_offset(f)
            h.update(name.encode())
            h.update(str(tuple(shape)).encode())
            h.update(dtype.str.encode())
            for chunk in iter(lambda: f.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


class PreparedWriter:
    """Write a prepared directory block by block, so that no array is ever whole in memory.

    Each array is created at its final shape as a ``.npy`` file (``np.lib.format.open_memmap``) in
    a temporary sibling of ``out_dir``; :meth:`write` maps the file, copies one block of rows in
    and unmaps it again (mapped pages count towards the process's RSS while mapped);
    :meth:`finish` hashes the files with plain reads, writes ``meta.json`` and renames the
    directory into place, as :func:`write_prepared` does. The content hash equals the one
    :func:`write_prepared` gives for the same arrays.

    Every file is preallocated at its full size when created (a full disk fails here, not as a
    ``Bus error`` in a mapped write); any failed write removes the temporary folder and raises a
    :class:`DataError` naming the file (as it will be named in ``out_dir``).
    """

    def __init__(self, out_dir: str | os.PathLike, specs: Mapping[str, tuple[tuple[int, ...], Any]]):
        self.out_dir = Path(out_dir)
        self.tmp = _make_tmp(self.out_dir)
        self.specs = {k: (tuple(int(d) for d in s), np.dtype(dt)) for k, (s, dt) in specs.items()}
        try:
            for name, (shape, dtype) in self.specs.items():
                with self._writing(name):
                    f = self.tmp / f"{name}.npy"
                    m = np.lib.format.open_memmap(f, mode="w+", dtype=dtype, shape=shape)
                    size = m.offset + m.nbytes
                    del m
                    preallocate(f, size)
        except BaseException:
            self.abort()
            raise

    @contextmanager
    def _writing(self, name: str):
        """An :class:`OSError` in the block: abort, and a :class:`DataError` naming the file ``name``
        of ``out_dir`` (an array's ``.npy``, ``meta.json``, or ``out_dir`` itself for ``""``)."""
        try:
            yield
        except OSError as e:
            self.abort()
            target = self.out_dir / (f"{name}.npy" if name in self.specs else name)
            raise write_error(target, e) from None

    def write(self, name: str, start: int, block: np.ndarray) -> None:
        """Copy ``block`` into rows ``start:start+len(block)`` of array ``name``."""
        shape, dtype = self.specs[name]
        block = np.asarray(block)
        if block.shape[1:] != shape[1:] or start < 0 or start + block.shape[0] > shape[0]:
            raise DataError(f"{self.out_dir}: block of '{name}' with shape {block.shape} at row {start} "
                            f"does not fit the array {shape}")
        if block.shape[0] == 0:
            return
        with self._writing(name):
            m = np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="r+")
            try:
                m[start:start + block.shape[0]] = block.astype(dtype, copy=False)
                m.flush()
            finally:
                del m

    def finish(self, meta: Mapping[str, Any]) -> Path:
        try:
            views = {name: np.load(self.tmp / f"{name}.npy", mmap_mode="r") for name in self.specs}
            n = validate_arrays(views, where=str(self.out_dir))
            del views
            if "dataset" not in meta:
                raise DataError(f"{self.out_dir}: meta has no 'dataset'")
            full_meta = dict(meta)
            full_meta["n_segments"] = n
            full_meta["arrays"] = {k: {"shape": list(s), "dtype": dt.str} for k, (s, dt) in sorted(self.specs.items())}
            full_meta["content_hash"] = hash_npy_files(self.tmp, self.specs)
            full_meta.setdefault("format_version", 1)
            with self._writing("meta.json"):
                (self.tmp / "meta.json").write_text(dumps(full_meta), encoding="utf-8")
            with self._writing(""):
                _move_into_place(self.tmp, self.out_dir)
        except BaseException:
            self.abort()
            raise
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
