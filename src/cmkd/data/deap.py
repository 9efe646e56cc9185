"""DEAP (Koelstra et al. 2012): preprocessed Python release (+ frontal face video) -> prepared directory.

Input layout (``root``)::

    data_preprocessed_python/s01.dat ... s32.dat    Python-2 pickles: data (40, 40, 8064), labels (40, 4)
    face_video/s01/s01_trial01.avi ...               optional, participants 1-22
    metadata_csv/participant_ratings.csv             presentation order of the trials (needed for face video)

What is written (one row per 4 s segment):

- the first 3 s (3 x 128 samples) of each trial are the pre-trial baseline and are dropped; with
  ``baseline_correction`` their per-channel mean is subtracted from the trial first;
- the remaining 60 s are cut into 15 segments of 4 s (:func:`segment_signal`);
- ``eeg`` = channels 1-32 in file (Geneva) order; ``eog`` = channels 33-34 (hEOG, vEOG) when
  ``"eog"`` is among ``modalities``; values as in the release (microvolts);
- ``valence``, ``arousal``, ``dominance``, ``liking`` = the trial's ``labels`` row (1-9);
- ``subject`` from the file name (``s07.dat`` -> 7), ``trial`` = row in the file (0-39; the
  release orders trials by video, i.e. ``trial = Experiment_id - 1``), ``segment`` = 0-14.

Face frames (``"face"`` in ``modalities``): ``face_video/sXX/sXX_trialYY.avi`` where, per the
DEAP readme, YY is the trial number in *presentation* order, while the rows of ``sXX.dat`` are
in video (Experiment_id) order. The ``Trial``/``Experiment_id`` columns of
``metadata_csv/participant_ratings.csv`` (or the file ``participant_ratings`` names) map YY to
the file row ``Experiment_id - 1``; without that file preparing face frames is a
:class:`DataError` naming it, unless ``face_trial_mapping: "identity"`` is set on purpose
(video YY = row YY - 1, with a warning; meta records the mapping used). The CSV's
Valence/Arousal/Dominance/Liking are cross-checked against ``labels[Experiment_id - 1]``
(within 0.01): a disagreement means the CSV and the pickles do not belong together and is a
:class:`DataError`. Alignment (``face_align``):
``"end"`` (default) takes the last 60 s of the video as the stimulus, whatever lead-in the
video holds (none, the 3 s baseline, or a longer fixation); a number ``a`` says that the
stimulus starts ``a`` s into the video (``3.0``: the video starts with the 3 s baseline, like
the signals). Segment ``k`` then takes the kept frames with timestamps in
``[onset + 4k, onset + 4k + 4)``. Participants without a face-video folder are left out and
listed in meta ``skipped`` ("no face video"); so are single trials without a video file, and
trials whose video is shorter than the stimulus windows need (skipped with the reason, never
padded). The log groups skipped items by reason.

Memory: subjects are read one at a time and each trial's arrays are appended to staging files
beside the output, so peak memory is about one subject's pickle (103 MB) plus one trial's
segments and face frames (about 230 MB peak RSS in all for a full subject without video). With
face video at 224 px (40 trials of 63 s at 50 fps, 3150 frames each, 600 x 5 frames kept) the
peak is about 0.7 GB, reached while the 451 MB face array is written from its memory map
(``scripts/measure_prepare_memory.py``).
"""
from __future__ import annotations

import csv
import gc
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from cmkd.data import video as vid
from cmkd.data.cache import BlockStager, check_modalities, log_skipped, resolve_prepare, reuse_key, write_staged
from cmkd.data.labels import balance_meta
from cmkd.data.prepared import RATING_ARRAYS, signal_meta
from cmkd.data.segments import id_columns, segment_signal
from cmkd.errors import ConfigError, DataError
from cmkd.params import Param, defaults_of, params_from_literals

log = logging.getLogger("cmkd.data")

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
LOADER = {"name": "deap", "prepare": "prepare_deap", "title": "DEAP", "inspect": "cmkd.data.rawcheck:inspect_deap",
          "nominal_segments": {"default": 32 * 40 * 15, "face": 22 * 40 * 15}, "nominal_subjects": 32}  # 22 subjects with face video
