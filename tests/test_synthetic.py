"""The synthetic data set: format, determinism, config errors and the properties the benchmark relies on."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cmkd.data import synthetic as syn
from cmkd.data import synthetic_signals as sig
from cmkd.data.labels import binary
from cmkd.data.prepared import hash_arrays, hash_params, load_prepared, validate_arrays
from cmkd.data.splits import make_split
from cmkd.errors import ConfigError

# a larger data set with fewer segments per trial: more independent trials, so accuracies
# measured on it have a small standard error (about 0.03)
WIDE = {"n_subjects": 16, "n_trials": 20, "segments_per_trial": 3}
NO_EFFECT = {"strength": {"eeg": 0.0, "face": 0.0, "eog": 0.0, "eye": 0.0}}


@pytest.fixture(scope="module")
def default():
    return syn.generate({}, 0)


@pytest.fixture(scope="module")
def wide():
    return syn.generate(WIDE, 0)


# ----------------------------------------------------------------------------- simple features
def band_powers(eeg: np.ndarray, sr: float) -> np.ndarray:
    """Log band power (N, C, n_bands) over the generator's bands."""
    f = np.fft.rfftfreq(eeg.shape[-1], 1.0 / sr)
    p = np.abs(np.fft.rfft(eeg.astype(np.float64), axis=-1)) ** 2
    return np.stack([np.log(p[..., (f >= lo) & (f < hi)].mean(-1)) for lo, hi in sig.BANDS.values()], axis=-1)


def chan(names) -> list[int]:
    return [sig.EEG_CHANNELS.index(c) for c in names]


def frontal_alpha_asymmetry(eeg: np.ndarray, sr: float) -> np.ndarray:
    bp = band_powers(eeg, sr)[..., list(sig.BANDS).index("alpha")]
    return (bp[:, chan(sig.RIGHT_FRONTAL)] - bp[:, chan(sig.LEFT_FRONTAL)]).mean(axis=1)


def beta_theta(eeg: np.ndarray, sr: float) -> np.ndarray:
    bp = band_powers(eeg, sr)[:, chan(sig.FRONTAL_CENTRAL)]
    return (bp[..., list(sig.BANDS).index("beta")] - bp[..., list(sig.BANDS).index("theta")]).mean(axis=1)


def eog_features(eog: np.ndarray) -> np.ndarray:
    d = np.abs(np.diff(eog.astype(np.float64), axis=-1))
    v = eog[:, 1] - np.median(eog[:, 1], axis=-1, keepdims=True)
    return np.stack([eog.mean(-1)[:, 0], eog.mean(-1)[:, 1], np.log(eog.std(-1)[:, 0]), np.log(eog.std(-1)[:, 1]),
                     np.log(d.mean(-1)[:, 0]), np.log(d.mean(-1)[:, 1]), np.log(np.maximum(v.max(-1), 0) + 1.0)],
                    axis=1)


def features(arrays: dict, meta: dict) -> dict[str, np.ndarray]:
    sr = meta["sampling_rates"]["eeg"]
    n = len(arrays["subject"])
    face = arrays["face"].astype(np.float32).mean(axis=1)
    _, c, h, w = face.shape
    face = face.reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5)).reshape(n, -1)
    return {
        "eeg": band_powers(arrays["eeg"], sr).reshape(n, -1),
        "face": face,
        "eog": eog_features(arrays["eog"]),
        "eye": np.log(np.abs(arrays["eye"].astype(np.float64)) + 1e-3),
    }


def per_subject_standardise(x: np.ndarray, subject: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64).copy()
    for s in np.unique(subject):
        m = subject == s
        x[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-6)
    return x


def grouped_cv_accuracy(x, y, arrays, folds=5, c=0.01) -> float:
    """Accuracy over unseen trials (folds grouped by trial)."""
    groups = arrays["subject"] * 10_000 + arrays["trial"]
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return float(cross_val_score(clf, x, y, cv=GroupKFold(folds), groups=groups).mean())


