"""The modality catalog: every modality a prepared directory may hold, declared once.

Each :class:`Modality` says what its array is (``kind``: ``signal`` — channels x samples of a
continuous recording; ``video`` — frames x 3 x height x width, uint8, not standardised;
``features`` — a fixed feature block), how the per-segment shape of its array follows from the
segment's geometry (:class:`Geometry`: sampling rate x seconds, frames, frame size), and the facts
the resource estimate of a training job reads (:mod:`cmkd.resources`): activation values per input
value, weights + optimizer state, time per training sample.

Read by :mod:`cmkd.data` (``MODALITY_KINDS``, ``MODALITIES``, ``CONTINUOUS``), hence by the config
check, the prepared-set reader and the training loop, by :mod:`cmkd.data.stream` (array sizes) and
by :mod:`cmkd.resources`. Torch-free: the workflow reads it while it plans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

#: default of ``training.stream_threshold_mb``: a job's input arrays up to this size are held in
#: memory, larger ones are streamed from the prepared files (:mod:`cmkd.data.stream`)
DEFAULT_STREAM_THRESHOLD_MB = 256.0

KINDS = ("signal", "video", "features")


@dataclass(frozen=True)
class Geometry:
    """What fixes the shape of a segment's arrays: samples per second and seconds per segment
    (signals), frames per segment and frame size in pixels (video)."""

    sampling_rate: float = 128.0
    segment_seconds: float = 4.0
    frames: int = 5
    frame_size: int = 224

    @property
    def samples(self) -> int:
        return int(round(float(self.sampling_rate) * float(self.segment_seconds)))


@dataclass(frozen=True)
class Modality:
    """One modality. ``size``: channels of a signal, or the feature block's shape of features (a
    video's shape comes from the geometry alone); ``itemsize``: bytes per value of the prepared array
    (float32 for continuous data, uint8 frames). Resource facts (calibrated by ``python -m cmkd bench
    --scale paper``, docs/scale.md): ``activation_factor`` float32 activation values kept per input
    value and training sample (forward + backward); ``param_mb`` MiB of an encoder's weights,
    gradients and Adam state; ``sample_s`` seconds per training sample of a student reading it (CPU)."""

    name: str
    kind: str
    size: tuple[int, ...]
    itemsize: int
    activation_factor: float
    param_mb: float
    sample_s: float

    @property
    def continuous(self) -> bool:
        """Standardised per channel / feature with statistics of the training part."""
        return self.kind != "video"

    def segment_shape(self, geometry: Geometry) -> tuple[int, ...]:
        """Shape of one segment's array: channels x samples, frames x 3 x size x size, or the features'."""
        if self.kind == "signal":
            return (*self.size, geometry.samples)
        if self.kind == "video":
            return (int(geometry.frames), 3, int(geometry.frame_size), int(geometry.frame_size))
        return tuple(self.size)

    def segment_bytes(self, geometry: Geometry) -> int:
        return math.prod(self.segment_shape(geometry)) * self.itemsize

    def values(self, n_bytes: float) -> float:
        """Input values in ``n_bytes`` of this modality's array."""
        return n_bytes / self.itemsize


#: face: pvt_v2_b0 at 224 px x 5 frames, 248 MB of peak RSS per segment of a training batch
#: (``cmkd.resources.MEASURED``: batches of 8, 16 and 32 segments, a linear fit) = 87 per input value;
#: eeg/eog: the MKD teacher at 128 Hz, 9.4 MB per segment (bench) = about 140 per input value
CATALOG: dict[str, Modality] = {
    m.name: m
    for m in (
        Modality("eeg", "signal", (32,), 4, activation_factor=140.0, param_mb=4.0, sample_s=0.006),
        Modality("eog", "signal", (2,), 4, activation_factor=140.0, param_mb=4.0, sample_s=0.001),
        Modality("face", "video", (), 1, activation_factor=87.0, param_mb=60.0, sample_s=0.30),
        Modality("eye", "features", (31,), 4, activation_factor=64.0, param_mb=2.0, sample_s=1e-5),
        Modality("eeg_de", "features", (62, 5), 4, activation_factor=64.0, param_mb=2.0, sample_s=2e-5),
    )
}
assert all(m.kind in KINDS for m in CATALOG.values())


def segment_bytes(geometry: Geometry) -> dict[str, int]:
    """Bytes of one segment of every modality's array at ``geometry``."""
    return {name: m.segment_bytes(geometry) for name, m in CATALOG.items()}


def array_row_bytes(spec: Mapping) -> int:
    """Bytes of one row (segment) of a prepared array, from its ``meta.json`` entry (shape, dtype)."""
    return int(np.prod(spec["shape"][1:], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize


def array_bytes(spec: Mapping) -> int:
    """Bytes of a whole prepared array, from its ``meta.json`` entry (shape, dtype)."""
    return int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize


def arrays_mb(arrays: Mapping[str, Mapping], modalities: Iterable[str]) -> float:
    """MiB of the prepared arrays of ``modalities`` over every segment (``meta.json``'s ``arrays``)."""
    return sum(array_bytes(arrays[mod]) for mod in modalities) / 2**20
