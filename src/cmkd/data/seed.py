"""SEED (Zheng & Lu 2015): 15 subjects x 3 sessions x 15 film clips, 3 classes -> prepared directory.

Input layout (``root``; see docs/seed_family.md for the sources)::

    ExtractedFeatures/<subject>_<date>.mat   de_LDS1 ... de_LDS15 (and de_movingAve1 ..., psd_*, ...),
                                             each (62 channels, n windows of 1 s, 5 bands)
    ExtractedFeatures/label.mat              label: (1, 15) in {-1, 0, 1}, the same for every session
    Preprocessed_EEG/<subject>_<date>.mat    <initials>_eeg1 ... <initials>_eeg15, each (62, samples) at
                                             200 Hz (down-sampled, 0-75 Hz band-pass); label.mat again
    <eye_folder>/<subject>_<date>.mat        eye_1 ... eye_15, each (n eye features, n windows)

A subject's three files are its three sessions, in the order of the recording date in the file
name (as TorchEEG and LibEER read them). Labels are the published list
:data:`TRIAL_LABELS` (-1 negative, 0 neutral, 1 positive), stored as ``label + 1``
(0 negative, 1 neutral, 2 positive); ``label.mat`` is checked against it.

EEG input (parameter ``eeg_source``, recorded in meta.json so a table can say which it used):

- ``features`` (default): the shipped DE features (key family ``eeg_feature``, ``de_LDS`` by
  default) of 1 s windows; ``pool_windows`` > 1 averages that many consecutive windows into one
  row (e.g. 4, to pair the 1 s DE windows with 4 s eye-movement windows);
- ``raw``: DE computed here from ``Preprocessed_EEG`` (:func:`cmkd.data.de.differential_entropy`,
  windows of ``window_seconds``), and, with modality ``eeg``, the band-limited 200 Hz signal
  windows themselves (N, 62, 200 * window_seconds), for the CNN architectures.

Eye movements: the SEED web page says subjects 1-5 and 8-14 (12 of 15) have eye-movement data,
distributed as the separate ``SEED_Multimodal`` part. Its feature files' layout is not described
in public readers; this loader reads them in SEED-IV's layout (``eye_<k>`` arrays, features x
windows, one file per subject and session, named like the EEG files) from ``eye_folder``; the
number of features is read from the files and recorded. This layout is an assumption to verify
against the real release.

One prepared row is one window: ``eeg_de`` (N, 62, 5), optionally ``eye`` (N, F) and ``eeg``,
``label``, ``session`` (1-3), ``subject``, ``trial = 100 * session + k`` (``k`` = 0..14, the
clip's position in the session) and ``segment``. When modalities hold different window counts
for a trial, the common prefix is kept and meta ``truncated`` records the counts.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from cmkd.data import de as de_mod
from cmkd.data.cache import BlockStager, check_modalities, resolve_params, reuse_key, write_staged
from cmkd.data.seed_iv import EEG_CHANNELS, _loadmat, _trial_array, raw_trials
from cmkd.data.seed_trials import eeg_trial_parts, stage_trial, warn_truncated
from cmkd.errors import ConfigError, DataError
from cmkd.params import Param, defaults_of, params_from_literals

log = logging.getLogger("cmkd.data")

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
LOADER = {"name": "seed", "prepare": "prepare_seed", "title": "SEED", "family": "seed",
          "nominal_segments": {"default": 15 * 3 * 15 * 60}, "nominal_subjects": 15}  # clips of about 4 min, 4 s windows (1 s DE pooled in fours)
DATASET = LOADER["name"]
LOADER_VERSION = 1
N_TRIALS = 15
N_EEG = 62
N_BANDS = 5
SFREQ = 200.0
TRIAL_LABELS = [1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1]  # published list, every session
LABEL_NAMES = ["negative", "neutral", "positive"]  # stored label = published label + 1
MODALITIES = ("eye", "eeg_de", "eeg")
TRIAL_STRIDE = 100
FEATURE_WINDOW_SECONDS = 1.0
EYE_SUBJECTS = (1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14)  # per the SEED web page

#: the loader's parameters (``datasets.<name>.params``), declared as cmkd.params.Param literals
PARAMS: dict[str, Param] = params_from_literals({
    "modalities": {"default": ["eeg_de"], "kind": "any", "doc": "modalities to prepare (eye, eeg_de, eeg; eeg needs eeg_source: raw)"},
    "eeg_source": {"default": "features", "kind": "choice", "choices": ["features", "raw"],
                   "doc": "the shipped DE features, or DE computed from the raw EEG"},
    "eeg_feature": {"default": "de_LDS", "kind": "str", "doc": "key family of the shipped features (de_LDS, de_movingAve)"},
    "pool_windows": {"default": 1, "kind": "any", "doc": "feature windows pooled into one segment"},
    "window_seconds": {"default": 1.0, "kind": "any", "doc": "eeg_source raw: DE window (s)"},
    "filter_order": {"default": 4, "kind": "any", "doc": "eeg_source raw: order of the band filters"},
    "eye_folder": {"default": "Eye_movement_features", "kind": "str", "doc": "folder of the eye movement features"},
    "sessions": {"default": [1, 2, 3], "kind": "any", "doc": "sessions to read"},    "subjects": {"default": None, "kind": "any", "doc": "subject numbers to keep; null: every subject found"},    "source_hash_mode": {"default": "stat", "kind": "choice", "choices": ["stat", "content"],
                         "doc": "how the raw files enter the data hash: size and mtime (stat) or their bytes (content)"},
}, "seed")
DEFAULTS: dict[str, Any] = defaults_of(PARAMS)
EEG_SOURCES = ("features", "raw")
_FOLDERS = {"features": "ExtractedFeatures", "raw": "Preprocessed_EEG"}
_FILE_RE = re.compile(r"^(\d+)_(\d+)\.mat$")


def scan_sessions(folder: Path) -> dict[int, list[Path]]:
    """``{subject: [file of session 1, 2, 3]}``: a subject's files in the order of their date."""
    by_subject: dict[int, list[tuple[str, Path]]] = {}
    for f in sorted(folder.iterdir()):
        m = _FILE_RE.match(f.name)
        if m:
            by_subject.setdefault(int(m.group(1)), []).append((m.group(2), f))
    out = {}
    for s, items in by_subject.items():
        if len(items) > 3:
            raise DataError(f"{folder}: {len(items)} files for subject {s} ({', '.join(p.name for _, p in items)}); "
                            f"SEED has 3 sessions per subject")
        out[s] = [p for _, p in sorted(items, key=lambda dp: dp[0])]
    return out


