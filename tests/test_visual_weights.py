"""Pretrained visual encoder: a local weights file (``pretrained_path``) or timm's hub cache
(``pretrained: true``) is loaded, its sha256 is recorded in metrics.json, and the config check
refuses a randomly initialised visual encoder on real data unless the config allows it. Nothing is
downloaded: the tests write small weights files of timm's test architecture themselves."""
import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, tiny_config
from cmkd.config import run_spec
from cmkd.validation import check_semantics
from cmkd.data.synthetic import write_synthetic
from cmkd.errors import ConfigError
from cmkd.models.registry import build_model
from cmkd.models.visual import TimmFrameEncoder, import_timm

ARCH = "test_convnext3"


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A state dict of the small test architecture, every tensor drawn from a fixed seed."""
    torch.manual_seed(123)
    m = import_timm().create_model(ARCH, pretrained=False, num_classes=0)
    sd = {k: (torch.randn_like(v) if v.is_floating_point() else v) for k, v in m.state_dict().items()}
    f = tmp_path_factory.mktemp("w") / "weights.pth"
    torch.save(sd, f)
    return f, sd


def test_pretrained_path_loads_the_files_parameters(weights_file):
    f, sd = weights_file
    torch.manual_seed(0)
    enc = build_model({"modalities": ["face"], "inputs": {"face": {"shape": [1, 3, 32, 32]}}, "n_outputs": 2,
                       "head": {"hidden": 8, "dropout": 0.0},
                       "encoders": {"face": {"name": "timm", "arch": ARCH, "pretrained_path": str(f)}}})
    frame = next(m for m in enc.modules() if isinstance(m, TimmFrameEncoder))
    got = frame.backbone.state_dict()
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    assert frame.weights["source"] == "file" and frame.weights["file_sha256"] == sha256(f)
    random = TimmFrameEncoder(ARCH, 32)
    assert random.weights["source"] == "random" and random.weights["file_sha256"] is None
    assert not torch.equal(random.backbone.state_dict()["stem.0.weight"], sd["stem.0.weight"])


def test_weights_hash_in_metrics_json(weights_file, tmp_path):
    f, sd = weights_file
    cfg = tiny_config(results=str(tmp_path / "res"))
    cfg["training"]["max_epochs"] = 1
    cfg["encoders"]["face"].update({"arch": ARCH, "pretrained_path": str(f)})
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    from cmkd.train import run

    run(run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0), tmp_path / "run")
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    (w,) = metrics["provenance"]["weights"].values()
    assert w["file_sha256"] == sha256(f) and w["source"] == "file" and w["file"] == str(f)


def test_timm_pretrained_true_reads_the_hub_cache(weights_file, tmp_path):
    """``pretrained: true`` is timm's own loader; here the hub cache is a folder the test fills
    (offline), and the cached file's hash is recorded."""
    f, sd = weights_file
    from safetensors.torch import save_file

    rev = "0" * 40
    snap = tmp_path / f"hub/models--timm--{ARCH}.r160_in1k/snapshots/{rev}"
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs/main").write_text(rev)
    save_file({k: v.contiguous() for k, v in sd.items()}, snap / "model.safetensors")
    code = ("import json, torch; from cmkd.models.visual import TimmFrameEncoder; "
            f"e = TimmFrameEncoder({ARCH!r}, 32, pretrained=True); sd = torch.load({str(f)!r}); "
            "print(json.dumps({'w': e.weights, 'equal': all(torch.equal(e.backbone.state_dict()[k], v) for k, v in sd.items())}))")
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["equal"] and out["w"]["source"] == "timm"
    assert out["w"]["file_sha256"] == sha256(snap / "model.safetensors")


def test_random_visual_init_refused_on_real_data_unless_allowed(weights_file, tmp_path):
    f, _ = weights_file
    cfg = tiny_config()
    cfg["datasets"]["real"] = {**copy.deepcopy(cfg["datasets"]["synthetic"]), "loader": "deap", "synthetic": False,
                               "root": str(tmp_path), "params": {}}  # the loader's defaults (not the generator's)
    (tmp_path / "s01.dat").write_bytes(b"")  # an empty raw root is a config error of its own
    cfg["experiments"] = [{**cfg["experiments"][0], "dataset": "real"}]
    cfg["tables"] = []
    with pytest.raises(ConfigError, match=r"encoders\.face: .*randomly initialised.*allow_random_init"):
        check_semantics(cfg)
    for ok in ({"allow_random_init": True}, {"pretrained": True}, {"pretrained_path": str(f)}):
        c = copy.deepcopy(cfg)
        c["encoders"]["face"].update(ok)
        check_semantics(c)
    c = copy.deepcopy(cfg)
    c["encoders"]["face"]["pretrained_path"] = str(tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match=r"encoders\.face\.pretrained_path: no such weights file"):
        check_semantics(c)
    check_semantics(tiny_config())  # synthetic data: no weights needed