def split_accuracy(x, y, arrays, kind, seeds=range(5)) -> float:
    """Test accuracy averaged over splits made by cmkd.data.splits (train on train + val)."""
    acc = []
    for seed in seeds:
        sp = make_split(arrays["subject"], arrays["trial"], seed, kind=kind)
        tr = np.concatenate([sp["train"], sp["val"]])
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        clf.fit(x[tr], y[tr])
        acc.append(float((clf.predict(x[sp["test"]]) == y[sp["test"]]).mean()))
    return float(np.mean(acc))


# ----------------------------------------------------------------------------- format
def test_shapes_dtypes_and_meta(default):
    arrays, meta = default
    p = syn.DEFAULTS
    n = p["n_subjects"] * p["n_trials"] * p["segments_per_trial"]
    t = int(round(p["sampling_rate"] * p["segment_seconds"]))
    assert validate_arrays(arrays) == n
    expected = {
        "subject": ((n,), np.int64), "trial": ((n,), np.int64), "segment": ((n,), np.int64),
        "valence": ((n,), np.float32), "arousal": ((n,), np.float32),
        "dominance": ((n,), np.float32), "liking": ((n,), np.float32),
        "eeg": ((n, 32, t), np.float32), "eog": ((n, 2, t), np.float32),
        "face": ((n, p["face_frames"], 3, p["face_size"], p["face_size"]), np.uint8),
        "eye": ((n, 31), np.float32),
    }
    assert set(arrays) == set(expected)
    for name, (shape, dtype) in expected.items():
        assert arrays[name].shape == shape, name
        assert arrays[name].dtype == dtype, name
        if arrays[name].dtype.kind == "f":
            assert np.isfinite(arrays[name]).all(), name
    # every (subject, trial, segment) once, segments numbered 0..G-1 within a trial
    keys = np.stack([arrays["subject"], arrays["trial"], arrays["segment"]], 1)
    assert len(np.unique(keys, axis=0)) == n
    assert set(np.unique(arrays["segment"])) == set(range(p["segments_per_trial"]))
    assert meta["dataset"] == "synthetic" and meta["synthetic"] is True
    assert meta["sampling_rates"] == {"eeg": p["sampling_rate"], "eog": p["sampling_rate"]}
    assert meta["channels"]["eeg"][:4] == ["Fp1", "AF3", "F3", "F7"] and len(meta["channels"]["eeg"]) == 32
    assert meta["channels"]["eeg"][-1] == "O2" and len(set(meta["channels"]["eeg"])) == 32
    assert meta["channels"]["eog"] == ["hEOG", "vEOG"]
    assert len(meta["channels"]["eye"]) == 31 == len(set(meta["channels"]["eye"]))
    # EEG amplitudes in a plausible µV range, EOG larger (blinks)
    assert 5 < arrays["eeg"].std() < 50
    assert arrays["eog"][:, 1].std() > arrays["eeg"].std()


def test_small_and_odd_sizes():
    arrays, meta = syn.generate({"n_subjects": 2, "n_trials": 3, "segments_per_trial": 1, "face_frames": 1,
                                 "face_size": 20, "sampling_rate": 128, "segment_seconds": 2.5}, 1)
    assert arrays["eeg"].shape == (6, 32, 320)
    assert arrays["face"].shape == (6, 1, 3, 20, 20)
    assert meta["sampling_rates"]["eeg"] == 128


