"""Frozen visual features (encoders.face.frozen, cmkd.run.frame_features): extracted once per prepared
data set and encoder settings - a workflow job of its own (rule frame_features) that the face training
jobs depend on - cached, reused by every method; the backbone is in no network and no optimiser, the
head trains; the folder follows the configured settings, the key inside it the weights and the frames
(a stale folder is refused); the config check refuses a frozen encoder with a backbone hint stage or a
run whose networks read the face two ways. Random-init tiny timm architectures on synthetic data:
nothing is downloaded."""
import copy
import json
import math
import re

import numpy as np
import pytest
import torch

from conftest import tiny_config
from cmkd.config import run_spec
from cmkd.data.prepared import load_prepared
from cmkd.data.synthetic import write_synthetic
from cmkd.errors import ConfigError, DataError
from cmkd.frame_keys import settings_key
from cmkd.models.registry import build_model
from cmkd.models.visual import TimmFrameEncoder, import_timm
from cmkd.models.visual_frozen import FrozenFeatureHead
from cmkd.run import frame_features as ff
from cmkd.validation import check_semantics

BN_ARCH = "test_efficientnet"  # batch norm: a backbone left in training mode gives batch-dependent features
PARAMS = {"n_subjects": 2, "n_trials": 4, "segments_per_trial": 2, "sampling_rate": 32, "face_frames": 2, "face_size": 32}


@pytest.fixture(scope="module")
def prep_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ff") / "results/prepared/synthetic"
    write_synthetic(d, PARAMS, 0)
    return d


def encoder(arch=BN_ARCH, **kw):
    return {"name": "timm", "arch": arch, "frozen": True, **kw}


def settings(arch=BN_ARCH, **kw):
    return ff.extraction_settings(encoder(arch, **kw), (32, 32))


def ensure(prep, root, **kw):
    """ensure() into the folder the workflow would plan for these settings under ``root``."""
    enc = encoder(**kw)
    return ff.ensure(prep, enc, root / settings_key(enc))


def counting(monkeypatch):
    calls = []
    real = ff.extract

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ff, "extract", spy)
    return calls


def test_cache_hit_gives_the_same_features_as_one_frame_alone(prep_dir, tmp_path, monkeypatch):
    prep = load_prepared(prep_dir)
    calls = counting(monkeypatch)
    f1, p1 = ensure(prep, tmp_path / "cache")
    a1 = np.load(f1).copy()
    f2, p2 = ensure(prep, tmp_path / "cache")  # another method / seed: a cache hit
    assert calls == [1] and f1 == f2 and p1["cache_key"] == p2["cache_key"]
    assert np.array_equal(a1, np.load(f2))
    assert a1.shape == (prep.n, PARAMS["face_frames"], 256) and a1.dtype == np.float32
    # each segment's cached features are the backbone's (eval mode) on that segment alone: not batch-dependent
    enc, _ = ff.build_extractor(settings())
    for i in (0, prep.n - 1):
        with torch.no_grad():
            alone = enc.frames(torch.from_numpy(np.array(prep["face"][i:i + 1])))[0][0].numpy()
        np.testing.assert_allclose(a1[i], alone, rtol=1e-5, atol=1e-6)
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


def _weights_file(path, seed):
    torch.manual_seed(seed)
    m = import_timm().create_model(BN_ARCH, pretrained=False, num_classes=0)
    torch.save({k: (torch.randn_like(v) * 0.1 if v.is_floating_point() else v) for k, v in m.state_dict().items()}, path)
    return str(path)


