"""Writers of small, format-faithful SEED and SEED-V data sets (and SEED-IV raw EEG) for tests and dry runs.

The layouts follow docs/seed_family.md:

- SEED: ``ExtractedFeatures/<subject>_<date>.mat`` with ``de_LDS<k>`` / ``de_movingAve<k>``
  (62, n 1 s windows, 5 bands) and ``label.mat`` (``label`` (1, 15) in {-1, 0, 1});
  ``Preprocessed_EEG/<subject>_<date>.mat`` with ``<initials>_eeg<k>`` (62, samples) at 200 Hz;
  ``Eye_movement_features/<subject>_<date>.mat`` with ``eye_<k>`` (31, n 4 s windows).
  DE values encode session, trial, channel, band and window (:func:`seed_de_value`); the raw
  EEG of channel ``c`` is a 10 Hz (alpha band) sine of amplitude :func:`seed_raw_amplitude` ``(c)``.
- SEED-V: ``EEG_DE_features/<subject>_123.npz`` and ``Eye_movement_features/<subject>_123.npz``,
  each with ``data`` and ``label``: byte strings of pickled dicts keyed by trial 0..44,
  ``data[i]`` (n, 310) channel-major DE (or (n, 33) eye features), ``label[i]`` (n,) classes.
- SEED-IV raw: ``eeg_raw_data/<session>/<subject>_<date>.mat`` with ``cz_eeg1 .. cz_eeg24``.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterable

import numpy as np

SEED_LABELS = [1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1]
SEED_DATES = {1: ("20131027", "20131030", "20131107"), 2: ("20140404", "20140413", "20140419"),
              3: ("20140603", "20140611", "20140629")}
SEED_V_LABELS = {
    1: [4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0],
    2: [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0],
    3: [2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0],
}
RAW_SFREQ = 200
RAW_FREQ = 10.0  # Hz, inside the alpha band (8-14 Hz)


def seed_windows(subject: int, session: int, trial: int) -> int:
    """Number of 1 s DE windows of a SEED trial (0-based ``trial``): 8 to 9, so 2 windows of 4 s."""
    return 8 + (subject + session + trial) % 2


def seed_de_value(session: int, trial: int, channel: int, band: int, window: int) -> float:
    return 100.0 * session + channel + band / 10.0 + (10 * trial + window) / 1e4


def seed_eye_value(session: int, trial: int, window: int, feature: int) -> float:
    return 1000.0 * session + 10.0 * trial + window + feature / 100.0


def seed_raw_amplitude(channel: int) -> float:
    return 1.0 + channel


def _savemat(path: Path, content: dict) -> None:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), content)


def _date(subject: int, session: int) -> str:
    return SEED_DATES.get(subject, ("20150101", "20150108", "20150115"))[session - 1]


def raw_trial(n_samples: int, n_channels: int = 62, sfreq: int = RAW_SFREQ) -> np.ndarray:
    t = np.arange(n_samples) / sfreq
    return np.stack([seed_raw_amplitude(c) * np.sin(2 * np.pi * RAW_FREQ * t + c) for c in range(n_channels)]).astype(np.float32)


def write_seed(root: str | Path, subjects: Iterable[int] = (1, 2), sessions: Iterable[int] = (1, 2, 3),
               eye: bool = True, raw: bool = False, raw_seconds: float = 2.2, labels=None) -> Path:
    """Write a small SEED copy under ``root``; return ``root``.

    ``raw`` adds ``Preprocessed_EEG`` (``raw_seconds`` of signal per trial, 15 trials);
    ``labels`` overrides the list written to ``label.mat`` (to write a wrong one).
    """
    root = Path(root)
    lab = np.array([labels if labels is not None else SEED_LABELS], dtype=np.int16)
    _savemat(root / "ExtractedFeatures" / "label.mat", {"label": lab})
    if raw:
        _savemat(root / "Preprocessed_EEG" / "label.mat", {"label": lab})
    for s in subjects:
        for sess in sessions:
            name = f"{s}_{_date(s, sess)}.mat"
            feats, eyes, raws = {}, {}, {}
            for k in range(15):
                n = seed_windows(s, sess, k)
                de = np.array([[[seed_de_value(sess, k, c, b, w) for b in range(5)] for w in range(n)] for c in range(62)])
                feats[f"de_LDS{k + 1}"] = de
                feats[f"de_movingAve{k + 1}"] = de + 0.5
                feats[f"psd_LDS{k + 1}"] = de * 2
                eyes[f"eye_{k + 1}"] = np.array([[seed_eye_value(sess, k, w, f) for w in range(n // 4)] for f in range(31)])
                if raw:
                    raws[f"djc_eeg{k + 1}"] = raw_trial(int(raw_seconds * RAW_SFREQ))
            _savemat(root / "ExtractedFeatures" / name, feats)
            if eye:
                _savemat(root / "Eye_movement_features" / name, eyes)
            if raw:
                _savemat(root / "Preprocessed_EEG" / name, raws)
    return root


def seed_v_windows(subject: int, session: int, trial: int) -> int:
    return 2 + (subject + session + trial) % 3


def seed_v_de_value(session: int, trial: int, channel: int, band: int, window: int) -> float:
    return 100.0 * session + channel + band / 10.0 + (10 * trial + window) / 1e4


def seed_v_eye_value(session: int, trial: int, window: int, feature: int) -> float:
    return 1000.0 * session + 10.0 * trial + window + feature / 100.0


def _write_pickled_npz(path: Path, data: dict, label: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, data=pickle.dumps(data), label=pickle.dumps(label))


def write_seed_v(root: str | Path, subjects: Iterable[int] = (1, 2), eye: bool = True, wrong_label: bool = False,
                 mismatch: bool = True) -> Path:
    """Write ``EEG_DE_features/<s>_123.npz`` (and the eye features) for every subject; return ``root``.

    With ``mismatch`` the eye features of subject 1, session 1, trial 0 have one window more
    than the EEG features; ``wrong_label`` writes class 0 for session 1 trial 1 (published: 4).
    """
    root = Path(root)
    for s in subjects:
        de_d, eye_d, lab_d, lab_eye = {}, {}, {}, {}
        for i in range(45):
            sess, k = i // 15 + 1, i % 15
            n = seed_v_windows(s, sess, k)
            n_eye = n + 1 if (mismatch and s == 1 and i == 0) else n
            de = np.array([[[seed_v_de_value(sess, k, c, b, w) for b in range(5)] for c in range(62)] for w in range(n)])
            de_d[i] = de.reshape(n, 310)  # channel-major: the five bands of channel 0 first
            eye_d[i] = np.array([[seed_v_eye_value(sess, k, w, f) for f in range(33)] for w in range(n_eye)])
            want = SEED_V_LABELS[sess][k]
            if wrong_label and i == 0:
                want = 0
            lab_d[i] = np.full(n, want, dtype=np.float64)
            lab_eye[i] = np.full(n_eye, want, dtype=np.float64)
        _write_pickled_npz(root / "EEG_DE_features" / f"{s}_123.npz", de_d, lab_d)
        if eye:
            _write_pickled_npz(root / "Eye_movement_features" / f"{s}_123.npz", eye_d, lab_eye)
    return root


def write_seed_iv_raw(root: str | Path, subjects: Iterable[int] = (1,), sessions: Iterable[int] = (1,),
                      seconds: float = 8.5) -> Path:
    """Write ``eeg_raw_data/<session>/<subject>_<date>.mat`` (``cz_eeg1 .. cz_eeg24``, 62 x samples, 200 Hz)."""
    dates = {1: "20160518", 2: "20160601", 3: "20160615"}
    root = Path(root)
    for sess in sessions:
        for s in subjects:
            content = {f"cz_eeg{k + 1}": raw_trial(int(seconds * RAW_SFREQ)) for k in range(24)}
            _savemat(root / "eeg_raw_data" / str(sess) / f"{s}_{dates.get(sess, '20160701')}.mat", content)
    return root


def write_all_seed(root: str | Path) -> dict[str, Path]:
    """Small SEED (2 subjects x 3 sessions, with eye features) and SEED-V (2 subjects) copies under ``root``."""
    root = Path(root)
    return {"seed": write_seed(root / "seed"), "seed_v": write_seed_v(root / "seed_v")}
