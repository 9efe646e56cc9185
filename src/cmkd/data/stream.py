"""Data access of a training job: whole parts in memory for small data, rows streamed from the
prepared ``.npy`` files for large data.

A training job needs the training, validation and test parts of its split, standardised with
statistics of the training part only. For a small prepared set every part is gathered into memory
once (:func:`cmkd.train.build_parts`; fastest, and the path of the embedded default). Past
``training.stream_threshold_mb`` MiB of input arrays (the modalities the job reads, over every
segment of the data set) a part is a :class:`StreamPart` instead: a batch is read from the ``.npy``
files with positioned reads (``os.preadv``) and standardised on the fly, so a job's memory grows
with the model and the batch, not with the number of segments. Reads are plain file reads, not a
memory map: pages of a mapped file count towards the job's resident set while mapped, so scanning
a mapped 10 GB array would raise the RSS (and the cgroup's charge) by 10 GB.

Streaming standardisation statistics are computed over the training rows in chunks, in float64
(Chan et al.'s pairwise update of mean and sum of squared deviations), then rounded to float32;
the in-memory path keeps its float32 ``numpy`` mean/std (the two agree to about 1e-6 relative).
Given the same statistics, both paths give the same batches bit for bit (the same float32
operations on the same rows): see ``tests/test_stream.py``.

:func:`iter_batches` prepares the next batch on a background thread for streamed parts (reading
and standardising overlap the training step); for in-memory parts it is a plain loop.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from cmkd.data import CONTINUOUS  # the modality catalog: cmkd.data.modalities
from cmkd.data.modalities import DEFAULT_STREAM_THRESHOLD_MB, arrays_mb
from cmkd.errors import ConfigError, DataError

_STATS_CHUNK_BYTES = 8 * 2**20


def data_mb(prep, modalities: Iterable[str]) -> float:
    """MiB of the arrays of ``modalities`` over every segment, from ``meta.json`` (nothing is read)."""
    return arrays_mb(prep.meta["arrays"], modalities)


def stream_threshold_mb(training: Mapping[str, Any]) -> float:
    v = training.get("stream_threshold_mb", DEFAULT_STREAM_THRESHOLD_MB)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
        raise ConfigError(f"training.stream_threshold_mb: must be a number >= 0 (MiB), got {v!r}")
    return float(v)


def use_streaming(prep, modalities, training: Mapping[str, Any]) -> bool:
    """True when the job's input arrays exceed ``training.stream_threshold_mb``."""
    return data_mb(prep, modalities) > stream_threshold_mb(training)