def test_cache_key_follows_the_weights_and_the_frames(prep_dir, tmp_path, monkeypatch):
    prep = load_prepared(prep_dir)
    calls = counting(monkeypatch)
    wa, wb = _weights_file(tmp_path / "a.pth", 1), _weights_file(tmp_path / "b.pth", 2)
    fa, pa = ensure(prep, tmp_path / "cache", pretrained_path=wa)
    fb, pb = ensure(prep, tmp_path / "cache", pretrained_path=wb)
    assert pa["cache_key"] != pb["cache_key"] and fa != fb and calls == [1, 1]
    assert pa["file_sha256"] != pb["file_sha256"] and pa["source"] == "file"
    assert not np.array_equal(np.load(fa), np.load(fb))
    meta = json.loads((fa.parent / "meta.json").read_text())
    assert meta["key"] == pa["cache_key"] and meta["weights"]["state_sha256"] == pa["state_sha256"]
    assert meta["frames_content_hash"] == prep.data_hash and meta["settings_key"] == fa.parent.name
    # the same file again: a hit; the same weights under another file name: another folder (the
    # configured settings name it), the same features (the key inside follows the state)
    ensure(prep, tmp_path / "cache", pretrained_path=wa)
    (tmp_path / "copy.pth").write_bytes((tmp_path / "a.pth").read_bytes())
    fc, pc = ensure(prep, tmp_path / "cache", pretrained_path=str(tmp_path / "copy.pth"))
    assert calls == [1, 1, 1] and fc != fa and pc["cache_key"] == pa["cache_key"]
    assert np.array_equal(np.load(fa), np.load(fc), equal_nan=True)
    # other frames (another generator seed, another data set): another folder, extracted again
    other = tmp_path / "results/prepared/other"
    write_synthetic(other, PARAMS, 1)
    fo, po = ensure(load_prepared(other), tmp_path / "cache2", pretrained_path=wa)
    assert po["cache_key"] != pa["cache_key"] and calls == [1, 1, 1, 1]
    # a damaged cache folder (meta.json gone) is extracted again
    (fa.parent / "meta.json").unlink()
    ensure(prep, tmp_path / "cache", pretrained_path=wa)
    assert len(calls) == 5


def test_stale_folder_is_refused_naming_meta_json(tmp_path, monkeypatch):
    """The folder is named by the configured settings; what they do not decide (the weights file's
    content, the prepared frames) is checked against meta.json: a mismatch is a DataError, the
    training job never rewrites a folder the other jobs read."""
    prep_path = tmp_path / "results/prepared/synthetic"
    write_synthetic(prep_path, PARAMS, 0)
    w = _weights_file(tmp_path / "w.pth", 1)
    f, _ = ensure(load_prepared(prep_path), tmp_path / "cache", pretrained_path=w)
    calls = counting(monkeypatch)
    _weights_file(tmp_path / "w.pth", 2)  # other weights under the same path
    with pytest.raises(DataError, match=rf"{f.parent / 'meta.json'}: stale frozen face features: extracted with weights of sha256"):
        ensure(load_prepared(prep_path), tmp_path / "cache", pretrained_path=w)
    _weights_file(tmp_path / "w.pth", 1)
    ensure(load_prepared(prep_path), tmp_path / "cache", pretrained_path=w)  # the same weights again: fine
    write_synthetic(prep_path, PARAMS, 3)  # the prepared data set rebuilt with other frames
    with pytest.raises(DataError, match=r"meta.json: stale frozen face features: extracted from the frames .* content hash"):
        ensure(load_prepared(prep_path), tmp_path / "cache", pretrained_path=w)
    assert calls == []


def frozen_config(tmp_path, arch=BN_ARCH):
    cfg = tiny_config(results=str(tmp_path / "res"))
    cfg["training"]["max_epochs"] = 1
    cfg["datasets"]["synthetic"]["params"] = dict(PARAMS)
    cfg["encoders"]["face"].update({"arch": arch, "frozen": True, "hint_stage": None, "frozen_hidden": 8})
    cfg["methods"]["nst"]["params"] = {"weights": "paper", "positions": "spatial"}
    return cfg


