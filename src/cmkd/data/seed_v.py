"""SEED-V (Liu et al. 2021): 16 subjects x 3 sessions x 15 film clips, 5 classes -> prepared directory.

Input layout (``root``; see docs/seed_family.md for the sources)::

    EEG_DE_features/<subject>_123.npz        one file per subject, all three sessions
    Eye_movement_features/<subject>_123.npz  the same layout, eye-movement features

Each ``.npz`` holds two byte strings, ``data`` and ``label``, each a pickled dict keyed by the
global trial index ``0 .. 44`` (session ``i // 15 + 1``, position ``i % 15``): ``data[i]`` is
(n windows of 4 s, features), 310 DE values (62 channels x 5 bands) for the EEG and 33 for the
eye movements; ``label[i]`` holds the per-window class (0 disgust, 1 fear, 2 sad, 3 neutral,
4 happy). The per-window labels are checked against the published lists :data:`SESSION_LABELS`.

The 310 DE values are read as channel-major (``reshape(62, 5)``: the five bands of channel 0
first), as TorchEEG's ``SEEDVFeatureDataset`` does; parameter ``de_layout: band_major`` reads them
the other way round (``reshape(5, 62).T``) should a release differ.

The pickles are the data set's own format; ``pickle.loads`` runs on them, so only point the
loader at the licensed release. Raw EEG (``EEG_raw/*.cnt``, 1000 Hz, clip boundaries given as
time stamps) is not read here.

One prepared row is one window: ``eeg_de`` (N, 62, 5), ``eye`` (N, 33), ``label``, ``session``
(1-3), ``subject``, ``trial = 100 * session + k`` (k = 0..14) and ``segment``.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from cmkd.data.cache import BlockStager, check_modalities, resolve_params, reuse_key, write_staged
from cmkd.data.de import BAND_NAMES
from cmkd.data.seed_iv import EEG_CHANNELS
from cmkd.data.seed_trials import scan_subject_files, stage_trial, warn_truncated
from cmkd.errors import ConfigError, DataError
from cmkd.params import Param, defaults_of, params_from_literals

log = logging.getLogger("cmkd.data")

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
LOADER = {"name": "seed_v", "prepare": "prepare_seed_v", "title": "SEED-V", "family": "seed",
          "nominal_segments": {"default": 16 * 3 * 15 * 45}, "nominal_subjects": 16}  # clips of 2-4 min, 4 s windows
DATASET = LOADER["name"]
LOADER_VERSION = 1
N_SESSIONS = 3
N_TRIALS = 15
N_EEG = 62
N_BANDS = 5
N_EYE = 33
SESSION_LABELS = {
    1: [4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0],
    2: [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0],
    3: [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0],
}
LABEL_NAMES = ["disgust", "fear", "sad", "neutral", "happy"]
MODALITIES = ("eye", "eeg_de")
TRIAL_STRIDE = 100
WINDOW_SECONDS = 4.0
DE_LAYOUTS = ("channel_major", "band_major")

#: the loader's parameters (``datasets.<name>.params``), declared as cmkd.params.Param literals
PARAMS: dict[str, Param] = params_from_literals({
    "modalities": {"default": ["eye", "eeg_de"], "kind": "any", "doc": "modalities to prepare (eye, eeg_de)"},
    "de_layout": {"default": "channel_major", "kind": "choice", "choices": ["channel_major", "band_major"],
                  "doc": "order of the 310 DE features: channel-major or band-major"},
    "sessions": {"default": [1, 2, 3], "kind": "any", "doc": "sessions to read"},    "subjects": {"default": None, "kind": "any", "doc": "subject numbers to keep; null: every subject found"},    "source_hash_mode": {"default": "stat", "kind": "choice", "choices": ["stat", "content"],
                         "doc": "how the raw files enter the data hash: size and mtime (stat) or their bytes (content)"},
}, "seed_v")
DEFAULTS: dict[str, Any] = defaults_of(PARAMS)
_FOLDERS = {"eye": "Eye_movement_features", "eeg_de": "EEG_DE_features"}
_WIDTH = {"eye": N_EYE, "eeg_de": N_EEG * N_BANDS}
_FILE_RE = re.compile(r"^(\d+)_(\d+)\.npz$")


def _unpickle(npz, name: str, path: Path) -> dict:
    if name not in npz.files:
        raise DataError(f"{path}: no array '{name}' (has {npz.files})")
    raw = npz[name]
    if raw.dtype.kind != "S":
        raise DataError(f"{path}: '{name}' has dtype {raw.dtype}, expected the bytes of a pickled dict")
    try:
        obj = pickle.loads(raw.tobytes())
    except Exception as e:
        raise DataError(f"{path}: '{name}' is not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: '{name}' holds a {type(obj).__name__}, expected a dict keyed by trial 0..44")
    return obj


def read_npz(path: Path) -> tuple[dict, dict]:
    """The ``data`` and ``label`` dicts of one SEED-V feature file, keys as ints."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data, label = _unpickle(npz, "data", path), _unpickle(npz, "label", path)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: cannot read .npz file ({type(e).__name__}: {e})") from None
    out = []
    for name, d in (("data", data), ("label", label)):
        conv = {}
        for k, v in d.items():
            try:
                conv[int(k)] = v
            except (TypeError, ValueError):
                raise DataError(f"{path}: '{name}' has key {k!r}; expected trial indices 0..44") from None
        out.append(conv)
    return out[0], out[1]


