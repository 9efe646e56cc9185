"""Frozen visual features (``encoders.face.frozen: true``): extracted once per prepared data set and
encoder settings, cached, and handed to the networks in place of the frames.

CDGKD's authors extract the visual features with a pretrained PVT and train on the stored
per-frame features. Here the extraction is a job of its own in the workflow (rule
``frame_features``, ``python -m cmkd frame-features``: :func:`extract_job`), one per data set and
extraction settings, and every training job whose face encoder (its own, or a teacher's) is frozen
takes its ``meta.json`` as an input and calls :func:`apply` at the start of its load phase:

1. the extraction settings are the encoder's ``arch``, ``img_size`` (null: the frames' size) and
   weights (``pretrained`` / ``pretrained_path``; random initialisation under a fixed seed, 0, so
   that every job of a synthetic grid extracts with the same backbone);
2. the folder is ``<results>/frame_features/<dataset>/<settings_key>/``, keyed by what the config
   decides (:mod:`cmkd.frame_keys`: the workflow knows it at plan time); it holds ``face.npy``
   (N, F, D) float32, one pooled feature vector per frame (the backbone in eval mode, no gradient,
   float32), and ``meta.json``: the full cache key - the sha256 over the format version, the
   prepared set's ``content_hash`` (which covers the frames), the face array's shape, the
   architecture, the input size, the sha256 of the backbone's state dict (the weights, whatever
   their source) and the normalisation - with the frames' content hash, the weights and their
   sha256 written out;
3. the training job builds the backbone, computes the key and compares it with ``meta.json``'s: a
   mismatch (the prepared data or the weights changed after the extraction) is a
   :class:`DataError` naming the file and the differing part. A training job never rewrites the
   folder: every job of the data set reads it (some may be reading it now), and re-extracting in
   one of them would make the others wait again; the workflow's extraction job is redone when the
   prepared data or a ``pretrained_path`` file change (they are its inputs), and ``snakemake
   --forcerun frame_features`` (or deleting the folder) redoes it for weights that changed unseen;
4. outside the workflow (a direct ``python -m cmkd train``) a missing folder is extracted by the
   job itself, under an exclusive lock (``<settings_key>.lock``: concurrent jobs wait for the
   first instead of extracting twice), into a temporary sibling renamed into place;
5. the run's prepared data set becomes a view whose ``face`` array is that file
   (:meth:`cmkd.data.prepared.Prepared.with_array`) and whose ``meta.json`` holds the provenance
   under ``frame_features.face``, which :func:`cmkd.run.parts.model_inputs` passes to the encoder
   (``inputs.face.features``) and the encoder to ``metrics.json`` (``provenance.weights``).

Every face network of the run must then read features from the same extraction: a teacher
checkpoint trained on frames, or on features of another key, is a :class:`DataError` (the
config check refuses such a grid before any job: :func:`cmkd.feasibility.check_frozen_faces`).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from cmkd import atomic
from cmkd.data.prepared import Prepared, hash_params, load_prepared
from cmkd.data.stream import RowReader
from cmkd.errors import ConfigError, DataError
from cmkd.frame_keys import FACE, FORMAT_VERSION, cache_folder, configured_settings, is_frozen
from cmkd.run.torch_setup import log
#: segments per extraction batch
BATCH_SEGMENTS = 32
#: the seed of a randomly initialised backbone (synthetic data): the same backbone in every job
INIT_SEED = 0


def extraction_settings(enc: Mapping, frame_hw: tuple[int, int]) -> dict:
    """The settings that decide the features: arch, input size (the frames' own when null), weights."""
    c = configured_settings(enc)
    if c["img_size"] is None:
        c["img_size"] = [int(frame_hw[0]), int(frame_hw[1])]
    return c


def _face_encoders(spec: dict, teachers: Mapping[str, dict]) -> list[tuple[str, dict, dict | None]]:
    """``(who, encoder settings, features info of the checkpoint's inputs)`` of every network of the
    run that reads the face: the student (the run's spec) and each teacher (its checkpoint's spec)."""
    out = []
    if FACE in spec.get("modalities", []):
        out.append((f"method '{spec['method']}'", spec["encoders"].get(FACE) or {}, None))
    for role, ck in teachers.items():
        ms = ck.get("spec") or {}
        if FACE in (ms.get("modalities") or []):
            info = (ms.get("inputs") or {}).get(FACE) or {}
            out.append((f"the '{role}' checkpoint", (ms.get("encoders") or {}).get(FACE) or {}, info.get("features")))
    return out


def frozen_encoder(spec: dict, teachers: Mapping[str, dict]) -> dict | None:
    """The frozen face encoder settings of the run, or None when its face networks fine-tune (or
    none reads the face). Every face network must agree (all frozen, the same extraction settings),
    else :class:`DataError`."""
    encs = _face_encoders(spec, teachers)
    frozen = [e for e in encs if is_frozen(e[1])]
    if not frozen:
        return None
    if len(frozen) != len(encs):
        fine = next(e[0] for e in encs if not is_frozen(e[1]))
        raise DataError(f"{spec['method']}: {frozen[0][0]} reads frozen face features (encoders.face.frozen: true) but "
                        f"{fine} fine-tunes on the frames; a run reads the face one way: set encoders.face.frozen alike")
    first = configured_settings(frozen[0][1])  # defaults filled in: a key spelled out equals the key left out
    for who, enc, _ in frozen[1:]:
        other = configured_settings(enc)
        if other != first:
            raise DataError(f"{spec['method']}: {who} extracted its face features with {other}, "
                            f"{frozen[0][0]} with {first}: the networks of a run read the same features")
    return dict(frozen[0][1])


def cache_key(prep: Prepared, settings: dict, state_sha256: str, normalisation: dict) -> str:
    return hash_params({"format": FORMAT_VERSION, "frames": prep.data_hash, "face": prep.meta["arrays"][FACE],
                        "arch": settings["arch"], "img_size": settings["img_size"], "state_sha256": state_sha256,
                        "normalisation": normalisation})


def build_extractor(settings: dict):
    """The frozen backbone (eval mode, no parameter requires a gradient) and its provenance."""
    from cmkd.models.visual import TimmFrameEncoder, state_sha256  # lazy: optional (timm, only for face encoders)

    with torch.random.fork_rng(devices=[]):  # a random backbone does not depend on the run's seed
        torch.manual_seed(INIT_SEED)
        enc = TimmFrameEncoder(settings["arch"], tuple(settings["img_size"]), settings["pretrained_path"],
                               pretrained=settings["pretrained"])
    enc.eval()
    enc.requires_grad_(False)
    weights = dict(enc.weights)
    weights["state_sha256"] = weights.get("state_sha256") or state_sha256(enc.backbone)
    return enc, weights


@torch.no_grad()
def extract(enc, face_file: str | os.PathLike, out: np.ndarray, device, batch: int = BATCH_SEGMENTS) -> None:
    """Pooled per-frame features of every segment of ``face_file`` (N, F, 3, H, W) into ``out`` (N, F, D)."""
    enc.eval()
    reader = RowReader(face_file)
    for s in range(0, len(reader), batch):
        rows = reader.rows(np.arange(s, min(s + batch, len(reader))))
        per_frame, _ = enc.frames(torch.from_numpy(rows).to(device))
        out[s:s + len(rows)] = per_frame.float().cpu().numpy()


def _write(extractor, prep: Prepared, settings: dict, weights: dict, key: str, folder: Path, device) -> None:
    """Extract into a temporary sibling of ``folder``, then rename it into place."""
    t0 = time.perf_counter()
    extractor.to(device)
    face = prep.meta["arrays"][FACE]["shape"]
    with torch.no_grad():
        dim = extractor.frames(torch.zeros(1, *face[1:], dtype=torch.uint8, device=device))[0].shape[-1]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        out = np.lib.format.open_memmap(tmp / f"{FACE}.npy", mode="w+", dtype=np.float32,
                                        shape=(int(face[0]), int(face[1]), int(dim)))
        extract(extractor, prep.file(FACE), out, device)
        out.flush()
        del out
        atomic.write_json(tmp / "meta.json", {"key": key, "format": FORMAT_VERSION, "settings_key": folder.name,
                                              "prepared": str(prep.path), "frames_content_hash": prep.data_hash,
                                              "settings": settings, "weights": weights, "versions": _versions(),
                                              "shape": [int(face[0]), int(face[1]), int(dim)]})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"frozen face features: {settings['arch']} over {face[0]} x {face[1]} frames in "
        f"{time.perf_counter() - t0:.1f} s -> {folder}")