def _run(cfg, method):
    from cmkd.train import run

    out = f"{cfg['results']}/synthetic/face_eeg-to-face/arousal/{method}/seed0"
    return run(run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", method, 0), out), out


def test_methods_share_one_extraction_and_record_it(tmp_path, monkeypatch):
    cfg = frozen_config(tmp_path)
    write_synthetic(f"{cfg['results']}/prepared/synthetic", PARAMS, 0)
    calls = counting(monkeypatch)
    keys = set()
    for m in ("teacher", "baseline", "kd", "fitnets", "nst"):  # the hint methods read the head's per-frame map
        r, _ = _run(cfg, m)
        assert r["status"] in ("ok", "degenerate"), r.get("reason")
        (w,) = r["provenance"]["weights"].values()
        assert w["frozen"] is True and w["arch"] == BN_ARCH and w["state_sha256"]
        keys.add(w["cache_key"])
    assert calls == [1] and len(keys) == 1
    (folder,) = [p for p in (tmp_path / "res/frame_features/synthetic").iterdir() if p.is_dir()]
    assert json.loads((folder / "meta.json").read_text())["key"] in keys


def test_backbone_is_in_no_network_and_no_optimiser_and_the_head_trains(tmp_path):
    from cmkd import train

    cfg = frozen_config(tmp_path)
    write_synthetic(f"{cfg['results']}/prepared/synthetic", PARAMS, 0)
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    data = train.load(spec)
    assert data.parts["train"].x["face"].shape[1:] == (PARAMS["face_frames"], 256)  # features, not frames
    built = train.build(data)
    student = built.method.student
    assert not any(isinstance(m, TimmFrameEncoder) for m in student.modules())
    heads = [m for m in student.modules() if isinstance(m, FrozenFeatureHead)]
    assert len(heads) == 1
    head_params = {id(p) for p in heads[0].parameters()}
    assert sum(p.numel() for p in heads[0].parameters()) == 2 * 256 + 256 * 8 + 8  # LayerNorm + Linear only
    opt_params = {id(p) for g in built.optimizer.param_groups for p in g["params"]}
    assert head_params <= opt_params and opt_params <= {id(p) for p in built.method.parameters()} | head_params
    before = {k: v.clone() for k, v in heads[0].state_dict().items()}
    idx = torch.arange(len(data.parts["train"]))[:8]
    batch = data.parts["train"].batch(idx, data.device)
    _, terms = built.method.training_step(batch)
    built.optimizer.zero_grad()
    sum(terms.values()).backward()
    built.optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in heads[0].state_dict().items())


def test_frozen_head_in_the_table3_architectures(tmp_path):
    feats = {"arch": BN_ARCH, "cache_key": "k"}
    spec = {"modalities": ["face", "eeg"], "n_outputs": 2, "head": {"hidden": 8, "dropout": 0.0},
            "encoders": {"face": {"name": "timm", "arch": BN_ARCH, "frozen": True, "frozen_hidden": 8},
                         "eeg": {"name": "tsception", "num_T": 4, "num_S": 4}},
            "inputs": {"face": {"shape": [2, 256], "features": feats},
                       "eeg": {"shape": [32, 64], "sampling_rate": 32}}}
    batch = {"face": torch.randn(3, 2, 256), "eeg": torch.randn(3, 32, 64)}
    for arch in (None, "cnn_lstm", "dgc_jca", "cnn_svm", "emotionkd_teacher", "ambokd"):
        s = dict(spec, architecture=arch, model={})
        out = build_model(s)(batch)
        assert out.logits.shape == (3, 2) and out.features["hint"].shape == (3, 8, 2), arch


def test_frozen_encoder_needs_features_and_no_hint_stage():
    spec = {"modalities": ["face"], "n_outputs": 2, "encoders": {"face": {"name": "timm", "arch": BN_ARCH, "frozen": True}},
            "inputs": {"face": {"shape": [2, 3, 32, 32]}}}
    with pytest.raises(ConfigError, match=r"frozen: true reads the cached frame features"):
        build_model(spec)
    s = copy.deepcopy(spec)
    s["inputs"]["face"] = {"shape": [2, 256], "features": {"arch": BN_ARCH}}
    s["encoders"]["face"]["hint_stage"] = 1
    with pytest.raises(ConfigError, match=r"hint_stage: 1 names a backbone stage"):
        build_model(s)
    s["encoders"]["face"]["hint_stage"] = None
    s["inputs"]["face"]["features"]["arch"] = "test_vit"
    with pytest.raises(ConfigError, match=r"extracted with 'test_vit'"):
        build_model(s)


def test_config_check_refuses_hint_stage_and_mixed_face_readers():
    cfg = tiny_config()
    cfg["encoders"]["face"].update({"frozen": True, "hint_stage": None})
    check_semantics(cfg)
    c = copy.deepcopy(cfg)
    c["encoders"]["face"]["hint_stage"] = 1
    with pytest.raises(ConfigError, match=r"encoders\.face\.hint_stage: 1 names a backbone stage.*frozen"):
        check_semantics(c)
    c = copy.deepcopy(cfg)
    c["methods"]["kd"]["encoders"] = {"face": {"frozen": False}}  # the student fine-tunes, its teacher is frozen
    with pytest.raises(ConfigError, match=r"methods\.kd\.encoders\.face\.frozen: method 'kd' .* teacher 'teacher'"):
        check_semantics(c)
    c["methods"]["kd"]["encoders"] = {"face": {"arch": "test_vit"}}  # frozen both, other features
    with pytest.raises(ConfigError, match=r"methods\.kd\.encoders\.face\.arch"):
        check_semantics(c)
    c["methods"]["kd"]["encoders"] = {"face": {"pretrained": False}}  # spells out the default the teacher leaves out
    check_semantics(c)
    c["methods"]["kd"]["encoders"] = {"face": {"pretrained": True, "allow_random_init": True}}
    with pytest.raises(ConfigError, match=r"methods\.kd\.encoders\.face\.pretrained: .* False"):
        check_semantics(c)