# ----------------------------------------------------------------------------- file rows
class RowReader:
    """Rows of one ``.npy`` file by positioned reads (thread-safe; no memory map)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f)
                self.offset = f.tell()
        except (OSError, ValueError) as e:
            raise DataError(f"{self.path}: cannot read .npy header ({e})") from None
        if fortran:
            raise DataError(f"{self.path}: Fortran-ordered array, expected C order")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_into(self, buf: np.ndarray, first_row: int) -> None:
        mv = memoryview(buf.reshape(-1).view(np.uint8))
        off = self.offset + first_row * self.row_bytes
        done = 0
        while done < len(mv):
            got = os.preadv(self._fd, [mv[done:]], off + done)
            if got <= 0:
                raise DataError(f"{self.path}: file ends before row {first_row + (done + len(mv)) // max(self.row_bytes, 1)}")
            done += got

    def rows(self, idx, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``idx`` (any order, repeats allowed) as a new array (or into ``out``); runs of
        consecutive rows are read with one call."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.shape[0]):
            raise IndexError(f"{self.path}: row index out of range 0..{self.shape[0] - 1}")
        if out is None:
            out = np.empty((len(idx),) + self.row_shape, dtype=self.dtype)
        i = 0
        while i < len(idx):
            j = i + 1
            while j < len(idx) and idx[j] == idx[j - 1] + 1:
                j += 1
            self._read_into(out[i:j], int(idx[i]))
            i = j
        return out


# ----------------------------------------------------------------------------- statistics
def chunked_mean_std(reader: RowReader, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (axis 1; every axis but 0 for a 2-d array) mean and population SD over ``rows``,
    read in chunks, accumulated in float64; returned as float32 with ``keepdims`` shapes like
    ``a.mean(axis=(0, 2, ...), keepdims=True)``. An SD below 1e-8 becomes 1."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    ndim = 1 + len(reader.row_shape)
    axes = (0,) + tuple(range(2, ndim))
    per_row = max(1, reader.row_bytes)
    step = max(1, _STATS_CHUNK_BYTES // per_row)
    n_tot, mean, m2 = 0, None, None
    for s in range(0, len(rows), step):
        block = reader.rows(rows[s:s + step]).astype(np.float64)
        cnt = block.size // block.shape[1] if block.ndim > 1 else block.size
        bm = block.mean(axis=axes, keepdims=True)
        bm2 = ((block - bm) ** 2).sum(axis=axes, keepdims=True)
        if mean is None:
            n_tot, mean, m2 = cnt, bm, bm2
        else:
            n_new = n_tot + cnt
            delta = bm - mean
            mean = mean + delta * (cnt / n_new)
            m2 = m2 + bm2 + delta ** 2 * (n_tot * cnt / n_new)
            n_tot = n_new
    if mean is None:
        raise DataError(f"{reader.path}: no training rows to compute standardisation statistics from")
    std = np.sqrt(m2 / n_tot).astype(np.float32)
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std


# ----------------------------------------------------------------------------- parts
class StreamArray:
    """The rows ``part_rows`` of one prepared array, standardised on read when ``norm`` is given.

    ``a[idx]`` (positions within the part; a tensor, array or list) returns a CPU tensor; with
    ``pin`` its memory is page-locked, for asynchronous copies to a GPU.
    """

    def __init__(self, reader: RowReader, part_rows: np.ndarray, norm: tuple[np.ndarray, np.ndarray] | None,
                 pin: bool = False):
        self.reader, self.part_rows, self.norm, self.pin = reader, np.asarray(part_rows, dtype=np.int64), norm, pin
        self.shape = (len(self.part_rows),) + reader.row_shape
        self.dtype = np.dtype(np.float32) if norm is not None else reader.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def subset(self, pos) -> "StreamArray":
        """The rows at positions ``pos`` of this array, still streamed (nothing is read)."""
        return StreamArray(self.reader, self.part_rows[np.asarray(pos, dtype=np.int64)], self.norm, self.pin)

    def __getitem__(self, idx) -> torch.Tensor:
        if torch.is_tensor(idx):
            idx = idx.cpu().numpy()
        rows = self.part_rows[np.asarray(idx, dtype=np.int64).reshape(-1)]
        raw = self.reader.rows(rows)
        shape = raw.shape
        if self.norm is None:
            if not self.pin:
                return torch.from_numpy(raw)
            out = torch.empty(shape, dtype=torch.from_numpy(raw[:0]).dtype, pin_memory=True)
            out.numpy()[...] = raw
            return out
        out = torch.empty(shape, dtype=torch.float32, pin_memory=self.pin)
        o = out.numpy()
        # the same float32 operations as the in-memory path: (a.astype(float32) - mean) / std
        np.subtract(raw.astype(np.float32, copy=False), self.norm[0], out=o)
        np.divide(o, self.norm[1], out=o)
        return out


@dataclass
class Part:
    """One part of the split, held in memory as tensors (``len``, ``batch``, ``x``, ``y``, ``index``)."""

    x: dict
    y: torch.Tensor
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, idx, device) -> dict:
        """Tensors of the modalities, ``y``, and ``index``: positions within this part (for memory banks)."""
        b = {k: v[idx].to(device, non_blocking=True) for k, v in self.x.items()}
        b["y"] = self.y[idx].to(device)
        b["index"] = torch.as_tensor(idx).to(device)
        return b


@dataclass
class StreamPart(Part):
    """One part of the split, read from the prepared files batch by batch: ``x`` holds memory-mapped
    arrays (:class:`StreamArray`) instead of tensors; same interface as :class:`Part`."""


def build_stream_parts(prep, modalities, y, split, task, pin: bool = False):
    """Streamed parts and the standardisation statistics (``norm`` as :func:`cmkd.train.build_parts`)."""
    readers = {mod: RowReader(prep.file(mod)) for mod in modalities}
    for mod, r in readers.items():
        if r.shape[0] != prep.n:
            raise DataError(f"{r.path}: {r.shape[0]} rows, meta.json says {prep.n}")
    norm = {mod: chunked_mean_std(readers[mod], split["train"]) for mod in modalities if mod in CONTINUOUS}
    parts = {}
    for part, idx in split.items():
        idx = np.asarray(idx)
        x = {mod: StreamArray(readers[mod], idx, norm.get(mod), pin=pin) for mod in modalities}
        yy = torch.from_numpy(y[idx].astype(np.float32 if task == "regression" else np.int64))
        parts[part] = StreamPart(x=x, y=yy, index=idx)
    return parts, {k: {"mean": v[0].reshape(-1).tolist(), "std": v[1].reshape(-1).tolist()} for k, v in norm.items()}


def build_parts_auto(prep, modalities, y, split, task, training: Mapping[str, Any], device,
                     in_memory: Callable):
    """``(parts, norm, mode)``: in-memory parts (``in_memory``, i.e. :func:`cmkd.train.build_parts`)
    up to ``training.stream_threshold_mb``, streamed parts above it; ``mode`` is "memory" or "stream"."""
    if use_streaming(prep, modalities, training):
        dev = torch.device(device)
        parts, norm = build_stream_parts(prep, modalities, y, split, task, pin=dev.type == "cuda")
        return parts, norm, "stream"
    parts, norm = in_memory(prep, modalities, y, split, task)
    return parts, norm, "memory"


# ----------------------------------------------------------------------------- batches
def iter_batches(part, batches: Iterable, device, prefetch: int = 2):
    """Yield ``(idx, part.batch(idx, device))`` for each index tensor of ``batches``, in order.

    For a :class:`StreamPart` a background thread reads and standardises up to ``prefetch``
    batches ahead (the order and contents do not depend on the thread's timing); otherwise the
    batches are made in the loop, as before.
    """
    batches = list(batches)
    if not isinstance(part, StreamPart) or prefetch <= 0:
        for idx in batches:
            yield idx, part.batch(idx, device)
        return
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def work():
        try:
            for idx in batches:
                if stop.is_set():
                    return
                q.put((idx, part.batch(idx, device), None))
        except BaseException as e:  # re-raised in the consumer
            q.put((None, None, e))
        q.put(None)

    th = threading.Thread(target=work, name="cmkd-prefetch", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            idx, b, err = item
            if err is not None:
                raise err
            yield idx, b
    finally:
        stop.set()
        while th.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(timeout=0.05)
