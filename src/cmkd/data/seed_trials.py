"""What the SEED-family loaders (SEED, SEED-IV, SEED-V) do alike for one trial.

Each loader reads its own file layout into ``parts`` (``{modality: (windows, ...)}``, one trial);
the rest is shared: the EEG inputs computed from a raw trial (:func:`raw_eeg_parts`) and the rows
a trial adds to the prepared arrays (:func:`stage_trial`), with the same truncation rule, the same
skip record and the same id columns in the three loaders.
"""
from __future__ import annotations

import logging

import numpy as np

from cmkd.data import de as de_mod

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