AGAIN = ("extract them again: the workflow's frame_features job (snakemake --forcerun frame_features), "
         "python -m cmkd frame-features, or delete the folder")


def check_cache(folder: Path, key: str, prep: Prepared, weights: dict) -> None:
    """The cached features in ``folder`` are the ones this job would extract (the key of
    ``meta.json``), else :class:`DataError` naming the file and what differs."""
    meta_file = folder / "meta.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{meta_file}: unreadable frozen face features ({e}); {AGAIN}") from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        meta = meta if isinstance(meta, dict) else {}
        had = (meta.get("weights") or {}).get("state_sha256")
        if meta.get("frames_content_hash") != prep.data_hash:
            why = (f"extracted from the frames of the prepared set with content hash {meta.get('frames_content_hash')}, "
                   f"{prep.path} now has {prep.data_hash}")
        elif had != weights["state_sha256"]:
            why = (f"extracted with weights of sha256 {had}, this job's backbone ({weights.get('source', '?')}) "
                   f"has {weights['state_sha256']}")
        else:
            why = f"cache key {meta.get('key')}, this job's is {key} (another cache format, face shape or normalisation)"
        raise DataError(f"{meta_file}: stale frozen face features: {why}; {AGAIN}")
    if not (folder / f"{FACE}.npy").is_file():
        raise DataError(f"{meta_file}: names frozen face features but {folder / (FACE + '.npy')} is missing; {AGAIN}")