DATASET = LOADER["name"]
LOADER_VERSION = 2  # 2: face video needs the CSV mapping; short videos skipped, not padded
SFREQ = 128
N_CHANNELS = 40
N_SAMPLES = 8064  # 63 s at 128 Hz
BASELINE_SECONDS = 3
STIMULUS_SECONDS = 60
EEG_CHANNELS = [
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
]
EOG_CHANNELS = ["hEOG", "vEOG"]
MODALITIES = ("eeg", "eog", "face")

#: the loader's parameters (``datasets.<name>.params``), declared as cmkd.params.Param literals
PARAMS: dict[str, Param] = {**params_from_literals({
    "modalities": {"default": ["eeg"], "kind": "any", "doc": "modalities to prepare (eeg, eog, face)"},
    "baseline_correction": {"default": False, "kind": "bool", "doc": "subtract the 3 s pre-trial baseline's mean"},
    "segment_seconds": {"default": 4.0, "lo": 0, "lo_open": True, "hi": 60, "doc": "segment length (s)"},
    "subjects": {"default": None, "kind": "any", "doc": "subject numbers to keep; null: every subject found"},
    "face_video_root": {"default": None, "kind": "str", "nullable": True, "doc": "folder of the face videos (default: root/face_video)"},
    "participant_ratings": {"default": None, "kind": "str", "nullable": True,
                            "doc": "participant_ratings.csv (default: root/metadata_csv/participant_ratings.csv when present)"},
    "face_align": {"default": "end", "kind": "any", "doc": "'end' (the video's last 60 s) or seconds into the video"},
    "face_trial_mapping": {"default": "csv", "kind": "choice", "choices": ["csv", "identity"],
                           "doc": "csv: participant_ratings.csv Trial -> Experiment_id; identity (opt-in)"},
    "source_hash_mode": {"default": "stat", "kind": "choice", "choices": ["stat", "content"],
                         "doc": "how the raw files enter the data hash: size and mtime (stat) or their bytes (content)"},
}, "deap"), **vid.FACE_PARAMS}
DEFAULTS: dict[str, Any] = defaults_of(PARAMS)

_FILE_RE = re.compile(r"^s(\d+)\.dat$")
_VIDEO_RE = re.compile(r"^s(\d+)_trial(\d+)\.avi$", re.IGNORECASE)


