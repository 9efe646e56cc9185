"""MAHNOB-HCI (Soleymani et al. 2012), emotion-elicitation sessions -> prepared directory.

Input layout (``root``)::

    Sessions/<session id>/session.xml
    Sessions/<session id>/<...>_emotion.bdf          BioSemi BDF, 47 channels, Status = triggers
    Sessions/<session id>/<...>C1 trigger<...>.avi   optional frontal colour camera (about 61 fps)

Per session:

- ``session.xml``: the root ``<session>`` holds the self-reports ``feltArsl``, ``feltVlnc``,
  ``feltCtrl``, ``feltPred`` (1-9), ``feltEmo`` and ``isStim``, the stimulus length
  ``cutLenSec`` and the video timing ``vidBeginSmp``, ``vidEndSmp``, ``vidRate``;
  ``<subject id="..."/>`` names the participant. A session without a ``*_emotion.bdf``,
  without ``session.xml``, without a subject id or with a missing or out-of-range rating is
  skipped and listed in meta ``skipped`` (the log groups the reasons, one line each).
- Ratings: ``arousal`` <- feltArsl, ``valence`` <- feltVlnc, ``dominance`` <- feltCtrl
  (MAHNOB's "control" scale), ``predictability`` <- feltPred. MAHNOB-HCI has no liking scale:
  feltPred asks how predictable the clip was, so it is stored as ``predictability`` and there is
  no ``liking`` array. ``felt_emotion`` holds the feltEmo keyword code (-1 when absent).
- Stimulus window (:func:`resolve_window`): ``mne.find_events`` on ``Status`` (trigger bits
  0-15); onset = first event, offset = last event (or, with one event only, where its level
  returns to zero). The window is checked against ``cutLenSec``: when they differ by more than
  ``window_tolerance_s`` (1 s), ``window_check`` decides: ``"skip"`` (default) skips the session
  with the two lengths as reason; ``"cutlen"`` keeps the Status onset and ends the window
  ``cutLenSec`` later. A session with an onset but no offset marker uses onset + ``cutLenSec``.
  Which rule gave each session's window is recorded in meta ``sessions[*].alignment``.
- EEG: the 32 EEG channels (every channel that is not EXG*, GSR*, Erg*, Resp, Temp, Plet or
  Status), names and file order kept; a count other than 32 is a :class:`DataError`. The BDF
  holds raw BioSemi data (no reference, per-channel DC offsets), so by default the EEG is
  re-referenced to the average of the 32 EEG channels (``reference: "average"``; ``"none"``
  keeps the raw CMS-referenced values) and band-passed 4-45 Hz with MNE's default FIR filter
  (``bandpass: [4, 45]``; ``null`` for none), as DEAP's preprocessed release is. Then
  resampled (MNE, FFT) to ``sampling_rate`` (128 Hz by default) and cut into 4 s segments over
  the stimulus window only; a trailing partial segment is dropped. Values in microvolts.
- No EOG: MAHNOB-HCI recorded none (EXG1-EXG3 are ECG electrodes, EXG4-EXG8 carry no useful
  signal); asking for ``"eog"`` is a :class:`ConfigError` that says so (:data:`NOT_RECORDED`).
- ``subject`` = the subject id, ``trial`` = the session folder number (unique in the data
  set), ``segment`` = index within the stimulus.

Face frames (``"face"`` in ``modalities``): segment ``k`` takes the kept frames whose video
time lies in ``[v0 + 4k, v0 + 4k + 4)``, ``v0`` being the stimulus onset in video time, set
by ``face_align`` (:func:`video_onset`):

- ``"onset"`` (default): video frame 0 is the stimulus onset, as public readers of the real
  files take it (the frontal video is cut to the stimulus; the BDF starts about 30 s earlier);
- ``"xml"``: the onset is video frame ``vidBeginSmp`` (at ``vidRate``) of ``session.xml``;
- a number ``a``: the onset is ``a`` seconds into the video;
- ``"recording"``: video frame 0 is the first BDF sample (``v0`` = the Status onset).

Checks per session (recorded in meta): the video's real length (frame count / frame rate of the
file) must cover the last window, else the session is skipped with a reason (never padded);
``(vidEndSmp - vidBeginSmp) / vidRate`` and the real length are compared with ``cutLenSec``, and
the real frame rate with ``vidRate``; a disagreement over 1 s (1 fps) is listed in meta
``alignment_warnings``. Sessions without a frontal video are skipped.
"""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from cmkd.data import video as vid
from cmkd.data.cache import (BlockStager, check_modalities, group_skipped, log_skipped, resolve_prepare, reuse_key,
                             write_staged)
