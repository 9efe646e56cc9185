"""Constant-memory data path: chunked synthetic writing, streamed training parts, resources, autocast."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cmkd import accel, resources, train
from cmkd.data import stream
from cmkd.data import synthetic as syn
from cmkd.data import synthetic_signals
from cmkd.data.prepared import load_prepared, write_prepared
from cmkd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_subjects": 3, "n_trials": 4, "segments_per_trial": 2, "face_size": 24, "face_frames": 2}


def test_chunked_writer_equals_in_memory_generation(tmp_path, monkeypatch):
    """Files and content hash of the streamed writer equal an in-memory generation, whatever the face chunk size."""
    arrays, meta = syn.generate(SMALL, 3)
    meta.pop("latent")
    ref = write_prepared(tmp_path / "ref", arrays, meta)
    monkeypatch.setattr(synthetic_signals, "_FACE_CHUNK_BYTES", 1)  # one segment per rendering chunk
    out = syn.write_synthetic(tmp_path / "new", SMALL, 3)
    assert load_prepared(out).data_hash == load_prepared(ref).data_hash
    for f in sorted(ref.glob("*.npy")):
        assert f.read_bytes() == (out / f.name).read_bytes(), f.name


def _split(n, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)
    a, b = int(0.6 * n), int(0.8 * n)
    return {"train": np.sort(idx[:a]), "val": np.sort(idx[a:b]), "test": np.sort(idx[b:])}


def test_streamed_parts_match_in_memory_parts(tmp_path):
    out = syn.write_synthetic(tmp_path / "p", SMALL, 1)
    prep = load_prepared(out)
    mods = ["eeg", "face", "eye"]
    y = np.asarray(prep["arousal"]) > 5
    split = _split(prep.n)
    mem, mem_norm = train.build_parts(prep, mods, y, split, "classification")
    st, st_norm = stream.build_stream_parts(prep, mods, y, split, "classification")
    for mod in ("eeg", "eye"):  # chunked float64 statistics agree with numpy's float32 ones
        np.testing.assert_allclose(st_norm[mod]["mean"], mem_norm[mod]["mean"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(st_norm[mod]["std"], mem_norm[mod]["std"], rtol=1e-4)
        # with the same statistics, the same batches bit for bit
        shape = st["train"].x[mod].norm[0].shape
        same = tuple(np.asarray(mem_norm[mod][k], np.float32).reshape(shape) for k in ("mean", "std"))
        for part in st.values():
            part.x[mod].norm = same
    idx = torch.tensor([5, 0, 3, 3, 1])
    for name in split:
        bm, bs = mem[name].batch(idx[idx < len(mem[name])], "cpu"), st[name].batch(idx[idx < len(st[name])], "cpu")
        assert bm.keys() == bs.keys()
        for k in bm:
            assert bm[k].dtype == bs[k].dtype and torch.equal(bm[k], bs[k]), (name, k)


def test_iter_batches_prefetch_keeps_order_and_content(tmp_path):
    prep = load_prepared(syn.write_synthetic(tmp_path / "p", SMALL, 2))
    y = np.asarray(prep["valence"]) > 5
    parts, _ = stream.build_stream_parts(prep, ["eeg"], y, _split(prep.n), "classification")
    perm = torch.randperm(len(parts["train"]), generator=torch.Generator().manual_seed(0))
    steps = [perm[s:s + 3] for s in range(0, len(perm), 3)]
    got = list(stream.iter_batches(parts["train"], steps, "cpu"))
    assert [i.tolist() for i, _ in got] == [s.tolist() for s in steps]
    for (i, b), s in zip(got, steps):
        assert torch.equal(b["eeg"], parts["train"].batch(s, "cpu")["eeg"])


def test_stream_threshold_chooses_path_and_rejects_bad_values(tmp_path):
    prep = load_prepared(syn.write_synthetic(tmp_path / "p", SMALL, 2))
    mb = stream.data_mb(prep, ["face"])
    assert 0 < mb < 1
    assert stream.use_streaming(prep, ["face"], {"stream_threshold_mb": 0})
    assert not stream.use_streaming(prep, ["face"], {})
    with pytest.raises(ConfigError, match="training.stream_threshold_mb"):
        stream.use_streaming(prep, ["face"], {"stream_threshold_mb": -1})


def test_autocast_is_off_on_cpu_and_validated():
    amp = accel.Amp("bf16", torch.device("cpu"))
    assert amp.info == {"autocast_requested": "bf16", "autocast": "off"}
    assert amp.dtype is None and amp.scaler is None
    assert accel.Amp(False, "cpu").requested == "off"  # YAML reads a bare `off` as false
    with pytest.raises(ConfigError, match="training.autocast"):
        accel.Amp("fp8", "cpu")


def _config(results=None):
    cfg = yaml.safe_load(open(ROOT / "config.yaml"))
    if results is not None:  # no prepared data set there: sizes come from the config
        cfg["results"] = str(results)
    return cfg


def test_resources_grow_with_data_and_model_and_attempt(tmp_path):
    cfg = _config(tmp_path)
    cell = ("synthetic", "face_eeg-to-face", "arousal", "kd")
    base = resources.estimate(cfg, *cell, n_seeds=3)
    cfg2 = _config(tmp_path)
    cfg2["datasets"]["synthetic"]["params"]["n_subjects"] *= 20
    more_data = resources.estimate(cfg2, *cell, n_seeds=3)
    cfg3 = _config(tmp_path)
    cfg3["datasets"]["synthetic"]["params"]["face_size"] = 224
    bigger_input = resources.estimate(cfg3, *cell, n_seeds=3)
    assert more_data["n_segments"] == 20 * base["n_segments"]
    assert more_data["mem_mb"] > base["mem_mb"] and more_data["runtime"] > base["runtime"]
    assert bigger_input["mem_mb"] > base["mem_mb"]
    eeg_only = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline_eeg", n_seeds=3)
    assert eeg_only["mem_mb"] < base["mem_mb"]  # a smaller model and fewer inputs
    again = resources.estimate(cfg, *cell, n_seeds=3, attempt=2)
    assert again["mem_mb"] >= 2 * base["mem_mb"] - 100 and again["runtime"] >= 2 * base["runtime"] - 1
    cfg["methods"]["kd"]["resources"] = {"mem_mb": 7000, "runtime": 20}
    over = resources.estimate(cfg, *cell, n_seeds=3, attempt=2)
    assert over["mem_mb"] == 14000 and over["runtime"] == 120
    cfg["methods"]["kd"]["resources"] = {"mem_mb": "lots"}
    with pytest.raises(ConfigError, match="methods.kd.resources.mem_mb"):
        resources.estimate(cfg, *cell)


def test_resources_read_the_prepared_meta(tmp_path):
    cfg = _config()
    cfg["results"] = str(tmp_path)
    syn.write_synthetic(tmp_path / "prepared" / "synthetic", SMALL, 0)
    r = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "kd")
    assert r["size_source"] == "prepared" and r["n_segments"] == 3 * 4 * 2


def test_resources_config_size_matches_the_prepared_size(tmp_path):
    """Before the data set is prepared, the per-segment sizes come from the config; parameters the
    config leaves out take the generator's defaults (segment_seconds, sampling_rate, ...), so the
    estimate is the one the job gets once prepared."""
    params = {"n_subjects": 3, "n_trials": 4, "segments_per_trial": 2, "sampling_rate": 32}
    cfg = _config(tmp_path / "none")
    cfg["datasets"]["synthetic"]["params"] = dict(params)
    before = resources.dataset_size(cfg, "synthetic")
    cfg["results"] = str(tmp_path)
    syn.write_synthetic(tmp_path / "prepared" / "synthetic", params, 0)
    after = resources.dataset_size(cfg, "synthetic")
    assert (before["source"], after["source"]) == ("config", "prepared")
    assert before["n"] == after["n"]
    for m in ("eeg", "eog", "face"):
        assert before["bytes"][m] == after["bytes"][m], m


def _peak(*args) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "scale_probe.py"), *args], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return float(r.stdout.strip().splitlines()[-1])


# Measured here: prepare 163 -> 162 MiB, data path (streamed) 324 -> 331 MiB for 6 -> 12 subjects
# (49 -> 98 MB prepared); the in-memory path grows 405 -> 524 MiB. The margin leaves room for noise.
MARGIN_MB = 30


def test_peak_memory_does_not_grow_with_the_data_set(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    p_small = _peak("prepare", str(small), "6")
    p_large = _peak("prepare", str(large), "12")
    assert p_large - p_small <= MARGIN_MB, (p_small, p_large)
    d_small = _peak("data", str(small), "0")
    d_large = _peak("data", str(large), "0")
    assert d_large - d_small <= MARGIN_MB, (d_small, d_large)