def _versions() -> dict:
    """The libraries that decide a backbone's weights as built (timm's model code and weight
    loading, torch's initialisation), recorded in meta.json."""
    return {"torch": torch.__version__, "timm": version("timm")}


def _recorded(prep: Prepared, settings: dict, folder: Path) -> dict | None:
    """``meta.json`` of ``folder`` when it shows the features this job would extract without
    building the backbone: the same format, settings and frames, the same library versions, and
    for a weights file the same file content (its sha256); else None, and the job builds the
    backbone to compare its weights' hash (:func:`check_cache` then says what differs). timm's hub
    weights (``pretrained: true``) are found by building the model: never a fast hit."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    w = meta.get("weights") if isinstance(meta.get("weights"), dict) else {}
    if (meta.get("format") != FORMAT_VERSION or meta.get("settings") != settings or not meta.get("key")
            or meta.get("frames_content_hash") != prep.data_hash or meta.get("versions") != _versions()
            or not w.get("state_sha256") or not (folder / f"{FACE}.npy").is_file()):
        return None
    if settings["pretrained_path"]:
        from cmkd.models.visual import file_sha256  # lazy: optional (the model module: frozen-feature runs only)

        return meta if w.get("file_sha256") == file_sha256(settings["pretrained_path"]) else None
    return None if settings["pretrained"] else meta


def _settings(prep: Prepared, enc: Mapping) -> dict:
    """The extraction settings of the frozen encoder ``enc`` on ``prep``'s frames."""
    if FACE not in prep:
        raise DataError(f"{prep.path}: no 'face' array to extract frozen features from")
    return extraction_settings(enc, tuple(prep.meta["arrays"][FACE]["shape"][-2:]))