from cmkd.data.labels import balance_meta
from cmkd.data.prepared import signal_meta
from cmkd.data.segments import id_columns, segment_signal
from cmkd.errors import ConfigError, DataError
from cmkd.params import Param, defaults_of, params_from_literals

log = logging.getLogger("cmkd.data")

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
LOADER = {"name": "mahnob_hci", "prepare": "prepare_mahnob", "title": "MAHNOB-HCI",
          "inspect": "cmkd.data.rawcheck:inspect_mahnob", "nominal_segments": {"default": 27 * 20 * 20},
          "nominal_subjects": 27,
          "not_recorded": {"eog": "MAHNOB-HCI recorded no EOG (EXG1-EXG3 are ECG electrodes, EXG4-EXG8 carry no useful "
                                  "signal; Soleymani et al. 2012); remove 'eog' from this data set's modalities"}}
DATASET = LOADER["name"]
LOADER_VERSION = 2  # 2: stimulus window checked against cutLenSec, video aligned at the onset, EEG re-referenced and filtered
N_EEG = 32
MODALITIES = ("eeg", "face")
NOT_RECORDED = LOADER["not_recorded"]
RATINGS = {"valence": "feltVlnc", "arousal": "feltArsl", "dominance": "feltCtrl", "predictability": "feltPred"}
_NON_EEG = re.compile(r"^(EXG\d+|GSR\d*|Erg\d*|Resp|Temp|Plet|Status)$", re.IGNORECASE)
TRIGGER_MASK = 0xFFFF  # BioSemi trigger codes live in the low 16 bits of Status
PULSE_MAX_S = 1.0  # a lone trigger shorter than this is an onset pulse, not a level over the stimulus
REFERENCES = ("average", "none")
WINDOW_CHECKS = ("skip", "cutlen")
FACE_ALIGNS = ("onset", "xml", "recording")

#: the loader's parameters (``datasets.<name>.params``), declared as cmkd.params.Param literals
PARAMS: dict[str, Param] = {**params_from_literals({
    "modalities": {"default": ["eeg"], "kind": "any", "doc": "modalities to prepare (eeg, face)"},
    "sampling_rate": {"default": 128, "lo": 0, "lo_open": True, "doc": "EEG sampling rate after resampling (Hz)"},
    "segment_seconds": {"default": 4.0, "lo": 0, "lo_open": True, "doc": "segment length (s)"},
    "subjects": {"default": None, "kind": "any", "doc": "subject numbers to keep; null: every subject found"},
    "reference": {"default": "average", "kind": "choice", "choices": ["average", "none"],
                  "doc": "average of the 32 EEG channels, or none (raw BioSemi values)"},
    "bandpass": {"default": [4.0, 45.0], "kind": "any", "doc": "[low, high] Hz (MNE FIR); null: no filter"},
    "window_check": {"default": "skip", "kind": "choice", "choices": ["skip", "cutlen"],
                     "doc": "a Status window and cutLenSec that differ by more than window_tolerance_s: skip the session or use cutLenSec"},
    "window_tolerance_s": {"default": 1.0, "lo": 0, "doc": "tolerance of the window check (s)"},
    "face_align": {"default": "onset", "kind": "any", "doc": "onset | xml | recording | seconds into the video"},
    "source_hash_mode": {"default": "stat", "kind": "choice", "choices": ["stat", "content"],
                         "doc": "how the raw files enter the data hash: size and mtime (stat) or their bytes (content)"},
}, "mahnob_hci"), **vid.FACE_PARAMS}
DEFAULTS: dict[str, Any] = defaults_of(PARAMS)