class _DeapUnpickler(pickle.Unpickler):
    """Unpickle only what a DEAP file holds (numpy arrays in a dict): no arbitrary code runs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a DEAP file")
        if module == "numpy.core.multiarray":  # Python-2 era name of numpy._core.multiarray
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def read_deap_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one ``sXX.dat``; return ``data`` (trials, 40, 8064) and ``labels`` (trials, 4).

    Raises :class:`DataError` naming the file for an unreadable pickle or unexpected shapes.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _DeapUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(f"{path}: DEAP file not found") from None
    except Exception as e:  # truncated, not a pickle, foreign objects
        raise DataError(f"{path}: cannot read DEAP pickle ({type(e).__name__}: {e}); "
                        "expected a Python-2 pickle of a dict with 'data' and 'labels'") from None
    if not isinstance(obj, dict) or "data" not in obj or "labels" not in obj:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"{path}: expected a dict with keys 'data' and 'labels', got {keys}")
    data, labels = obj["data"], obj["labels"]
    if not isinstance(data, np.ndarray) or data.ndim != 3 or data.shape[1:] != (N_CHANNELS, N_SAMPLES) \
            or data.dtype.kind not in "fiu":
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{path}: 'data' has shape {shape}, expected (trials, {N_CHANNELS}, {N_SAMPLES}) numbers "
                        f"(32 EEG + 8 peripheral channels, 63 s at {SFREQ} Hz)")
    if data.shape[0] == 0:
        raise DataError(f"{path}: 'data' holds no trial")
    if not isinstance(labels, np.ndarray) or labels.shape != (data.shape[0], 4) or labels.dtype.kind not in "fiu":
        shape = getattr(labels, "shape", type(labels).__name__)
        raise DataError(f"{path}: 'labels' has shape {shape}, expected ({data.shape[0]}, 4) "
                        "(valence, arousal, dominance, liking)")
    return data, labels


RATING_COLUMNS = ("Valence", "Arousal", "Dominance", "Liking")  # = labels columns 0-3
FACE_TRIAL_MAPPINGS = ("csv", "identity")
RATING_TOLERANCE = 0.01


def _read_presentation_order(path: Path) -> dict[int, dict[int, int]]:
    """participant_ratings.csv -> {participant: {presentation trial: Experiment_id}}."""
    return {s: {t: e for t, (e, _) in rows.items()} for s, rows in read_participant_ratings(path).items()}


def read_participant_ratings(path: Path) -> dict[int, dict[int, tuple[int, tuple[float, ...] | None]]]:
    """participant_ratings.csv -> {participant: {presentation trial: (Experiment_id, ratings or None)}}.

    ``ratings`` are the Valence, Arousal, Dominance, Liking columns (None when a column is
    absent or empty). Raises :class:`DataError` naming the file and line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    need = {"Participant_id", "Trial", "Experiment_id"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{path}: expected columns {sorted(need)}")
    out: dict[int, dict[int, tuple[int, tuple[float, ...] | None]]] = {}
    for i, r in enumerate(rows, start=2):
        try:
            key = (int(r["Participant_id"]), int(r["Trial"]), int(r["Experiment_id"]))
        except (TypeError, ValueError):
            raise DataError(f"{path}: line {i}: Participant_id, Trial and Experiment_id must be integers") from None
        try:
            ratings = tuple(float(r[c]) for c in RATING_COLUMNS)
        except (KeyError, TypeError, ValueError):
            ratings = None
        out.setdefault(key[0], {})[key[1]] = (key[2], ratings)
    return out


def check_csv_ratings(rows: dict[int, tuple[int, tuple[float, ...] | None]], labels: np.ndarray,
                      subject: int, csv_path: Path, dat_path: Path) -> int:
    """Cross-check one participant's CSV ratings against ``labels[Experiment_id - 1]``.

    Returns the number of trials compared; raises :class:`DataError` on the first disagreement
    (beyond :data:`RATING_TOLERANCE`) or an Experiment_id outside the file's rows."""
    n = 0
    for trial, (exp, ratings) in sorted(rows.items()):
        if not 1 <= exp <= labels.shape[0]:
            raise DataError(f"{csv_path}: participant {subject} trial {trial}: Experiment_id {exp} outside "
                            f"1..{labels.shape[0]} (rows of {dat_path.name})")
        if ratings is None:
            continue
        diff = np.abs(np.asarray(ratings) - labels[exp - 1])
        if diff.max() > RATING_TOLERANCE:
            j = int(diff.argmax())
            raise DataError(f"{csv_path}: participant {subject} trial {trial} (Experiment_id {exp}): "
                            f"{RATING_COLUMNS[j]} {ratings[j]:g} differs from {dat_path.name} labels[{exp - 1}, {j}] = "
                            f"{labels[exp - 1, j]:g}; the CSV and the pickles do not belong together")
        n += 1
    return n


def plan_face_trials(subject: int, labels: np.ndarray, videos: dict[int, Path],
                     order: dict[int, dict[int, tuple[int, tuple[float, ...] | None]]] | None,
                     order_file: Path | None, dat_path: Path, face_align: Any,
                     needed_s: float) -> tuple[dict[int, Path], list[dict]]:
    """Which video goes with which row of ``sXX.dat``, from the video headers (nothing decoded).

    ``videos`` maps the presentation trial YY of the file names to the file; ``order`` is
    :func:`read_participant_ratings` (None: identity mapping). The CSV ratings are
    cross-checked (:func:`check_csv_ratings`). Returns ``{row: video}`` and the skipped trials:
    rows without a video, and videos shorter than the ``needed_s`` seconds the segment windows
    need from the stimulus onset. CSV problems raise :class:`DataError` naming the file.
    """
    exp_of = None
    if order is not None:
        if subject not in order:
            raise DataError(f"{order_file}: no rows for participant {subject}")
        check_csv_ratings(order[subject], labels, subject, order_file, dat_path)
        exp_of = {t: e for t, (e, _) in order[subject].items()}
    trial_video: dict[int, Path] = {}
    for yy, vpath in videos.items():
        row = exp_of.get(yy) if exp_of is not None else yy
        if row is None:
            raise DataError(f"{order_file}: participant {subject} has no trial {yy} (video {vpath.name})")
        if not 1 <= row <= labels.shape[0]:
            raise DataError(f"{vpath}: trial {yy} maps to row {row - 1}, outside the {labels.shape[0]} rows of {dat_path.name}")
        trial_video[row - 1] = vpath
    skipped = []
    for t in range(labels.shape[0]):
        if t not in trial_video:
            skipped.append({"item": f"s{subject:02d} trial {t}", "reason": "no face video"})
            continue
        fps, n = vid.video_info(trial_video[t])
        need = stimulus_onset(face_align, n / fps) + needed_s
        if n / fps + 0.5 / fps < need:
            skipped.append({"item": f"s{subject:02d} trial {t}", "reason": "face video shorter than the stimulus",
                            "detail": f"{trial_video[t].name}: {n / fps:.2f} s, needs {need:.2f} s"})
            del trial_video[t]
    return trial_video, skipped


def stimulus_onset(face_align: Any, duration: float) -> float:
    """Video time (s) where the stimulus starts: ``duration - 60`` for ``"end"``, else ``face_align``."""
    return max(0.0, duration - STIMULUS_SECONDS) if face_align == "end" else float(face_align)


def _find_videos(video_root: Path, subject: int) -> dict[int, Path]:
    """{trial number in the file name: path} for one participant's face videos."""
    folder = video_root / f"s{subject:02d}"
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.iterdir()):
        m = _VIDEO_RE.match(p.name)
        if m and int(m.group(1)) == subject:
            out[int(m.group(2))] = p
    return out


