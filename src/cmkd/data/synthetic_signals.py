"""The signal generators of the synthetic data set (:mod:`cmkd.data.synthetic`, whose docstring
describes what each modality carries): EEG (1/f background, alpha peak, band-power gains), EOG
(blinks, saccades, drift), face frames (drawn faces, rendered in chunks) and eye features (latent
oculomotor factors mixed into the 31 SEED-IV-style features), one subject at a time, each from its
own random stream. The montage, bands and feature names are declared here."""
from __future__ import annotations

import numpy as np

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


def _idx(names: tuple[str, ...]) -> np.ndarray:
    return np.array([EEG_CHANNELS.index(n) for n in names], dtype=np.int64)


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