def check_label_file(path: Path, published: list[int]) -> None:
    """``label.mat`` must hold the published per-trial list; DataError naming the file otherwise."""
    mat = _loadmat(path)
    if "label" not in mat:
        raise DataError(f"{path}: no variable 'label' (has {sorted(k for k in mat if not k.startswith('__'))})")
    got = np.asarray(mat["label"]).reshape(-1)
    if got.shape != (len(published),) or not np.array_equal(got.astype(np.int64), published):
        raise DataError(f"{path}: 'label' is {got.tolist()}, expected the published list {published}")


def prepare_seed(root: str | Path, out_dir: str | Path, params: dict | None = None) -> Path:
    """Prepare SEED from ``root`` into ``out_dir``; return ``out_dir``.

    ``params`` keys (defaults in :data:`DEFAULTS`): ``modalities`` (subset of eye, eeg_de, eeg;
    ``eeg`` needs ``eeg_source: raw``), ``eeg_source`` (features | raw), ``eeg_feature``,
    ``pool_windows``, ``window_seconds`` and ``filter_order`` (raw only), ``eye_folder``,
    ``sessions``, ``subjects``, ``source_hash_mode``.
    """
    where = "SEED"
    p = resolve_params(params, DEFAULTS, where)
    mods = check_modalities(p["modalities"], MODALITIES, where)
    src = p["eeg_source"]
    if src not in EEG_SOURCES:
        raise ConfigError(f"{where}: eeg_source must be one of {list(EEG_SOURCES)}, got {src!r}")
    if "eeg" in mods and src != "raw":
        raise ConfigError(f"{where}: modality 'eeg' (signal windows) needs eeg_source: raw (the features have no time axis)")
    sessions = [int(s) for s in p["sessions"]]
    if not sessions or any(s not in (1, 2, 3) for s in sessions):
        raise ConfigError(f"{where}: sessions must be drawn from [1, 2, 3], got {p['sessions']!r}")
    pool_n = p["pool_windows"]
    if isinstance(pool_n, bool) or not isinstance(pool_n, int) or pool_n < 1:
        raise ConfigError(f"{where}: pool_windows must be a positive integer, got {pool_n!r}")
    win_s = float(p["window_seconds"]) if src == "raw" else FEATURE_WINDOW_SECONDS * pool_n
    if src == "raw" and (win_s <= 0 or abs(win_s * SFREQ - round(win_s * SFREQ)) > 1e-9):
        raise ConfigError(f"{where}: window_seconds must be a positive multiple of 1/200 s, got {p['window_seconds']!r}")
    if src == "raw" and pool_n != 1:
        raise ConfigError(f"{where}: pool_windows applies to the shipped features; with eeg_source: raw set window_seconds")

    root = Path(root)
    out_dir = Path(out_dir)
    eeg_folder = root / _FOLDERS[src]
    eye_folder = root / str(p["eye_folder"])
    if not root.is_dir():
        raise DataError(f"{root}: SEED root directory not found (expected {_FOLDERS[src]} in it)")
    needs_eeg = "eeg_de" in mods or "eeg" in mods
    if needs_eeg and not eeg_folder.is_dir():
        raise DataError(f"{eeg_folder}: folder not found (SEED EEG {'features' if src == 'features' else 'signals'})")
    if "eye" in mods and not eye_folder.is_dir():
        raise DataError(f"{eye_folder}: folder not found (SEED eye-movement features, datasets.<name>.params.eye_folder)")
    label_file = eeg_folder / "label.mat" if needs_eeg else eye_folder / "label.mat"
    label_checked = label_file.is_file()
    if label_checked:
        check_label_file(label_file, TRIAL_LABELS)
    else:
        log.warning("SEED: %s not found; using the published label list", label_file)

    found = {}
    if needs_eeg:
        found["eeg"] = scan_sessions(eeg_folder)
    if "eye" in mods:
        found["eye"] = scan_sessions(eye_folder)
    subjects = sorted(set().union(*(set(f) for f in found.values())))
    if p["subjects"] is not None:
        wanted = {int(s) for s in p["subjects"]}
        subjects = [s for s in subjects if s in wanted]
    skipped: list[dict] = []
    plan: list[tuple[int, int, dict[str, Path]]] = []
    inputs: list[tuple[str, Path]] = [(f"{label_file.parent.name}/label.mat", label_file)] if label_checked else []
    for s in subjects:
        for sess in sessions:
            files, missing = {}, []
            for kind, table in found.items():
                lst = table.get(s, [])
                if len(lst) >= sess:
                    files[kind] = lst[sess - 1]
                else:
                    missing.append(kind)
            if missing:
                reason = f"no {' and '.join(missing)} file for session {sess}"
                log.warning("SEED: subject %d session %d skipped: %s", s, sess, reason)
                skipped.append({"item": f"subject {s} session {sess}", "reason": reason})
                continue
            plan.append((sess, s, files))
            inputs += [(f"{f.parent.name}/{f.name}", f) for f in files.values()]
    if not plan:
        raise DataError(f"{root}: no SEED file found for sessions {sessions} (expected <folder>/<subject>_<date>.mat)")
    short = [s for s in subjects if any(len(t.get(s, [])) not in (0, 3) for t in found.values())]
    if short:
        log.warning("SEED: subjects %s have fewer than 3 files; sessions are numbered by date among those present", short)

    hashed = dict(p)
    hashed["modalities"] = mods
    hashed["sessions"] = sessions
    if src == "features":
        for k in ("window_seconds", "filter_order"):
            hashed.pop(k)
    else:
        hashed.pop("eeg_feature")
    if "eye" not in mods:
        hashed.pop("eye_folder")
    key, fresh = reuse_key("SEED", DATASET, LOADER_VERSION, inputs, p["source_hash_mode"], hashed, out_dir)
    if fresh:
        return out_dir

    feat = str(p["eeg_feature"])
    truncated: list[dict] = []
    n_eye_features = None
    files_meta: list[dict] = []
    with BlockStager(out_dir) as stage:
        for j, (sess, s, files) in enumerate(plan, start=1):
            log.info("SEED: subject %d session %d (%d/%d)", s, sess, j, len(plan))
            mats = {kind: _loadmat(f) for kind, f in files.items()}
            raw = raw_trials(mats["eeg"], files["eeg"], N_TRIALS) if needs_eeg and src == "raw" else None
            n_rows = 0
            for k in range(N_TRIALS):
                parts: dict[str, np.ndarray] = {}
                if "eye" in mods:
                    a = _trial_array(mats["eye"], f"eye_{k + 1}", files["eye"], (None, None))
                    if n_eye_features is None:
                        n_eye_features = a.shape[0]
                    elif a.shape[0] != n_eye_features:
                        raise DataError(f"{files['eye']}: 'eye_{k + 1}' has {a.shape[0]} features, "
                                        f"other trials {n_eye_features}")
                    parts["eye"] = np.asarray(a, np.float32).T
                parts.update(eeg_trial_parts(raw, mats.get("eeg"), files.get("eeg"), k, mods, feature=feat,
                                             sfreq=SFREQ, window_seconds=win_s, filter_order=p["filter_order"],
                                             shape=(N_EEG, None, N_BANDS), pool_n=pool_n))
                n_rows += stage_trial(stage, parts, label=TRIAL_LABELS[k] + 1, session=sess, subject=s, k=k,
                                      trial_stride=TRIAL_STRIDE, truncated=truncated, skipped=skipped, where="SEED")
            files_meta.append({"session": sess, "subject": s, "files": {m: f.name for m, f in files.items()},
                               "windows": n_rows})
            del mats, raw
        warn_truncated("SEED", truncated)
        if stage.n_rows == 0:
            raise DataError(f"{root}: no SEED window could be prepared (skipped: {skipped})")
        channels: dict[str, list] = {}
        if "eeg_de" in mods:
            channels["eeg_de"] = EEG_CHANNELS
        if "eeg" in mods:
            channels["eeg"] = EEG_CHANNELS
        if "eye" in mods:
            channels["eye"] = [f"eye_feature_{i + 1:02d}" for i in range(n_eye_features or 0)]
        meta = {
            "sampling_rates": {"eeg": SFREQ} if "eeg" in mods else {},
            "window_seconds": win_s,
            "channels": channels,
            "bands": de_mod.BAND_NAMES if "eeg_de" in mods else None,
            "eeg_source": src if needs_eeg else None,
            "eeg_feature": (feat if src == "features" else "de_computed") if "eeg_de" in mods else None,
            "modalities": mods,
            "labels": {"names": LABEL_NAMES, "published": TRIAL_LABELS, "stored_as": "published label + 1",
                       "label_file_checked": label_checked},
            "session_order": "by recording date in the file name",
            "trial_id": f"{TRIAL_STRIDE} * session + position in session (0-14)",
            "truncated": truncated,
            "files": files_meta,
        }
        out = write_staged(out_dir, stage, meta, dataset=DATASET, loader_version=LOADER_VERSION, source_hash=key,
                           skipped=skipped, params=hashed)
    log.info("SEED: wrote %s (%d files, %d windows, EEG from %s)", out, len(plan), stage.n_rows, src)
    return out