def check_params(p: dict, where: str = "DEAP") -> list[str]:
    """Validate resolved parameters (raises :class:`ConfigError`); return the modalities."""
    mods = check_modalities(p["modalities"], MODALITIES, where)
    if "face" in mods:
        vid.check_face_params(p, where)
    fa = p["face_align"]
    if not (fa == "end" or (isinstance(fa, (int, float)) and not isinstance(fa, bool) and fa >= 0)):
        raise ConfigError(f"{where}: face_align must be 'end' or a number of seconds >= 0, got {fa!r}")
    if p["face_trial_mapping"] not in FACE_TRIAL_MAPPINGS:
        raise ConfigError(f"{where}: face_trial_mapping must be one of {list(FACE_TRIAL_MAPPINGS)}, "
                          f"got {p['face_trial_mapping']!r}")
    seg_s = p["segment_seconds"]
    if not isinstance(seg_s, (int, float)) or isinstance(seg_s, bool) or not 0 < seg_s <= STIMULUS_SECONDS:
        raise ConfigError(f"{where}: segment_seconds must be in (0, {STIMULUS_SECONDS}], got {seg_s}")
    return mods


def find_subject_files(root: Path, subjects) -> dict[int, Path]:
    """``{subject: data_preprocessed_python/sXX.dat}``, restricted to ``subjects`` (None: all)."""
    data_dir = root / "data_preprocessed_python"
    if not root.is_dir():
        raise DataError(f"{root}: DEAP root directory not found (expected data_preprocessed_python/sXX.dat in it)")
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: folder not found (the DEAP preprocessed Python release, sXX.dat files)")
    files = {}
    for f in sorted(data_dir.iterdir()):
        m = _FILE_RE.match(f.name)
        if m:
            files[int(m.group(1))] = f
    if subjects is not None:
        wanted = {int(s) for s in subjects}
        missing = sorted(wanted - set(files))
        if missing:
            raise DataError(f"{data_dir}: no file for requested subject(s) {missing} (expected s{missing[0]:02d}.dat)")
        files = {s: f for s, f in files.items() if s in wanted}
    if not files:
        raise DataError(f"{data_dir}: no sXX.dat file found")
    return files


