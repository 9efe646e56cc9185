"""MAHNOB-HCI (Soleymani et al. 2012), emotion-elicitation sessions -> prepared directory.

Input layout (``root``)::

    Sessions/<session id>/session.xml
    Sessions/<session id>/<...>_emotion.bdf          BioSemi BDF, 47 channels, Status = triggers
    Sessions/<session id>/<...>C1 trigger<...>.avi   optional frontal colour camera (60 fps)

Per session:

- ``session.xml``: the root ``<session>`` holds the self-reports ``feltArsl``, ``feltVlnc``,
  ``feltCtrl``, ``feltPred`` (1-9), ``feltEmo`` and ``isStim``; ``<subject id="..."/>`` names
  the participant. A session without a ``*_emotion.bdf``, without ``session.xml``, without a
  subject id or with a missing or out-of-range rating is skipped and listed in meta ``skipped``.
- Ratings: ``arousal`` <- feltArsl, ``valence`` <- feltVlnc, ``dominance`` <- feltCtrl
  (MAHNOB's "control" scale), ``predictability`` <- feltPred. MAHNOB-HCI has no liking scale:
  feltPred asks how predictable the clip was, so it is stored as ``predictability`` and there is
  no ``liking`` array. ``felt_emotion`` holds the feltEmo keyword code (-1 when absent).
- Stimulus window: ``mne.find_events`` on ``Status`` (trigger bits 0-15). Onset is the first
  event, offset the last event; when the Status channel holds only one event (one level for
  the whole stimulus) the offset is where that level returns to zero. Sessions without a
  marker are skipped.
- EEG: the 32 EEG channels (every channel that is not EXG*, GSR*, Erg*, Resp, Temp, Plet or
  Status), names and file order kept; a count other than 32 is a :class:`DataError`. Values in
  microvolts.
- EOG (``"eog"`` in ``modalities``): the prepared format has two EOG channels, so the four EOG
  electrodes are combined into bipolar derivations hEOG = EXG1 - EXG2 and vEOG = EXG3 - EXG4.
- Both are resampled (``mne`` FFT resampling of the whole recording) to ``sampling_rate``
  (128 Hz by default) and cut into 4 s segments over the stimulus window only; a trailing
  partial segment is dropped.
- ``subject`` = the subject id, ``trial`` = the session folder number (unique in the data
  set), ``segment`` = index within the stimulus.

Face frames (``"face"`` in ``modalities``): the frontal video is taken to start with the BDF
recording (video time = recording time - ``face_offset_s``); segment ``k`` takes the kept
frames in ``[onset + 4k, onset + 4k + 4)``. Sessions without such a video are skipped.
"""
from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from cmkd.data import video as vid
from cmkd.data.cache import BlockStager, check_modalities, file_fingerprints, is_fresh, resolve_params, source_key
from cmkd.data.prepared import signal_meta, write_prepared
from cmkd.data.segments import segment_signal
from cmkd.errors import ConfigError, DataError

log = logging.getLogger("cmkd.data")

DATASET = "mahnob_hci"
LOADER_VERSION = 1
N_EEG = 32
EOG_ELECTRODES = ("EXG1", "EXG2", "EXG3", "EXG4")
EOG_CHANNELS = ["hEOG", "vEOG"]
MODALITIES = ("eeg", "eog", "face")
RATINGS = {"valence": "feltVlnc", "arousal": "feltArsl", "dominance": "feltCtrl", "predictability": "feltPred"}
_NON_EEG = re.compile(r"^(EXG\d+|GSR\d*|Erg\d*|Resp|Temp|Plet|Status)$", re.IGNORECASE)
TRIGGER_MASK = 0xFFFF  # BioSemi trigger codes live in the low 16 bits of Status

DEFAULTS: dict[str, Any] = {
    "modalities": ["eeg"],
    "sampling_rate": 128,
    "segment_seconds": 4.0,
    "subjects": None,
    "face_offset_s": 0.0,
    "source_hash_mode": "stat",
    **vid.FACE_DEFAULTS,
}


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


def _parse_ratings(attrs: dict[str, str]) -> tuple[dict[str, float], list[str]]:
    out, bad = {}, []
    for name, attr in RATINGS.items():
        raw = (attrs.get(attr) or "").strip()
        try:
            v = float(raw)
        except ValueError:
            bad.append(attr)
            continue
        if not 1 <= v <= 9:
            bad.append(attr)
            continue
        out[name] = v
    return out, bad


def stimulus_window(raw, path: Path) -> tuple[int, int] | None:
    """(onset, offset) sample indices of the stimulus from the Status channel, or None."""
    import mne

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
        offset = int(rises[-1, 0])
    else:
        falls = ev[(ev[:, 2] == 0) & (ev[:, 0] > onset)]
        if len(falls) == 0:
            return None
        offset = int(falls[0, 0])
    return (onset, offset) if offset > onset else None


