"""Raw-data loaders (DEAP, MAHNOB-HCI, SEED-IV) on small files written in the real formats."""
from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cmkd.data import video as vid
from cmkd.data.cache import BlockStager, is_fresh
from cmkd.data.deap import EEG_CHANNELS as DEAP_EEG, prepare_deap, read_deap_file
from cmkd.data.mahnob import prepare_mahnob
from cmkd.data.prepared import load_prepared
from cmkd.data.seed_iv import SESSION_LABELS, prepare_seed_iv
from cmkd.errors import ConfigError, DataError

try:
    from tests import fixtures as fx
except ImportError:  # pytest run with tests/ (not the repository root) on sys.path
    import fixtures as fx

GB = 1024 ** 3


def peak_freq(x: np.ndarray, sfreq: float) -> np.ndarray:
    """Frequency (Hz) of the largest non-DC FFT bin along the last axis."""
    spec = np.abs(np.fft.rfft(x - x.mean(axis=-1, keepdims=True), axis=-1))
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sfreq)
    return freqs[spec.argmax(axis=-1)]


def meta_of(path: Path) -> dict:
    return json.loads((Path(path) / "meta.json").read_text())


def no_leftovers(parent: Path, name: str) -> bool:
    """Neither the output nor a temporary/staging sibling of it remains."""
    return not any(p.name == name or p.name.startswith(f".{name}.") for p in parent.iterdir()) \
        if parent.exists() else True


# ------------------------------------------------------------------------------------- DEAP ----
@pytest.fixture(scope="module")
def deap_full(tmp_path_factory) -> Path:
    """One subject at the full DEAP shape (40, 40, 8064)."""
    return fx.write_deap(tmp_path_factory.mktemp("deap_full"), subjects=(1,), n_trials=40)


@pytest.fixture(scope="module")
def deap_full_prepared(deap_full, tmp_path_factory) -> Path:
    return prepare_deap(deap_full, tmp_path_factory.mktemp("prep") / "deap", {"modalities": ["eeg", "eog"]})


@pytest.fixture(scope="module")
def deap_face_root(tmp_path_factory) -> Path:
    """Subjects 1-3 x 3 trials; videos: s01 all trials, s02 none, s03 presentation trials 1-2."""
    root = fx.write_deap(tmp_path_factory.mktemp("deap_face"), subjects=(1, 2, 3), n_trials=3)
    fx.write_deap_video(root, subjects=(1,), n_trials=3)
    fx.write_deap_video(root, subjects=(3,), n_trials=3, trials=(1, 2))
    return root


def test_deap_fixture_is_a_python2_style_pickle(deap_full):
    raw = (deap_full / "data_preprocessed_python" / "s01.dat").read_bytes()
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw
    data, labels = read_deap_file(deap_full / "data_preprocessed_python" / "s01.dat")
    assert data.shape == (40, 40, 8064) and labels.shape == (40, 4)


def test_deap_shapes_segments_and_labels(deap_full, deap_full_prepared):
    prep = load_prepared(deap_full_prepared)
    assert prep["eeg"].shape == (600, 32, 512) and prep["eog"].shape == (600, 2, 512)
    assert prep["eeg"].dtype == np.float32
    trial, seg = np.asarray(prep["trial"]), np.asarray(prep["segment"])
    assert np.array_equal(np.bincount(trial), np.full(40, 15))  # 15 segments of 4 s per 60 s trial
    assert np.array_equal(seg, np.tile(np.arange(15), 40))
    assert set(np.asarray(prep["subject"])) == {1}
    _, labels = fx.deap_trial_data(1, 40)
    for j, name in enumerate(("valence", "arousal", "dominance", "liking")):
        assert np.allclose(prep[name], labels[trial, j].astype(np.float32))
    meta = prep.meta
    assert meta["dataset"] == "deap" and meta["channels"]["eeg"] == DEAP_EEG and len(DEAP_EEG) == 32
    assert meta["channels"]["eog"] == ["hEOG", "vEOG"]
    assert meta["sampling_rates"] == {"eeg": 128, "eog": 128} and meta["skipped"] == []
    assert meta["class_balance"]["arousal"]["trials"] == 40
    assert meta["class_balance"]["arousal"]["high_tie_low"] == int((labels[:, 1] > 5).sum())
    # the first segment starts right after the 3 s baseline
    data, _ = fx.deap_trial_data(1, 2)
    assert np.allclose(prep["eeg"][15], data[1, :32, 384:896], atol=1e-4)
    assert np.allclose(prep["eog"][16], data[1, 32:34, 896:1408], atol=1e-4)


def test_deap_channel_order_kept(deap_full_prepared):
    prep = load_prepared(deap_full_prepared)
    want_eeg = np.array([fx.deap_channel_freq(c) for c in range(32)])
    want_eog = np.array([fx.deap_channel_freq(c) for c in (32, 33)])
    for i in (0, 7, 599):
        assert np.array_equal(peak_freq(prep["eeg"][i], 128), want_eeg)
        assert np.array_equal(peak_freq(prep["eog"][i], 128), want_eog)