def test_write_synthetic_round_trip(tmp_path):
    params = {"n_subjects": 2, "n_trials": 4, "segments_per_trial": 2}
    out = syn.write_synthetic(tmp_path / "synthetic", params, 5)
    prep = load_prepared(out)
    arrays, _ = syn.generate(params, 5)
    assert prep.data_hash == hash_arrays(arrays)
    for name in arrays:
        np.testing.assert_array_equal(prep[name], arrays[name])
    meta = json.loads((out / "meta.json").read_text())
    merged = syn.merge_params(params)
    assert meta["dataset"] == "synthetic" and meta["synthetic"] is True and meta["seed"] == 5
    assert meta["generator"] == merged
    assert meta["source_hash"] == hash_params({"params": merged, "seed": 5,
                                               "generator_version": syn.GENERATOR_VERSION})
    assert "latent" not in meta
    # the cache key changes with the seed and with the parameters
    other = syn.write_synthetic(tmp_path / "other", {**params, "label_noise": 0.2}, 5)
    assert load_prepared(other).meta["source_hash"] != meta["source_hash"]
    assert syn.generate(params, 6)[1]["source_hash"] != meta["source_hash"]


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_data_different_seed_different_data():
    params = {"n_subjects": 3, "n_trials": 4}
    a1, m1 = syn.generate(params, 7)
    a2, m2 = syn.generate(params, 7)
    a3, _ = syn.generate(params, 8)
    assert hash_arrays(a1) == hash_arrays(a2)
    assert m1["source_hash"] == m2["source_hash"]
    for name in ("valence", "arousal", "dominance", "liking", "eeg", "eog", "face", "eye"):
        assert not np.array_equal(a1[name], a3[name]), name


def test_modalities_use_independent_streams():
    # changing a face knob leaves the labels and the other modalities unchanged
    params = {"n_subjects": 2, "n_trials": 4}
    a, _ = syn.generate(params, 3)
    b, _ = syn.generate({**params, "face_size": 24, "strength": {"face": 0.5}}, 3)
    for name in ("valence", "arousal", "dominance", "liking", "eeg", "eog", "eye"):
        np.testing.assert_array_equal(a[name], b[name])
    assert b["face"].shape[-1] == 24


# ----------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("params, culprit", [
    ({"foo": 1}, "datasets.synthetic.params.foo: unknown key"),
    ({"strength": {"emg": 1.0}}, "datasets.synthetic.params.strength.emg: unknown key"),
    ({"strength": 1.0}, "datasets.synthetic.params.strength"),
    ({"n_subjects": 0}, "datasets.synthetic.params.n_subjects"),
    ({"n_trials": -3}, "datasets.synthetic.params.n_trials"),
    ({"segments_per_trial": 2.5}, "datasets.synthetic.params.segments_per_trial"),
    ({"face_frames": True}, "datasets.synthetic.params.face_frames"),
    ({"face_size": 8}, "datasets.synthetic.params.face_size"),
    ({"eeg_channels": 16}, "datasets.synthetic.params.eeg_channels"),
    ({"sampling_rate": 24}, "datasets.synthetic.params.sampling_rate"),
    ({"segment_seconds": 0}, "datasets.synthetic.params.segment_seconds"),
    ({"label_noise": 1.5}, "datasets.synthetic.params.label_noise"),
    ({"label_noise": -0.1}, "datasets.synthetic.params.label_noise"),
    ({"noise": -1}, "datasets.synthetic.params.noise"),
    ({"subject_offset": float("nan")}, "datasets.synthetic.params.subject_offset"),
    ({"trial_signature": "big"}, "datasets.synthetic.params.trial_signature"),
    ({"strength": {"eeg": -0.5}}, "datasets.synthetic.params.strength.eeg"),
])
def test_bad_params_name_the_key(params, culprit):
    with pytest.raises(ConfigError, match=culprit.replace(".", r"\.")):
        syn.generate(params, 0)


def test_error_names_the_config_path_given():
    with pytest.raises(ConfigError, match=r"datasets\.big_synth\.params\.foo: unknown key"):
        syn.generate({"foo": 1}, 0, where="datasets.big_synth.params")


def test_low_sampling_rate_keeps_alpha_asymmetry():
    # at 32 Hz (Nyquist 16 Hz) the alpha band is intact and the beta band is cut to 13-16 Hz
    arrays, meta = syn.generate({**WIDE, "sampling_rate": 32, "face_size": 16, "face_frames": 1}, 0)
    assert arrays["eeg"].shape[-1] == 128 and np.isfinite(arrays["eeg"]).all()
    assert stats.pearsonr(frontal_alpha_asymmetry(arrays["eeg"], 32), arrays["valence"])[0] > 0.15


