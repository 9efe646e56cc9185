"""Frozen visual features (``encoders.face.frozen: true``): extracted once per prepared data set and
encoder settings, cached, and handed to the networks in place of the frames.

CDGKD's authors extract the visual features with a pretrained PVT and train on the stored
per-frame features. Here a training job whose face encoder (its own, or a teacher's) is frozen
calls :func:`apply` at the start of its load phase:

1. the extraction settings are the encoder's ``arch``, ``img_size`` (null: the frames' size) and
   weights (``pretrained`` / ``pretrained_path``; random initialisation under a fixed seed, 0, so
   that every job of a synthetic grid extracts with the same backbone);
2. the backbone is built (:class:`cmkd.models.visual.TimmFrameEncoder`) and the cache key is the
   sha256 over the format version, the prepared set's ``content_hash`` (which covers the frames),
   the face array's shape, the architecture, the input size, the sha256 of the backbone's state
   dict (the weights, whatever their source) and the normalisation;
3. ``<results>/frame_features/<dataset>/<key[:16]>/`` holds ``face.npy`` (N, F, D) float32, one
   pooled feature vector per frame (the backbone in eval mode, no gradient, float32), and
   ``meta.json`` (the full key and the provenance). A folder whose ``meta.json`` names the key is
   reused (every method and seed of the data set reads the same file); else the features are
   extracted under an exclusive lock (``<key[:16]>.lock``: concurrent jobs of one grid wait for
   the first instead of extracting twice) and written to a temporary sibling renamed into place;
4. the run's prepared data set becomes a view whose ``face`` array is that file
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
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from cmkd import atomic
from cmkd.data.prepared import Prepared, hash_params
from cmkd.data.stream import RowReader
from cmkd.errors import DataError
from cmkd.run.torch_setup import log

FORMAT_VERSION = 1
FACE = "face"
#: the encoder keys that decide the features (the head's own keys do not)
EXTRACTION_KEYS = ("arch", "img_size", "pretrained", "pretrained_path")
#: segments per extraction batch
BATCH_SEGMENTS = 32
#: the seed of a randomly initialised backbone (synthetic data): the same backbone in every job
INIT_SEED = 0


def cache_root(prepared: str | os.PathLike) -> Path:
    """``<results>/frame_features/<dataset>`` for the prepared folder ``<results>/prepared/<dataset>``
    (beside it, not inside: the prepared folder is a workflow output that must not change)."""
    p = Path(prepared)
    return p.parent.parent / "frame_features" / p.name


def is_frozen(enc: Mapping | None) -> bool:
    return isinstance(enc, Mapping) and enc.get("name") == "timm" and enc.get("frozen") is True


def extraction_settings(enc: Mapping, frame_hw: tuple[int, int]) -> dict:
    """The settings that decide the features: arch, input size (the frames' own when null), weights."""
    from cmkd.models.registry import ENCODER_DEFAULTS  # lazy: optional (the model registry, only for a frozen face encoder)

    c = {**ENCODER_DEFAULTS["timm"], **{k: v for k, v in enc.items() if k != "name"}}
    img = c["img_size"]
    hw = tuple(frame_hw) if img is None else tuple(img) if isinstance(img, (list, tuple)) else (img, img)
    return {"arch": str(c["arch"]), "img_size": [int(hw[0]), int(hw[1])], "pretrained": bool(c["pretrained"]),
            "pretrained_path": None if c["pretrained_path"] is None else os.fspath(c["pretrained_path"])}


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
    first = {k: frozen[0][1].get(k) for k in EXTRACTION_KEYS}
    for who, enc, _ in frozen[1:]:
        other = {k: enc.get(k) for k in EXTRACTION_KEYS}
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


def _fresh(folder: Path, key: str) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("key") == key and (folder / f"{FACE}.npy").is_file()


def ensure(prep: Prepared, settings: dict, root: str | os.PathLike, device="cpu") -> tuple[Path, dict]:
    """``(face.npy of the cached features, provenance)``: reused when the cache holds the key,
    else extracted and written (see the module docstring)."""
    if FACE not in prep:
        raise DataError(f"{prep.path}: no 'face' array to extract frozen features from")
    enc, weights = build_extractor(settings)
    key = cache_key(prep, settings, weights["state_sha256"], weights["normalisation"])
    root = Path(root)
    folder = root / key[:16]
    prov = {**weights, "frozen": True, "img_size": list(settings["img_size"]), "cache_key": key,
            "features": str(folder / f"{FACE}.npy")}
    if _fresh(folder, key):
        log(f"frozen face features: cache hit {folder}")
        return folder / f"{FACE}.npy", prov
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key[:16]}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another job of the grid may be extracting the same features
        except OSError as e:  # a file system without locks (some network mounts): extract; the rename stays atomic
            log(f"frozen face features: no lock on {root} ({e.strerror}); extracting without waiting for other jobs")
        if _fresh(folder, key):
            log(f"frozen face features: cache hit {folder} (extracted by another job)")
            return folder / f"{FACE}.npy", prov
        t0 = time.perf_counter()
        enc.to(device)
        face = prep.meta["arrays"][FACE]["shape"]
        with torch.no_grad():
            dim = enc.frames(torch.zeros(1, *face[1:], dtype=torch.uint8, device=device))[0].shape[-1]
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=root))
        try:
            out = np.lib.format.open_memmap(tmp / f"{FACE}.npy", mode="w+", dtype=np.float32,
                                            shape=(int(face[0]), int(face[1]), int(dim)))
            extract(enc, prep.file(FACE), out, device)
            out.flush()
            del out
            atomic.write_json(tmp / "meta.json", {"key": key, "format": FORMAT_VERSION, "prepared": str(prep.path),
                                                  "frames_content_hash": prep.data_hash, "settings": settings,
                                                  "weights": weights, "shape": [int(face[0]), int(face[1]), int(dim)]})
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"frozen face features: {settings['arch']} over {face[0]} x {face[1]} frames in "
            f"{time.perf_counter() - t0:.1f} s -> {folder}")
    return folder / f"{FACE}.npy", prov


def apply(spec: dict, teachers: Mapping[str, dict], prep: Prepared, needed: list, device="cpu") -> Prepared:
    """The run's prepared data set, with the cached frozen face features in place of the frames
    when its face networks are frozen (else ``prep`` itself)."""
    enc = frozen_encoder(spec, teachers)
    if enc is None or FACE not in needed:
        return prep
    frame_hw = tuple(prep.meta["arrays"][FACE]["shape"][-2:])
    settings = extraction_settings(enc, frame_hw)
    file, prov = ensure(prep, settings, cache_root(spec["prepared"]), device)
    for who, _, feats in _face_encoders(spec, teachers):
        if feats is not None and feats.get("cache_key") != prov["cache_key"]:
            raise DataError(f"{spec['method']}: {who} was trained on frozen face features {feats.get('cache_key', '?')[:16]}, "
                            f"this run's are {prov['cache_key'][:16]} ({file}): other weights or frames; train it again")
    return prep.with_array(FACE, file, {"frame_features": {FACE: prov}})