def test_deap_baseline_correction_and_cache(deap_full, deap_full_prepared, tmp_path, caplog):
    plain = load_prepared(deap_full_prepared)
    dc = np.array([fx.deap_dc_offset(c) for c in range(32)])
    assert np.allclose(np.asarray(plain["eeg"][:45]).mean(axis=(0, 2)), dc, atol=0.05)
    # same inputs and params: reused, not rebuilt
    before = (deap_full_prepared / "meta.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_deap(deap_full, deap_full_prepared, {"modalities": ["eog", "eeg"]})
    assert "reused" in caplog.text
    assert (deap_full_prepared / "meta.json").stat().st_mtime_ns == before
    # a changed parameter gives another key, so the directory is rebuilt
    out = tmp_path / "bc"
    prepare_deap(deap_full, out, {"modalities": ["eeg"]})
    key0 = meta_of(out)["source_hash"]
    assert key0 != plain.meta["source_hash"]  # other modalities, other key
    prepare_deap(deap_full, out, {"modalities": ["eeg"], "baseline_correction": True})
    key = meta_of(out)["source_hash"]
    assert key != key0 and not is_fresh(out, key0)
    corrected = load_prepared(out)
    assert np.allclose(np.asarray(corrected["eeg"][:45]).mean(axis=(0, 2)), 0.0, atol=0.05)
    assert meta_of(out)["baseline_correction"] is True
    # rebuilding over an existing directory with other params replaces it
    prepare_deap(deap_full, out, {"modalities": ["eeg"], "baseline_correction": False})
    assert meta_of(out)["source_hash"] == key0 and meta_of(out)["baseline_correction"] is False


def test_deap_touched_input_rebuilds(tmp_path, caplog):
    root = fx.write_deap(tmp_path / "raw", subjects=(4,), n_trials=2)
    out = tmp_path / "out"
    prepare_deap(root, out)
    key = meta_of(out)["source_hash"]
    f = root / "data_preprocessed_python" / "s04.dat"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10 ** 9))
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_deap(root, out)
    assert "reused" not in caplog.text and meta_of(out)["source_hash"] != key
    prep = load_prepared(out)
    assert prep.n == 30 and set(np.asarray(prep["subject"])) == {4} and "eog" not in prep


def test_deap_face_frames(deap_face_root, tmp_path, caplog):
    out = tmp_path / "face"
    params = {"modalities": ["eeg", "face"], "face_size": 32, "frames_per_segment": 5}
    with caplog.at_level(logging.WARNING, logger="cmkd.data"):
        prepare_deap(deap_face_root, out, params)
    assert caplog.text.count("2 x no face video (s02, s03 trial") == 1  # grouped: one line per reason
    prep = load_prepared(out)
    meta = prep.meta
    assert {"item": "s02", "reason": "no face video"} in meta["skipped"]
    # s03 has videos for presentation trials 1 and 2 only; the third Experiment_id is left out
    order = fx.deap_presentation_order(3, 3)
    missing_row = order[2] - 1
    assert {"item": f"s03 trial {missing_row}", "reason": "no face video"} in meta["skipped"]
    subj, trial = np.asarray(prep["subject"]), np.asarray(prep["trial"])
    assert sorted(set(subj)) == [1, 3]
    assert sorted(set(trial[subj == 3])) == sorted(set(range(3)) - {missing_row})
    assert prep["face"].shape == (prep.n, 5, 3, 32, 32) and prep["face"].dtype == np.uint8
    assert prep.n == (3 + 2) * 15 and prep["eeg"].shape[0] == prep.n
    face = meta["face"]
    assert face["frames_face_found"] == face["frames_sampled"] > 0 and face["frames_centre_crop"] == 0
    assert face["segments_without_frame"] == 0 and face["segments_padded"] == 0
    assert face["face_trial_mapping"].startswith("participant_ratings.csv")
    # the drawn face gets brighter with the Experiment_id: the CSV order was followed
    for s in (1, 3):
        rows = sorted(set(trial[subj == s]))
        means = [np.asarray(prep["face"])[(subj == s) & (trial == t)].mean() for t in rows]
        assert np.all(np.diff(means) > 3), (s, rows, means)


def test_deap_face_alignment(tmp_path):
    root = fx.write_deap(tmp_path / "raw", subjects=(5,), n_trials=1, ratings_csv=False)
    lead = 5.0  # the video starts 5 s before the stimulus; time is coded in the grey level
    fx.write_video(root / "face_video" / "s05" / "s05_trial01.avi", lead + 60.0, fps=50, size=(64, 48))
    for align, onset in (("end", lead), (2.0, 2.0)):
        out = tmp_path / f"out_{align}"
        prepare_deap(root, out, {"modalities": ["face"], "face_size": 16, "face_detector": "none",
                                 "face_align": align, "face_trial_mapping": "identity"})
        prep = load_prepared(out)
        meta = prep.meta["face"]
        assert meta["face_trial_mapping"].startswith("identity")
        assert meta["frames_centre_crop"] == meta["frames_sampled"] and meta["detector"].startswith("none")
        levels = np.asarray(prep["face"]).mean(axis=(2, 3, 4))  # (15, F)
        for k in range(15):
            lo, hi = fx.time_code_level(onset + 4 * k), fx.time_code_level(onset + 4 * k + 4)
            assert np.all(levels[k] >= lo - 4) and np.all(levels[k] <= hi + 4), (align, k, levels[k], lo, hi)
            assert np.all(np.diff(levels[k]) >= -1)


def _deap_codes(prep):
    """Per segment: (Experiment_id, mean stimulus second) from the EEG and from the frames."""
    eeg = np.asarray(prep["eeg"][:, 0], np.float64).mean(axis=-1)
    eeg_exp = np.floor(eeg / fx.DEAP_TRIAL_CODE_UV + 1e-6).astype(int)
    eeg_sec = (eeg - fx.DEAP_TRIAL_CODE_UV * eeg_exp) / fx.DEAP_TIME_CODE_UV
    face = np.asarray(prep["face"], np.float64)  # (N, F, 3, 16, 16): left half time, right half trial
    left, right = face[..., :, :6].mean(axis=(2, 3, 4)), face[..., :, 10:].mean(axis=(1, 2, 3, 4))
    frame_exp = np.round((right - fx.deap_trial_code_level(0)) / 20).astype(int)
    frame_sec = (left - fx.time_code_level(0)) / 3.0  # (N, F)
    return eeg_exp, eeg_sec, frame_exp, frame_sec