def test_bad_seed_and_partial_strength():
    with pytest.raises(ConfigError, match="seed"):
        syn.generate({}, -1)
    merged = syn.merge_params({"strength": {"eeg": 0.3}})
    assert merged["strength"] == {**syn.DEFAULTS["strength"], "eeg": 0.3}
    assert syn.DEFAULTS["strength"]["eeg"] == 1.0  # defaults not mutated


# ----------------------------------------------------------------------------- labels
def test_ratings_range_constant_per_trial_and_balanced(default):
    arrays, meta = default
    g = syn.DEFAULTS["segments_per_trial"]
    for dim in ("valence", "arousal", "dominance", "liking"):
        r = arrays[dim]
        assert r.min() >= 1.0 and r.max() <= 9.0, dim
        assert not np.any(r == 5.0), dim
        per_trial = r.reshape(-1, g)
        assert (per_trial == per_trial[:, :1]).all(), dim
        high = float((per_trial[:, 0] > 5).mean())
        assert 0.3 <= high <= 0.7, (dim, high)
        assert per_trial[:, 0].std() > 1.0, dim  # spread over the scale, not bunched at 5
    # valence and arousal are balanced within each subject (stratified latent)
    v = arrays["valence"].reshape(syn.DEFAULTS["n_subjects"], -1)
    assert (np.abs((v > 5).mean(1) - 0.5) <= 0.35).all()
    # dominance and liking follow valence (latent correlations 0.5 and 0.6, weakened in the
    # ratings by the label noise)
    lat = meta["latent"]
    assert stats.pearsonr(lat["valence"], lat["liking"])[0] > 0.4
    assert stats.pearsonr(lat["valence"], lat["dominance"])[0] > 0.3
    assert stats.pearsonr(lat["valence"], lat["arousal"])[0] < 0.3
    assert stats.pearsonr(arrays["valence"][::g], arrays["liking"][::g])[0] > 0.1


@pytest.mark.parametrize("label_noise", [0.0, 0.15, 1.0])
def test_label_noise_flips_the_side_of_5(label_noise):
    arrays, meta = syn.generate({"n_subjects": 10, "n_trials": 20, "segments_per_trial": 1, "face_frames": 1,
                                 "face_size": 16, "label_noise": label_noise}, 4)
    lat = meta["latent"]
    wrong = np.concatenate([(arrays[d] > 5) != (lat[d] > 0) for d in ("valence", "arousal", "dominance", "liking")])
    if label_noise in (0.0, 1.0):
        assert wrong.mean() == label_noise
    else:
        assert abs(wrong.mean() - 0.15) < 0.04  # 800 draws: SD 0.013


# ----------------------------------------------------------------------------- leakage
def test_leaky_split_scores_clearly_higher_than_trial_split(default):
    arrays, meta = default
    x = features(arrays, meta)["eeg"]
    gaps = []
    for dim in ("valence", "arousal"):
        y = binary(arrays[dim])
        leaky, honest = split_accuracy(x, y, arrays, "leaky"), split_accuracy(x, y, arrays, "trial")
        gaps.append(leaky - honest)
        assert leaky - honest >= 0.10, (dim, leaky, honest)
    # the trial signature is what leaks: without it the gap mostly goes away
    arrays0, meta0 = syn.generate({"trial_signature": 0.0}, 0)
    x0 = features(arrays0, meta0)["eeg"]
    gaps0 = [split_accuracy(x0, binary(arrays0[d]), arrays0, "leaky")
             - split_accuracy(x0, binary(arrays0[d]), arrays0, "trial") for d in ("valence", "arousal")]
    assert np.mean(gaps0) < 0.5 * np.mean(gaps)


