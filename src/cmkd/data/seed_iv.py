"""SEED-IV (Zheng et al. 2019): eye-movement and EEG features -> prepared directory.

Input layout (``root``)::

    eye_feature_smooth/<session 1|2|3>/<subject>_<date>.mat   eye_1 ... eye_24, each (31, n windows)
    eeg_feature_smooth/<session 1|2|3>/<subject>_<date>.mat   de_LDS1 ... de_LDS24, each (62, n windows, 5)

Both are features of consecutive 4 s windows; one prepared row is one window:
``eye`` (N, 31) and ``eeg_de`` (N, 62, 5) (delta, theta, alpha, beta, gamma differential
entropy; ``eeg_feature`` picks another key family such as ``de_movingAve``), ``label`` (N,)
int64 from the data set's fixed per-session lists (0 neutral, 1 sad, 2 fear, 3 happy; the same
lists as TorchEEG's SEED-IV loaders), ``session`` (1-3), ``subject`` (the number before ``_``
in the file name), ``trial`` and ``segment`` (window index within the trial).

Trial ids are unique per subject across sessions: ``trial = 100 * session + k`` with
``k = 0..23`` the trial's position in the session (``eye_{k+1}``), so a trial-level split never
mixes the same clip index of two sessions. When the eye and EEG files of a trial hold different
window counts, the common prefix is kept and meta ``truncated`` records both counts. There are
no ratings: the emotion dimension uses ``label``.

EEG input (parameter ``eeg_source``, recorded in meta.json so a table can say which it used):
``features`` (default) reads the shipped, smoothed DE features; ``raw`` reads
``eeg_raw_data/<session>/<subject>_<date>.mat`` (keys ``<initials>_eeg1 ... _eeg24``, 62 channels at
200 Hz) and computes unsmoothed DE on windows of ``window_seconds`` (4 s, as the shipped features)
with :func:`cmkd.data.de.differential_entropy`; modality ``eeg`` then also stores the signal
windows (N, 62, 200 * window_seconds) for the CNN architectures. DE from raw EEG and the shipped
(smoothed) DE are known to give very different accuracies, hence the parameter.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from cmkd.data.cache import BlockStager, check_modalities, log_skipped, resolve_params, reuse_key, write_staged
from cmkd.data.seed_trials import eeg_trial_parts, scan_subject_files, stage_trial, warn_truncated
from cmkd.data.seed_trials import trial_array as _trial_array
from cmkd.errors import ConfigError, DataError
from cmkd.params import Param, defaults_of, params_from_literals

log = logging.getLogger("cmkd.data")

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
LOADER = {"name": "seed_iv", "prepare": "prepare_seed_iv", "title": "SEED-IV", "family": "seed",
          "inspect": "cmkd.data.rawcheck:inspect_seed_iv",
          "nominal_segments": {"default": 15 * 3 * 24 * 60}, "nominal_subjects": 15}  # trials of about 60 windows of 4 s
DATASET = LOADER["name"]
LOADER_VERSION = 1
N_TRIALS = 24
N_EYE = 31
N_EEG = 62
N_BANDS = 5
SESSION_LABELS = {
    1: [1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3],
    2: [2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1],
    3: [1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0],
}
LABEL_NAMES = ["neutral", "sad", "fear", "happy"]
EEG_CHANNELS = [
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8", "FT7", "FC5",
    "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8",
    "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7", "P5", "P3", "P1", "PZ", "P2", "P4",
    "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2",
]
BANDS = ["delta", "theta", "alpha", "beta", "gamma"]
MODALITIES = ("eye", "eeg_de", "eeg")
TRIAL_STRIDE = 100
WINDOW_SECONDS = 4.0

#: the loader's parameters (``datasets.<name>.params``), declared as cmkd.params.Param literals
PARAMS: dict[str, Param] = params_from_literals({
    "modalities": {"default": ["eye", "eeg_de"], "kind": "any", "doc": "modalities to prepare (eye, eeg_de)"},
    "eeg_feature": {"default": "de_LDS", "kind": "str", "doc": "key prefix in the EEG files (de_LDS, de_movingAve)"},
    "sessions": {"default": [1, 2, 3], "kind": "any", "doc": "sessions to read"},    "subjects": {"default": None, "kind": "any", "doc": "subject numbers to keep; null: every subject found"},    "source_hash_mode": {"default": "stat", "kind": "choice", "choices": ["stat", "content"],
                         "doc": "how the raw files enter the data hash: size and mtime (stat) or their bytes (content)"},
    "eeg_source": {"default": "features", "kind": "choice", "choices": ["features", "raw"],
                   "doc": "the shipped DE features, or DE computed from the raw EEG"},
    "window_seconds": {"default": WINDOW_SECONDS, "kind": "any", "doc": "eeg_source raw: DE window (s)"},
    "filter_order": {"default": 4, "kind": "any", "doc": "eeg_source raw: order of the band filters"},
}, "seed_iv")
DEFAULTS: dict[str, Any] = defaults_of(PARAMS)
EEG_SOURCES = ("features", "raw")
RAW_FOLDER = "eeg_raw_data"
SFREQ = 200.0
_RAW_KEY_RE = re.compile(r"^(.+)_eeg(\d+)$")

_FILE_RE = re.compile(r"^(\d+)_(\d+)\.mat$")
_FOLDERS = {"eye": "eye_feature_smooth", "eeg_de": "eeg_feature_smooth"}


def _loadmat(path: Path) -> dict:
    import scipy.io  # lazy: optional (scipy.io; the planner imports this module)

    try:
        return scipy.io.loadmat(str(path))
    except Exception as e:  # truncated, not a MAT file, v7.3 (HDF5)
        raise DataError(f"{path}: cannot read MAT file ({type(e).__name__}: {e})") from None


def raw_trials(mat: dict, path: Path, n_trials: int) -> dict[int, np.ndarray]:
    """``{k: (62, samples)}`` from a raw-EEG file whose keys are ``<initials>_eeg<k+1>``."""
    found: dict[int, str] = {}
    for key in mat:
        m = _RAW_KEY_RE.match(key)
        if m and not key.startswith("__"):
            k = int(m.group(2)) - 1
            if k in found:
                raise DataError(f"{path}: two variables for trial {k + 1} ('{found[k]}', '{key}')")
            found[k] = key
    missing = [k + 1 for k in range(n_trials) if k not in found]
    if missing:
        have = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no raw EEG variable '<name>_eeg{missing[0]}' (has {have[:8]}{'...' if len(have) > 8 else ''})")
    return {k: _trial_array(mat, found[k], path, (N_EEG, None)) for k in range(n_trials)}


def _scan(folder: Path, session: int) -> dict[int, Path]:
    return scan_subject_files(folder / str(session), _FILE_RE, "expected one per session")


def prepare_seed_iv(root: str | Path, out_dir: str | Path, params: dict | None = None) -> Path:
    """Prepare SEED-IV features from ``root`` into ``out_dir``; return ``out_dir``.

    ``params`` keys (defaults in :data:`DEFAULTS`): ``modalities`` (subset of eye, eeg_de),
    ``eeg_feature`` (key prefix in the EEG files, ``de_LDS`` or ``de_movingAve``), ``sessions``,
    ``subjects``, ``source_hash_mode``.
    """
    where = "SEED-IV"
    p = resolve_params(params, DEFAULTS, where)
    mods = check_modalities(p["modalities"], MODALITIES, where)
    sessions = [int(s) for s in p["sessions"]]
    if not sessions or any(s not in SESSION_LABELS for s in sessions):
        raise ConfigError(f"{where}: sessions must be drawn from [1, 2, 3], got {p['sessions']!r}")
    feat = str(p["eeg_feature"])
    src = p["eeg_source"]
    if src not in EEG_SOURCES:
        raise ConfigError(f"{where}: eeg_source must be one of {list(EEG_SOURCES)}, got {src!r}")
    if "eeg" in mods and src != "raw":
        raise ConfigError(f"{where}: modality 'eeg' (signal windows) needs eeg_source: raw (the features have no time axis)")
    win_s = float(p["window_seconds"])
    if src == "raw" and (win_s <= 0 or abs(win_s * SFREQ - round(win_s * SFREQ)) > 1e-9):
        raise ConfigError(f"{where}: window_seconds must be a positive multiple of 1/200 s, got {p['window_seconds']!r}")
    folders = dict(_FOLDERS)
    if src == "raw":
        folders["eeg_de"] = folders["eeg"] = RAW_FOLDER
    needs_eeg = "eeg_de" in mods or "eeg" in mods
    scan_mods = [m for m in ("eye", "eeg_de") if m in mods] + (["eeg_de"] if "eeg" in mods and "eeg_de" not in mods else [])

    root = Path(root)
    out_dir = Path(out_dir)
    if not root.is_dir():
        raise DataError(f"{root}: SEED-IV root directory not found "
                        f"(expected {', '.join(folders[m] for m in mods)} in it)")
    for m in scan_mods:
        if not (root / folders[m]).is_dir():
            raise DataError(f"{root / folders[m]}: folder not found ({m} {'features' if folders[m] != RAW_FOLDER else 'raw EEG'} of SEED-IV)")

    skipped: list[dict] = []
    plan: list[tuple[int, int, dict[str, Path]]] = []  # (session, subject, {modality: file})
    inputs: list[tuple[str, Path]] = []
    wanted = {int(s) for s in p["subjects"]} if p["subjects"] is not None else None
    for sess in sessions:
        found = {m: _scan(root / folders[m], sess) for m in scan_mods}
        subjects = sorted(set().union(*found.values()))
        if wanted is not None:
            subjects = [s for s in subjects if s in wanted]
        for s in subjects:
            files = {m: found[m].get(s) for m in scan_mods}
            missing = [m for m in scan_mods if files[m] is None]
            if missing:
                reason = f"no {' and '.join(_FOLDERS[m] for m in missing)} file"
                skipped.append({"item": f"session {sess} subject {s}", "reason": reason})
                continue
            plan.append((sess, s, files))
            inputs += [(f"{folders[m]}/{sess}/{f.name}", f) for m, f in files.items()]
    if not plan:
        raise DataError(f"{root}: no SEED-IV feature file found for sessions {sessions} "
                        f"(expected <folder>/<session>/<subject>_<date>.mat)")

    hashed = dict(p)
    hashed["modalities"] = mods
    hashed["sessions"] = sessions
    if "eeg_de" not in mods or src == "raw":
        hashed.pop("eeg_feature")
    if src == "features":  # the keys of directories prepared before the raw path existed stay valid
        for k in ("eeg_source", "window_seconds", "filter_order"):
            hashed.pop(k)
    key, fresh = reuse_key("SEED-IV", DATASET, LOADER_VERSION, inputs, p["source_hash_mode"], hashed, out_dir)
    if fresh:
        return out_dir

    truncated: list[dict] = []
    non_finite = {m: 0 for m in mods}
    files_meta: list[dict] = []
    with BlockStager(out_dir) as stage:
        for j, (sess, s, files) in enumerate(plan, start=1):
            log.info("SEED-IV: session %d subject %d (%d/%d)", sess, s, j, len(plan))
            mats = {m: _loadmat(f) for m, f in files.items()}
            raw = raw_trials(mats["eeg_de"], files["eeg_de"], N_TRIALS) if needs_eeg and src == "raw" else None
            n_rows = 0
            for k in range(N_TRIALS):
                parts: dict[str, np.ndarray] = {}
                if "eye" in mods:
                    a = _trial_array(mats["eye"], f"eye_{k + 1}", files["eye"], (N_EYE, None))
                    parts["eye"] = np.asarray(a, np.float32).T
                parts.update(eeg_trial_parts(raw, mats.get("eeg_de"), files.get("eeg_de"), k, mods, feature=feat,
                                             sfreq=SFREQ, window_seconds=win_s, filter_order=p["filter_order"],
                                             shape=(N_EEG, None, N_BANDS)))
                n_rows += stage_trial(stage, parts, label=SESSION_LABELS[sess][k], session=sess, subject=s, k=k,
                                      trial_stride=TRIAL_STRIDE, truncated=truncated, skipped=skipped,
                                      where="SEED-IV", non_finite=non_finite)
            files_meta.append({"session": sess, "subject": s, "files": {m: f.name for m, f in files.items()},
                               "windows": n_rows})
            del mats, raw
        log_skipped("SEED-IV", skipped)
        warn_truncated("SEED-IV", truncated)
        if stage.n_rows == 0:
            raise DataError(f"{root}: no SEED-IV window could be prepared (skipped: {skipped})")
        if any(non_finite.values()):
            log.warning("SEED-IV: non-finite feature values: %s", non_finite)
        meta = {
            "sampling_rates": {"eeg": SFREQ} if "eeg" in mods else {},  # features of 4 s windows
            "window_seconds": win_s if src == "raw" else WINDOW_SECONDS,
            "channels": {**({"eeg_de": EEG_CHANNELS} if "eeg_de" in mods else {}),
                         **({"eeg": EEG_CHANNELS} if "eeg" in mods else {}),
                         **({"eye": [f"eye_feature_{i + 1:02d}" for i in range(N_EYE)]} if "eye" in mods else {})},
            "bands": BANDS if "eeg_de" in mods else None,
            "eeg_feature": (feat if src == "features" else "de_computed") if "eeg_de" in mods else None,
            "eeg_source": src if needs_eeg else None,
            "modalities": mods,
            "labels": {"names": LABEL_NAMES, "per_session": {str(k): v for k, v in SESSION_LABELS.items()}},
            "trial_id": f"{TRIAL_STRIDE} * session + position in session (0-23)",
            "truncated": truncated,
            "non_finite": non_finite,
            "files": files_meta,
        }
        out = write_staged(out_dir, stage, meta, dataset=DATASET, loader_version=LOADER_VERSION, source_hash=key,
                           skipped=skipped, params=hashed)
    log.info("SEED-IV: wrote %s (%d files, %d windows, %d truncated trials)", out, len(plan), stage.n_rows, len(truncated))
    return out