def test_deap_frames_and_eeg_share_the_trial_and_second(tmp_path, caplog):
    """Videos are numbered in presentation order, the pickle rows in video order: the frames and
    the EEG of every prepared segment must come from the same trial and the same stimulus second."""
    root = fx.write_deap(tmp_path / "raw", subjects=(2,), n_trials=4, time_code=True)
    fx.write_deap_video(root, subjects=(2,), n_trials=4, size=(64, 48), time_code=True)
    assert fx.deap_presentation_order(2, 4) != [1, 2, 3, 4]
    params = {"modalities": ["eeg", "face"], "face_size": 16, "face_detector": "none"}
    prep = load_prepared(prepare_deap(root, tmp_path / "ok", params))
    assert prep.n == 4 * 15
    eeg_exp, eeg_sec, frame_exp, frame_sec = _deap_codes(prep)
    assert np.array_equal(eeg_exp, np.asarray(prep["trial"]) + 1)  # row = Experiment_id - 1
    assert np.array_equal(frame_exp, eeg_exp)  # the video of that Experiment_id
    seg = np.asarray(prep["segment"])
    assert np.allclose(eeg_sec, 4 * seg + 2, atol=0.05)
    assert np.all(frame_sec >= 4 * seg[:, None] - 0.5) and np.all(frame_sec < 4 * seg[:, None] + 4.5)
    assert np.all(np.abs(frame_sec.mean(axis=1) - eeg_sec) < 1.0)
    # without the CSV the pairing is unknown: an error naming the file, not a silent identity
    (root / "metadata_csv" / "participant_ratings.csv").unlink()
    with pytest.raises(DataError, match=r"participant_ratings\.csv.*not found"):
        prepare_deap(root, tmp_path / "no_csv", params)
    # the identity mapping is an explicit opt-in, warned about; here it pairs the wrong videos
    with caplog.at_level(logging.WARNING, logger="cmkd.data"):
        prep = load_prepared(prepare_deap(root, tmp_path / "ident", {**params, "face_trial_mapping": "identity"}))
    assert "face_trial_mapping 'identity'" in caplog.text
    eeg_exp, _, frame_exp, _ = _deap_codes(prep)
    assert np.any(frame_exp != eeg_exp)


def test_deap_csv_ratings_cross_checked(tmp_path):
    root = fx.write_deap(tmp_path / "raw", subjects=(3,), n_trials=3)
    fx.write_deap_video(root, subjects=(3,), n_trials=3, seconds=61.0, size=(32, 24))
    csv_path = root / "metadata_csv" / "participant_ratings.csv"
    lines = csv_path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[5] = str(float(cells[5]) + 1.0)  # Arousal of presentation trial 2
    lines[2] = ",".join(cells)
    csv_path.write_text("\n".join(lines) + "\n")
    exp = fx.deap_presentation_order(3, 3)[1]
    with pytest.raises(DataError, match=rf"participant_ratings\.csv: participant 3 trial 2 \(Experiment_id {exp}\): "
                                        rf"Arousal .* differs from s03\.dat labels\[{exp - 1}, 1\]"):
        prepare_deap(root, tmp_path / "out", {"modalities": ["eeg", "face"], "face_size": 8, "face_detector": "none"})


def test_deap_short_video_is_skipped_not_padded(tmp_path):
    root = fx.write_deap(tmp_path / "raw", subjects=(4,), n_trials=3, time_code=True)
    fx.write_deap_video(root, subjects=(4,), n_trials=3, size=(64, 48), time_code=True, short={2: 45.0})
    prep = load_prepared(prepare_deap(root, tmp_path / "out", {"modalities": ["eeg", "face"], "face_size": 16,
                                                              "face_detector": "none"}))
    row = fx.deap_presentation_order(4, 3)[1] - 1
    assert prep.meta["skipped"] == [{"item": f"s04 trial {row}", "reason": "face video shorter than the stimulus",
                                     "detail": "s04_trial02.avi: 45.00 s, needs 60.00 s"}]
    assert sorted(set(np.asarray(prep["trial"]))) == sorted({0, 1, 2} - {row})
    assert prep.meta["face"]["segments_padded"] == 0 and prep.meta["face"]["segments_without_frame"] == 0
    assert prep.meta["subjects"]["s04"]["trials"] == 2


