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
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy.special import ndtri

from cmkd.data.prepared import PreparedWriter, hash_params, write_prepared
from cmkd.errors import ConfigError
from cmkd.params import Param, defaults_of, params_from_literals

# what the package tables hold about this loader: read by cmkd.data with ast, without importing this module
# (generated data: prepare is (out, params, seed), no raw data to check, the size comes from the params)
LOADER = {"name": "synthetic", "prepare": "write_synthetic", "inspect": None}
GENERATOR_VERSION = 1
CONFIG_KEY = "datasets.synthetic.params"  # where the knobs live in config.yaml (error messages)

EEG_CHANNELS = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)
EOG_CHANNELS = ("hEOG", "vEOG")
# SEED-IV-style eye-movement features (its list has 33 names for 31 values; the two event
# statistics that repeat the saccade means, saccade duration/amplitude average, are left out).
EYE_FEATURES = (
    "pupil_x_mean", "pupil_x_std", "pupil_x_de_0_0.2hz", "pupil_x_de_0.2_0.4hz",
    "pupil_x_de_0.4_0.6hz", "pupil_x_de_0.6_1hz",
    "pupil_y_mean", "pupil_y_std", "pupil_y_de_0_0.2hz", "pupil_y_de_0.2_0.4hz",
    "pupil_y_de_0.4_0.6hz", "pupil_y_de_0.6_1hz",
    "dispersion_x_mean", "dispersion_x_std", "dispersion_y_mean", "dispersion_y_std",
    "fixation_duration_mean", "fixation_duration_std",
    "blink_duration_mean", "blink_duration_std",
    "saccade_duration_mean", "saccade_duration_std", "saccade_amplitude_mean", "saccade_amplitude_std",
    "blink_frequency", "fixation_frequency", "fixation_duration_max", "fixation_dispersion_total",
    "fixation_dispersion_max", "saccade_frequency", "saccade_latency_mean",
)

LEFT_FRONTAL = ("Fp1", "AF3", "F3", "F7", "FC5")
RIGHT_FRONTAL = ("Fp2", "AF4", "F4", "F8", "FC6")
FRONTAL_CENTRAL = ("F3", "Fz", "F4", "FC1", "FC2", "FC5", "FC6", "C3", "Cz", "C4")
POSTERIOR = ("P3", "P7", "PO3", "O1", "Oz", "Pz", "P4", "P8", "PO4", "O2")

#: EEG bands (Hz) in which band-power gains act. Below 64 Hz sampling the beta band is cut at Nyquist
#: (at 32 Hz it spans 13-16 Hz): the arousal effect then acts on what remains of it.
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}

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


def _idx(names: tuple[str, ...]) -> np.ndarray:
    return np.array([EEG_CHANNELS.index(n) for n in names], dtype=np.int64)


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


# ----------------------------------------------------------------------------- EEG
def _band_weights(f: np.ndarray) -> np.ndarray:
    """Soft band windows (n_bands, n_freqs) so that band gains do not produce spectral edges."""
    w = []
    for lo, hi in BANDS.values():
        w.append(1.0 / (1 + np.exp(-(f - lo) / 0.5)) * 1.0 / (1 + np.exp((f - hi) / 0.5)))
    return np.stack(w)