def test_job_refuses_a_teacher_trained_on_other_face_inputs(tmp_path):
    cfg = frozen_config(tmp_path)
    write_synthetic(f"{cfg['results']}/prepared/synthetic", PARAMS, 0)
    _run(cfg, "teacher")
    fine = copy.deepcopy(cfg)
    fine["encoders"]["face"].update({"frozen": False})
    with pytest.raises(DataError, match=r"fine-tunes on the frames"):
        _run(fine, "kd")
    other = copy.deepcopy(cfg)
    other["encoders"]["face"]["arch"] = "test_convnext3"
    with pytest.raises(DataError, match=r"read the same features"):
        _run(other, "kd")
    spelled = copy.deepcopy(cfg)  # the student spells out the defaults its teacher's encoder leaves out: the same features
    spelled["methods"]["kd"]["encoders"] = {"face": {"pretrained": False, "img_size": None}}
    assert "pretrained" not in cfg["encoders"]["face"]
    _run(spelled, "kd")


def test_resources_know_the_frozen_encoder_is_cheap():
    from cmkd import resources

    assert resources.FROZEN_EXTRACT_BATCH == ff.BATCH_SEGMENTS
    cfg = tiny_config()
    cfg["methods"]["kd"]["training"] = {"max_epochs": 100}
    fine = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "kd")
    cfg["encoders"]["face"].update({"frozen": True, "hint_stage": None})
    frozen = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "kd")
    assert frozen["frozen_face"] and not fine["frozen_face"]
    assert frozen["sample_s"] < fine["sample_s"] / 100
    # the extraction is a job of its own (rule frame_features): a forward pass over the data set, on the
    # training jobs' GPU when they have one (the host holds the CUDA context), more at a retry
    cfg["datasets"]["synthetic"]["params"]["n_subjects"] = 400  # long enough to pass the minimum runtime
    cpu, gpu = (resources.extraction_estimate(cfg, "synthetic", 1, gpu=g) for g in (False, True))
    n = cpu["n_segments"]
    assert cpu["runtime"] == math.ceil(
        (n * resources.FROZEN_EXTRACT_FACTOR * resources.SAMPLE_S["face"] + resources.STARTUP_S) * resources.MARGIN / 60)
    assert cpu["runtime"] > resources.MIN_RUNTIME and gpu["mem_mb"] > resources.CUDA_HOST_MB
    again = resources.extraction_estimate(cfg, "synthetic", 2)
    assert again["runtime"] >= 2 * cpu["runtime"] - 1 and again["mem_mb"] >= 2 * cpu["mem_mb"] - 100


def test_table_note_names_the_frozen_features():
    from cmkd.analysis.table_notes import visual_note
    from cmkd.workflow.summary import frozen_visual

    cfg = tiny_config()
    cells = [("synthetic", "face_eeg-to-face", "arousal", m) for m in ("teacher", "baseline", "kd")]
    assert frozen_visual(cfg, cells) == {}  # fine-tuning: no note
    cfg["encoders"]["face"].update({"frozen": True, "hint_stage": None, "arch": "pvt_v2_b2", "pretrained": True})
    vis = frozen_visual(cfg, cells)
    table = {"track": "face_eeg-to-face", "rows": {"baseline": None, "kd": "kd"}}
    note = visual_note(table, vis)
    assert "frozen pvt_v2_b2 features (ImageNet weights from timm)" in note and "not fine-tuned" in note
    assert "authors train on stored PVT features" in note
    assert visual_note({"track": "face-to-eeg", "rows": {"baseline": None}}, vis) == ""


def test_streamed_parts_read_the_cached_features(tmp_path):
    """A data set past training.stream_threshold_mb streams its rows from the features file, not the frames."""
    from cmkd import train

    cfg = frozen_config(tmp_path)
    write_synthetic(f"{cfg['results']}/prepared/synthetic", PARAMS, 0)
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    mem = train.load(spec)
    spec["training"]["stream_threshold_mb"] = 0
    streamed = train.load(spec)
    assert mem.data_mode == "memory" and streamed.data_mode == "stream"
    idx = torch.arange(4)
    assert torch.equal(mem.parts["train"].batch(idx, "cpu")["face"], streamed.parts["train"].batch(idx, "cpu")["face"])
    np.save(tmp_path / "short.npy", np.zeros((1, 2, 256), np.float32))
    with pytest.raises(DataError, match="1 rows"):
        load_prepared(mem.prep.path).with_array("face", tmp_path / "short.npy")