def test_trial_signature_is_shared_by_segments_of_a_trial(default):
    # segments of one trial are closer to each other than to other trials of the same subject
    arrays, meta = default
    for name, x in features(arrays, meta).items():
        x = per_subject_standardise(x, arrays["subject"])
        g = syn.DEFAULTS["segments_per_trial"]
        xt = x.reshape(-1, g, x.shape[1])
        within = ((xt - xt.mean(1, keepdims=True)) ** 2).sum(-1).mean()
        total = ((x - x.mean(0)) ** 2).sum(-1).mean()
        assert within < 0.85 * total, name


# ----------------------------------------------------------------------------- information per modality
MODALITY_DIMS = [("eeg", "valence"), ("eeg", "arousal"), ("face", "valence"), ("face", "arousal"),
                 ("eog", "arousal"), ("eye", "valence"), ("eye", "arousal")]


@pytest.fixture(scope="module")
def wide_accuracies(wide):
    arrays, meta = wide
    none, none_meta = syn.generate({**WIDE, **NO_EFFECT}, 0)
    out = {}
    for (arr, met), tag in (((arrays, meta), "on"), ((none, none_meta), "off")):
        feats = features(arr, met)
        for mod, dim in MODALITY_DIMS:
            x = per_subject_standardise(feats[mod], arr["subject"])
            out[tag, mod, dim] = grouped_cv_accuracy(x, binary(arr[dim]), arr)
    return out


@pytest.mark.parametrize("mod, dim", MODALITY_DIMS)
def test_each_modality_carries_label_information(wide_accuracies, mod, dim):
    on, off = wide_accuracies["on", mod, dim], wide_accuracies["off", mod, dim]
    assert on >= 0.57, (mod, dim, on)
    assert on - off >= 0.05, (mod, dim, on, off)


def test_no_modality_carries_all_of_the_label(wide_accuracies):
    # label noise (15 %) and each modality's own display noise keep every modality well below 1
    assert max(v for k, v in wide_accuracies.items() if k[0] == "on") < 0.8


def test_face_cue_is_easy_eeg_cue_is_subtle(wide):
    # a linear read-out of raw inputs finds the face cue but not the EEG cue (which lives in band
    # power under random phases): the face is the fast-learned modality
    arrays, _ = wide
    n = len(arrays["subject"])
    y = binary(arrays["valence"])
    face = per_subject_standardise(arrays["face"].reshape(n, -1), arrays["subject"])
    eeg = arrays["eeg"][:, :, ::4].reshape(n, -1)
    acc_face, acc_eeg = grouped_cv_accuracy(face, y, arrays), grouped_cv_accuracy(eeg, y, arrays)
    assert acc_face >= acc_eeg + 0.08, (acc_face, acc_eeg)
    assert acc_eeg < 0.57


# ----------------------------------------------------------------------------- physiology
def test_frontal_alpha_asymmetry_follows_valence(wide):
    arrays, meta = wide
    sr = meta["sampling_rates"]["eeg"]
    r_v = stats.pearsonr(frontal_alpha_asymmetry(arrays["eeg"], sr), arrays["valence"])[0]
    r_a = stats.pearsonr(frontal_alpha_asymmetry(arrays["eeg"], sr), arrays["arousal"])[0]
    assert r_v > 0.15 and abs(r_a) < 0.1, (r_v, r_a)
    # and disappears without the EEG effect
    none, _ = syn.generate({**WIDE, "strength": {"eeg": 0.0}}, 0)
    assert abs(stats.pearsonr(frontal_alpha_asymmetry(none["eeg"], sr), none["valence"])[0]) < 0.1


def test_beta_theta_ratio_follows_arousal(wide):
    arrays, meta = wide
    sr = meta["sampling_rates"]["eeg"]
    assert stats.pearsonr(beta_theta(arrays["eeg"], sr), arrays["arousal"])[0] > 0.15