def _eeg_subject(rng, p, v_cue, a_cue, seg_trial):
    """EEG for one subject: v_cue, a_cue (K,) per trial, seg_trial (n,) trial index of each segment."""
    sr, T = p["sampling_rate"], p["_T"]
    so, ts, nz, st = p["subject_offset"], p["trial_signature"], p["noise"], p["strength"]["eeg"]
    C, K, n = len(EEG_CHANNELS), len(v_cue), len(seg_trial)
    f = np.fft.rfftfreq(T, 1.0 / sr)
    nyq = sr / 2.0
    wb = _band_weights(f)  # (B, F)
    ib = {b: i for i, b in enumerate(BANDS)}

    # subject: 1/f exponent, individual alpha frequency, channel x band gains, baseline asymmetry
    expo = 1.5 + 0.2 * so * rng.standard_normal()
    iaf = float(np.clip(10.0 + 0.8 * so * rng.standard_normal(), 8.5, 12.0))
    g_subj = 0.3 * so * rng.standard_normal((C, len(BANDS)))
    faa_subj = 0.3 * so * rng.standard_normal()
    g_subj[_idx(LEFT_FRONTAL), ib["alpha"]] += faa_subj
    g_subj[_idx(RIGHT_FRONTAL), ib["alpha"]] -= faa_subj
    bg = 1.0 / (f + 1.0) ** expo
    bg[0] = 0.0
    alpha_spatial = np.full(C, 1.5)
    alpha_spatial[_idx(POSTERIOR)] = 4.0
    alpha_peak = np.exp(-0.5 * ((f - iaf) / 1.0) ** 2) * (1.0 / (iaf + 1.0) ** expo)
    base = bg[None, :] + alpha_spatial[:, None] * alpha_peak[None, :]  # (C, F)

    # trial signature: a spectral peak with its own spatial pattern + a channel x band gain pattern
    t_freq = rng.uniform(4.0, min(28.0, nyq - 2.0), size=K)
    t_spatial = np.exp(0.7 * rng.standard_normal((K, C)))
    g_trial = 0.3 * ts * rng.standard_normal((K, C, len(BANDS)))
    t_peak = np.exp(-0.5 * ((f[None, :] - t_freq[:, None]) / 1.0) ** 2) / (t_freq[:, None] + 1.0) ** expo  # (K, F)

    # emotion effects (log power): frontal alpha asymmetry <- valence, beta/theta <- arousal
    g_emo = np.zeros((K, C, len(BANDS)))
    kv, ka = 0.18 * st, 0.18 * st
    g_emo[:, _idx(LEFT_FRONTAL), ib["alpha"]] -= kv * v_cue[:, None]
    g_emo[:, _idx(RIGHT_FRONTAL), ib["alpha"]] += kv * v_cue[:, None]
    g_emo[:, _idx(FRONTAL_CENTRAL), ib["beta"]] += ka * a_cue[:, None]
    g_emo[:, _idx(FRONTAL_CENTRAL), ib["theta"]] -= ka * a_cue[:, None]

    g_seg = 0.15 * nz * rng.standard_normal((n, C, len(BANDS)))
    g = g_subj[None] + g_trial[seg_trial] + g_emo[seg_trial] + g_seg  # (n, C, B)
    loggain = np.einsum("ncb,bf->ncf", g, wb)
    P = base[None] * np.exp(loggain)
    P += (1.5 * ts) * t_spatial[seg_trial][:, :, None] * t_peak[seg_trial][:, None, :]
    P[..., 0] = 0.0

    # random phases and Rayleigh amplitudes; scale so the background has an SD of about 15 µV
    norm = 15.0 * T / np.sqrt(2.0 * base.mean(axis=0).sum())
    coef = np.sqrt(P / 2.0) * (rng.standard_normal(P.shape) + 1j * rng.standard_normal(P.shape)) * norm
    x = np.fft.irfft(coef, n=T, axis=-1)
    x += 1.5 * nz * rng.standard_normal(x.shape)
    return x.astype(np.float32)


# ----------------------------------------------------------------------------- EOG
def _eog_subject(rng, p, a_cue, seg_trial):
    sr, T, sec = p["sampling_rate"], p["_T"], p["segment_seconds"]
    so, ts, nz, st = p["subject_offset"], p["trial_signature"], p["noise"], p["strength"]["eog"]
    K, n = len(a_cue), len(seg_trial)
    t = np.arange(T) / sr

    blink_amp = 150.0 * np.exp(0.4 * so * rng.standard_normal())
    blink_rate = 0.25 * np.exp(0.3 * so * rng.standard_normal())  # per s (15 per minute)
    blink_width = 0.07 * np.exp(0.25 * so * rng.standard_normal())  # s
    sacc_gain = 12.0 * np.exp(0.4 * so * rng.standard_normal())  # µV per degree
    sacc_rate = 0.75 * np.exp(0.3 * so * rng.standard_normal())
    dc_subj = 50.0 * so * rng.standard_normal(2)

    # trial signature: mean gaze position (DC) and saccade-rate factor of the stimulus
    dc_trial = 40.0 * ts * rng.standard_normal((K, 2))
    sacc_rate_trial = np.exp(0.4 * ts * rng.standard_normal(K))
    # arousal: more blinks and larger saccades
    blink_lam = blink_rate * sec * np.exp(0.6 * st * a_cue)[seg_trial]
    sacc_lam = sacc_rate * sec * sacc_rate_trial[seg_trial]
    sacc_scale = np.exp(0.35 * st * a_cue)[seg_trial]

    x = np.zeros((n, 2, T))
    nb = rng.poisson(blink_lam)
    for k in range(int(nb.max(initial=0))):
        on = (k < nb)[:, None]
        t0 = rng.uniform(-0.1, sec + 0.1, size=n)[:, None]
        amp = blink_amp * np.exp(0.15 * rng.standard_normal(n))[:, None]
        bump = np.exp(-0.5 * ((t[None, :] - t0) / blink_width) ** 2)
        x[:, 1] += on * amp * bump
        x[:, 0] += on * 0.05 * amp * bump
    ns = rng.poisson(sacc_lam)
    for k in range(int(ns.max(initial=0))):
        on = (k < ns)[:, None]
        t0 = rng.uniform(0.0, sec, size=n)[:, None]
        deg = np.exp(np.log(5.0) + 0.5 * rng.standard_normal(n)) * sacc_scale
        theta = 0.35 * rng.standard_normal(n) + np.where(rng.random(n) < 0.5, 0.0, np.pi)  # mostly horizontal
        step = 1.0 / (1.0 + np.exp(-(t[None, :] - t0) / 0.012))
        x[:, 0] += on * (sacc_gain * deg * np.cos(theta))[:, None] * step
        x[:, 1] += on * (sacc_gain * deg * np.sin(theta))[:, None] * step
    # slow drift (1/f^2) and sensor noise
    f = np.fft.rfftfreq(T, 1.0 / sr)
    amp = np.zeros_like(f)
    amp[1:] = 1.0 / f[1:]
    drift = np.fft.irfft(amp * (rng.standard_normal((n, 2, len(f))) + 1j * rng.standard_normal((n, 2, len(f)))),
                         n=T, axis=-1)
    drift *= 8.0 * nz / max(drift.std(), 1e-12)
    x += drift + 3.0 * nz * rng.standard_normal(x.shape)
    x += (dc_subj[None, :] + dc_trial[seg_trial])[:, :, None]
    return x.astype(np.float32)