# ----------------------------------------------------------------------------- the workflow's extraction job
def _grid(cfg):
    from cmkd.workflow import plan
    from cmkd.workflow.grid import Grid

    plan.check_config(cfg, [], True)
    return Grid.of(cfg)


def test_plan_one_extraction_per_dataset_and_settings(tmp_path):
    from types import SimpleNamespace as W

    from cmkd.frame_keys import cache_folder
    from cmkd.workflow import frame_jobs

    cfg = frozen_config(tmp_path)
    cfg["experiments"][0]["dimensions"] = ["arousal", "valence"]
    grid = _grid(copy.deepcopy(cfg))
    ((ds, key), enc), = frame_jobs.extractions(grid).items()
    meta = f"{cfg['results']}/frame_features/synthetic/{key}/meta.json"
    assert ds == "synthetic" and enc["arch"] == BN_ARCH and frame_jobs.target_files(grid) == [meta]
    for m in ("teacher", "baseline", "kd"):  # every face run of the data set reads the one extraction
        for dim in ("arousal", "valence"):
            assert frame_jobs.run_inputs(grid, W(dataset="synthetic", track="face_eeg-to-face", dimension=dim, method=m)) == [meta]
    # the folder the training job reads is the planned one
    spec = run_spec(grid.config, "synthetic", "face_eeg-to-face", "arousal", "kd", 0)
    assert f"{cache_folder(spec['prepared'], ff.frozen_encoder(spec, {}))}/meta.json" == meta
    assert json.loads(frame_jobs.encoder_json(grid, W(dataset="synthetic", fkey=key)))["frozen"] is True
    # a changed setting: another job and folder
    other = copy.deepcopy(cfg)
    other["encoders"]["face"]["img_size"] = 64
    (key2,) = [k for _, k in frame_jobs.extractions(_grid(other))]
    assert key2 != key
    # a method of its own settings (no teacher shares them): two extractions, each run reads its own
    mixed = copy.deepcopy(cfg)
    mixed["methods"]["baseline"]["encoders"] = {"face": {"arch": "test_vit"}}
    g = _grid(mixed)
    assert len(frame_jobs.extractions(g)) == 2
    base, kd = (frame_jobs.run_inputs(g, W(dataset="synthetic", track="face_eeg-to-face", method=m)) for m in ("baseline", "kd"))
    assert base != kd and kd == [meta]
    # fine-tuned faces: no extraction, no input
    fine = copy.deepcopy(cfg)
    fine["encoders"]["face"]["frozen"] = False
    fine["encoders"]["face"]["hint_stage"] = 1
    g = _grid(fine)
    assert frame_jobs.extractions(g) == {} and frame_jobs.run_inputs(g, W(dataset="synthetic", track="face_eeg-to-face", method="kd")) == []


def _blocks(out: str, rule: str) -> list[dict]:
    """The jobs of ``rule`` in a dry-run's log: ``{"input": [...], "output": [...]}`` each."""
    jobs = []
    for b in out.split(f"rule {rule}:")[1:]:
        b = b.split("\n\n", 1)[0]
        job = {}
        for field in ("input", "output"):
            line = next((ln for ln in b.splitlines() if ln.strip().startswith(f"{field}:")), f"{field}: ")
            job[field] = [p for p in line.split(":", 1)[1].strip().split(", ") if p]
        jobs.append(job)
    return jobs


def test_dry_run_plans_one_extraction_that_the_face_training_jobs_wait_for(tmp_path, snakemake_runner):
    cfg = frozen_config(tmp_path)
    cfg["results"] = "results"
    cfg["experiments"][0]["dimensions"] = ["arousal", "valence"]
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    (job,) = _blocks(out, "frame_features")
    meta = next(p for p in job["output"] if p.endswith("meta.json"))
    assert job["input"] == ["results/prepared/synthetic"] and meta.startswith("results/frame_features/synthetic/")
    trains = _blocks(out, "train")
    assert len(trains) == 6  # teacher, baseline, kd x 2 dimensions
    assert all(meta in t["input"] for t in trains), trains
    # the resources of a forward pass over the data set (cmkd.resources.extraction_estimate)
    from cmkd import resources

    block = out.split("rule frame_features:")[1].split("\n\n", 1)[0]
    est = resources.extraction_estimate(_grid(copy.deepcopy(cfg)).config, "synthetic", 1, gpu=False)
    assert int(re.search(r"mem_mb=(\d+)", block).group(1)) == est["mem_mb"]
    assert int(re.search(r"runtime=(\d+)", block).group(1)) == est["runtime"]


