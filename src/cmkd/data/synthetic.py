"""A synthetic multimodal emotion data set (EEG, EOG, face frames, eye features), deterministic from a seed.

It has the shapes of the real data sets (DEAP-like EEG with 32 channels, 2 EOG channels, small RGB
face frames, the 31 SEED-IV-style eye-movement features, 1-9 ratings of valence, arousal, dominance
and liking per trial) and the properties that make the benchmark meaningful:

- **latent emotion per trial.** Valence and arousal are drawn per subject by stratified sampling
  (each subject has as many trials above as below the midpoint), dominance and liking are
  correlated with valence (0.5 and 0.6). The reported 1-9 rating is ``5 +/- magnitude`` with a
  multiplicative rating noise; with probability ``label_noise`` per trial and dimension the
  reported side of 5 is the opposite of the latent side (noisy labels). A rating is never exactly 5.
- **every modality carries some but not all of the label information.** Each modality sees the
  latent valence and arousal through its own per-trial display noise (``z + 0.4 * e``, e standard
  normal), so the modalities are complementary, and through a strength knob per modality. Dominance and liking
  reach the signals only through their correlation with valence.
- **modality imbalance.** At the defaults the face cue (mouth curvature for valence, eye opening
  and brow height for arousal) is large and local: even a linear read-out of the raw pixels finds
  it, so it is learned fast. The EEG cue lives in band-power ratios over a 1/f background with
  random phases: a linear read-out of the raw samples is at chance, so it is learned slowly.
- **EEG** (µV): per channel a 1/f^beta background plus an alpha peak at the subject's individual
  alpha frequency, random phases; valence lowers left-frontal and raises right-frontal alpha power
  (frontal alpha asymmetry over Fp1/Fp2, AF3/AF4, F3/F4, F7/F8, FC5/FC6); arousal raises beta
  (13-30 Hz) and lowers theta (4-8 Hz) power over frontal-central sites.
- **EOG** (µV, hEOG and vEOG): blinks (vEOG bumps) and saccades (hEOG steps) over a slow drift;
  arousal raises the blink rate and the saccade amplitude.
- **face**: a drawn face per frame (uint8 RGB), with per-subject skin tone, face position and
  size, neutral expression and expressiveness, per-frame jitter and pixel noise.
- **eye features**: 8 latent oculomotor factors (pupil size and variability, fixation duration,
  saccade rate and amplitude, blink rate and duration, gaze dispersion), a few weakly driven by
  arousal and valence, mixed linearly into the 31 features.
- **subjects differ** in every modality (scaled by ``subject_offset``).
- **trial signature.** Every segment of a trial shares a pattern unrelated to the label (scaled by
  ``trial_signature``): an EEG spectral peak and spatial-spectral gain pattern, a mean gaze offset
  and saccade rate in the EOG, a colour tint and lighting gradient in the face frames and an
  offset vector in the eye features. A classifier that has seen other segments of a test trial
  (a segment-level, leaky split) scores clearly higher than one tested on unseen trials.

Every modality is drawn from its own random stream spawned from the seed, so changing a face knob
does not change the EEG, and the latent emotions and ratings depend only on the seed, the
data-set size and ``label_noise``.

The signal generators live in :mod:`cmkd.data.synthetic_signals`; this module is the loader: the
parameters, the latent emotions and ratings, and the in-memory and streamed writers.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy.special import ndtri

from cmkd.data.prepared import PreparedWriter, hash_params, write_prepared
from cmkd.data.synthetic_signals import (EEG_CHANNELS, EOG_CHANNELS, EYE_FEATURES, _eeg_subject, _eog_subject,
                                         _eye_all, _face_subject_chunks)
from cmkd.errors import ConfigError
from cmkd.params import Param, defaults_of, params_from_literals

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
# (generated data: prepare is (out, params, seed), no raw data to check, the size comes from the params)
LOADER = {"name": "synthetic", "prepare": "write_synthetic", "inspect": "cmkd.data.rawcheck:inspect_synthetic"}
GENERATOR_VERSION = 1
CONFIG_KEY = "datasets.synthetic.params"  # where the knobs live in config.yaml (error messages)

#: the generator's parameters (``datasets.<name>.params``) as Param literals; checked in full by merge_params
PARAMS: dict[str, Param] = params_from_literals({
    "n_subjects": {"default": 8, "kind": "int", "lo": 1, "doc": "subjects"}, "n_trials": {"default": 12, "kind": "int", "lo": 1, "doc": "trials per subject"},
    "segments_per_trial": {"default": 6, "kind": "int", "lo": 1, "doc": "segments cut from each trial"},
    "segment_seconds": {"default": 4.0, "lo": 1, "doc": "length of one segment (s)"},
    "eeg_channels": {"default": 32, "kind": "int", "lo": 32, "hi": 32, "doc": "fixed by the format (DEAP montage)"},
    "sampling_rate": {"default": 64, "lo": 32, "doc": "Hz, EEG and EOG; >= 64 keeps the whole beta band below Nyquist"},
    "face_frames": {"default": 2, "kind": "int", "lo": 1, "doc": "face frames per segment"}, "face_size": {"default": 32, "kind": "int", "lo": 16, "doc": "face side (pixels)"},
    "strength": {"default": {"eeg": 1.0, "face": 1.0, "eog": 1.0, "eye": 1.0}, "kind": "any", "doc": "emotion effect per modality (1: calibrated; 0: none)"},
    "label_noise": {"default": 0.15, "lo": 0, "hi": 1, "doc": "probability per trial and dimension that the rating is on the wrong side of 5"},
    "subject_offset": {"default": 1.0, "lo": 0, "doc": "scale of per-subject differences in every modality"},
    "trial_signature": {"default": 1.0, "lo": 0, "doc": "scale of the label-free trial-specific signature in every modality"},
    "noise": {"default": 1.0, "lo": 0, "doc": "scale of per-segment/per-frame noise in every modality"},
}, "synthetic")
DEFAULTS: dict[str, Any] = defaults_of(PARAMS)

_POSITIVE_INTS = ("n_subjects", "n_trials", "segments_per_trial", "face_frames", "face_size")
_NONNEG_FLOATS = ("subject_offset", "trial_signature", "noise")
_MODALITY_DISPLAY_NOISE = 0.4  # SD of each modality's own per-trial view of the latent emotion


# ----------------------------------------------------------------------------- parameters
def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def merge_params(params: Mapping[str, Any] | None, where: str = CONFIG_KEY) -> dict[str, Any]:
    """Merge ``params`` over :data:`DEFAULTS` and validate; raise :class:`ConfigError` naming the key.

    ``where`` is the config path of ``params``, used in error messages.
    """
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(params).__name__}")
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for key, value in params.items():
        if key not in DEFAULTS:
            raise ConfigError(f"{where}.{key}: unknown key (known: {sorted(DEFAULTS)})")
        if key == "strength":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.strength: expected a mapping of modality -> strength, "
                                  f"got {type(value).__name__}")
            for m, s in value.items():
                if m not in DEFAULTS["strength"]:
                    raise ConfigError(f"{where}.strength.{m}: unknown key (known: {sorted(DEFAULTS['strength'])})")
                merged["strength"][m] = s
        else:
            merged[key] = value

    for key in _POSITIVE_INTS:
        v = merged[key]
        if not (isinstance(v, numbers.Integral) and not isinstance(v, bool)) or v <= 0:
            raise ConfigError(f"{where}.{key}: must be a positive integer, got {v!r}")
        merged[key] = int(v)
    if merged["face_size"] < 16:
        raise ConfigError(f"{where}.face_size: must be at least 16 pixels to draw a face, got {merged['face_size']}")
    v = merged["eeg_channels"]
    if not (isinstance(v, numbers.Integral) and not isinstance(v, bool)) or v != len(EEG_CHANNELS):
        raise ConfigError(f"{where}.eeg_channels: must be {len(EEG_CHANNELS)} (the DEAP montage), got {v!r}")
    merged["eeg_channels"] = int(v)
    v = merged["sampling_rate"]
    if not _is_number(v) or not np.isfinite(v) or v < 32:
        raise ConfigError(f"{where}.sampling_rate: must be a number >= 32 Hz (so the alpha band, 8-13 Hz, "
                          f"lies below Nyquist; >= 64 Hz keeps the whole beta band, 13-30 Hz), got {v!r}")
    merged["sampling_rate"] = float(v) if not isinstance(v, numbers.Integral) else int(v)
    v = merged["segment_seconds"]
    if not _is_number(v) or not np.isfinite(v) or v < 1:
        raise ConfigError(f"{where}.segment_seconds: must be a number >= 1 s, got {v!r}")
    merged["segment_seconds"] = float(v)
    v = merged["label_noise"]
    if not _is_number(v) or not (0.0 <= v <= 1.0):
        raise ConfigError(f"{where}.label_noise: must be a probability in [0, 1], got {v!r}")
    merged["label_noise"] = float(v)
    for key in _NONNEG_FLOATS:
        v = merged[key]
        if not _is_number(v) or not np.isfinite(v) or v < 0:
            raise ConfigError(f"{where}.{key}: must be a finite number >= 0, got {v!r}")
        merged[key] = float(v)
    for m, v in merged["strength"].items():
        if not _is_number(v) or not np.isfinite(v) or v < 0:
            raise ConfigError(f"{where}.strength.{m}: must be a finite number >= 0, got {v!r}")
        merged["strength"][m] = float(v)
    return merged


def _check_seed(seed: Any) -> int:
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    return int(seed)


def _rng_streams(seed: int) -> dict[str, np.random.Generator]:
    names = ("latent", "eeg", "eog", "face", "eye")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {n: np.random.default_rng(c) for n, c in zip(names, children)}


# ----------------------------------------------------------------------------- latent and ratings
def _stratified_normal(rng: np.random.Generator, n_subjects: int, n_trials: int) -> np.ndarray:
    """Per subject, one standard-normal draw from each of ``n_trials`` equal-probability strata, shuffled."""
    perm = np.argsort(rng.random((n_subjects, n_trials)), axis=1)
    u = (perm + rng.random((n_subjects, n_trials))) / n_trials
    return ndtri(np.clip(u, 1e-6, 1 - 1e-6))


def _ratings(rng: np.random.Generator, z: np.ndarray, label_noise: float) -> np.ndarray:
    """1-9 ratings from latent z: side of 5 from sign(z) (flipped with ``label_noise``), noisy magnitude."""
    side = np.where(z > 0, 1.0, -1.0)
    flip = rng.random(z.shape) < label_noise
    side = np.where(flip, -side, side)
    mag = 0.125 + 1.6 * np.abs(z) * np.exp(0.25 * rng.standard_normal(z.shape))
    return np.clip(5.0 + side * mag, 1.0, 9.0)


# ----------------------------------------------------------------------------- public API
def _plan(params, seed, where):
    """Everything but the per-subject signals: merged parameters, random streams, ratings, index
    arrays, each modality's cues and the eye features (small: one row of 31 per segment)."""
    p = merge_params(params, where)
    seed = _check_seed(seed)
    S, K, G = p["n_subjects"], p["n_trials"], p["segments_per_trial"]
    T = int(round(p["sampling_rate"] * p["segment_seconds"]))
    p_int = dict(p, _T=T)
    rng = _rng_streams(seed)

    # latent emotion per trial (S, K) and reported ratings
    lat = rng["latent"]
    zv = _stratified_normal(lat, S, K)
    za = _stratified_normal(lat, S, K)
    zd = 0.5 * zv + np.sqrt(0.75) * lat.standard_normal((S, K))
    zl = 0.6 * zv + 0.8 * lat.standard_normal((S, K))
    latent = {"valence": zv, "arousal": za, "dominance": zd, "liking": zl}
    ratings = {k: _ratings(lat, z, p["label_noise"]) for k, z in latent.items()}

    subject = np.repeat(np.arange(S, dtype=np.int64), K * G)
    trial = np.tile(np.repeat(np.arange(K, dtype=np.int64), G), S)
    segment = np.tile(np.arange(G, dtype=np.int64), S * K)

    def cues(r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        # each modality's own noisy view of the latent valence and arousal (S, K)
        return (zv + _MODALITY_DISPLAY_NOISE * r.standard_normal((S, K)),
                za + _MODALITY_DISPLAY_NOISE * r.standard_normal((S, K)))

    small: dict[str, np.ndarray] = {"subject": subject, "trial": trial, "segment": segment}
    for k in ("valence", "arousal", "dominance", "liking"):
        small[k] = np.repeat(ratings[k].reshape(-1), G).astype(np.float32)
    # every modality has its own stream: drawing all cues first leaves each stream's order as it was
    cue = {m: cues(rng[m]) for m in ("eeg", "eog", "face", "eye")}
    v, a = cue["eye"]
    small["eye"] = _eye_all(rng["eye"], p_int, v.reshape(-1), a.reshape(-1), subject * K + trial, subject, S)

    n = S * K * G
    specs = {name: (arr.shape, arr.dtype) for name, arr in small.items()}
    specs["eeg"] = ((n, len(EEG_CHANNELS), T), np.dtype(np.float32))
    specs["eog"] = ((n, 2, T), np.dtype(np.float32))
    specs["face"] = ((n, p["face_frames"], 3, p["face_size"], p["face_size"]), np.dtype(np.uint8))

    meta = {
        "dataset": "synthetic",
        "synthetic": True,
        "sampling_rates": {"eeg": p["sampling_rate"], "eog": p["sampling_rate"]},
        "channels": {"eeg": list(EEG_CHANNELS), "eog": list(EOG_CHANNELS), "eye": list(EYE_FEATURES)},
        "segment_seconds": p["segment_seconds"],
        "generator": p,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "source_hash": hash_params({"params": p, "seed": seed, "generator_version": GENERATOR_VERSION}),
    }
    latent_meta = {"subject": np.repeat(np.arange(S), K), "trial": np.tile(np.arange(K), S),
                   **{k: z.reshape(-1) for k, z in latent.items()}}
    return {"p": p_int, "rng": rng, "cue": cue, "small": small, "specs": specs, "meta": meta, "latent": latent_meta}


def _signal_blocks(plan):
    """Yield ``(name, first_row, block)`` for the EEG, EOG and face arrays, one subject (face: one
    rendering chunk) at a time, in an order that keeps every modality's random stream as in a
    whole-array generation."""
    p, rng, cue = plan["p"], plan["rng"], plan["cue"]
    S, K, G = p["n_subjects"], p["n_trials"], p["segments_per_trial"]
    seg_trial_local = np.repeat(np.arange(K), G)  # trial index of each segment within a subject
    for s in range(S):
        r0 = s * K * G
        v, a = cue["eeg"]
        yield "eeg", r0, _eeg_subject(rng["eeg"], p, v[s], a[s], seg_trial_local)
        _, a = cue["eog"]
        yield "eog", r0, _eog_subject(rng["eog"], p, a[s], seg_trial_local)
        v, a = cue["face"]
        for s0, frames in _face_subject_chunks(rng["face"], p, v[s], a[s], seg_trial_local):
            yield "face", r0 + s0, frames


def generate(params: Mapping[str, Any] | None, seed: int,
             where: str = CONFIG_KEY) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Generate the data set in memory; return ``(arrays, meta)`` in the prepared format.

    ``meta`` holds what :func:`write_synthetic` writes to ``meta.json`` plus ``latent``: per-trial
    arrays (``subject``, ``trial``, latent ``valence``/``arousal``/``dominance``/``liking`` as
    standard-normal z scores), for analysis and tests only (it is not written). ``where`` is the
    config path of ``params``, used in error messages. Holds the whole data set in memory: large
    sets are written with :func:`write_synthetic`, which streams.
    """
    plan = _plan(params, seed, where)
    arrays = dict(plan["small"])
    for name in ("eeg", "eog", "face"):
        shape, dtype = plan["specs"][name]
        arrays[name] = np.empty(shape, dtype=dtype)
    for name, r0, block in _signal_blocks(plan):
        arrays[name][r0:r0 + len(block)] = block
    return arrays, {**plan["meta"], "latent": plan["latent"]}


def write_synthetic(out_dir: str | os.PathLike, params: Mapping[str, Any] | None, seed: int,
                    where: str = CONFIG_KEY) -> Path:
    """Generate the data set and write it as a prepared directory at ``out_dir``; return the path.

    Written block by block into memory-mapped ``.npy`` files (:class:`PreparedWriter`): peak memory
    is about one subject's signals (the face frames in chunks of about 64 MiB of working memory),
    whatever the number of subjects; the files and the content hash equal those of an in-memory
    generation (:func:`generate` + :func:`write_prepared`).
    """
    plan = _plan(params, seed, where)
    writer = PreparedWriter(out_dir, plan["specs"])
    try:
        for name, arr in plan["small"].items():
            writer.write(name, 0, arr)
        for name, r0, block in _signal_blocks(plan):
            writer.write(name, r0, block)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(plan["meta"])