def _scan(folder: Path) -> dict[int, Path]:
    return scan_subject_files(folder, _FILE_RE, "expected one")


def _trial(d: dict, i: int, width: int, path: Path) -> np.ndarray:
    if i not in d:
        raise DataError(f"{path}: 'data' has no trial {i} (session {i // N_TRIALS + 1}, trial {i % N_TRIALS + 1}); "
                        f"keys {sorted(d)[:6]}...")
    a = np.asarray(d[i])
    if a.ndim != 2 or a.shape[1] != width or a.dtype.kind not in "fiu":
        raise DataError(f"{path}: data[{i}] has shape {a.shape} dtype {a.dtype}, expected (n, {width}) numbers")
    return a


def prepare_seed_v(root: str | Path, out_dir: str | Path, params: dict | None = None) -> Path:
    """Prepare SEED-V features from ``root`` into ``out_dir``; return ``out_dir``.

    ``params`` keys (defaults in :data:`DEFAULTS`): ``modalities`` (subset of eye, eeg_de),
    ``de_layout`` (channel_major | band_major), ``sessions``, ``subjects``, ``source_hash_mode``.
    """
    where = "SEED-V"
    p = resolve_params(params, DEFAULTS, where)
    mods = check_modalities(p["modalities"], MODALITIES, where)
    if p["de_layout"] not in DE_LAYOUTS:
        raise ConfigError(f"{where}: de_layout must be one of {list(DE_LAYOUTS)}, got {p['de_layout']!r}")
    sessions = [int(s) for s in p["sessions"]]
    if not sessions or any(s not in SESSION_LABELS for s in sessions):
        raise ConfigError(f"{where}: sessions must be drawn from [1, 2, 3], got {p['sessions']!r}")
    root = Path(root)
    out_dir = Path(out_dir)
    if not root.is_dir():
        raise DataError(f"{root}: SEED-V root directory not found (expected {', '.join(_FOLDERS[m] for m in mods)} in it)")
    for m in mods:
        if not (root / _FOLDERS[m]).is_dir():
            raise DataError(f"{root / _FOLDERS[m]}: folder not found ({m} features of SEED-V)")

    found = {m: _scan(root / _FOLDERS[m]) for m in mods}
    subjects = sorted(set().union(*found.values()))
    if p["subjects"] is not None:
        wanted = {int(s) for s in p["subjects"]}
        subjects = [s for s in subjects if s in wanted]
    skipped: list[dict] = []
    plan: list[tuple[int, dict[str, Path]]] = []
    inputs: list[tuple[str, Path]] = []
    for s in subjects:
        files = {m: found[m].get(s) for m in mods}
        missing = [m for m in mods if files[m] is None]
        if missing:
            reason = f"no {' and '.join(_FOLDERS[m] for m in missing)} file"
            log.warning("SEED-V: subject %d skipped: %s", s, reason)
            skipped.append({"item": f"subject {s}", "reason": reason})
            continue
        plan.append((s, files))
        inputs += [(f"{_FOLDERS[m]}/{f.name}", f) for m, f in files.items()]
    if not plan:
        raise DataError(f"{root}: no SEED-V feature file found (expected <folder>/<subject>_123.npz)")

    hashed = dict(p)
    hashed["modalities"] = mods
    hashed["sessions"] = sessions
    if "eeg_de" not in mods:
        hashed.pop("de_layout")
    key, fresh = reuse_key("SEED-V", DATASET, LOADER_VERSION, inputs, p["source_hash_mode"], hashed, out_dir)
    if fresh:
        return out_dir

    truncated: list[dict] = []
    files_meta: list[dict] = []
    with BlockStager(out_dir) as stage:
        for j, (s, files) in enumerate(plan, start=1):
            log.info("SEED-V: subject %d (%d/%d)", s, j, len(plan))
            read = {m: read_npz(f) for m, f in files.items()}
            n_rows = 0
            for sess in sessions:
                for k in range(N_TRIALS):
                    i = (sess - 1) * N_TRIALS + k
                    want = SESSION_LABELS[sess][k]
                    parts: dict[str, np.ndarray] = {}
                    for m, (data, label) in read.items():
                        a = _trial(data, i, _WIDTH[m], files[m])
                        if i in label:
                            lab = np.asarray(label[i]).reshape(-1)
                            bad = lab != want
                            if lab.size and bad.any():
                                raise DataError(f"{files[m]}: label[{i}] holds class {int(lab[bad][0])} for session {sess} "
                                                f"trial {k + 1}; the published list gives {want} ({LABEL_NAMES[want]})")
                        if m == "eeg_de":
                            a = a.reshape(-1, N_EEG, N_BANDS) if p["de_layout"] == "channel_major" else \
                                a.reshape(-1, N_BANDS, N_EEG).transpose(0, 2, 1)
                        parts[m] = np.asarray(a, np.float32)
                    n_rows += stage_trial(stage, parts, label=want, session=sess, subject=s, k=k,
                                          trial_stride=TRIAL_STRIDE, truncated=truncated, skipped=skipped,
                                          where="SEED-V")
            files_meta.append({"subject": s, "files": {m: f.name for m, f in files.items()}, "windows": n_rows})
            del read
        warn_truncated("SEED-V", truncated)
        if stage.n_rows == 0:
            raise DataError(f"{root}: no SEED-V window could be prepared (skipped: {skipped})")
        meta = {
            "sampling_rates": {},
            "window_seconds": WINDOW_SECONDS,
            "channels": {**({"eeg_de": EEG_CHANNELS} if "eeg_de" in mods else {}),
                         **({"eye": [f"eye_feature_{i + 1:02d}" for i in range(N_EYE)]} if "eye" in mods else {})},
            "bands": BAND_NAMES if "eeg_de" in mods else None,
            "eeg_source": "features" if "eeg_de" in mods else None,
            "de_layout": p["de_layout"] if "eeg_de" in mods else None,
            "modalities": mods,
            "labels": {"names": LABEL_NAMES, "per_session": {str(k): v for k, v in SESSION_LABELS.items()}},
            "trial_id": f"{TRIAL_STRIDE} * session + position in session (0-14)",
            "truncated": truncated,
            "files": files_meta,
        }
        out = write_staged(out_dir, stage, meta, dataset=DATASET, loader_version=LOADER_VERSION, source_hash=key,
                           skipped=skipped, params=hashed)
    log.info("SEED-V: wrote %s (%d subjects, %d windows)", out, len(plan), stage.n_rows)
    return out