def _extraction(prep: Prepared, settings: dict) -> tuple[Any, dict, str]:
    """``(backbone, weights provenance, cache key)`` of the extraction ``settings`` on ``prep``:
    what the extraction job writes and a training job checks the cache against."""
    extractor, weights = build_extractor(settings)
    return extractor, weights, cache_key(prep, settings, weights["state_sha256"], weights["normalisation"])


def _provenance(weights: dict, settings: dict, key: str, folder: Path) -> dict:
    """A run's record of the frozen features it read (``weights`` as built or as meta.json recorded them)."""
    return {**weights, "frozen": True, "img_size": list(settings["img_size"]), "cache_key": key,
            "features": str(folder / f"{FACE}.npy")}


def ensure(prep: Prepared, enc: Mapping, folder: str | os.PathLike, device="cpu") -> tuple[Path, dict]:
    """``(face.npy of the cached features, provenance)`` of the frozen encoder ``enc`` in ``folder``:
    checked against this job's key when ``meta.json`` is there (the workflow's extraction job wrote
    it), else extracted here under the lock (a run outside the workflow; see the module docstring).
    A cache hit whose ``meta.json`` shows this job's settings, frames, weights file and library
    versions (:func:`_recorded`) builds no backbone: the weights' hash it recorded is this job's."""
    folder = Path(folder)
    settings = _settings(prep, enc)
    meta = _recorded(prep, settings, folder)
    if meta is not None:
        log(f"frozen face features: {folder} (meta.json: the same settings, frames, weights and versions)")
        return folder / f"{FACE}.npy", _provenance(meta["weights"], settings, meta["key"], folder)
    extractor, weights, key = _extraction(prep, settings)
    prov = _provenance(weights, settings, key, folder)
    if not (folder / "meta.json").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{folder.name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another job may be extracting the same features
            except OSError as e:  # a file system without locks (some network mounts): the rename stays atomic
                log(f"frozen face features: no lock on {folder.parent} ({e.strerror}); extracting without waiting")
            if not (folder / "meta.json").exists():
                log(f"frozen face features: {folder} missing (a run outside the workflow): extracting in this job")
                _write(extractor, prep, settings, weights, key, folder, device)
    check_cache(folder, key, prep, weights)
    log(f"frozen face features: {folder}")
    return folder / f"{FACE}.npy", prov


def extract_job(prepared: str | os.PathLike, enc: Mapping, out: str | os.PathLike, device="cpu") -> Path:
    """The workflow's extraction job (``python -m cmkd frame-features``): the features of the
    frozen encoder ``enc`` over the prepared set, written to ``out`` (its cache folder, whose name
    must be the settings' key), replacing what was there. Returns ``out``."""
    out = Path(out)
    if not is_frozen(enc):
        raise ConfigError(f"frame-features: {dict(enc)} is not a frozen timm encoder (name: timm, frozen: true)")
    if out != cache_folder(prepared, enc):
        raise ConfigError(f"frame-features: --out {out} is not the cache folder of these settings and data set "
                          f"({cache_folder(prepared, enc)}): the training jobs would not find it")
    prep = load_prepared(prepared)
    settings = _settings(prep, enc)
    extractor, weights, key = _extraction(prep, settings)
    _write(extractor, prep, settings, weights, key, out, device)
    return out


def apply(spec: dict, teachers: Mapping[str, dict], prep: Prepared, needed: list, device="cpu") -> Prepared:
    """The run's prepared data set, with the cached frozen face features in place of the frames
    when its face networks are frozen (else ``prep`` itself)."""
    enc = frozen_encoder(spec, teachers)
    if enc is None or FACE not in needed:
        return prep
    file, prov = ensure(prep, enc, cache_folder(spec["prepared"], enc), device)
    for who, _, feats in _face_encoders(spec, teachers):
        if feats is not None and feats.get("cache_key") != prov["cache_key"]:
            raise DataError(f"{spec['method']}: {who} was trained on frozen face features {feats.get('cache_key', '?')[:16]}, "
                            f"this run's are {prov['cache_key'][:16]} ({file}): other weights or frames; train it again")
    return prep.with_array(FACE, file, {"frame_features": {FACE: prov}})