class SessionSkip(Exception):
    """A session that cannot be used: ``reason`` (grouped in logs and reports) and ``detail``
    (this session's figures), both recorded in meta ``skipped``."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason, self.detail = reason, detail

    def record(self, item: str) -> dict:
        return {"item": item, "reason": self.reason, **({"detail": self.detail} if self.detail else {})}


def _session_sort_key(p: Path):
    return (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)


def read_session_xml(path: Path) -> tuple[dict[str, str], str | None]:
    """Return the root attributes of ``session.xml`` and the subject id (None when absent)."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise DataError(f"{path}: not valid XML ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    el = tree.getroot()
    if el.tag != "session":
        raise DataError(f"{path}: root element is <{el.tag}>, expected <session>")
    sub = el.find("subject")
    sid = sub.get("id") if sub is not None else None
    return dict(el.attrib), sid


def _num_attr(attrs: dict[str, str], name: str) -> float | None:
    try:
        v = float((attrs.get(name) or "").strip())
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _parse_ratings(attrs: dict[str, str]) -> tuple[dict[str, float], list[str]]:
    out, bad = {}, []
    for name, attr in RATINGS.items():
        v = _num_attr(attrs, attr)
        if v is None or not 1 <= v <= 9:
            bad.append(attr)
            continue
        out[name] = v
    return out, bad


def check_params(p: dict, where: str = "MAHNOB-HCI") -> list[str]:
    """Validate resolved parameters (raises :class:`ConfigError`); return the modalities."""
    mods = check_modalities(p["modalities"], MODALITIES, where, NOT_RECORDED)
    if "face" in mods:
        vid.check_face_params(p, where)
    sr = p["sampling_rate"]
    if not isinstance(sr, (int, float)) or isinstance(sr, bool) or sr <= 0:
        raise ConfigError(f"{where}: sampling_rate must be a positive number, got {sr!r}")
    seg_s = p["segment_seconds"]
    if not isinstance(seg_s, (int, float)) or isinstance(seg_s, bool) or seg_s <= 0:
        raise ConfigError(f"{where}: segment_seconds must be positive, got {seg_s!r}")
    if p["reference"] not in REFERENCES:
        raise ConfigError(f"{where}: reference must be one of {list(REFERENCES)}, got {p['reference']!r}")
    bp = p["bandpass"]
    if bp is not None and not (isinstance(bp, (list, tuple)) and len(bp) == 2
                               and all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in bp)
                               and 0 < bp[0] < bp[1] < sr / 2):
        raise ConfigError(f"{where}: bandpass must be null or [low, high] Hz with 0 < low < high < "
                          f"sampling_rate / 2 ({sr / 2}), got {bp!r}")
    if p["window_check"] not in WINDOW_CHECKS:
        raise ConfigError(f"{where}: window_check must be one of {list(WINDOW_CHECKS)}, got {p['window_check']!r}")
    tol = p["window_tolerance_s"]
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or tol < 0:
        raise ConfigError(f"{where}: window_tolerance_s must be a number >= 0, got {tol!r}")
    fa = p["face_align"]
    if not (fa in FACE_ALIGNS or (isinstance(fa, (int, float)) and not isinstance(fa, bool) and fa >= 0)):
        raise ConfigError(f"{where}: face_align must be one of {list(FACE_ALIGNS)} or seconds >= 0, got {fa!r}")
    return mods


def stimulus_window(raw, path: Path) -> tuple[int, int | None] | None:
    """(onset, offset) sample indices of the stimulus from the Status channel.

    Onset = the first trigger, offset = the last one; with one trigger only, the offset is where
    its level returns to zero, unless that comes within ``PULSE_MAX_S`` (1 s): then the trigger
    is an onset pulse and the offset is None. None when there is no trigger at all.
    """
    import mne  # lazy: optional (mne, only to read MAHNOB's BDF files)

    try:
        ev = mne.find_events(raw, stim_channel="Status", output="step", consecutive=True, shortest_event=1,
                             initial_event=False, mask=TRIGGER_MASK, mask_type="and", verbose="error")
    except ValueError as e:
        raise DataError(f"{path}: cannot read trigger events from Status ({e})") from None
    ev = ev.copy()
    ev[:, 0] -= raw.first_samp
    rises = ev[ev[:, 2] != 0]
    if len(rises) == 0:
        return None
    onset = int(rises[0, 0])
    if len(rises) >= 2:
        return onset, int(rises[-1, 0])
    falls = ev[(ev[:, 2] == 0) & (ev[:, 0] > onset)]
    if not len(falls) or falls[0, 0] - onset < PULSE_MAX_S * raw.info["sfreq"]:
        return onset, None  # no offset: a lone onset pulse does not mark the stimulus end
    return onset, int(falls[0, 0])


