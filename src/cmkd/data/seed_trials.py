"""What the SEED-family loaders (SEED, SEED-IV, SEED-V) do alike for one trial.

Each loader reads its own file layout into ``parts`` (``{modality: (windows, ...)}``, one trial);
the rest is shared: the subject files of a folder (:func:`scan_subject_files`), the EEG inputs of a
trial, computed from a raw trial (:func:`raw_eeg_parts`) or read from shipped features
(:func:`eeg_trial_parts`), and the rows a trial adds to the prepared arrays (:func:`stage_trial`),
with the same truncation rule, the same skip record and the same id columns in the three loaders.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from cmkd.data import de as de_mod
from cmkd.errors import DataError

log = logging.getLogger("cmkd.data")


def raw_eeg_parts(x: np.ndarray, mods, sfreq: float, window_seconds: float, filter_order: int,
                  where: str) -> dict[str, np.ndarray]:
    """``eeg_de`` (windows, channels, 5) and/or ``eeg`` (windows, channels, samples) of one raw
    trial ``x`` (channels, samples), for the modalities of ``mods`` that ask for them."""
    out: dict[str, np.ndarray] = {}
    if "eeg_de" in mods:
        out["eeg_de"] = de_mod.differential_entropy(x, sfreq, window_seconds, filter_order=int(filter_order),
                                                    where=where).astype(np.float32)
    if "eeg" in mods:
        out["eeg"] = de_mod.signal_windows(np.asarray(x, np.float32), sfreq, window_seconds)
    return out


def stage_trial(stage, parts: dict[str, np.ndarray], *, label: int, session: int, subject: int, k: int,
                trial_stride: int, truncated: list, skipped: list, where: str,
                non_finite: dict | None = None) -> int:
    """Append trial ``k`` of ``session`` of ``subject`` to ``stage`` (a
    :class:`cmkd.data.cache.BlockStager`); return the number of rows (windows) appended.

    The rows are the windows every modality has: when the modalities of the trial hold different
    window counts, the common prefix is kept and ``truncated`` gets one record of the counts; a
    trial with no window in some modality adds nothing and is recorded in ``skipped``. Columns:
    the modalities, ``label``, ``session``, ``subject``, ``trial = trial_stride * session + k`` and
    ``segment`` (the window's index in the trial). ``non_finite`` (``{modality: count}``), when
    given, counts the non-finite values kept.
    """
    counts = {m: a.shape[0] for m, a in parts.items()}
    n = min(counts.values())
    if len(set(counts.values())) > 1:
        truncated.append({"session": session, "subject": subject, "trial": k,
                          **{f"{m}_windows": c for m, c in counts.items()}, "kept": n})
        log.debug("%s: subject %d session %d trial %d: window counts %s differ; first %d kept",
                  where, subject, session, k, counts, n)
    if n == 0:
        skipped.append({"item": f"subject {subject} session {session} trial {k}", "reason": "no window"})
        return 0
    arrays = {m: np.ascontiguousarray(a[:n]) for m, a in parts.items()}
    if non_finite is not None:
        for m, a in arrays.items():
            non_finite[m] = non_finite.get(m, 0) + int((~np.isfinite(a)).sum())
    arrays["label"] = np.full(n, label, np.int64)
    arrays["session"] = np.full(n, session, np.int64)
    arrays["subject"] = np.full(n, subject, np.int64)
    arrays["trial"] = np.full(n, trial_stride * session + k, np.int64)
    arrays["segment"] = np.arange(n, dtype=np.int64)
    stage.append(arrays)
    return n


def warn_truncated(where: str, truncated: list) -> None:
    """One warning for all the trials whose modalities held different window counts."""
    if truncated:
        log.warning("%s: %d trials with different window counts across modalities; common prefix kept "
                    "(meta 'truncated' lists them)", where, len(truncated))


def scan_subject_files(folder: Path, pattern: re.Pattern, expected: str) -> dict[int, Path]:
    """``{subject: file}`` of the files in ``folder`` whose name ``pattern`` matches (group 1 = the
    subject); empty when ``folder`` is absent. Two files for one subject are a :class:`DataError`
    naming the folder and ending with ``expected``."""
    out: dict[int, Path] = {}
    if not folder.is_dir():
        return out
    for f in sorted(folder.iterdir()):
        m = pattern.match(f.name)
        if not m:
            continue
        s = int(m.group(1))
        if s in out:
            raise DataError(f"{folder}: two files for subject {s} ({out[s].name}, {f.name}); {expected}")
        out[s] = f
    return out


def trial_array(mat: dict, key: str, path: Path, shape: tuple) -> np.ndarray:
    """``mat[key]`` checked against ``shape`` (None = any length); DataError naming the file."""
    if key not in mat:
        have = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no variable '{key}' (has {have[:8]}{'...' if len(have) > 8 else ''})")
    a = mat[key]
    if not isinstance(a, np.ndarray) or a.ndim != len(shape) or a.dtype.kind not in "fiu" or any(
            s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise DataError(f"{path}: '{key}' has shape {getattr(a, 'shape', None)}, expected {want}")
    return a


def pool(a: np.ndarray, n: int) -> np.ndarray:
    """Mean over runs of ``n`` consecutive rows (an incomplete last run is dropped)."""
    if n == 1:
        return a
    m = a.shape[0] // n
    return a[:m * n].reshape((m, n) + a.shape[1:]).mean(axis=1)


def eeg_trial_parts(raw: dict | None, mat: dict, path: Path, k: int, mods, *, feature: str, sfreq: float,
                    window_seconds: float, filter_order: int, shape: tuple, pool_n: int = 1) -> dict[str, np.ndarray]:
    """The EEG parts of trial ``k`` (0-based) of one file: from ``raw`` (``{k: (channels, samples)}``)
    when given (:func:`raw_eeg_parts`), else, with ``eeg_de`` in ``mods``, the shipped feature
    ``<feature><k + 1>`` of ``mat`` (``shape`` = (channels, windows, bands)) as (windows, channels,
    bands), the mean over each ``pool_n`` consecutive windows (:func:`pool`)."""
    if raw is not None:
        return raw_eeg_parts(raw[k], mods, sfreq, window_seconds, filter_order, where=f"{path} trial {k + 1}")
    if "eeg_de" not in mods:
        return {}
    a = trial_array(mat, f"{feature}{k + 1}", path, shape)
    return {"eeg_de": pool(np.asarray(a, np.float64).transpose(1, 0, 2), pool_n).astype(np.float32)}
