"""Writers of small, format-faithful raw data sets (DEAP, MAHNOB-HCI, SEED-IV) for tests and dry runs.

Each writer creates exactly the on-disk layout and file formats the loaders read (see
``shared/datasets.md``), with planted content the tests can check:

- DEAP: Python-2-style pickles (``numpy.core.multiarray._reconstruct``, array bytes as
  ``BINSTRING``, read with ``encoding="latin1"``) of ``data`` (trials, 40, 8064) float64 and
  ``labels`` (trials, 4); channel ``c`` carries a sine of :func:`deap_channel_freq` ``(c)`` Hz
  plus a DC offset of ``10 + c``; ``metadata_csv/participant_ratings.csv`` gives a shuffled
  presentation order; face videos (MJPG ``.avi``) are named by presentation trial and the
  drawn face's brightness grows with the Experiment_id.
- MAHNOB-HCI: ``Sessions/<id>/session.xml`` and a real BioSemi BDF (24-bit, ``\\xffBIOSEMI``
  header) with 32 EEG channels (channel ``c`` a sine of :func:`mahnob_channel_freq` ``(c)`` Hz),
  EXG1-8, GSR1-2, Erg1-2, Resp, Temp and a Status channel with trigger pulses at stimulus
  onset and offset; by default also one session without BDF and one without ratings.
- SEED-IV: ``eye_feature_smooth`` / ``eeg_feature_smooth`` ``.mat`` files (scipy.io.savemat)
  whose values encode session, trial, window and channel.

``write_all(root)`` writes a small copy of all three and returns their roots.
"""
from __future__ import annotations

import csv
import datetime as _dt
import pickle
import struct
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# ----------------------------------------------------------------------------------------------
# DEAP
# ----------------------------------------------------------------------------------------------
DEAP_SFREQ = 128
DEAP_SAMPLES = 8064
DEAP_CHANNELS = 40


def deap_channel_freq(c: int) -> float:
    """The sine frequency (Hz) planted in DEAP channel ``c`` (0-based): 2, 3, ... 41 Hz."""
    return 2.0 + c


def deap_dc_offset(c: int) -> float:
    return 10.0 + c


class _Py2StylePickler(pickle._Pickler):  # the pure-Python pickler lets us choose opcodes
    """Pickle like Python 2 did for DEAP: bytes as (SHORT_)BINSTRING, numpy.core module names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_bytes_py2(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_bytes_py2

    def save_global(self, obj, name=None):
        mod = getattr(obj, "__module__", "") or ""
        if mod.startswith("numpy._core"):
            qual = name or obj.__qualname__
            self.write(pickle.GLOBAL + mod.replace("numpy._core", "numpy.core").encode() + b"\n"
                       + qual.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def write_deap_pickle(path: str | Path, obj: dict) -> Path:
    """Write ``obj`` as a DEAP-style Python-2 pickle (protocol 2)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        _Py2StylePickler(f, protocol=2).dump(obj)
    return path