def test_deap_peak_memory_one_full_subject(deap_full, tmp_path):
    """Preparing one full DEAP subject (40 x 40 x 8064) stays far below 2 GB peak RSS."""
    script = textwrap.dedent("""
        import resource, sys
        from cmkd.data.deap import prepare_deap

        def hwm_kb():  # this process's own peak RSS; ru_maxrss may carry the parent's peak over exec
            try:
                for line in open("/proc/self/status"):
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
            except OSError:
                pass
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        before = hwm_kb()
        prepare_deap(sys.argv[1], sys.argv[2], {"modalities": ["eeg", "eog"]})
        print(before, hwm_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", script, str(deap_full), str(tmp_path / "m")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    before_kb, peak_kb, maxrss_kb = (int(v) for v in r.stdout.split()[-3:])
    print(f"peak RSS preparing one full DEAP subject: {peak_kb / 1024:.0f} MiB (after imports: "
          f"{before_kb / 1024:.0f} MiB; getrusage ru_maxrss: {maxrss_kb / 1024:.0f} MiB)")
    assert peak_kb * 1024 < 2 * GB and maxrss_kb * 1024 < 2 * GB


def test_deap_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        prepare_deap(tmp_path / "nowhere", tmp_path / "out")
    root = tmp_path / "raw"
    (root / "data_preprocessed_python").mkdir(parents=True)
    with pytest.raises(DataError, match="no sXX.dat"):
        prepare_deap(root, tmp_path / "out")
    bad = root / "data_preprocessed_python" / "s01.dat"
    bad.write_bytes(b"\x80\x02}q\x00(U\x04data")  # a truncated pickle
    out = tmp_path / "prepared" / "deap"
    with pytest.raises(DataError, match=r"s01\.dat.*cannot read DEAP pickle"):
        prepare_deap(root, out)
    assert no_leftovers(out.parent, "deap")
    data, labels = fx.deap_trial_data(1, 2, n_channels=38)
    fx.write_deap_pickle(bad, {"data": data, "labels": labels})
    with pytest.raises(DataError, match=r"s01\.dat.*shape \(2, 38, 8064\), expected \(trials, 40, 8064\)"):
        prepare_deap(root, out)
    assert no_leftovers(out.parent, "deap")
    data, labels = fx.deap_trial_data(1, 2)
    fx.write_deap_pickle(bad, {"data": data, "labels": labels[:, :3]})
    with pytest.raises(DataError, match="'labels' has shape"):
        prepare_deap(root, out)
    # a pickle that would run code is refused, not executed
    bad.write_bytes(pickle.dumps({"data": os.getcwd}, protocol=2))
    with pytest.raises(DataError, match="unexpected object"):
        prepare_deap(root, out)
    with pytest.raises(ConfigError, match=r"\.\w+: unknown key"):
        prepare_deap(root, out, {"modality": ["eeg"]})
    with pytest.raises(ConfigError, match="unknown modality"):
        prepare_deap(root, out, {"modalities": ["eye"]})
    fx.write_deap_pickle(bad, {"data": data, "labels": labels})
    with pytest.raises(DataError, match=r"participant_ratings\.csv: participant_ratings\.csv not found.*presentation"):
        prepare_deap(root, out, {"modalities": ["eeg", "face"]})
    with pytest.raises(DataError, match="no face video for any DEAP subject"):
        prepare_deap(root, out, {"modalities": ["eeg", "face"], "face_trial_mapping": "identity"})
    with pytest.raises(ConfigError, match="face_trial_mapping"):
        prepare_deap(root, out, {"modalities": ["eeg", "face"], "face_trial_mapping": "order"})
    assert no_leftovers(out.parent, "deap")


# ---------------------------------------------------------------------------- MAHNOB-HCI ----
@pytest.fixture(scope="module")
def mahnob_root(tmp_path_factory) -> Path:
    return fx.write_mahnob(tmp_path_factory.mktemp("mahnob"), video=True, size=(96, 80))


def test_bdf_writer_is_read_back_by_mne(tmp_path):
    import mne

    n = 10 * fx.MAHNOB_SFREQ
    onset, offset = 3 * fx.MAHNOB_SFREQ, 7 * fx.MAHNOB_SFREQ + 5
    x, names = fx.mahnob_bdf_signals(n, onset, offset)
    digital = [nm == "Status" for nm in names]
    path = fx.write_bdf(tmp_path / "t_emotion.bdf", x, names, fx.MAHNOB_SFREQ,
                        phys_dims=["Boo" if d else "uV" for d in digital], digital=digital)
    assert path.read_bytes()[:8] == b"\xffBIOSEMI"
    raw = mne.io.read_raw_bdf(path, stim_channel="Status", preload=True, verbose="error")
    assert raw.ch_names == names and len(names) == 47 and raw.info["sfreq"] == fx.MAHNOB_SFREQ
    assert raw.n_times == n
    eeg = raw.get_data(picks=names[:32]) * 1e6
    assert np.abs(eeg - x[:32]).max() <= 1 / 32 + 1e-6  # BioSemi resolution: 1/32 uV
    ev = mne.find_events(raw, stim_channel="Status", shortest_event=1, verbose="error")
    assert ev[:, 0].tolist() == [onset, offset]
    assert ev[:, 2].tolist() == [fx.MAHNOB_ONSET_CODE, fx.MAHNOB_OFFSET_CODE]


def test_mahnob_prepare(mahnob_root, tmp_path, caplog):
    out = tmp_path / "m"
    with caplog.at_level(logging.WARNING, logger="cmkd.data"):
        prepare_mahnob(mahnob_root, out, {"modalities": ["eeg"], "bandpass": None})
    # skipped sessions are logged grouped by reason, each reason once with its count
    assert caplog.text.count("1 x no *_emotion.bdf (session 12)") == 1
    assert "1 x missing or out-of-range ratings (feltVlnc, feltArsl, feltCtrl, feltPred) (session 14)" in caplog.text
    prep = load_prepared(out)
    meta = prep.meta
    # 18.5 s stimulus -> four 4 s segments per session; 3 usable sessions
    assert prep["eeg"].shape == (12, 32, 512) and "eog" not in prep
    assert np.asarray(prep["trial"]).tolist() == [2] * 4 + [4] * 4 + [10] * 4
    assert np.asarray(prep["subject"]).tolist() == [1] * 8 + [2] * 4
    assert np.asarray(prep["segment"]).tolist() == [0, 1, 2, 3] * 3
    reasons = {s["item"]: s["reason"] for s in meta["skipped"]}
    assert reasons["session 12"] == "no *_emotion.bdf"
    assert reasons["session 14"].startswith("missing or out-of-range ratings") and "feltArsl" in reasons["session 14"]
    specs = {s["id"]: s for s in fx.default_mahnob_sessions()}
    for i, sid in enumerate((2, 4, 10)):
        r = specs[sid]["ratings"]
        rows = slice(4 * i, 4 * i + 4)
        assert np.all(prep["arousal"][rows] == r["feltArsl"]) and np.all(prep["valence"][rows] == r["feltVlnc"])
        assert np.all(prep["dominance"][rows] == r["feltCtrl"])
        assert np.all(prep["predictability"][rows] == r["feltPred"])
        assert np.all(prep["felt_emotion"][rows] == r["feltEmo"])
    assert "liking" not in prep
    assert meta["channels"]["eeg"] == fx.MAHNOB_EEG and meta["sampling_rates"] == {"eeg": 128}
    assert meta["sessions"][0]["stimulus_s"] == [5.0, 23.5]
    assert meta["sessions"][0]["alignment"]["window_rule"] == "status"
    # class balance per dimension under both tie sides (valence 3, 8, 5: the 5 moves with the tie)
    assert meta["class_balance"]["valence"] == {"trials": 3, "high_tie_low": 1, "high_tie_high": 2, "at_threshold": 1}
    # channel order and units (microvolts) survive reading, referencing, resampling and cutting;
    # the average reference removes the signal common to all channels
    want = np.array([fx.mahnob_channel_freq(c) for c in range(32)])
    for i in (0, 5, 11):
        assert np.array_equal(peak_freq(prep["eeg"][i], 128), want)
        x = np.asarray(prep["eeg"][i], np.float64)
        spec = np.abs(np.fft.rfft(x - x.mean(axis=-1, keepdims=True), axis=-1)) * 2 / 512
        assert np.allclose(spec.max(axis=-1), fx.MAHNOB_EEG_AMPLITUDE * 31 / 32, rtol=0.1)
        assert spec[:, int(fx.MAHNOB_COMMON_HZ * 4)].max() < 0.5  # common 30 uV signal gone
    # the segments lie inside the stimulus: compare with the planted sine at the onset
    t = 5.0 + np.arange(512) / 128
    ref = fx.MAHNOB_EEG_AMPLITUDE * np.sin(2 * np.pi * fx.mahnob_channel_freq(3) * t + 0.3 * 3)
    assert np.corrcoef(prep["eeg"][0, 3], ref)[0, 1] > 0.97


def test_mahnob_eeg_reference_and_bandpass(mahnob_root, tmp_path):
    """Default: average reference over the 32 EEG channels + 4-45 Hz band-pass; both switchable,
    both in meta.json and in the cache key."""
    out = tmp_path / "m"
    prepare_mahnob(mahnob_root, out, {"subjects": [2]})
    prep = load_prepared(out)
    x = np.asarray(prep["eeg"], np.float64)
    amp = np.abs(np.fft.rfft(x, axis=-1)).max(axis=-1) * 2 / 512  # (segments, channels)
    # 2 Hz (channel 0) lies in the stop band, 3 Hz (channel 1) at the -6 dB edge of MNE's 2 Hz
    # transition band, 10-33 Hz inside the pass band
    assert amp[:, 0].max() < 0.1 * fx.MAHNOB_EEG_AMPLITUDE and amp[:, 1].max() < 0.6 * fx.MAHNOB_EEG_AMPLITUDE
    assert np.allclose(amp[:, 8:], fx.MAHNOB_EEG_AMPLITUDE * 31 / 32, rtol=0.1)
    assert np.abs(x.mean(axis=-1)).max() < 1.0  # the DC offsets (-3000 .. 4750 uV) are gone
    assert np.abs(x.sum(axis=1)).max() < 1e-2  # average reference: channels sum to zero
    pre = prep.meta["eeg_preprocessing"]
    assert pre["reference"].startswith("average") and pre["bandpass_hz"] == [4.0, 45.0]
    key = prep.meta["source_hash"]
    prepare_mahnob(mahnob_root, out, {"subjects": [2], "reference": "none", "bandpass": None})
    raw = load_prepared(out)
    assert raw.meta["source_hash"] != key and raw.meta["eeg_preprocessing"]["bandpass_hz"] is None
    dc = np.asarray(raw["eeg"], np.float64).mean(axis=(0, 2))
    assert np.allclose(dc, [fx.mahnob_dc_offset(c) for c in range(32)], atol=1.0)  # raw BioSemi kept
    with pytest.raises(ConfigError, match="bandpass"):
        prepare_mahnob(mahnob_root, out, {"bandpass": [4, 70]})  # above Nyquist of 128 Hz
    with pytest.raises(ConfigError, match="reference"):
        prepare_mahnob(mahnob_root, out, {"reference": "Cz"})


def test_mahnob_has_no_eog(mahnob_root, tmp_path):
    with pytest.raises(ConfigError, match=r"no modality 'eog'.*recorded no EOG.*EXG1-EXG3 are ECG"):
        prepare_mahnob(mahnob_root, tmp_path / "m", {"modalities": ["eeg", "eog"]})


@pytest.mark.parametrize("lead, align", [(0.0, "onset"), (2.5, "xml"), (2.5, 2.5)])
def test_mahnob_frames_and_eeg_share_the_stimulus_second(tmp_path, lead, align):
    """Time code: EEG channel 0 ramps with the stimulus time, the frames' grey level codes it too.
    Segment k's EEG and frames must both come from stimulus seconds [4k, 4k + 4)."""
    sessions = [{"id": 6, "subject": 1, "ratings": {"feltArsl": 3, "feltVlnc": 6, "feltCtrl": 5, "feltPred": 5}}]
    root = fx.write_mahnob(tmp_path / "raw", sessions=sessions, pre_s=6.0, stim_s=16.5, post_s=4.0, video=True,
                           size=(48, 40), time_code=True, video_lead_s=lead)
    out = tmp_path / "m"
    prepare_mahnob(root, out, {"modalities": ["eeg", "face"], "reference": "none", "bandpass": None,
                               "face_detector": "none", "face_size": 8, "frames_per_segment": 4,
                               "frame_step": 30, "face_align": align})
    prep = load_prepared(out)
    assert prep.n == 4
    eeg_code = np.asarray(prep["eeg"][:, 0], np.float64).mean(axis=-1) - fx.mahnob_dc_offset(0)
    eeg_second = eeg_code / fx.MAHNOB_TIME_CODE_UV  # mean stimulus time of the segment's EEG
    frames = np.asarray(prep["face"], np.float64).mean(axis=(2, 3, 4))  # (segments, F)
    frame_second = (frames - fx.time_code_level(0)) / 3.0  # stimulus time of each frame
    for k in range(4):
        assert abs(eeg_second[k] - (4 * k + 2)) < 0.2, (k, eeg_second[k])
        assert np.all(frame_second[k] > 4 * k - 0.5) and np.all(frame_second[k] < 4 * k + 4.5), (k, frame_second[k])
        assert abs(frame_second[k].mean() - eeg_second[k]) < 1.0, (k, frame_second[k], eeg_second[k])
    al = prep.meta["sessions"][0]["alignment"]
    assert al["window_rule"] == "status" and al["video_onset_s"] == pytest.approx(lead, abs=0.02)
    assert al["xml_video_s"] == pytest.approx(16.5, abs=0.02) and prep.meta["alignment_warnings"] == []


def test_mahnob_status_level_and_cache(tmp_path, caplog):
    sessions = [{"id": 7, "subject": 3, "ratings": {"feltArsl": 1, "feltVlnc": 9, "feltCtrl": 2, "feltPred": 8},
                 "bdf": True}]
    root = fx.write_mahnob(tmp_path / "raw", sessions=sessions, pre_s=2.0, stim_s=9.0, post_s=1.0, status_level=True)
    out = tmp_path / "m"
    prepare_mahnob(root, out)
    prep = load_prepared(out)
    assert prep.n == 2 and prep.meta["sessions"][0]["stimulus_s"] == [2.0, 11.0]
    assert np.all(prep["felt_emotion"] == -1) and "eog" not in prep
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_mahnob(root, out)
    assert "reused" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_mahnob(root, out, {"sampling_rate": 64, "bandpass": [4, 30]})
    assert "reused" not in caplog.text
    assert load_prepared(out)["eeg"].shape == (2, 32, 256)


def test_mahnob_window_checked_against_cutlensec(tmp_path):
    ok = {"feltArsl": 5, "feltVlnc": 5, "feltCtrl": 5, "feltPred": 5}
    sessions = [{"id": 1, "subject": 1, "ratings": ok},
                {"id": 3, "subject": 1, "ratings": ok, "cutLenSec": 14.0},         # Status says 12.5 s
                {"id": 5, "subject": 2, "ratings": ok, "offset_marker": False},    # onset only
                {"id": 7, "subject": 2, "ratings": ok, "cutLenSec": 12.9}]         # within 1 s
    root = fx.write_mahnob(tmp_path / "raw", sessions=sessions, pre_s=2.0, stim_s=12.5, post_s=2.0)
    out = tmp_path / "m"
    prepare_mahnob(root, out, {"bandpass": None})
    meta = load_prepared(out).meta
    assert meta["skipped"] == [{"item": "session 3", "reason": "Status window differs from cutLenSec by more than 1 s",
                                "detail": "Status 12.50 s, cutLenSec 14 s"}]
    rules = {s["session"]: (s["alignment"]["window_rule"], s["stimulus_s"]) for s in meta["sessions"]}
    assert rules == {"1": ("status", [2.0, 14.5]), "5": ("onset+cutLenSec (no offset marker)", [2.0, 14.5]),
                     "7": ("status", [2.0, 14.5])}
    prepare_mahnob(root, out, {"bandpass": None, "window_check": "cutlen"})
    meta = load_prepared(out).meta
    rules = {s["session"]: (s["alignment"]["window_rule"], s["stimulus_s"]) for s in meta["sessions"]}
    assert rules["3"] == ("onset+cutLenSec (Status window disagrees)", [2.0, 16.0]) and meta["skipped"] == []
    with pytest.raises(ConfigError, match="window_check"):
        prepare_mahnob(root, out, {"window_check": "trust"})


def test_mahnob_face_frames(mahnob_root, tmp_path):
    out = tmp_path / "mf"
    prepare_mahnob(mahnob_root, out, {"modalities": ["eeg", "face"], "face_size": 24, "frames_per_segment": 4})
    prep = load_prepared(out)
    assert prep["face"].shape == (12, 4, 3, 24, 24)
    face = prep.meta["face"]
    assert face["videos"] == 3 and face["frames_face_found"] == face["frames_sampled"]
    assert "video frame 0 = stimulus onset" in face["alignment"]
    # 60 fps, one frame in 40: 6 kept frames per 4 s window, thinned evenly to 4
    assert face["segments_padded"] == 0 and face["segments_without_frame"] == 0


def test_mahnob_short_video_is_skipped_not_padded(tmp_path):
    ok = {"feltArsl": 5, "feltVlnc": 5, "feltCtrl": 5, "feltPred": 5}
    sessions = [{"id": 1, "subject": 1, "ratings": ok}, {"id": 2, "subject": 1, "ratings": ok, "video_s": 9.0}]
    root = fx.write_mahnob(tmp_path / "raw", sessions=sessions, pre_s=2.0, stim_s=12.5, post_s=2.0, video=True,
                           size=(48, 40), time_code=True)
    out = tmp_path / "m"
    prepare_mahnob(root, out, {"modalities": ["face"], "face_detector": "none", "face_size": 8})
    meta = load_prepared(out).meta
    assert [s["session"] for s in meta["sessions"]] == ["1"] and meta["face"]["segments_padded"] == 0
    assert meta["skipped"] == [{"item": "session 2", "reason": "segment windows run past the end of the frontal video",
                                "detail": "windows need video time 0.00-12.00 s, video has 9.00 s"}]
    assert {"item": "session 2", "reason": "video after the onset is shorter than cutLenSec by more than 1 s"} \
        not in meta["alignment_warnings"]  # a skipped session is not also warned about


def test_mahnob_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="not found"):
        prepare_mahnob(tmp_path / "missing", tmp_path / "out")
    good = {"feltArsl": 5, "feltVlnc": 5, "feltCtrl": 5, "feltPred": 5}
    root = fx.write_mahnob(tmp_path / "raw", sessions=[{"id": 1, "subject": 1, "ratings": good}],
                           pre_s=1, stim_s=5, post_s=1, n_eeg=31)
    out = tmp_path / "prepared" / "m"
    with pytest.raises(DataError, match=r"Part_1_S_Trial1_emotion\.bdf: 31 EEG channels .* expected 32"):
        prepare_mahnob(root, out)
    assert no_leftovers(out.parent, "m")
    bdf = root / "Sessions" / "1" / "Part_1_S_Trial1_emotion.bdf"
    bdf.write_bytes(bdf.read_bytes()[:300])  # header cut short
    with pytest.raises(DataError, match=r"emotion\.bdf: cannot read BDF"):
        prepare_mahnob(root, out)
    (root / "Sessions" / "1" / "session.xml").write_text("<session feltArsl='5'")
    with pytest.raises(DataError, match=r"session\.xml: not valid XML"):
        prepare_mahnob(root, out)
    assert no_leftovers(out.parent, "m")
    only_bad = fx.write_mahnob(tmp_path / "raw2", sessions=[{"id": 3, "subject": 1, "ratings": None}])
    with pytest.raises(DataError, match="no usable session"):
        prepare_mahnob(only_bad, out)