def face_sources(root: Path, p: dict) -> tuple[Path, Path]:
    """(face video folder, participant_ratings.csv); the CSV must exist unless the identity
    mapping was chosen (:class:`DataError` naming it)."""
    video_root = Path(p["face_video_root"]) if p["face_video_root"] else root / "face_video"
    order_file = Path(p["participant_ratings"]) if p["participant_ratings"] else \
        root / "metadata_csv" / "participant_ratings.csv"
    if p["face_trial_mapping"] == "csv" and not order_file.is_file():
        raise DataError(
            f"{order_file}: participant_ratings.csv not found; DEAP face videos are numbered in presentation "
            "order and the rows of sXX.dat in video order, so face frames need its Trial -> Experiment_id "
            "mapping (give its path as participant_ratings, or set face_trial_mapping: identity to pair "
            "video YY with row YY-1 knowingly)")
    return video_root, order_file


def prepare_deap(root: str | Path, out_dir: str | Path, params: dict | None = None) -> Path:
    """Prepare DEAP from ``root`` into ``out_dir``; return ``out_dir``.

    ``params`` keys (defaults in :data:`DEFAULTS`): ``modalities`` (subset of eeg, eog, face),
    ``baseline_correction``, ``segment_seconds``, ``subjects``, ``face_video_root``,
    ``participant_ratings``, ``face_align`` ("end" or seconds), ``face_trial_mapping``
    ("csv" or "identity"), ``frame_step``,
    ``frames_per_segment``, ``face_size``, ``face_margin``, ``face_detector``,
    ``face_detector_model``, ``source_hash_mode`` ("stat" or "content").
    The directory is reused when its ``source_hash`` matches the current inputs and parameters.
    """
    where = "DEAP"
    p, mods, root, out_dir = resolve_prepare(params, DEFAULTS, where, check_params, root, out_dir)
    want_face = "face" in mods
    fa = p["face_align"]
    seg_s = float(p["segment_seconds"])
    files = find_subject_files(root, p["subjects"])
    skipped: list[dict] = []
    inputs: list[tuple[str, Path]] = [(f"data_preprocessed_python/{f.name}", f) for f in files.values()]
    videos: dict[int, dict[int, Path]] = {}
    order: dict[int, dict[int, tuple[int, tuple[float, ...] | None]]] | None = None
    order_file: Path | None = None
    if want_face:
        video_root, order_file = face_sources(root, p)
        if p["face_trial_mapping"] == "csv":
            order = read_participant_ratings(order_file)
            inputs.append(("metadata_csv/participant_ratings.csv", order_file))
        else:
            log.warning("DEAP: face_trial_mapping 'identity': video sXX_trialYY.avi is paired with row YY-1 of sXX.dat; "
                        "this is right only if the videos are numbered in video (Experiment_id) order")
        for s in list(files):
            v = _find_videos(video_root, s)
            if not v:
                skipped.append({"item": f"s{s:02d}", "reason": "no face video"})
                del files[s]
                continue
            videos[s] = v
            inputs += [(f"face_video/s{s:02d}/{q.name}", q) for q in v.values()]
        if not files:
            raise DataError(f"{video_root}: no face video for any DEAP subject (expected sXX/sXX_trialYY.avi)")

    hashed = {k: v for k, v in p.items() if k not in ("face_video_root", "participant_ratings")}
    hashed["modalities"] = mods
    if not want_face:  # face settings do not change what is written
        hashed = {k: v for k, v in hashed.items() if k not in vid.FACE_DEFAULTS
                  and k not in ("face_align", "face_trial_mapping")}
    key, fresh = reuse_key("DEAP", DATASET, LOADER_VERSION, inputs, p["source_hash_mode"], hashed, out_dir)
    if fresh:
        return out_dir

    cropper = vid.cropper_for(p, want_face)
    face_stats = vid.FaceStats()
    base = BASELINE_SECONDS * SFREQ
    L = int(round(seg_s * SFREQ))
    n_seg = (N_SAMPLES - base) // L
    per_subject: dict[str, dict] = {}
    trial_ratings: dict[str, list[float]] = {name: [] for name in RATING_ARRAYS}
    with BlockStager(out_dir) as stage:
        for i, (s, path) in enumerate(sorted(files.items()), start=1):
            log.info("DEAP: subject s%02d (%d/%d) from %s", s, i, len(files), path)
            data, labels = read_deap_file(path)
            n_trials = data.shape[0]
            keep = list(range(n_trials))
            trial_video: dict[int, Path] = {}
            if want_face:
                trial_video, sk = plan_face_trials(s, labels, videos[s], order, order_file, path, fa, n_seg * seg_s)
                skipped += sk
                keep = [t for t in keep if t in trial_video]
                if not keep:
                    skipped.append({"item": f"s{s:02d}", "reason": "no face video for any trial"})
                    continue
            n_done = 0
            for t in keep:  # one staged block per trial keeps memory at one subject's pickle
                x = data[t]
                if p["baseline_correction"]:
                    x = x - x[:, :base].mean(axis=1, keepdims=True)
                where_t = f"{path} trial {t}"
                arrays: dict[str, np.ndarray] = {}
                if "eeg" in mods:
                    arrays["eeg"] = segment_signal(x[:32, base:], SFREQ, seg_s, where_t).astype(np.float32)
                if "eog" in mods:
                    arrays["eog"] = segment_signal(x[32:34, base:], SFREQ, seg_s, where_t).astype(np.float32)
                if want_face:
                    v = vid.sample_video(trial_video[t], cropper, p["frame_step"])
                    onset = stimulus_onset(fa, v.duration)
                    windows = [(onset + k * seg_s, onset + (k + 1) * seg_s) for k in range(n_seg)]
                    if v.duration + 0.5 / v.fps < windows[-1][1]:  # fewer frames decoded than the header said
                        skipped.append({"item": f"s{s:02d} trial {t}", "reason": "face video shorter than the stimulus",
                                        "detail": f"{trial_video[t].name}: {v.duration:.2f} s decoded"})
                        continue
                    arrays["face"] = vid.face_frames(v, windows, p["frames_per_segment"], face_stats)
                    del v
                arrays.update(id_columns(n_seg, s, t, zip(RATING_ARRAYS, labels[t])))
                stage.append(arrays)
                n_done += 1
                for j, name in enumerate(RATING_ARRAYS):
                    trial_ratings[name].append(float(labels[t, j]))
                del arrays
            nk = n_done
            per_subject[f"s{s:02d}"] = {"file": path.name, "trials": nk, "segments": nk * n_seg}
            del data, labels
            gc.collect()
        log_skipped(where, skipped)
        if stage.n_rows == 0:
            raise DataError(f"{root}: no DEAP segment could be prepared (skipped: {skipped})")
        meta = {
            **signal_meta(mods, SFREQ, {"eeg": EEG_CHANNELS, "eog": EOG_CHANNELS}),
            "modalities": mods,
            "segment_seconds": seg_s,
            "segments_per_trial": n_seg,
            "baseline_seconds": BASELINE_SECONDS,
            "baseline_correction": bool(p["baseline_correction"]),
            "ratings": {"names": list(RATING_ARRAYS), "scale": [1, 9], "source": "labels columns 0-3"},
            "trial_order": "row of the file = Experiment_id - 1 (video order)",
            "subjects": per_subject,
            "class_balance": balance_meta({k: v for k, v in trial_ratings.items()}),
        }
        if want_face:
            meta["face"] = vid.face_meta(
                cropper, p,
                ("stimulus = last 60 s of the video" if fa == "end" else f"stimulus starts {float(fa)} s into the video"),
                face_stats,
                face_trial_mapping=("participant_ratings.csv (Trial -> Experiment_id), ratings cross-checked "
                                    "against labels" if order is not None
                                    else "identity (video trial YY = file row YY-1), set by face_trial_mapping"))
            if face_stats.frames_centre_crop:
                log.warning("DEAP: no face found in %d of %d frames; centre crops used",
                            face_stats.frames_centre_crop, face_stats.frames_sampled)
        out = write_staged(out_dir, stage, meta, dataset=DATASET, loader_version=LOADER_VERSION, source_hash=key,
                           skipped=skipped, params=hashed)
    log.info("DEAP: wrote %s (%d subjects, %d segments, %d skipped)", out, len(per_subject),
             sum(v["segments"] for v in per_subject.values()), len(skipped))
    return out