def test_eeg_has_a_pink_spectrum_with_an_alpha_peak(default):
    arrays, meta = default
    sr = meta["sampling_rates"]["eeg"]
    f = np.fft.rfftfreq(arrays["eeg"].shape[-1], 1.0 / sr)
    p = (np.abs(np.fft.rfft(arrays["eeg"][:, chan(sig.POSTERIOR)].astype(np.float64), axis=-1)) ** 2).mean((0, 1))
    slope = np.polyfit(np.log(f[(f >= 2) & (f <= 30)]), np.log(p[(f >= 2) & (f <= 30)]), 1)[0]
    assert -2.5 < slope < -0.5  # 1/f^beta background
    alpha = p[(f >= 8) & (f <= 12)].mean()
    flank = np.sqrt(p[(f >= 5) & (f <= 6.5)].mean() * p[(f >= 14) & (f <= 16)].mean())
    assert alpha > 1.5 * flank  # an alpha peak over the background


def test_eog_blinks_and_saccades_follow_arousal(wide):
    arrays, _ = wide
    v = arrays["eog"][:, 1].astype(np.float64)
    h = arrays["eog"][:, 0].astype(np.float64)
    # blinks: large positive vEOG bumps; saccades: steps in hEOG
    assert (v - np.median(v, axis=1, keepdims=True)).max() > 80
    blink_activity = np.abs(np.diff(v, axis=1)).mean(1)
    saccade_activity = np.abs(np.diff(h, axis=1)).max(1)
    assert stats.spearmanr(blink_activity, arrays["arousal"])[0] > 0.1
    assert stats.spearmanr(saccade_activity, arrays["arousal"])[0] > 0.05


def test_eye_features_pupil_follows_arousal(wide):
    arrays, meta = wide
    pupil = arrays["eye"][:, meta["channels"]["eye"].index("pupil_x_mean")]
    assert stats.spearmanr(pupil, arrays["arousal"])[0] > 0.1
    names = meta["channels"]["eye"]
    positive = [i for i, n in enumerate(names) if "_de_" not in n]
    assert (arrays["eye"][:, positive] > 0).all()


def test_face_mouth_and_eyes_follow_the_label():
    # with no noise and no subject or trial variation, faces of high- and low-valence trials differ
    # in the mouth region and faces of high- and low-arousal trials in the eye region
    params = {"n_subjects": 1, "n_trials": 120, "segments_per_trial": 1, "face_frames": 1,
              "subject_offset": 0.0, "trial_signature": 0.0, "noise": 0.0}
    arrays, _ = syn.generate(params, 2)
    img = arrays["face"][:, 0].astype(np.float64).mean(1)  # (N, H, W) grey
    s = img.shape[-1]
    diff_v = np.abs(img[arrays["valence"] > 5].mean(0) - img[arrays["valence"] <= 5].mean(0))
    diff_a = np.abs(img[arrays["arousal"] > 5].mean(0) - img[arrays["arousal"] <= 5].mean(0))
    mouth = (slice(int(0.6 * s), int(0.85 * s)), slice(int(0.3 * s), int(0.7 * s)))
    eyes = (slice(int(0.2 * s), int(0.45 * s)), slice(int(0.2 * s), int(0.8 * s)))
    assert diff_v[mouth].mean() > 2 * diff_a[mouth].mean() and diff_v[mouth].max() > 20
    assert diff_a[eyes].mean() > 2 * diff_v[eyes].mean() and diff_a[eyes].max() > 20


# ----------------------------------------------------------------------------- subjects differ
def test_subjects_differ_in_every_modality(default):
    arrays, meta = default
    subj = arrays["subject"]
    same, _ = syn.generate({"subject_offset": 0.0}, 0)
    for name, x in features(arrays, meta).items():
        x0 = features(same, meta)[name]
        acc = grouped_cv_accuracy(x, subj, arrays, c=1.0)
        acc0 = grouped_cv_accuracy(x0, subj, same, c=1.0)
        assert acc > 0.3 and acc > acc0 + 0.15, (name, acc, acc0)  # chance is 1/8