def deap_trial_data(subject: int, n_trials: int, seed: int = 0, n_channels: int = DEAP_CHANNELS,
                    n_samples: int = DEAP_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """The planted (data, labels) of one DEAP subject."""
    rng = np.random.default_rng([seed, subject])
    t = np.arange(n_samples) / DEAP_SFREQ
    freqs = np.array([deap_channel_freq(c) for c in range(n_channels)])
    base = np.sin(2 * np.pi * freqs[:, None] * t[None, :])  # (C, T)
    dc = np.array([deap_dc_offset(c) for c in range(n_channels)])[:, None]
    data = np.empty((n_trials, n_channels, n_samples), np.float64)
    for k in range(n_trials):
        amp = 5.0 + 0.1 * k
        data[k] = amp * base + dc + 0.2 * rng.standard_normal((n_channels, n_samples))
    labels = np.round(rng.uniform(1.0, 9.0, size=(n_trials, 4)), 2)
    return data, labels


DEAP_TRIAL_CODE_UV = 1000.0  # with time_code: EEG channel 0 of row r adds 1000 * (r + 1) uV ...
DEAP_TIME_CODE_UV = 10.0     # ... and 10 uV per second of stimulus time (0 at the end of the 3 s baseline)


def deap_trial_code_level(experiment_id: int) -> int:
    """Grey level of the right half of a time-coded DEAP frame: codes the trial's Experiment_id."""
    return 40 + 20 * experiment_id


def write_deap(root: str | Path, subjects: Iterable[int] = (1,), n_trials: int = 40, seed: int = 0,
               ratings_csv: bool = True, time_code: bool = False) -> Path:
    """Write ``data_preprocessed_python/sXX.dat`` (full (n_trials, 40, 8064) shape) for each subject.

    With ``ratings_csv`` also ``metadata_csv/participant_ratings.csv`` with a per-subject
    shuffled presentation order (Trial -> Experiment_id) and the ratings of ``labels``. With
    ``time_code`` EEG channel 0 of row r carries ``DEAP_TRIAL_CODE_UV * (r + 1)`` plus a ramp of
    ``DEAP_TIME_CODE_UV`` per second of stimulus time. Returns ``root``.
    """
    root = Path(root)
    rows = []
    for s in subjects:
        data, labels = deap_trial_data(s, n_trials, seed)
        if time_code:
            t_stim = np.arange(DEAP_SAMPLES) / DEAP_SFREQ - 3.0
            for r in range(n_trials):
                data[r, 0] = DEAP_TRIAL_CODE_UV * (r + 1) + DEAP_TIME_CODE_UV * t_stim
        write_deap_pickle(root / "data_preprocessed_python" / f"s{s:02d}.dat", {"labels": labels, "data": data})
        order = deap_presentation_order(s, n_trials, seed)
        for trial, exp in enumerate(order, start=1):
            v, a, d, l = labels[exp - 1]
            rows.append([s, trial, exp, 1_000_000 * trial, v, a, d, l, 3])
        del data
    if ratings_csv:
        path = root / "metadata_csv" / "participant_ratings.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Participant_id", "Trial", "Experiment_id", "Start_time", "Valence", "Arousal",
                        "Dominance", "Liking", "Familiarity"])
            w.writerows(rows)
    return root


def deap_presentation_order(subject: int, n_trials: int, seed: int = 0) -> list[int]:
    """Experiment_id shown at presentation trial 1, 2, ... for one subject (a fixed shuffle)."""
    rng = np.random.default_rng([seed, subject, 7])
    return [int(e) + 1 for e in rng.permutation(n_trials)]


def draw_face(img: np.ndarray, cx: int, cy: int, s: int, brightness: float = 1.0) -> None:
    """Draw a frontal face-like blob (skin-tone ellipse, hair, brows, eyes, nose, mouth) in BGR."""
    import cv2

    skin = tuple(int(min(255, round(v * brightness))) for v in (150, 180, 220))
    cv2.ellipse(img, (cx, cy - int(s * 1.0)), (int(s * 1.05), int(s * 0.45)), 0, 180, 360, (30, 40, 50), -1)
    cv2.ellipse(img, (cx, cy), (s, int(s * 1.3)), 0, 0, 360, skin, -1)
    ey, ex = cy - int(s * 0.25), int(s * 0.42)
    for sx in (-1, 1):
        cv2.ellipse(img, (cx + sx * ex, ey - int(s * 0.28)), (int(s * 0.3), max(1, int(s * 0.07))), 0, 0, 360, (40, 40, 60), -1)
        cv2.ellipse(img, (cx + sx * ex, ey), (int(s * 0.22), max(1, int(s * 0.11))), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(img, (cx + sx * ex, ey), max(1, int(s * 0.09)), (30, 30, 30), -1)
    cv2.line(img, (cx, ey), (cx, cy + int(s * 0.3)), tuple(int(v * 0.8) for v in skin), max(1, int(s * 0.08)))
    cv2.ellipse(img, (cx, cy + int(s * 0.62)), (int(s * 0.35), max(1, int(s * 0.1))), 0, 0, 360, (60, 60, 150), -1)


def write_video(path: str | Path, seconds: float, fps: float = 50.0, size: tuple[int, int] = (160, 128),
                frame_fn=None) -> Path:
    """Write an MJPG ``.avi`` of ``round(seconds * fps)`` frames; ``frame_fn(i, t, img)`` draws frame i in place.

    Without ``frame_fn`` every frame is a uniform grey whose level encodes time: 20 + 3 t.
    """
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    W, H = size
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (W, H))
    if not w.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write MJPG video")
    try:
        for i in range(int(round(seconds * fps))):
            t = i / fps
            if frame_fn is None:
                img = np.full((H, W, 3), time_code_level(t), np.uint8)
            else:
                img = np.full((H, W, 3), 90, np.uint8)
                frame_fn(i, t, img)
            w.write(img)
    finally:
        w.release()
    return path