def prepare_mahnob(root: str | Path, out_dir: str | Path, params: dict | None = None) -> Path:
    """Prepare MAHNOB-HCI from ``root`` (the folder holding ``Sessions``) into ``out_dir``.

    ``params`` keys (defaults in :data:`DEFAULTS`): ``modalities`` (subset of eeg, eog, face),
    ``sampling_rate``, ``segment_seconds``, ``subjects``, ``face_offset_s``, ``frame_step``,
    ``frames_per_segment``, ``face_size``, ``face_margin``, ``face_detector``,
    ``face_detector_model``, ``source_hash_mode``.
    """
    where = "MAHNOB-HCI"
    p = resolve_params(params, DEFAULTS, where)
    mods = check_modalities(p["modalities"], MODALITIES, where)
    want_face = "face" in mods
    if want_face:
        vid.check_face_params(p, where)
    sr = p["sampling_rate"]
    if not isinstance(sr, (int, float)) or isinstance(sr, bool) or sr <= 0:
        raise ConfigError(f"{where}: sampling_rate must be a positive number, got {sr!r}")
    seg_s = float(p["segment_seconds"])
    if seg_s <= 0:
        raise ConfigError(f"{where}: segment_seconds must be positive, got {seg_s}")

    root = Path(root)
    out_dir = Path(out_dir)
    sessions_dir = root / "Sessions"
    if not root.is_dir():
        raise DataError(f"{root}: MAHNOB-HCI root directory not found (expected Sessions/<id>/session.xml in it)")
    if not sessions_dir.is_dir():
        raise DataError(f"{sessions_dir}: folder not found (MAHNOB-HCI emotion sessions)")
    folders = sorted((d for d in sessions_dir.iterdir() if d.is_dir()), key=_session_sort_key)
    if not folders:
        raise DataError(f"{sessions_dir}: no session folder found")

    # -- pass 1: which sessions are usable, and the cache key over their files -------------------
    skipped: list[dict] = []
    plan: list[dict] = []
    inputs: list[tuple[str, Path]] = []
    wanted = {str(s) for s in p["subjects"]} if p["subjects"] is not None else None
    for i, d in enumerate(folders):
        item = f"session {d.name}"
        xml = d / "session.xml"

        def skip(reason: str) -> None:
            log.warning("MAHNOB-HCI: %s skipped: %s", item, reason)
            skipped.append({"item": item, "reason": reason})

        if not xml.is_file():
            skip("no session.xml")
            continue
        inputs.append((f"Sessions/{d.name}/session.xml", xml))
        attrs, sid = read_session_xml(xml)
        if sid is None or not sid.strip().isdigit():
            skip(f"no numeric <subject id> in session.xml (got {sid!r})")
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
                 "trial": int(d.name) if d.name.isdigit() else 100000 + i, "attrs": attrs, "video": None}
        if want_face:
            vids = sorted(d.glob("*C1 trigger*.avi"))
            if not vids:
                skip("no frontal face video (*C1 trigger*.avi)")
                continue
            entry["video"] = vids[0]
            inputs.append((f"Sessions/{d.name}/{vids[0].name}", vids[0]))
        inputs.append((f"Sessions/{d.name}/{bdfs[0].name}", bdfs[0]))
        plan.append(entry)
    if not plan:
        raise DataError(f"{sessions_dir}: no usable session (skipped: {skipped})")

    hashed = {k: v for k, v in p.items()}
    hashed["modalities"] = mods
    if not want_face:
        hashed = {k: v for k, v in hashed.items() if k not in vid.FACE_DEFAULTS and k != "face_offset_s"}
    key = source_key(DATASET, LOADER_VERSION, file_fingerprints(inputs, p["source_hash_mode"]), hashed)
    if is_fresh(out_dir, key):
        log.info("MAHNOB-HCI: %s is up to date (source hash %s...); reused", out_dir, key[:12])
        return out_dir

    import mne  # heavy import, only when building

    cropper = vid.FaceCropper(p["face_size"], p["face_margin"], p["face_detector"], p["face_detector_model"]) \
        if want_face else None
    face_stats = vid.FaceStats()
    eeg_names: list[str] | None = None
    sessions_meta: list[dict] = []
    with BlockStager(out_dir) as stage:
        for j, e in enumerate(plan, start=1):
            bdf: Path = e["bdf"]
            item = f"session {e['dir'].name}"
            log.info("MAHNOB-HCI: %s (%d/%d), subject %d, %s", item, j, len(plan), e["subject"], bdf.name)
            try:
                raw = mne.io.read_raw_bdf(bdf, stim_channel="Status", preload=True, verbose="error")
            except Exception as ex:
                raise DataError(f"{bdf}: cannot read BDF ({type(ex).__name__}: {ex})") from None
            names = list(raw.ch_names)
            if "Status" not in names:
                raise DataError(f"{bdf}: no Status channel (channels: {names})")
            eeg = [c for c in names if not _NON_EEG.match(c)]
            if len(eeg) != N_EEG:
                raise DataError(f"{bdf}: {len(eeg)} EEG channels ({eeg}), expected {N_EEG}")
            if eeg_names is None:
                eeg_names = eeg
            elif eeg != eeg_names:
                if sorted(eeg) != sorted(eeg_names):
                    raise DataError(f"{bdf}: EEG channels {eeg} differ from the first session's {eeg_names}")
                eeg = list(eeg_names)  # same set, other order: use the first session's order
            if "eog" in mods:
                missing = [c for c in EOG_ELECTRODES if c not in names]
                if missing:
                    raise DataError(f"{bdf}: EOG requested but channel(s) {missing} missing (channels: {names})")
            win = stimulus_window(raw, bdf)
            if win is None:
                log.warning("MAHNOB-HCI: %s skipped: no stimulus onset/offset on Status", item)
                skipped.append({"item": item, "reason": "no stimulus onset/offset markers on Status"})
                continue
            sf0 = float(raw.info["sfreq"])
            onset_s, offset_s = win[0] / sf0, win[1] / sf0
            picks = eeg + (list(EOG_ELECTRODES) if "eog" in mods else [])
            raw.pick(picks)
            if abs(sf0 - sr) > 1e-9:
                raw.resample(sr, verbose="error")
            x = raw.get_data(picks=picks) * 1e6  # volts -> microvolts
            del raw
            i0, i1 = int(round(onset_s * sr)), int(round(offset_s * sr))
            n_seg = int((i1 - i0) // int(round(seg_s * sr)))
            if n_seg == 0:
                log.warning("MAHNOB-HCI: %s skipped: stimulus %.2f s is shorter than one segment", item, offset_s - onset_s)
                skipped.append({"item": item, "reason": f"stimulus of {offset_s - onset_s:.2f} s is shorter than {seg_s} s"})
                continue
            arrays: dict[str, np.ndarray] = {}
            where_s = f"{bdf} stimulus"
            if "eeg" in mods:
                arrays["eeg"] = segment_signal(x[:N_EEG, i0:i1], sr, seg_s, where_s).astype(np.float32)
            if "eog" in mods:
                ex4 = x[N_EEG:N_EEG + 4, i0:i1]
                bip = np.stack([ex4[0] - ex4[1], ex4[2] - ex4[3]])
                arrays["eog"] = segment_signal(bip, sr, seg_s, where_s).astype(np.float32)
            if want_face:
                off = float(p["face_offset_s"])
                windows = [(onset_s + k * seg_s - off, onset_s + (k + 1) * seg_s - off) for k in range(n_seg)]
                v = vid.sample_video(e["video"], cropper, p["frame_step"], t_range=(windows[0][0], windows[-1][1]))
                arrays["face"], st = vid.frames_for_windows(v, windows, p["frames_per_segment"])
                st.add(v.stats)
                face_stats.add(st)
            n = n_seg
            arrays["subject"] = np.full(n, e["subject"], np.int64)
            arrays["trial"] = np.full(n, e["trial"], np.int64)
            arrays["segment"] = np.arange(n, dtype=np.int64)
            for name, v_ in e["ratings"].items():
                arrays[name] = np.full(n, v_, np.float32)
            emo = (e["attrs"].get("feltEmo") or "").strip()
            arrays["felt_emotion"] = np.full(n, int(emo) if emo.lstrip("-").isdigit() else -1, np.int64)
            stage.append(arrays)
            sessions_meta.append({"session": e["dir"].name, "subject": e["subject"], "trial": e["trial"],
                                  "bdf": bdf.name, "segments": n, "stimulus_s": [round(onset_s, 4), round(offset_s, 4)],
                                  "isStim": e["attrs"].get("isStim"), "mediaFile": e["attrs"].get("mediaFile")})
            del x, arrays
        if stage.n_rows == 0:
            raise DataError(f"{sessions_dir}: no MAHNOB-HCI segment could be prepared (skipped: {skipped})")
        meta = {
            "dataset": DATASET,
            "loader_version": LOADER_VERSION,
            "source_hash": key,
            **signal_meta(mods, sr, {"eeg": eeg_names, "eog": EOG_CHANNELS}),
            "eog_derivation": {"hEOG": "EXG1 - EXG2", "vEOG": "EXG3 - EXG4"} if "eog" in mods else None,
            "modalities": mods,
            "segment_seconds": seg_s,
            "ratings": {"names": list(RATINGS), "source": RATINGS, "scale": [1, 9],
                        "note": "MAHNOB-HCI has no liking scale; feltPred (predictability) is stored as "
                                "'predictability'. felt_emotion = feltEmo code, -1 when absent."},
            "stimulus_window": "Status events (low 16 bits): first event = onset, last event = offset",
            "trial_id": "session folder number",
            "sessions": sessions_meta,
            "skipped": skipped,
            "params": hashed,
        }
        if want_face:
            meta["face"] = vid.face_meta(cropper, p, f"video time = BDF time - {float(p['face_offset_s'])} s", face_stats)
        out = write_prepared(out_dir, stage.arrays(), meta)
    log.info("MAHNOB-HCI: wrote %s (%d sessions, %d skipped)", out, len(sessions_meta), len(skipped))
    return out