def resolve_window(marks: tuple[int, int | None] | None, sfreq: float, n_samples: int, cut_len: float | None,
                   window_check: str = "skip", tolerance_s: float = 1.0) -> tuple[float, float, dict]:
    """The stimulus window (onset, offset) in seconds of the recording and how it was found.

    ``marks`` is :func:`stimulus_window`'s answer, ``cut_len`` the ``cutLenSec`` of
    ``session.xml`` (None when absent). Rules, in order:

    - no trigger: :class:`SessionSkip`;
    - onset and offset, ``cutLenSec`` absent or within ``tolerance_s`` of offset - onset: the
      Status window (rule ``"status"``);
    - they differ by more: ``window_check="skip"`` skips the session, ``"cutlen"`` keeps the
      onset and ends the window ``cutLenSec`` later (rule ``"onset+cutLenSec"``);
    - onset without offset: onset + ``cutLenSec`` (rule ``"onset+cutLenSec (no offset marker)"``),
      skipped without ``cutLenSec``.

    A window that ends after the recording is skipped.
    """
    if marks is None:
        raise SessionSkip("no stimulus onset marker on Status")
    onset_s = marks[0] / sfreq
    info: dict[str, Any] = {"status_onset_s": round(onset_s, 4), "cutLenSec": cut_len}
    if marks[1] is None:
        info["status_offset_s"] = None
        if cut_len is None or cut_len <= 0:
            raise SessionSkip("Status has an onset but no offset marker, and session.xml has no cutLenSec")
        offset_s, rule = onset_s + cut_len, "onset+cutLenSec (no offset marker)"
    else:
        status_off = marks[1] / sfreq
        info["status_offset_s"] = round(status_off, 4)
        if status_off <= onset_s:
            raise SessionSkip("Status offset marker does not follow the onset")
        if cut_len is None or abs((status_off - onset_s) - cut_len) <= tolerance_s:
            offset_s, rule = status_off, "status" if cut_len is not None else "status (no cutLenSec to check)"
        elif window_check == "cutlen":
            offset_s, rule = onset_s + cut_len, "onset+cutLenSec (Status window disagrees)"
        else:
            raise SessionSkip(f"Status window differs from cutLenSec by more than {tolerance_s:g} s",
                              f"Status {status_off - onset_s:.2f} s, cutLenSec {cut_len:g} s")
    if offset_s > n_samples / sfreq + 1e-9:
        raise SessionSkip("stimulus window ends after the recording",
                          f"window ends at {offset_s:.2f} s, recording {n_samples / sfreq:.2f} s")
    info["window_rule"] = rule
    return onset_s, offset_s, info


def video_onset(face_align: Any, attrs: dict[str, str], onset_s: float) -> tuple[float, str]:
    """Video time (s) of the stimulus onset under ``face_align``, and the rule's description."""
    if face_align == "onset":
        return 0.0, "video frame 0 = stimulus onset"
    if face_align == "recording":
        return onset_s, "video frame 0 = first BDF sample"
    if face_align == "xml":
        begin, rate = _num_attr(attrs, "vidBeginSmp"), _num_attr(attrs, "vidRate")
        if begin is None or rate is None or rate <= 0 or begin < 0:
            raise SessionSkip("face_align 'xml' needs vidBeginSmp >= 0 and vidRate > 0 in session.xml")
        return begin / rate, "stimulus onset = video frame vidBeginSmp (session.xml)"
    return float(face_align), f"stimulus onset = {float(face_align):g} s into the video"


