"""A job given a GPU never trains on the CPU: cmkd.devices (torch-free facts, and the job's check)."""
import json
import os
import subprocess
import sys

import pytest

from cmkd import devices
from conftest import ROOT, tiny_config


@pytest.mark.parametrize("env, given", [
    ({}, None),
    ({"CUDA_VISIBLE_DEVICES": ""}, None),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, None),
    ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None),
    ({"SLURM_GPUS_ON_NODE": "0"}, None),
    ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES=0"),
    ({"CUDA_VISIBLE_DEVICES": "GPU-5f3c"}, "CUDA_VISIBLE_DEVICES=GPU-5f3c"),
    ({"SLURM_GPUS_ON_NODE": "1"}, "SLURM_GPUS_ON_NODE=1"),
    ({"SLURM_JOB_GPUS": "0"}, "SLURM_JOB_GPUS=0"),  # a GPU index, not a count
    ({"SLURM_STEP_GPUS": "2,3"}, "SLURM_STEP_GPUS=2,3"),
])
def test_gpu_allocation_reads_slurm_and_cuda_variables(env, given):
    assert devices.gpu_allocation(env) == given


def test_torch_build_is_read_without_importing_torch():
    code = ("import sys; from cmkd.devices import torch_build; b = torch_build(); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(b['kind'], b['version'], b['cuda'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0, r.stderr
    import torch

    kind, version, cuda = r.stdout.split()
    assert version == torch.__version__
    assert kind == ("cpu" if torch.version.cuda is None else "cuda")
    assert cuda == str(torch.version.cuda)


def test_cpu_build_with_a_gpu_allocated_stops_and_names_the_cause():
    import torch

    if torch.version.cuda is not None:
        pytest.skip("a CUDA build of torch")
    with pytest.raises(devices.DeviceError, match=r"given a GPU \(SLURM_GPUS_ON_NODE=1\), but torch .* is a CPU build"):
        devices.resolve_device("auto", {"SLURM_GPUS_ON_NODE": "1"})
    with pytest.raises(devices.DeviceError, match="device: cuda is set in the config, but torch .* CPU build"):
        devices.resolve_device("cuda", {})
    # nothing allocated: auto is the CPU; an explicit cpu is the CPU even on a GPU node
    assert devices.resolve_device("auto", {}).type == "cpu"
    assert devices.resolve_device("cpu", {"CUDA_VISIBLE_DEVICES": "0"}).type == "cpu"


def test_cuda_build_without_a_usable_device_names_the_driver(monkeypatch):
    """A CUDA wheel whose driver is too old: the driver's complaint becomes the one-line cause."""
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 11040).")

    monkeypatch.setattr(torch.cuda, "init", init)
    with pytest.raises(devices.DeviceError, match="driver is too old for this build \\(CUDA 12.8\\)"):
        devices.resolve_device("auto", {"CUDA_VISIBLE_DEVICES": "0"})
    monkeypatch.setattr(torch.cuda, "init", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(devices.DeviceError, match="no CUDA device is visible"):
        devices.resolve_device("cuda", {})


def test_cluster_check_refuses_gpu_jobs_with_a_cpu_build():
    cpu = {"installed": True, "version": "2.13.0+cpu", "cuda": None, "kind": "cpu"}
    cuda = {"installed": True, "version": "2.13.0", "cuda": "12.8", "kind": "cuda"}
    with pytest.raises(devices.DeviceError, match="ask for 1 GPU.*CPU build.*setup.sh --cuda"):
        devices.cluster_check(1, cpu)
    assert "CPU build" in devices.cluster_check(0, cpu)[0]
    assert "CUDA 12.8" in devices.cluster_check(1, cuda)[0]
    assert len(devices.cluster_check(1, cpu, allow_cpu_torch=True)) == 2


@pytest.mark.parametrize("env", [{"CUDA_VISIBLE_DEVICES": "0"}, {"SLURM_GPUS_ON_NODE": "1", "SLURM_JOB_GPUS": "0"}],
                         ids=["cuda-visible-devices", "slurm-gpu-job"])
def test_training_job_given_a_gpu_with_the_cpu_wheel_fails_at_start(tmp_path, env):
    """`python -m cmkd train` in a process that believes it holds a GPU: exit 2, one line, no output
    written and no epoch trained."""
    import torch

    if torch.version.cuda is not None:
        pytest.skip("a CUDA build of torch")
    from cmkd.config import run_spec

    cfg = tiny_config(str(tmp_path / "results"))
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    out = tmp_path / "run"
    clean = {k: v for k, v in os.environ.items() if k not in devices.GPU_ENV}
    r = subprocess.run([sys.executable, "-m", "cmkd", "train", "--spec", json.dumps(spec), "--out", str(out)],
                       capture_output=True, text=True, timeout=120, env={**clean, **env})
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: this job was given a GPU (") and "is a CPU build" in lines[-1], r.stderr
    assert "Traceback" not in r.stderr and "epoch" not in r.stderr
    assert not (out / "metrics.json").exists()
