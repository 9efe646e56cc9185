"""Cluster resources of a training job (Slurm ``mem_mb`` and ``runtime``) from the data set's size,
the model and a step time, instead of constants.

**Data set size.** From the prepared ``meta.json`` when the data set has been prepared; before that
(a dry run of a fresh grid) from the config: the synthetic generator's parameters, or the nominal
size of a real data set (:data:`NOMINAL_SEGMENTS`: DEAP 32 subjects x 40 trials x 15 segments of
4 s, 22 subjects with face video; MAHNOB-HCI about 27 x 20 x 20; SEED-IV 15 x 3 x 24 x about 60)
with the per-segment shapes its loader parameters give (sampling rate, frames, frame size).

**Memory** (MiB) = ``(BASE_MB + data + model) x MARGIN x attempt``, rounded up to 100 MiB, where

- data: the input arrays of the job's modalities (its own and its teachers'), as float32 for the
  continuous ones, twice (gather + standardise) when held in memory
  (``training.stream_threshold_mb``, :mod:`cmkd.data.stream`); when streamed, a few training and
  evaluation batches;
- model: activations of a batch, ``ACTIVATION_FACTOR[modality]`` (the modality catalog,
  :mod:`cmkd.data.modalities`, declares it with the array's shape) float32 values per input value
  and sample for a training batch (forward + backward; :data:`FORWARD_FRACTION` of that for an
  evaluation batch or a frozen teacher, no gradients; the larger phase sets the peak), plus the encoders' weights and Adam state (:data:`PARAM_MB`). With ``device:
  cuda`` in the config the activations live in GPU memory: the host request holds
  :data:`CUDA_HOST_MB` for the CUDA context instead.

The activation factors and the base are calibrated on the CPU with ``python -m cmkd bench --scale
paper`` (peak RSS per job kind, docs/scale.md); they are deliberately generous, and
attempt-scaled retries (the Slurm profile's ``retries``) double and triple a job killed for memory.

**Runtime** (minutes) = ``(seeds x (epochs x (n_train + n_val / 3) x sample_s + STARTUP_S +
(models - 1) x MODEL_S) x MARGIN) / 60 x attempt``, at least :data:`MIN_RUNTIME`, where ``models``
is the number of models one run trains (:func:`cmkd.data.split_kinds.models_per_run`: k for a
k-fold, one per subject for LOSO and for a SEED-family protocol with ``models: per_subject``),
``n_train`` and ``n_val`` the training and validation segments summed over them
(:func:`run_segments`: the per-subject models share the pooled split's segments, the folds of a
cross-validation each train on most of the data), and ``sample_s`` the time per training sample: ``methods.<name>.resources.sample_s`` when set, else ``training.sample_s``, else
:data:`SAMPLE_S` per student input modality (measured by the bench on the CPU; on a GPU set it from
``scripts/gpu_check.sh``).

**Frozen face features** (``encoders.face.frozen``, :mod:`cmkd.run.frame_features`): the epochs read
(F, D) float32 features per segment (:data:`FROZEN_FEATURE_DIM`) instead of the frames, the face's
training activations are the extraction batch's (forward only, :data:`FROZEN_EXTRACT_BATCH` segments),
its ``sample_s`` is the small head's (:data:`FROZEN_HEAD_SAMPLE_S`). The one extraction pass over the
data set is a job of its own (rule ``frame_features``): :func:`extraction_estimate` - a forward pass of
:data:`FROZEN_EXTRACT_BATCH` segments at a time, :data:`FROZEN_EXTRACT_FACTOR` x ``SAMPLE_S["face"]``
per segment; the training jobs start after it and neither make nor wait for it (their memory keeps
the extraction batch's activations: a run outside the workflow extracts in the job).

**Overrides.** ``methods.<name>.resources.mem_mb`` / ``runtime`` replace the estimate (still
scaled by the attempt); ``snakemake --set-resources train:mem_mb=...`` replaces the whole
expression for every training job.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cmkd.config import prepared_dir, run_spec
from cmkd.data import LOADER_INFO, split_kinds
from cmkd.data.modalities import CATALOG as MODALITY_CATALOG
from cmkd.data.modalities import DEFAULT_STREAM_THRESHOLD_MB, Geometry, array_row_bytes, segment_bytes
from cmkd.errors import ConfigError
from cmkd.methods import REGISTRY

BASE_MB = 600.0          # interpreter, torch, timm, numpy: a small job's peak RSS is 410-610 MB (bench)
TRIVIAL_MB = 800.0       # a trivial-baseline job (no network, no torch model): about BASE_MB x MARGIN
CUDA_HOST_MB = 2000.0    # host memory of the CUDA context and libraries (device: cuda)
MARGIN = 1.3
MIN_RUNTIME = 10         # minutes
STARTUP_S = 60.0         # per seed: imports, data, split, statistics
MODEL_S = 10.0           # per further model of a run (a fold, a subject): build, per-epoch bookkeeping, scoring, checkpoint
#: per modality, from the modality catalog (:data:`cmkd.data.modalities.CATALOG`): float32
#: activation values kept per input value and training sample (forward + backward)
ACTIVATION_FACTOR = {name: m.activation_factor for name, m in MODALITY_CATALOG.items()}
#: memory of a sample in a forward pass without gradients (an evaluation batch, a frozen teacher),
#: as a fraction of a training sample's: pvt_v2_b0 evaluation batches of 16 and 64 segments peak
#: 39 MB higher per segment (:data:`MEASURED`), a training batch 248 MB: 0.16
FORWARD_FRACTION = 0.16
#: Peak RSS (VmHWM, MB) of the pvt_v2_b0 face student's job steps at the paper's frame size (5 x
#: 224 px, streamed from a DEAP-sized prepared set of 600 or 1,200 segments, 2 torch threads, CPU),
#: measured with cmkd.bench_scale.run_job (training steps) and cmkd.train.predict (an evaluation
#: pass over 480 segments). A job's peak is its larger phase: the estimate must lie within 1x-1.5x
#: of each (tests/test_cluster_route.py). (segments, training batch, peak) and (segments, eval batch, peak):
MEASURED = {
    "face_train": [(600, 8, 2636.3), (600, 16, 4769.4), (600, 32, 8618.1), (1200, 32, 8477.0)],
    "face_eval": [(600, 16, 1271.1), (600, 64, 3162.0)],
}
#: MiB of weights + gradients + Adam state per encoder kind (student and teachers together: x2),
#: from the modality catalog
PARAM_MB = {name: m.param_mb for name, m in MODALITY_CATALOG.items()}
#: seconds per training sample, per input modality of the student, measured by ``bench --scale
#: paper`` on a 2-core CPU (2 threads; paper sizes; docs/scale.md), from the modality catalog: an
#: upper bound for a GPU, where ``training.sample_s`` should be set from ``scripts/gpu_check.sh``
SAMPLE_S = {name: m.sample_s for name, m in MODALITY_CATALOG.items()}

#: frozen face features (``encoders.face.frozen``, cmkd.run.frame_features): the training job reads
#: (N, F, D) float32 features, D at most this (timm's PVT v2 b1-b5: 512), instead of the frames
FROZEN_FEATURE_DIM = 512
#: seconds per training sample of the head on frozen features (a LayerNorm and a Linear per frame,
#: as cheap as the eye-feature MLP's sample): the backbone neither runs nor trains in the epochs
FROZEN_HEAD_SAMPLE_S = 1e-4
#: the one extraction pass (the workflow's frame_features job, :func:`extraction_estimate`): seconds per segment = this x SAMPLE_S["face"] (a pvt_v2_b0 training sample at 5 x 224 px): pvt_v2_b2,
#: the paper grid's extractor, costs 4.0 GFLOPs per 224 px frame against b0's 0.6, a forward pass about
#: a third of a training step: 6.7 / 3 = 2.2, an upper bound (on a shared 2-core CPU, 2 threads, a b2
#: forward pass of a 5-frame segment took 0.8-1.2 times a b0 training step of one)
FROZEN_EXTRACT_FACTOR = 2.2
#: the extraction batch's activations (no gradient) relative to pvt_v2_b0's: b2's stages are twice as wide
FROZEN_EXTRACT_WIDTH = 2.0
#: segments per extraction batch (cmkd.run.frame_features.BATCH_SEGMENTS; a test keeps them equal)
FROZEN_EXTRACT_BATCH = 32

#: nominal number of segments of each real data set (before it is prepared): its loader module's
#: ``LOADER["nominal_segments"]``
NOMINAL_SEGMENTS = {name: dict(info.nominal_segments) for name, info in LOADER_INFO.items() if info.nominal_segments}


def segment_geometry(loader: str, params: Mapping[str, Any]) -> Geometry:
    """The segment geometry a data set of ``loader`` is prepared at, from its loader parameters
    (for the synthetic loader, ``params`` are already merged over the generator's defaults)."""
    if loader == "synthetic":
        return Geometry(sampling_rate=float(params["sampling_rate"]), segment_seconds=float(params["segment_seconds"]),
                        frames=int(params["face_frames"]), frame_size=int(params["face_size"]))
    return Geometry(sampling_rate=float(params.get("sampling_rate", 128)),
                    segment_seconds=float(params.get("segment_seconds", 4.0)),
                    frames=int(params.get("frames_per_segment", 5)), frame_size=int(params.get("face_size", 224)))


def dataset_size(config: Mapping[str, Any], dataset: str) -> dict:
    """``{"n": segments, "bytes": {modality: bytes per segment}, "source": "prepared"|"config"}``."""
    meta_file = Path(prepared_dir(config, dataset)) / "meta.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            n = int(meta["n_segments"])
            per = {name: array_row_bytes(spec) for name, spec in meta["arrays"].items()}
            frames = int(meta["arrays"]["face"]["shape"][1]) if "face" in meta["arrays"] else 0
            return {"n": n, "bytes": per, "source": "prepared", "face_frames": frames}
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: estimate from the config; the job's own check reports the problem
    ds = config["datasets"][dataset]
    loader = ds.get("loader", dataset)
    params = dict(ds.get("params") or {})
    if loader == "synthetic":  # the generator's own defaults for what the config leaves out
        from cmkd.data.synthetic import DEFAULTS  # lazy: plugin

        params = {**DEFAULTS, **params}
    geometry = segment_geometry(loader, params)
    per = segment_bytes(geometry)
    if loader == "synthetic":
        n = int(params["n_subjects"]) * int(params["n_trials"]) * int(params["segments_per_trial"])
    else:
        nominal = NOMINAL_SEGMENTS.get(loader)
        if nominal is None:
            raise ConfigError(f"datasets.{dataset}.loader: no nominal size known for loader {loader!r} "
                              f"(prepare it first, or set methods.<name>.resources.mem_mb and runtime)")
        mods = ds.get("modalities") or params.get("modalities") or []
        n = nominal["face"] if "face" in mods and "face" in nominal else nominal["default"]
    return {"n": n, "bytes": per, "source": "config", "face_frames": int(geometry.frames)}


def dataset_subjects(config: Mapping[str, Any], dataset: str) -> int | None:
    """The number of subjects of a data set: from the prepared ``subject`` array when prepared,
    else the synthetic generator's ``n_subjects`` or the loader's ``nominal_subjects``; None
    when unknown."""
    arr = Path(prepared_dir(config, dataset)) / "subject.npy"
    if arr.is_file():
        try:
            return int(np.unique(np.load(arr, mmap_mode="r")).size)
        except (OSError, ValueError):
            pass  # unreadable: from the config; the job's own check reports the problem
    ds = config["datasets"][dataset]
    loader = ds.get("loader", dataset)
    if loader == "synthetic":
        from cmkd.data.synthetic import DEFAULTS  # lazy: plugin

        return int({**DEFAULTS, **(ds.get("params") or {})}["n_subjects"])
    info = LOADER_INFO.get(loader)
    return info.nominal_subjects if info is not None else None


def run_segments(split: Mapping[str, Any] | None, n: int, n_subjects: int | None) -> dict:
    """``{"models", "train", "val"}`` of one run (one seed) of ``split`` on ``n`` segments: the
    models it trains and its training and validation segments summed over them. Per-subject
    models share the pooled split's segments (about 0.8 n train, 0.1 n validate, as a single
    split); each fold of a k-fold trains on ``(k-1)/k`` of the trials less its validation share,
    each LOSO fold on all subjects but one."""
    sp = split_kinds.settings(split)
    kind = split_kinds.get(sp["kind"])
    models = split_kinds.models_per_run(sp, n_subjects or 1)
    if kind.folds:
        vf = float(sp["val_fraction"])
        nontest = (models - 1) * n if "n_folds" in kind.params or n_subjects else 0.8 * n
        return {"models": models, "train": nontest * (1 - vf), "val": nontest * vf}
    return {"models": models, "train": 0.8 * n, "val": 0.1 * n}


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{where}: must be a number > 0, got {value!r}")
    return float(value)


def estimate(config: Mapping[str, Any], dataset: str, track: str, dimension: str, method: str,
             n_seeds: int = 1, attempt: int = 1, gpu: bool | None = None) -> dict:
    """``{"mem_mb", "runtime", ...}`` of the training job of one cell (``n_seeds`` seeds in it).
    ``gpu``: the job trains on a GPU (activations in GPU memory, the host holds the CUDA context);
    ``None``: as the config's ``device`` says (``cuda``). The workflow passes ``True`` when its
    training jobs are given GPUs (a profile's ``train:gpu``) and the device is not ``cpu``."""
    spec = run_spec(dict(config), dataset, track, dimension, method, 0)
    if REGISTRY[spec["class"]].trivial:
        # a trivial baseline reads the labels and the split, fits no network: the interpreter's base
        mem_mb = int(math.ceil(TRIVIAL_MB * max(1, int(attempt)) / 100.0) * 100)
        return {"mem_mb": mem_mb, "runtime": MIN_RUNTIME * max(1, int(attempt)), "n_segments": None,
                "size_source": "trivial", "data_mb": 0.0, "streamed": False, "modalities": [], "sample_s": 0.0,
                "gpu": False}
    mods = list(spec["modalities"])
    teacher_mods: list[str] = []
    for req in spec["requires"].values():
        t = run_spec(dict(config), dataset, track, dimension, req["method"], 0)
        teacher_mods += [m for m in t["modalities"] if m not in teacher_mods]
    needed = list(dict.fromkeys(mods + teacher_mods))
    size = dataset_size(config, dataset)
    n = size["n"]
    per_raw = {m: size["bytes"].get(m, 0) for m in needed}
    frozen = "face" in needed and any(
        isinstance(enc, dict) and enc.get("frozen") is True
        for enc in [spec["encoders"].get("face")] + [run_spec(dict(config), dataset, track, dimension, r["method"], 0)
                                                    ["encoders"].get("face") for r in spec["requires"].values()])
    frames_bytes = per_raw.get("face", 0)
    if frozen:  # the epochs read the cached features, not the frames
        per_raw["face"] = int(size.get("face_frames") or 1) * FROZEN_FEATURE_DIM * 4
    # float32 in memory for the continuous modalities (their files are float32 already)
    per_mem = {m: b for m, b in per_raw.items()}
    tr = spec["training"]
    bs, ebs = int(tr["batch_size"]), int(tr.get("eval_batch_size", 256))
    data_mb_total = n * sum(per_raw.values()) / 2**20
    threshold = float(tr.get("stream_threshold_mb", DEFAULT_STREAM_THRESHOLD_MB))
    streamed = data_mb_total > threshold
    if streamed:
        # batches in flight (current + prefetched training batches, an evaluation batch and its copy)
        data_mb = (4 * bs + 2 * ebs) * sum(per_mem.values()) / 2**20
    else:
        data_mb = 2 * n * sum(per_mem.values()) / 2**20
    # activations: float32 values per input value; the student trains, teachers only run forward
    act = 0.0
    for m in needed:
        if frozen and m == "face":  # the extraction batch (forward, no gradient); the head's activations are small
            values = MODALITY_CATALOG[m].values(frames_bytes)
            act += 4 * values * ACTIVATION_FACTOR[m] * FROZEN_EXTRACT_WIDTH * FROZEN_EXTRACT_BATCH * FORWARD_FRACTION / 2**20
            continue
        values = MODALITY_CATALOG[m].values(per_raw[m])  # input values per sample
        f = ACTIVATION_FACTOR[m]
        train_mult = 1.0 if m in mods else FORWARD_FRACTION  # teachers: forward passes only
        act += 4 * values * f * max(bs * train_mult, ebs * FORWARD_FRACTION) / 2**20
    params_mb = sum(PARAM_MB[m] for m in mods) + sum(PARAM_MB[m] / 3 for m in teacher_mods)
    if gpu is None:
        gpu = str(config.get("device", "auto")) == "cuda"
    if gpu:  # activations and weights in GPU memory; the host holds the CUDA context
        act, params_mb = 0.0, CUDA_HOST_MB
    res = (config["methods"][method].get("resources") or {})
    where = f"methods.{method}.resources"
    attempt = max(1, int(attempt))
    if "mem_mb" in res:
        mem = _positive(res["mem_mb"], f"{where}.mem_mb") * attempt
    else:
        mem = (BASE_MB + data_mb + act + params_mb) * MARGIN * attempt
    mem_mb = int(math.ceil(mem / 100.0) * 100)

    per_run = run_segments(spec["split"], n, dataset_subjects(config, dataset))
    n_train, n_val = per_run["train"], per_run["val"]
    if "sample_s" in res:
        sample_s = _positive(res["sample_s"], f"{where}.sample_s")
    elif "sample_s" in tr:
        sample_s = _positive(tr["sample_s"], "training.sample_s")
    else:
        sample_s = sum(FROZEN_HEAD_SAMPLE_S if (frozen and m == "face") else SAMPLE_S[m] for m in mods)
    epochs = int(tr["max_epochs"])
    seconds = n_seeds * (epochs * (n_train + n_val / 3) * sample_s + STARTUP_S + (per_run["models"] - 1) * MODEL_S) * MARGIN
    if "runtime" in res:
        runtime = int(math.ceil(_positive(res["runtime"], f"{where}.runtime") * n_seeds * attempt))
    else:
        runtime = max(MIN_RUNTIME, int(math.ceil(seconds / 60.0 * attempt)))
    return {"mem_mb": mem_mb, "runtime": runtime, "n_segments": n, "size_source": size["source"],
            "data_mb": round(data_mb_total, 1), "streamed": streamed, "modalities": needed,
            "sample_s": sample_s, "gpu": gpu, "models": per_run["models"], "frozen_face": frozen}


def extraction_estimate(config: Mapping[str, Any], dataset: str, attempt: int = 1, gpu: bool = False) -> dict:
    """``{"mem_mb", "runtime"}`` of the frozen face feature extraction of ``dataset`` (the workflow's
    ``frame_features`` job): the interpreter, the backbone's weights and a forward pass of
    :data:`FROZEN_EXTRACT_BATCH` segments (on a GPU: the CUDA context's host memory instead), and
    :data:`FROZEN_EXTRACT_FACTOR` x ``SAMPLE_S["face"]`` seconds per segment plus the start-up;
    scaled by the attempt. The features are written through a memory map, one batch at a time."""
    size = dataset_size(config, dataset)
    n, frames_bytes = size["n"], size["bytes"].get("face", 0)
    values = MODALITY_CATALOG["face"].values(frames_bytes)
    act = 4 * values * ACTIVATION_FACTOR["face"] * FROZEN_EXTRACT_WIDTH * FROZEN_EXTRACT_BATCH * FORWARD_FRACTION / 2**20
    batch_mb = 2 * FROZEN_EXTRACT_BATCH * frames_bytes / 2**20  # the uint8 rows read and their float copy
    attempt = max(1, int(attempt))
    body = CUDA_HOST_MB if gpu else act + PARAM_MB["face"]
    mem_mb = int(math.ceil((BASE_MB + batch_mb + body) * MARGIN * attempt / 100.0) * 100)
    seconds = (n * FROZEN_EXTRACT_FACTOR * SAMPLE_S["face"] + STARTUP_S) * MARGIN
    runtime = max(MIN_RUNTIME, int(math.ceil(seconds / 60.0 * attempt)))
    return {"mem_mb": mem_mb, "runtime": runtime, "n_segments": n, "size_source": size["source"], "gpu": gpu}