def video_checks(attrs: dict[str, str], fps: float, n_frames: int, v0: float, needed_s: float,
                 cut_len: float | None) -> tuple[dict, list[str]]:
    """Compare the video (real frame count and rate) with session.xml; return (record, warnings).

    Raises :class:`SessionSkip` when the segment windows (``needed_s`` seconds from video time
    ``v0``) run past the end of the video.
    """
    real_s = n_frames / fps
    rec: dict[str, Any] = {"video_fps": round(fps, 4), "video_frames": n_frames, "video_s": round(real_s, 4),
                           "video_onset_s": round(v0, 4)}
    warns = []
    begin, end, rate = (_num_attr(attrs, k) for k in ("vidBeginSmp", "vidEndSmp", "vidRate"))
    if rate is not None and rate > 0:
        rec["vidRate"] = rate
        if abs(rate - fps) > 1.0:
            warns.append("video frame rate differs from vidRate by more than 1 fps")
        if begin is not None and end is not None:
            xml_s = (end - begin) / rate
            rec["xml_video_s"] = round(xml_s, 4)
            if cut_len is not None and abs(xml_s - cut_len) > 1.0:
                warns.append("(vidEndSmp - vidBeginSmp) / vidRate differs from cutLenSec by more than 1 s")
    if cut_len is not None and real_s - v0 < cut_len - 1.0:
        warns.append("video after the onset is shorter than cutLenSec by more than 1 s")
    if v0 + needed_s > real_s + 0.5 / fps:
        raise SessionSkip("segment windows run past the end of the frontal video",
                          f"windows need video time {v0:.2f}-{v0 + needed_s:.2f} s, video has {real_s:.2f} s")
    return rec, warns


def scan_sessions(root: Path, p: dict, want_face: bool) -> tuple[list[dict], list[dict], list[tuple[str, Path]]]:
    """Pass 1 over ``root/Sessions`` (no signal read): usable sessions, skipped ones, input files."""
    sessions_dir = root / "Sessions"
    if not root.is_dir():
        raise DataError(f"{root}: MAHNOB-HCI root directory not found (expected Sessions/<id>/session.xml in it)")
    if not sessions_dir.is_dir():
        raise DataError(f"{sessions_dir}: folder not found (MAHNOB-HCI emotion sessions)")
    folders = sorted((d for d in sessions_dir.iterdir() if d.is_dir()), key=_session_sort_key)
    if not folders:
        raise DataError(f"{sessions_dir}: no session folder found")
    skipped: list[dict] = []
    plan: list[dict] = []
    inputs: list[tuple[str, Path]] = []
    wanted = {str(s) for s in p["subjects"]} if p["subjects"] is not None else None
    for i, d in enumerate(folders):
        item = f"session {d.name}"

        def skip(reason: str) -> None:
            skipped.append({"item": item, "reason": reason})

        xml = d / "session.xml"
        if not xml.is_file():
            skip("no session.xml")
            continue
        inputs.append((f"Sessions/{d.name}/session.xml", xml))
        attrs, sid = read_session_xml(xml)
        if sid is None or not sid.strip().isdigit():
            skip("no numeric <subject id> in session.xml")
            continue
        if wanted is not None and str(int(sid)) not in wanted:
            continue
        bdfs = sorted(d.glob("*_emotion.bdf"))
        if not bdfs:
            skip("no *_emotion.bdf")
            continue
        if len(bdfs) > 1:
            raise DataError(f"{d}: several *_emotion.bdf files ({[b.name for b in bdfs]}); expected one")
        ratings, bad = _parse_ratings(attrs)
        if bad:
            skip(f"missing or out-of-range ratings ({', '.join(bad)})")
            continue
        entry = {"dir": d, "xml": xml, "bdf": bdfs[0], "subject": int(sid), "ratings": ratings,
                 "trial": int(d.name) if d.name.isdigit() else 100000 + i, "attrs": attrs, "video": None,
                 "item": item, "cut_len": _num_attr(attrs, "cutLenSec")}
        if want_face:
            vids = sorted(d.glob("*C1 trigger*.avi"))
            if not vids:
                skip("no frontal face video (*C1 trigger*.avi)")
                continue
            entry["video"] = vids[0]
            inputs.append((f"Sessions/{d.name}/{vids[0].name}", vids[0]))
        inputs.append((f"Sessions/{d.name}/{bdfs[0].name}", bdfs[0]))
        plan.append(entry)
    return plan, skipped, inputs


def eeg_channels(names: list[str], bdf: Path) -> list[str]:
    eeg = [c for c in names if not _NON_EEG.match(c)]
    if "Status" not in names:
        raise DataError(f"{bdf}: no Status channel (channels: {names})")
    if len(eeg) != N_EEG:
        raise DataError(f"{bdf}: {len(eeg)} EEG channels ({eeg}), expected {N_EEG}")
    return eeg


def read_bdf(bdf: Path, preload: bool):
    import mne  # lazy: optional (mne, only to read MAHNOB's BDF files)

    try:
        return mne.io.read_raw_bdf(bdf, stim_channel="Status", preload=preload, verbose="error")
    except Exception as ex:
        raise DataError(f"{bdf}: cannot read BDF ({type(ex).__name__}: {ex})") from None