# ------------------------------------------------------------------------------- SEED-IV ----
@pytest.fixture(scope="module")
def seed_root(tmp_path_factory) -> Path:
    return fx.write_seed_iv(tmp_path_factory.mktemp("seed"))


def test_seed_iv_label_lists():
    assert SESSION_LABELS[1] == [1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3]
    assert SESSION_LABELS[2] == [2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1]
    assert SESSION_LABELS[3] == [1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0]
    for labels in SESSION_LABELS.values():  # 6 trials per emotion in every session
        assert np.array_equal(np.bincount(labels), [6, 6, 6, 6])


def test_seed_iv_prepare(seed_root, tmp_path, caplog):
    out = tmp_path / "s"
    prepare_seed_iv(seed_root, out)
    prep = load_prepared(out)
    n = sum(fx.seed_iv_windows(s, sess, k) for s in (1, 2) for sess in (1, 2, 3) for k in range(24))
    assert prep.n == n and prep["eye"].shape == (n, 31) and prep["eeg_de"].shape == (n, 62, 5)
    assert prep["label"].dtype == np.int64 and "valence" not in prep
    sess, subj, trial, seg = (np.asarray(prep[k]) for k in ("session", "subject", "trial", "segment"))
    k = trial - 100 * sess
    assert np.all((k >= 0) & (k < 24))
    assert np.array_equal(prep["label"], [SESSION_LABELS[a][b] for a, b in zip(sess, k)])
    # trial ids are unique per subject across sessions
    assert len({(a, b) for a, b in zip(subj, trial)}) == 2 * 3 * 24
    # values came from the right file, trial and window, in channel order
    want_eye = [fx.seed_iv_eye_value(a, b, w, 0) for a, b, w in zip(sess, k, seg)]
    assert np.allclose(prep["eye"][:, 0], want_eye)
    assert np.allclose(prep["eye"][0, :], [fx.seed_iv_eye_value(sess[0], k[0], seg[0], f) for f in range(31)])
    assert np.allclose(prep["eeg_de"][:, :, 0].mean(axis=0), np.arange(62), atol=0.01)
    assert np.allclose(prep["eeg_de"][3, 10], [fx.seed_iv_de_value(10, b, seg[3]) for b in range(5)])
    # the mismatched trial keeps the common prefix and is recorded
    first = (subj == 1) & (sess == 1) & (trial == 100)
    assert first.sum() == fx.seed_iv_windows(1, 1, 0)
    assert prep.meta["truncated"] == [{"session": 1, "subject": 1, "trial": 0, "eye_windows": 6,
                                       "eeg_de_windows": 5, "kept": 5}]
    assert prep.meta["channels"]["eeg_de"][:3] == ["FP1", "FPZ", "FP2"] and prep.meta["skipped"] == []
    # cache: reused as is; another EEG feature family rebuilds
    with caplog.at_level(logging.INFO, logger="cmkd.data"):
        prepare_seed_iv(seed_root, out)
    assert "reused" in caplog.text
    prepare_seed_iv(seed_root, out, {"eeg_feature": "de_movingAve", "modalities": ["eeg_de"]})
    prep2 = load_prepared(out)
    assert "eye" not in prep2 and prep2.n == n and prep2.meta["truncated"] == []
    assert np.allclose(prep2["eeg_de"][0, 0], np.asarray(prep["eeg_de"][0, 0]) + 0.5)