def test_tuning_studies_wait_for_the_extraction_too(tmp_path, snakemake_runner):
    cfg = frozen_config(tmp_path)
    cfg["results"] = "results"
    cfg["tuning"] = {"enabled": True, "n_trials": 2, "methods": "all"}
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    (job,) = _blocks(out, "frame_features")
    meta = next(p for p in job["output"] if p.endswith("meta.json"))
    studies = _blocks(out, "study")
    assert studies and all(meta in st["input"] for st in studies), studies


def test_workflow_extracts_once_and_the_training_jobs_read_it(tmp_path, snakemake_runner):
    cfg = frozen_config(tmp_path)
    cfg["results"] = "results"
    runs = [f"results/synthetic/face_eeg-to-face/arousal/{m}/seed0/metrics.json" for m in ("baseline", "kd")]
    r = snakemake_runner(tmp_path, "--cores", "2", *runs, config=cfg, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    root = tmp_path / "results/frame_features/synthetic"
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    assert not list(root.glob("*.lock"))  # no training job extracted or waited on the lock
    (log,) = (tmp_path / "results/logs/frame_features/synthetic").glob("*.log")
    assert "frames in" in log.read_text() and log.stem == folder.name
    key = json.loads((folder / "meta.json").read_text())["key"]
    logs = list((tmp_path / "results/logs/train").rglob("*.log"))
    assert len(logs) == 3  # teacher (kd's), baseline, kd
    for lg in logs:
        text = lg.read_text()
        assert f"frozen face features: results/frame_features/synthetic/{folder.name}" in text and "extracting" not in text, text[-2000:]
    for run in runs:
        (w,) = json.loads((tmp_path / run).read_text())["provenance"]["weights"].values()
        assert w["cache_key"] == key and w["frozen"] is True


def test_a_cache_hit_builds_no_backbone_when_meta_json_shows_the_same_weights(tmp_path, monkeypatch):
    """On a hit whose meta.json records this job's settings, frames, weights file (sha256) and
    library versions, the job trusts the recorded weights hash: no backbone is built. Anything else
    (another timm, other bytes in the weights file) builds it and compares, as before."""
    prep_path = tmp_path / "results/prepared/synthetic"
    write_synthetic(prep_path, PARAMS, 0)
    prep = load_prepared(prep_path)
    w = _weights_file(tmp_path / "w.pth", 1)
    f1, p1 = ensure(prep, tmp_path / "cache", pretrained_path=w)
    meta_file = f1.parent / "meta.json"
    assert json.loads(meta_file.read_text())["versions"]["timm"] == import_timm().__version__
    real, builds = ff.build_extractor, []

    def spy(settings):
        builds.append(settings["arch"])
        return real(settings)

    monkeypatch.setattr(ff, "build_extractor", spy)
    f2, p2 = ensure(prep, tmp_path / "cache", pretrained_path=w)
    assert builds == [] and (f2, p2) == (f1, p1)  # the provenance a build would give, from meta.json
    meta = json.loads(meta_file.read_text())
    meta["versions"]["timm"] = "0.0.1"  # extracted under another timm: build and compare the hash
    meta_file.write_text(json.dumps(meta))
    assert ensure(prep, tmp_path / "cache", pretrained_path=w) == (f1, p1) and builds == [BN_ARCH]
    meta["versions"] = ff._versions()
    meta_file.write_text(json.dumps(meta))
    _weights_file(tmp_path / "w.pth", 2)  # other bytes under the same path: built, and refused
    with pytest.raises(DataError, match="stale frozen face features: extracted with weights of sha256"):
        ensure(prep, tmp_path / "cache", pretrained_path=w)
    assert builds == [BN_ARCH, BN_ARCH]
    random_init = ensure(prep, tmp_path / "cache_random")  # a random backbone (INIT_SEED): a hit without a build
    assert ensure(prep, tmp_path / "cache_random") == random_init and len(builds) == 3