def prepare_mahnob(root: str | Path, out_dir: str | Path, params: dict | None = None) -> Path:
    """Prepare MAHNOB-HCI from ``root`` (the folder holding ``Sessions``) into ``out_dir``.

    ``params`` keys (defaults in :data:`DEFAULTS`): ``modalities`` (subset of eeg, face),
    ``sampling_rate``, ``segment_seconds``, ``subjects``, ``reference``, ``bandpass``,
    ``window_check``, ``window_tolerance_s``, ``face_align``, ``frame_step``,
    ``frames_per_segment``, ``face_size``, ``face_margin``, ``face_detector``,
    ``face_detector_model``, ``source_hash_mode``.
    """
    where = "MAHNOB-HCI"
    p, mods, root, out_dir = resolve_prepare(params, DEFAULTS, where, check_params, root, out_dir)
    want_face = "face" in mods
    sr = p["sampling_rate"]
    seg_s = float(p["segment_seconds"])
    sessions_dir = root / "Sessions"
    plan, skipped, inputs = scan_sessions(root, p, want_face)
    if not plan:
        log_skipped(where, skipped, "sessions")
        raise DataError(f"{sessions_dir}: no usable session (skipped: {skipped})")

    hashed = {k: v for k, v in p.items()}
    hashed["modalities"] = mods
    if not want_face:
        hashed = {k: v for k, v in hashed.items() if k not in vid.FACE_DEFAULTS and k != "face_align"}
    if "eeg" not in mods:
        hashed = {k: v for k, v in hashed.items() if k not in ("reference", "bandpass")}
    key, fresh = reuse_key("MAHNOB-HCI", DATASET, LOADER_VERSION, inputs, p["source_hash_mode"], hashed, out_dir)
    if fresh:
        return out_dir


    cropper = vid.cropper_for(p, want_face)
    face_stats = vid.FaceStats()
    eeg_names: list[str] | None = None
    sessions_meta: list[dict] = []
    warnings: list[dict] = []
    with BlockStager(out_dir) as stage:
        for j, e in enumerate(plan, start=1):
            bdf: Path = e["bdf"]
            item = e["item"]
            log.info("MAHNOB-HCI: %s (%d/%d), subject %d, %s", item, j, len(plan), e["subject"], bdf.name)
            raw = read_bdf(bdf, preload=True)
            names = list(raw.ch_names)
            eeg = eeg_channels(names, bdf)
            if eeg_names is None:
                eeg_names = eeg
            elif eeg != eeg_names:
                if sorted(eeg) != sorted(eeg_names):
                    raise DataError(f"{bdf}: EEG channels {eeg} differ from the first session's {eeg_names}")
                eeg = list(eeg_names)  # same set, other order: use the first session's order
            sf0 = float(raw.info["sfreq"])
            try:
                onset_s, offset_s, align = resolve_window(stimulus_window(raw, bdf), sf0, raw.n_times, e["cut_len"],
                                                          p["window_check"], float(p["window_tolerance_s"]))
                n_seg = int((offset_s - onset_s + 1e-9) // seg_s)
                if n_seg == 0:
                    raise SessionSkip(f"stimulus shorter than one {seg_s:g} s segment")
                if want_face:
                    v0, face_rule = video_onset(p["face_align"], e["attrs"], onset_s)
                    fps, n_frames = vid.video_info(e["video"])
                    vrec, vwarn = video_checks(e["attrs"], fps, n_frames, v0, n_seg * seg_s, e["cut_len"])
                    align.update(vrec, face_rule=face_rule)
                    warnings += [{"item": item, "reason": w} for w in vwarn]
            except SessionSkip as ex:
                skipped.append(ex.record(item))
                continue
            arrays: dict[str, np.ndarray] = {}
            if "eeg" in mods:
                raw.pick(eeg)
                if p["reference"] == "average":
                    raw.set_eeg_reference("average", projection=False, ch_type="eeg", verbose="error")
                if p["bandpass"] is not None:
                    raw.filter(float(p["bandpass"][0]), float(p["bandpass"][1]), picks="all", verbose="error")
                if abs(sf0 - sr) > 1e-9:
                    raw.resample(sr, verbose="error")
                x = raw.get_data(picks=eeg) * 1e6  # volts -> microvolts
                i0 = int(round(onset_s * sr))
                L = int(round(seg_s * sr))
                n_seg = min(n_seg, (x.shape[1] - i0) // L)  # rounding at the recording's end
                if n_seg == 0:
                    skipped.append({"item": item, "reason": f"stimulus shorter than one {seg_s:g} s segment"})
                    continue
                arrays["eeg"] = segment_signal(x[:, i0:i0 + n_seg * L], sr, seg_s, f"{bdf} stimulus").astype(np.float32)
                del x
            del raw
            if want_face:
                windows = [(v0 + k * seg_s, v0 + (k + 1) * seg_s) for k in range(n_seg)]
                v = vid.sample_video(e["video"], cropper, p["frame_step"], t_range=(windows[0][0], windows[-1][1]))
                if v.n_frames / v.fps < windows[-1][1] - 0.5 / v.fps:  # the header promised more frames
                    skipped.append({"item": item, "reason": "segment windows run past the end of the frontal video"})
                    continue
                arrays["face"] = vid.face_frames(v, windows, p["frames_per_segment"], face_stats)
            n = n_seg
            arrays.update(id_columns(n, e["subject"], e["trial"], e["ratings"].items()))
            emo = (e["attrs"].get("feltEmo") or "").strip()
            arrays["felt_emotion"] = np.full(n, int(emo) if emo.lstrip("-").isdigit() else -1, np.int64)
            stage.append(arrays)
            sessions_meta.append({"session": e["dir"].name, "subject": e["subject"], "trial": e["trial"],
                                  "bdf": bdf.name, "segments": n, "stimulus_s": [round(onset_s, 4), round(offset_s, 4)],
                                  "alignment": align, "ratings": e["ratings"],
                                  "isStim": e["attrs"].get("isStim"), "mediaFile": e["attrs"].get("mediaFile")})
            del arrays
        log_skipped(where, skipped, "sessions")
        for line in group_skipped(warnings):
            log.warning("MAHNOB-HCI: alignment check: %s", line)
        if stage.n_rows == 0:
            raise DataError(f"{sessions_dir}: no MAHNOB-HCI segment could be prepared (skipped: {skipped})")
        meta = {
            **signal_meta(mods, sr, {"eeg": eeg_names}),
            "modalities": mods,
            "segment_seconds": seg_s,
            "ratings": {"names": list(RATINGS), "source": RATINGS, "scale": [1, 9],
                        "note": "MAHNOB-HCI has no liking scale; feltPred (predictability) is stored as "
                                "'predictability'. felt_emotion = feltEmo code, -1 when absent."},
            "eeg_preprocessing": {
                "reference": ("average of the 32 EEG channels" if p["reference"] == "average"
                              else "none (raw BioSemi, CMS/DRL)"),
                "bandpass_hz": list(p["bandpass"]) if p["bandpass"] is not None else None,
                "filter": "MNE Raw.filter, default FIR" if p["bandpass"] is not None else None,
                "resampling": f"MNE Raw.resample (FFT) {sr} Hz",
            } if "eeg" in mods else None,
            "stimulus_window": (f"Status events (low 16 bits): first event = onset, last event = offset; checked "
                                f"against cutLenSec (tolerance {float(p['window_tolerance_s']):g} s, on disagreement: "
                                f"{p['window_check']}); the rule of each session is in sessions[*].alignment"),
            "trial_id": "session folder number",
            "sessions": sessions_meta,
            "alignment_warnings": warnings,
            "class_balance": balance_meta({k: [m["ratings"][k] for m in sessions_meta] for k in RATINGS}),
        }
        if want_face:
            rule = video_onset(p["face_align"], {"vidBeginSmp": "0", "vidRate": "1"}, 0.0)[1]
            meta["face"] = vid.face_meta(cropper, p, f"face_align={p['face_align']!r}: {rule}; segment k takes "
                                         "the frames in [onset + k*segment_seconds, onset + (k+1)*segment_seconds)",
                                         face_stats)
        out = write_staged(out_dir, stage, meta, dataset=DATASET, loader_version=LOADER_VERSION, source_hash=key,
                           skipped=skipped, params=hashed)
    log.info("MAHNOB-HCI: wrote %s (%d sessions, %d skipped)", out, len(sessions_meta), len(skipped))
    return out