def test_seed_iv_missing_file_is_skipped(tmp_path):
    root = fx.write_seed_iv(tmp_path / "raw", subjects=(3, 4), sessions=(2,))
    (root / "eeg_feature_smooth" / "2" / "4_20160601.mat").unlink()
    out = tmp_path / "s"
    prepare_seed_iv(root, out, {"sessions": [2]})
    prep = load_prepared(out)
    assert set(np.asarray(prep["subject"])) == {3}
    assert prep.meta["skipped"] == [{"item": "session 2 subject 4", "reason": "no eeg_feature_smooth file"}]


def test_seed_iv_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="SEED-IV root directory not found"):
        prepare_seed_iv(tmp_path / "none", tmp_path / "out")
    root = fx.write_seed_iv(tmp_path / "raw", subjects=(1,), sessions=(1,), eye_shape=(30, 4))
    out = tmp_path / "prepared" / "s"
    with pytest.raises(DataError, match=r"1_20160518\.mat: 'eye_1' has shape \(30, 4\), expected \(31, n\)"):
        prepare_seed_iv(root, out, {"sessions": [1]})
    assert no_leftovers(out.parent, "s")
    (root / "eye_feature_smooth" / "1" / "1_20160518.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DataError, match=r"1_20160518\.mat: cannot read MAT file"):
        prepare_seed_iv(root, out, {"sessions": [1]})
    with pytest.raises(ConfigError, match="sessions"):
        prepare_seed_iv(root, out, {"sessions": [4]})
    assert no_leftovers(out.parent, "s")


# --------------------------------------------------------------------- cache and video ----
def test_is_fresh(tmp_path, deap_full_prepared):
    key = meta_of(deap_full_prepared)["source_hash"]
    assert is_fresh(deap_full_prepared, key) and not is_fresh(deap_full_prepared, "other")
    assert not is_fresh(tmp_path / "absent", key)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text(json.dumps({"source_hash": key, "arrays": {"eeg": {}}}))
    assert not is_fresh(broken, key)  # eeg.npy is missing
    (broken / "meta.json").write_text("{not json")
    assert not is_fresh(broken, key)


def test_block_stager_appends_and_cleans_up(tmp_path):
    with BlockStager(tmp_path / "x") as st:
        st.append({"a": np.arange(3), "b": np.ones((3, 2), np.float32)})
        st.append({"a": np.arange(2), "b": np.zeros((2, 2), np.float32)})
        arr = st.arrays()
        assert arr["a"].tolist() == [0, 1, 2, 0, 1] and arr["b"].shape == (5, 2)
        with pytest.raises(RuntimeError):
            st.append({"a": np.arange(2)})
    assert list(tmp_path.iterdir()) == []


def test_video_windows_padding_and_missing_frames(tmp_path):
    path = fx.write_video(tmp_path / "v.avi", 10.0, fps=10, size=(32, 24))
    cropper = vid.FaceCropper(size=8, detector="none")
    v = vid.sample_video(path, cropper, frame_step=5)  # kept frames every 0.5 s
    assert v.n_frames == 100 and len(v.times) == 20 and v.stats.frames_centre_crop == 20
    frames, st = vid.frames_for_windows(v, [(0.0, 4.0), (4.0, 5.0), (12.0, 16.0)], frames_per_segment=4)
    assert frames.shape == (3, 4, 3, 8, 8)
    lv = frames.mean(axis=(2, 3, 4))
    assert np.all(np.diff(lv[0]) > 0)  # 8 frames in 0-4 s thinned to 4, in time order
    assert lv[1, 1] == lv[1, 2] == lv[1, 3] and lv[1, 0] < lv[1, 1]  # 2 frames, last repeated
    assert np.all(lv[2] == lv[2, 0]) and abs(lv[2, 0] - fx.time_code_level(9.5)) < 4  # after the video's end
    assert st.segments_padded == 2 and st.segments_without_frame == 1
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF0000AVI garbage")
    with pytest.raises(DataError, match=r"bad\.avi"):
        vid.sample_video(bad, cropper)


def test_skin_detector_finds_the_drawn_face_and_centre_crop_otherwise():
    img = np.full((128, 160, 3), 90, np.uint8)
    fx.draw_face(img, 110, 70, 24)
    crop, found = vid.FaceCropper(size=32, detector="skin")(img)
    assert found and crop.shape == (3, 32, 32)
    centre, found_c = vid.FaceCropper(size=32, detector="none")(img)
    assert not found_c

    def skin_share(rgb):  # share of pixels in the drawn skin tone (R 220, G 180, B 150)
        return float((np.abs(rgb.astype(int) - np.array([220, 180, 150])[:, None, None]).max(axis=0) < 12).mean())
    # the face crop is centred on the face (right of the frame centre), the fallback on the frame
    assert skin_share(crop) > 0.25 and skin_share(crop) > skin_share(centre) + 0.1
    _, found_none = vid.FaceCropper(size=32, detector="skin")(np.full((128, 160, 3), 90, np.uint8))
    assert not found_none
    if not vid.haar_available():
        with pytest.raises(ConfigError, match="haar"):
            vid.FaceCropper(detector="haar")