def time_code_level(t: float) -> int:
    """Grey level of a time-coded frame at ``t`` seconds (see :func:`write_video`)."""
    return int(max(0, min(255, round(20 + 3 * t))))


def face_frame_fn(brightness: float = 1.0, size: tuple[int, int] = (160, 128)):
    """A ``frame_fn`` drawing a face that drifts slowly left and right."""
    W, H = size
    s = max(8, int(min(W, H) * 0.2))

    def fn(i, t, img):
        cx = int(W / 2 + 0.12 * W * np.sin(2 * np.pi * t / 10.0))
        draw_face(img, cx, H // 2 + s // 4, s, brightness)
    return fn


def deap_face_brightness(experiment_id: int, n_trials: int) -> float:
    """Brightness factor of the face drawn in the video of ``experiment_id`` (grows with it)."""
    return 0.6 + 0.45 * (experiment_id - 1) / max(1, n_trials - 1)


def write_deap_video(root: str | Path, subjects: Iterable[int] = (1,), n_trials: int = 40,
                     trials: Sequence[int] | None = None, seconds: float = 63.0, fps: float = 50.0,
                     size: tuple[int, int] = (160, 128), seed: int = 0, time_code: bool = False,
                     short: dict[int, float] | None = None) -> Path:
    """Write ``face_video/sXX/sXX_trialYY.avi`` (YY = presentation trial, 1-based) with a drawn face.

    The face's brightness is :func:`deap_face_brightness` of the trial's Experiment_id, following
    :func:`deap_presentation_order` (as in the ratings CSV written by :func:`write_deap`).
    ``trials`` restricts which presentation trials get a video. With ``time_code`` the frames
    show no face: the left half's grey level is :func:`time_code_level` of the stimulus time
    (the last 60 s of the video are the stimulus), the right half's
    :func:`deap_trial_code_level` of the Experiment_id. ``short`` gives some presentation
    trials another length (seconds). Returns ``root``.
    """
    root = Path(root)
    for s in subjects:
        order = deap_presentation_order(s, n_trials, seed)
        for yy in (trials or range(1, n_trials + 1)):
            exp = order[yy - 1]
            secs = (short or {}).get(yy, seconds)
            if time_code:
                lead = seconds - 60.0

                def fn(i, t, img, exp=exp, lead=lead):
                    w = img.shape[1] // 2
                    img[:, :w] = time_code_level(t - lead)
                    img[:, w:] = deap_trial_code_level(exp)
            else:
                fn = face_frame_fn(deap_face_brightness(exp, n_trials), size)
            write_video(root / "face_video" / f"s{s:02d}" / f"s{s:02d}_trial{yy:02d}.avi", secs, fps, size, fn)
    return root


# ----------------------------------------------------------------------------------------------
# BDF (BioSemi) writer
# ----------------------------------------------------------------------------------------------
def _field(value, width: int) -> bytes:
    s = str(value).encode("latin-1")
    if len(s) > width:
        raise ValueError(f"header field {value!r} longer than {width} bytes")
    return s.ljust(width, b" ")


def _num(value: float, width: int = 8) -> bytes:
    s = f"{value:g}" if not float(value).is_integer() else str(int(value))
    return _field(s[:width], width)


def write_bdf(path: str | Path, signals: np.ndarray, ch_names: Sequence[str], sfreq: int,
              phys_dims: Sequence[str] | None = None, phys_ranges: Sequence[tuple[float, float]] | None = None,
              digital: Sequence[bool] | None = None, start: _dt.datetime | None = None,
              record_seconds: int = 1, patient: str = "X X X X", recording: str = "Startdate X X X X") -> Path:
    """Write a BioSemi Data Format file (EDF layout, 24-bit little-endian two's complement samples).

    ``signals`` (n_channels, n_samples) holds physical values, or digital integers for the
    channels flagged in ``digital`` (e.g. Status). Header: version ``\\xffBIOSEMI``, reserved
    field ``24BIT``, one data record per ``record_seconds``; samples are zero-padded to whole
    records. Physical ranges default to BioSemi's +-262144 uV mapped onto the 24-bit range.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signals = np.asarray(signals, dtype=np.float64)
    n_ch, n_samp = signals.shape
    if len(ch_names) != n_ch:
        raise ValueError("one name per channel")
    dmin, dmax = -(2 ** 23), 2 ** 23 - 1
    phys_dims = list(phys_dims or ["uV"] * n_ch)
    phys_ranges = list(phys_ranges or [(-262144.0, 262143.0)] * n_ch)
    digital = list(digital or [False] * n_ch)
    spr = int(sfreq * record_seconds)
    n_rec = -(-n_samp // spr)
    start = start or _dt.datetime(2009, 7, 9, 17, 53, 46)

    dig = np.zeros((n_ch, n_rec * spr), np.int64)
    for c in range(n_ch):
        if digital[c]:
            d = np.round(signals[c]).astype(np.int64)
        else:
            pmin, pmax = phys_ranges[c]
            d = np.round((signals[c] - pmin) / (pmax - pmin) * (dmax - dmin) + dmin).astype(np.int64)
        dig[c, :n_samp] = np.clip(d, dmin, dmax)

    header_bytes = 256 * (n_ch + 1)
    h = bytearray()
    h += b"\xffBIOSEMI"
    h += _field(patient, 80) + _field(recording, 80)
    h += _field(start.strftime("%d.%m.%y"), 8) + _field(start.strftime("%H.%M.%S"), 8)
    h += _field(header_bytes, 8) + _field("24BIT", 44)
    h += _field(n_rec, 8) + _field(record_seconds, 8) + _field(n_ch, 4)
    h += b"".join(_field(n, 16) for n in ch_names)
    h += b"".join(_field("Active Electrode" if not digital[c] else "Triggers and Status", 80) for c in range(n_ch))
    h += b"".join(_field(u, 8) for u in phys_dims)
    for c in range(n_ch):
        h += _num(dmin if digital[c] else phys_ranges[c][0])
    for c in range(n_ch):
        h += _num(dmax if digital[c] else phys_ranges[c][1])
    h += b"".join(_num(dmin) for _ in range(n_ch))
    h += b"".join(_num(dmax) for _ in range(n_ch))
    h += b"".join(_field("HP:DC; LP:417 Hz" if not digital[c] else "No filtering", 80) for c in range(n_ch))
    h += b"".join(_field(spr, 8) for _ in range(n_ch))
    h += b"".join(_field("", 32) for _ in range(n_ch))
    assert len(h) == header_bytes

    # records: for each record, each channel's spr samples, each sample 3 bytes little-endian
    recs = dig.reshape(n_ch, n_rec, spr).transpose(1, 0, 2)  # (n_rec, n_ch, spr)
    b = recs.astype("<i4").view(np.uint8).reshape(n_rec, n_ch, spr, 4)[..., :3]
    with open(path, "wb") as f:
        f.write(bytes(h))
        f.write(np.ascontiguousarray(b).tobytes())
    return path


# ----------------------------------------------------------------------------------------------
# MAHNOB-HCI
# ----------------------------------------------------------------------------------------------
MAHNOB_EEG = [
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
]
MAHNOB_OTHER = ["EXG1", "EXG2", "EXG3", "EXG4", "EXG5", "EXG6", "EXG7", "EXG8",
                "GSR1", "GSR2", "Erg1", "Erg2", "Resp", "Temp", "Status"]
MAHNOB_SFREQ = 256
MAHNOB_EEG_AMPLITUDE = 20.0  # microvolts
MAHNOB_COMMON_HZ = 37.5      # a signal common to every EEG channel (removed by the average reference)
MAHNOB_COMMON_UV = 30.0
MAHNOB_TIME_CODE_UV = 10.0   # with time_code: EEG channel 0 adds 10 uV per second of stimulus time
MAHNOB_ECG_HZ = 1.2          # heart rate on EXG1-EXG3 (72 beats per minute)
MAHNOB_ONSET_CODE, MAHNOB_OFFSET_CODE = 1, 2


def mahnob_channel_freq(c: int) -> float:
    """The sine frequency (Hz) planted in MAHNOB EEG channel ``c`` (0-based): 2, 3, ... 33 Hz."""
    return 2.0 + c


def mahnob_dc_offset(c: int) -> float:
    """Per-channel DC offset (uV) of the raw BioSemi EEG: large and different per channel, as recorded."""
    return -3000.0 + 250.0 * c


def default_mahnob_sessions() -> list[dict]:
    """Three usable sessions (subjects 1, 1, 2), one without BDF, one without ratings."""
    def r(a, v, c, p, emo):
        return {"feltArsl": a, "feltVlnc": v, "feltCtrl": c, "feltPred": p, "feltEmo": emo}
    return [
        {"id": 2, "subject": 1, "ratings": r(7, 3, 5, 4, 1), "bdf": True},
        {"id": 4, "subject": 1, "ratings": r(2, 8, 6, 7, 0), "bdf": True},
        {"id": 10, "subject": 2, "ratings": r(5, 5, 5, 5, 11), "bdf": True},
        {"id": 12, "subject": 2, "ratings": r(6, 4, 4, 3, 2), "bdf": False},
        {"id": 14, "subject": 3, "ratings": None, "bdf": True, "isStim": 0},
    ]


def ecg_like(t: np.ndarray, hz: float = MAHNOB_ECG_HZ) -> np.ndarray:
    """A train of narrow R-wave-like peaks (uV) at ``hz`` beats per second."""
    phase = (t * hz) % 1.0
    return 800.0 * np.exp(-((phase - 0.5) / 0.02) ** 2) - 100.0 * np.exp(-((phase - 0.6) / 0.05) ** 2)


def mahnob_bdf_signals(n_samples: int, onset: int, offset: int, n_eeg: int = 32, seed: int = 0,
                       pulse: int = 20, level: bool = False, time_code: bool = False,
                       offset_marker: bool = True) -> tuple[np.ndarray, list[str]]:
    """Signals (channels, samples) and names of one MAHNOB recording (Status as digital codes).

    As recorded: the EEG is raw BioSemi (per-channel DC offsets :func:`mahnob_dc_offset`, a
    signal common to all channels), EXG1-EXG3 carry an ECG, EXG4-EXG8 noise (no EOG was
    recorded). EEG channel ``c`` carries a sine of :func:`mahnob_channel_freq` ``(c)`` Hz; with
    ``time_code`` channel 0 also a ramp of ``MAHNOB_TIME_CODE_UV`` uV per second of stimulus
    time (0 at the onset).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / MAHNOB_SFREQ
    names = MAHNOB_EEG[:n_eeg] + [f"X{c}" for c in range(max(0, n_eeg - 32))] + MAHNOB_OTHER
    x = np.zeros((len(names), n_samples))
    common = MAHNOB_COMMON_UV * np.sin(2 * np.pi * MAHNOB_COMMON_HZ * t)
    for c in range(n_eeg):
        x[c] = MAHNOB_EEG_AMPLITUDE * np.sin(2 * np.pi * mahnob_channel_freq(c) * t + 0.3 * c) \
            + rng.standard_normal(n_samples) + mahnob_dc_offset(c) + common
    if time_code:
        x[0] += MAHNOB_TIME_CODE_UV * (t - onset / MAHNOB_SFREQ)
    idx = {n: i for i, n in enumerate(names)}
    for k, n in enumerate(("EXG1", "EXG2", "EXG3")):
        x[idx[n]] = (1.0 - 0.2 * k) * ecg_like(t) + 5.0 * rng.standard_normal(n_samples)
    for n in ("EXG4", "EXG5", "EXG6", "EXG7", "EXG8", "GSR1", "GSR2", "Erg1", "Erg2", "Resp", "Temp"):
        x[idx[n]] = 100.0 * rng.standard_normal(n_samples)
    status = np.full(n_samples, 0x100000, np.float64)  # a BioSemi status bit above the trigger bits
    if level:
        status[onset:offset] += MAHNOB_ONSET_CODE
    else:
        status[onset:onset + pulse] += MAHNOB_ONSET_CODE
        if offset_marker:
            status[offset:offset + pulse] += MAHNOB_OFFSET_CODE
    x[idx["Status"]] = status
    return x, names


def _session_xml(spec: dict, bdf_name: str | None, video: dict | None = None) -> str:
    attrs = {"cutNr": spec["id"], "cutLenSec": spec.get("cutLenSec", spec.get("stim_s", "")),
             "mediaFile": f"{spec['id']}.avi", "isStim": spec.get("isStim", 1)}
    if video:
        attrs.update(video)
    if spec.get("ratings"):
        attrs.update(spec["ratings"])
    a = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    parts = ["<?xml version=\"1.0\" encoding=\"utf-8\"?>", f"<session {a}>", f'  <subject id="{spec["subject"]}" />']
    if bdf_name:
        parts.append(f'  <track type="Physiological" id="0" filename="{bdf_name}" />')
    parts.append("</session>")
    return "\n".join(parts) + "\n"


def mahnob_time_code_frame_fn(lead_s: float):
    """A ``frame_fn`` whose grey level is :func:`time_code_level` of the stimulus time (video time - lead)."""
    def fn(i, t, img):
        img[:] = time_code_level(t - lead_s)
    return fn


def write_mahnob(root: str | Path, sessions: Sequence[dict] | None = None, pre_s: float = 5.0,
                 stim_s: float = 18.5, post_s: float = 5.0, video: bool = False, fps: float = 60.0,
                 size: tuple[int, int] = (160, 128), n_eeg: int = 32, status_level: bool = False,
                 video_lead_s: float = 0.0, video_tail_s: float = 1.0, time_code: bool = False) -> Path:
    """Write ``Sessions/<id>/session.xml`` (+ ``Part_<s>_S_Trial<k>_emotion.bdf``) per session.

    ``sessions``: dicts with ``id``, ``subject``, ``ratings`` (dict of felt* attributes, or
    None), ``bdf`` (write the BDF?), optional ``isStim``, and to write broken sessions:
    ``cutLenSec`` (another stimulus length in session.xml than the Status window),
    ``video_s`` (another video length), ``offset_marker`` (False: no offset trigger).
    The recording is ``pre_s + stim_s + post_s`` seconds (rounded up to whole seconds) at 256 Hz;
    Status carries a pulse at stimulus onset and one at offset (or one level over the stimulus
    with ``status_level``).

    With ``video`` a frontal MJPG video (``..._C1 trigger _C_Section_<id>.avi``) is written the
    way the real one was cut: it starts ``video_lead_s`` before the stimulus onset (0: frame 0 is
    the onset) and ends ``video_tail_s`` after the stimulus; session.xml gets ``vidRate`` = fps,
    ``vidBeginSmp`` = the onset's frame (``video_lead_s * fps``), ``vidEndSmp`` = the offset's
    frame, and audio anchors. Frames show a drawn face, or with ``time_code`` a grey level
    coding the stimulus time (:func:`mahnob_time_code_frame_fn`), while EEG channel 0 carries
    the same time as a ramp (:func:`mahnob_bdf_signals`). Returns ``root``.
    """
    root = Path(root)
    sessions = list(sessions if sessions is not None else default_mahnob_sessions())
    total = int(np.ceil(pre_s + stim_s + post_s))
    n = total * MAHNOB_SFREQ
    onset, offset = int(round(pre_s * MAHNOB_SFREQ)), int(round((pre_s + stim_s) * MAHNOB_SFREQ))
    for k, spec in enumerate(sessions, start=1):
        d = root / "Sessions" / str(spec["id"])
        d.mkdir(parents=True, exist_ok=True)
        bdf_name = f"Part_{spec['subject']}_S_Trial{k}_emotion.bdf" if spec.get("bdf", True) else None
        vattrs = None
        if video:
            b = int(round(video_lead_s * fps))
            vattrs = {"vidRate": fps, "vidBeginSmp": b, "vidEndSmp": b + int(round(stim_s * fps)),
                      "audRate": 44100, "audBeginSmp": int(round(video_lead_s * 44100)),
                      "audEndSmp": int(round((video_lead_s + stim_s) * 44100))}
        (d / "session.xml").write_text(_session_xml({**spec, "stim_s": stim_s}, bdf_name, vattrs), encoding="utf-8")
        if bdf_name:
            x, names = mahnob_bdf_signals(n, onset, offset, n_eeg=n_eeg, seed=int(spec["id"]), level=status_level,
                                          time_code=time_code, offset_marker=spec.get("offset_marker", True))
            digital = [nm == "Status" for nm in names]
            dims = ["Boo" if dg else "uV" for dg in digital]
            write_bdf(d / bdf_name, x, names, MAHNOB_SFREQ, phys_dims=dims, digital=digital)
        if video:
            seconds = spec.get("video_s", video_lead_s + stim_s + video_tail_s)
            fn = mahnob_time_code_frame_fn(video_lead_s) if time_code else face_frame_fn(1.0, size)
            write_video(d / f"P{spec['subject']}-Rec1-2009.07.09.17.53.46_C1 trigger _C_Section_{spec['id']}.avi",
                        seconds, fps, size, fn)
    return root


# ----------------------------------------------------------------------------------------------
# SEED-IV
# ----------------------------------------------------------------------------------------------
SEED_IV_DATES = {1: "20160518", 2: "20160601", 3: "20160615"}


def seed_iv_windows(subject: int, session: int, trial: int) -> int:
    """Number of 4 s windows written for a trial (0-based ``trial``): 3 to 5."""
    return 3 + (subject + session + trial) % 3


def seed_iv_eye_value(session: int, trial: int, window: int, feature: int) -> float:
    return 1000.0 * session + 10.0 * trial + window + feature / 100.0


def seed_iv_de_value(channel: int, band: int, window: int) -> float:
    return channel + band / 10.0 + window / 1000.0


def write_seed_iv(root: str | Path, subjects: Iterable[int] = (1, 2), sessions: Iterable[int] = (1, 2, 3),
                  mismatch: bool = True, eye_shape: tuple[int, ...] | None = None) -> Path:
    """Write ``eye_feature_smooth/<session>/<subject>_<date>.mat`` and the matching EEG features.

    Eye file: ``eye_1 .. eye_24`` (31, n); EEG file: ``de_LDS1 .. de_LDS24`` and
    ``de_movingAve1 ..`` (62, n, 5), n = :func:`seed_iv_windows`. With ``mismatch`` the eye
    features of subject 1, session 1, trial 0 have one window more than the EEG features.
    ``eye_shape`` forces the shape of every eye array (to write a malformed file). Returns ``root``.
    """
    import scipy.io

    root = Path(root)
    for sess in sessions:
        for s in subjects:
            eye, eeg = {}, {}
            for k in range(24):
                n = seed_iv_windows(s, sess, k)
                n_eye = n + 1 if (mismatch and s == 1 and sess == 1 and k == 0) else n
                e = np.array([[seed_iv_eye_value(sess, k, w, f) for w in range(n_eye)] for f in range(31)])
                eye[f"eye_{k + 1}"] = np.zeros(eye_shape) if eye_shape is not None else e
                de = np.array([[[seed_iv_de_value(c, b, w) for b in range(5)] for w in range(n)] for c in range(62)])
                eeg[f"de_LDS{k + 1}"] = de
                eeg[f"de_movingAve{k + 1}"] = de + 0.5
            name = f"{s}_{SEED_IV_DATES.get(sess, '20160701')}.mat"
            for folder, content in (("eye_feature_smooth", eye), ("eeg_feature_smooth", eeg)):
                p = root / folder / str(sess) / name
                p.parent.mkdir(parents=True, exist_ok=True)
                scipy.io.savemat(str(p), content)
    return root


# ----------------------------------------------------------------------------------------------
def write_all(root: str | Path) -> dict[str, Path]:
    """Write small copies of DEAP (2 subjects x 4 trials; face video for subject 1), MAHNOB-HCI
    (default sessions, with frontal video) and SEED-IV (2 subjects x 3 sessions) under ``root``.

    Returns ``{"deap": ..., "deap_eeg_eog": ..., "mahnob_hci": ..., "seed_iv": ...}`` (the paper grid's
    two DEAP entries, face video and EEG+EOG only, read the same folder).
    """
    root = Path(root)
    deap = write_deap(root / "deap", subjects=(1, 2), n_trials=4)
    write_deap_video(deap, subjects=(1,), n_trials=4)
    mahnob = write_mahnob(root / "mahnob_hci", video=True)
    seed = write_seed_iv(root / "seed_iv")
    return {"deap": deap, "deap_eeg_eog": deap, "mahnob_hci": mahnob, "seed_iv": seed}