# ----------------------------------------------------------------------------- face
def _soft(d: np.ndarray) -> np.ndarray:
    """Anti-aliased inside-ness from a signed distance in pixels (positive inside)."""
    return np.clip(0.5 + d, 0.0, 1.0)


#: float64 working memory per face pixel of one frame while rendering (the image, its noise and
#: about ten per-pixel masks and coordinates); sets how many segments one rendering chunk holds.
_FACE_BYTES_PER_PIXEL = 160
_FACE_CHUNK_BYTES = 64 * 2**20


def _face_chunk_segments(p) -> int:
    """Segments per rendering chunk: about :data:`_FACE_CHUNK_BYTES` of working memory, at least one."""
    per_segment = p["face_frames"] * p["face_size"] ** 2 * _FACE_BYTES_PER_PIXEL
    return max(1, _FACE_CHUNK_BYTES // per_segment)


def _face_subject_chunks(rng, p, v_cue, a_cue, seg_trial, chunk_segments: int | None = None):
    """Face frames of one subject, rendered ``chunk_segments`` segments at a time.

    Yields ``(first_segment, frames)`` with frames uint8 (k, F, 3, S, S). Every random draw of the
    subject (appearance, trial signature, per-frame expression and jitter) is made first; only the
    per-pixel noise is drawn chunk by chunk, in frame order, which gives the same numbers as one
    draw for the whole subject (a generator's normal stream does not depend on how it is cut), and
    every pixel depends only on its own frame: the frames equal those of a single whole-subject
    rendering, bit for bit, whatever the chunk size.
    """
    S, Fr = p["face_size"], p["face_frames"]
    so, ts, nz, st = p["subject_offset"], p["trial_signature"], p["noise"], p["strength"]["face"]
    K, n = len(v_cue), len(seg_trial)
    M = n * Fr
    frame_trial_all = np.repeat(seg_trial, Fr)

    # subject appearance and neutral expression
    tone = float(np.clip(0.5 + so * (rng.random() - 0.5), 0.0, 1.0))  # 0 light .. 1 dark
    skin = (1 - tone) * np.array([235.0, 200.0, 170.0]) + tone * np.array([120.0, 80.0, 55.0])
    skin = skin + 8.0 * so * rng.standard_normal(3)
    bg_subj = np.full(3, 128.0) + 30.0 * so * rng.standard_normal(3)
    cx0 = S / 2 + 0.03 * S * so * rng.standard_normal()
    cy0 = S / 2 + 0.03 * S * so * rng.standard_normal()
    r0 = 0.34 * S * np.exp(0.05 * so * rng.standard_normal())
    aspect = 1.2 * np.exp(0.05 * so * rng.standard_normal())
    mouth0 = 0.2 * so * rng.standard_normal()
    eye0 = 0.15 * so * rng.standard_normal()
    brow0 = 0.2 * so * rng.standard_normal()
    expressive = np.exp(0.2 * so * rng.standard_normal())

    # trial signature: background tint, whole-image colour cast, lighting gradient
    bg_tint = 25.0 * ts * rng.standard_normal((K, 3))
    cast = 6.0 * ts * rng.standard_normal((K, 3))
    light_dir = rng.uniform(0, 2 * np.pi, size=K)
    light_amp = 0.08 * ts * rng.random(K)

    # expression per frame: trial cue + per-frame jitter
    gain = st * expressive
    curv_all = mouth0 + gain * 1.0 * v_cue[frame_trial_all] + 0.2 * nz * rng.standard_normal(M)
    eye_open_all = np.clip(np.exp(eye0 + gain * 0.5 * a_cue[frame_trial_all] + 0.1 * nz * rng.standard_normal(M)), 0.2, 2.5)
    brow_all = brow0 + gain * 1.0 * a_cue[frame_trial_all] + 0.2 * nz * rng.standard_normal(M)
    brow_tilt_all = gain * 0.4 * v_cue[frame_trial_all]
    cx_all = cx0 + 0.6 * nz * rng.standard_normal(M)
    cy_all = cy0 + 0.6 * nz * rng.standard_normal(M)
    rx_all = r0 * np.exp(0.02 * nz * rng.standard_normal(M))

    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64) + 0.5
    step = chunk_segments or _face_chunk_segments(p)
    for s0 in range(0, n, step):
        sl = slice(s0 * Fr, min(n, s0 + step) * Fr)
        m_frames = sl.stop - sl.start
        frame_trial = frame_trial_all[sl]
        curv, eye_open, brow, brow_tilt = curv_all[sl], eye_open_all[sl], brow_all[sl], brow_tilt_all[sl]
        cx, cy, rx = cx_all[sl], cy_all[sl], rx_all[sl]
        ry = rx * aspect

        X = xx[None] - cx[:, None, None]  # (m, S, S), face-centred coordinates
        Y = yy[None] - cy[:, None, None]
        rx_, ry_ = rx[:, None, None], ry[:, None, None]

        # face: ellipse, signed distance approximated in pixels
        q = np.sqrt((X / rx_) ** 2 + (Y / ry_) ** 2)
        face = _soft((1.0 - q) * rx_)
        # eyes: two ellipses whose height follows eye opening
        eyes = np.zeros_like(face)
        ey = -0.2 * ry_
        eh = 0.10 * ry_ * eye_open[:, None, None]
        ew = 0.16 * rx_
        for sgn in (-1.0, 1.0):
            ex = sgn * 0.38 * rx_
            qe = np.sqrt(((X - ex) / ew) ** 2 + ((Y - ey) / eh) ** 2)
            eyes = np.maximum(eyes, _soft((1.0 - qe) * np.minimum(ew, eh) * 1.5))
        # brows: short lines above the eyes; height <- arousal, inner-end tilt <- valence
        brows = np.zeros_like(face)
        for sgn in (-1.0, 1.0):
            ex = sgn * 0.38 * rx_
            u = (X - ex) / (0.2 * rx_)  # -1..1 along the brow
            inner = -sgn * u  # +1 at the inner end
            yb = ey - (0.22 + 0.06 * brow[:, None, None]) * ry_ - 0.05 * ry_ * brow_tilt[:, None, None] * inner
            d = np.minimum(0.6 - np.abs(Y - yb), (1.0 - np.abs(u)) * 0.2 * rx_)
            brows = np.maximum(brows, _soft(d))
        # mouth: a parabola whose curvature follows valence (smile: corners above the centre)
        u = X / (0.42 * rx_)
        ym = 0.45 * ry_ + 0.3 * ry_ * curv[:, None, None] * (1.0 - u ** 2 - 0.5)
        d = np.minimum(0.9 - np.abs(Y - ym), (1.0 - np.abs(u)) * 0.42 * rx_)
        mouth = _soft(d)

        bg = bg_subj[None] + bg_tint[frame_trial]  # (m, 3)
        img = bg[:, :, None, None] * (1 - face[:, None]) + skin[None, :, None, None] * face[:, None]
        for mask, col in ((eyes, (35.0, 30.0, 30.0)), (brows, (60.0, 40.0, 30.0)), (mouth, (150.0, 40.0, 50.0))):
            m = (mask * face)[:, None]
            img = img * (1 - m) + np.array(col)[None, :, None, None] * m
        lx = np.cos(light_dir)[frame_trial][:, None, None] * (xx[None] / S - 0.5)
        ly = np.sin(light_dir)[frame_trial][:, None, None] * (yy[None] / S - 0.5)
        img = img * (1.0 + 2.0 * light_amp[frame_trial][:, None, None] * (lx + ly))[:, None]
        img += cast[frame_trial][:, :, None, None]
        img += 6.0 * nz * rng.standard_normal(img.shape)
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        yield s0, img.reshape(m_frames // Fr, Fr, 3, S, S)


def _face_subject(rng, p, v_cue, a_cue, seg_trial):
    """Face frames of one subject, uint8 (n, F, 3, S, S) (all chunks of :func:`_face_subject_chunks`)."""
    return np.concatenate([c for _, c in _face_subject_chunks(rng, p, v_cue, a_cue, seg_trial)])


# ----------------------------------------------------------------------------- eye features
# factor order: pupil size, pupil variability, fixation duration, saccade rate, saccade amplitude,
# blink rate, blink duration, gaze dispersion. Columns: effect of (valence, arousal) per unit strength.
_EYE_EFFECT = np.array([
    [-0.2, 0.6],   # pupil dilates with arousal (slightly more for negative valence)
    [0.0, 0.4],
    [0.2, -0.4],   # shorter fixations when aroused
    [0.0, 0.4],
    [0.3, 0.2],
    [0.0, 0.4],
    [0.0, -0.3],
    [0.4, 0.0],    # wider exploration for positive valence
])
# primary factor of each of the 31 features (in EYE_FEATURES order)
_EYE_PRIMARY = np.array([0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 6, 6, 4, 4, 4, 4,
                         5, 2, 2, 7, 7, 3, 3])
# (location, scale, positive?) per feature: positive quantities are log-normal, DE features normal
_EYE_UNITS = np.array([
    (3.5, 0.12, 1), (0.15, 0.25, 1), (-1.0, 0.5, 0), (-2.0, 0.5, 0), (-2.5, 0.5, 0), (-3.0, 0.5, 0),
    (3.4, 0.12, 1), (0.14, 0.25, 1), (-1.1, 0.5, 0), (-2.1, 0.5, 0), (-2.6, 0.5, 0), (-3.1, 0.5, 0),
    (1.2, 0.25, 1), (0.4, 0.25, 1), (0.9, 0.25, 1), (0.3, 0.25, 1),
    (280.0, 0.2, 1), (120.0, 0.25, 1), (150.0, 0.2, 1), (40.0, 0.25, 1),
    (45.0, 0.2, 1), (15.0, 0.25, 1), (5.0, 0.25, 1), (2.5, 0.3, 1),
    (0.3, 0.3, 1), (2.8, 0.2, 1), (700.0, 0.25, 1), (6.0, 0.25, 1), (1.8, 0.25, 1), (2.5, 0.25, 1),
    (210.0, 0.2, 1),
])


def _eye_all(rng, p, v_cue, a_cue, seg_trial, seg_subject, n_subjects):
    so, ts, nz, st = p["subject_offset"], p["trial_signature"], p["noise"], p["strength"]["eye"]
    n, K, D, nf = len(seg_trial), len(v_cue), len(EYE_FEATURES), _EYE_EFFECT.shape[0]
    loading = np.zeros((D, nf))
    loading[np.arange(D), _EYE_PRIMARY] = 1.0
    loading += 0.15 * rng.standard_normal((D, nf))  # small cross-loadings: a linear-ish mixture
    f_subj = 0.7 * so * rng.standard_normal((n_subjects, nf))
    f_trial = 0.5 * ts * rng.standard_normal((K, nf))
    x_trial = 0.6 * ts * rng.standard_normal((K, D))  # trial offset vector in feature space
    f_emo = st * (np.stack([v_cue, a_cue], axis=1) @ _EYE_EFFECT.T)  # (K, nf)
    f = f_subj[seg_subject] + f_trial[seg_trial] + f_emo[seg_trial] + 0.5 * nz * rng.standard_normal((n, nf))
    xs = f @ loading.T + x_trial[seg_trial] + 0.4 * nz * rng.standard_normal((n, D))
    loc, scale, pos = _EYE_UNITS[:, 0], _EYE_UNITS[:, 1], _EYE_UNITS[:, 2].astype(bool)
    out = np.where(pos, loc * np.exp(scale * xs), loc + scale * xs)
    return out.astype(np.float32)


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
