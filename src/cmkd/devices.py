"""Which device a training job may use, and why it may not: a job that was given a GPU never
trains on the CPU in silence.

Two questions, answered apart:

- **Was this job given a GPU?** (:func:`gpu_allocation`, torch-free) Slurm sets
  ``SLURM_GPUS_ON_NODE`` / ``SLURM_JOB_GPUS`` / ``SLURM_STEP_GPUS`` for a job that asked for
  GPUs; a scheduler or a user that hands a process its GPUs sets a non-empty
  ``CUDA_VISIBLE_DEVICES``. Slurm's placeholder ``NoDevFiles`` and an empty value mean none.
- **Which torch is installed?** (:func:`torch_build`, torch-free) read from the installed
  package's ``torch/version.py`` and its distribution metadata, without importing torch, so that
  planning (``snakemake -n``, ``cmkd check --cluster`` on a login node) stays torch-free.

:func:`resolve_device` (imports torch: the training job calls it) turns ``device: auto | cpu |
cuda`` into a torch device. ``auto`` is CUDA when the job was given a GPU, else the CPU; a job
that was given a GPU, or asked for ``cuda``, and whose torch cannot use one stops at start with
one line naming the cause: a CPU build of torch, no visible device, or a driver too old for the
build's CUDA.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from pathlib import Path
from typing import Mapping

from cmkd.errors import CmkdError

#: environment variables that say a process was handed GPUs (Slurm's, then CUDA's own)
GPU_ENV = ("SLURM_GPUS_ON_NODE", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES")
_NONE_VALUES = {"", "nodevfiles", "none", "-1"}


class DeviceError(CmkdError):
    """A job cannot use the device it was given or asked for; the message names the cause."""


def gpu_allocation(env: Mapping[str, str] | None = None) -> str | None:
    """``"NAME=value"`` of the first variable of :data:`GPU_ENV` that hands this process a GPU, or
    ``None`` when none does. ``SLURM_GPUS_ON_NODE=0`` is no GPU; for ``CUDA_VISIBLE_DEVICES`` any
    non-empty value other than ``-1``/``NoDevFiles`` is one (``0`` is the first device there)."""
    env = os.environ if env is None else env
    for name in GPU_ENV:
        value = str(env.get(name, "")).strip()
        low = value.lower()
        if low in _NONE_VALUES or (name == "SLURM_GPUS_ON_NODE" and low == "0"):  # a count there; ids elsewhere
            continue
        return f"{name}={value}"
    return None


def torch_build() -> dict:
    """``{"installed", "version", "cuda", "kind"}`` of the installed torch, read from its files:
    ``cuda`` is the CUDA version the build was compiled for (``None`` for a CPU build), ``kind``
    one of ``cpu``, ``cuda``, ``rocm``, ``missing``. Imports nothing of torch."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return {"installed": False, "version": None, "cuda": None, "kind": "missing"}
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):  # a torch that cannot be imported here: the wheel's tag below
        spec = None
    cuda = hip = None
    if spec is not None and spec.submodule_search_locations:
        vfile = Path(list(spec.submodule_search_locations)[0]) / "version.py"
        try:
            text = vfile.read_text(encoding="utf-8")
        except OSError:
            text = ""
        m = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        cuda = m.group(1) if m else None
        m = re.search(r"^hip\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        hip = m.group(1) if m else None
    local = version.split("+", 1)[1] if "+" in version else ""
    if cuda is None and local.startswith("cu") and local[2:].isdigit():  # no version.py: the wheel's tag
        cuda = f"{local[2:-1]}.{local[-1]}"
    kind = "cuda" if cuda else "rocm" if hip else "cpu"
    return {"installed": True, "version": version, "cuda": cuda, "kind": kind}


def describe_build(build: Mapping | None = None) -> str:
    b = torch_build() if build is None else build
    if not b["installed"]:
        return "torch is not installed"
    if b["kind"] == "cpu":
        return f"torch {b['version']} is a CPU build (no CUDA)"
    return f"torch {b['version']} built for {'CUDA ' + b['cuda'] if b['cuda'] else 'ROCm'}"


def _cuda_failure(torch) -> str:
    """Why ``torch.cuda`` cannot be used although the build has CUDA: the driver's own message
    (too old for the build, not loaded) or no visible device."""
    try:
        torch.cuda.init()
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/AssertionError with the driver's words
        msg = " ".join(str(e).split())
        if "driver" in msg.lower() and ("old" in msg.lower() or "version" in msg.lower()):
            return f"the NVIDIA driver is too old for this build (CUDA {torch.version.cuda}): {msg[:200]}"
        return f"CUDA initialisation failed: {msg[:200]}"
    if torch.cuda.device_count() == 0:
        return "no CUDA device is visible to this process"
    return "CUDA is not usable"


def resolve_device(requested: str, env: Mapping[str, str] | None = None):
    """The torch device of a job that says ``device: requested`` (``auto``, ``cpu``, ``cuda``)."""
    import torch  # lazy: torch (the planner imports this module)

    requested = str(requested)
    if requested not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"device: must be auto, cpu or cuda, got {requested!r}")
    if requested == "cpu":
        return torch.device("cpu")
    given = gpu_allocation(env)
    if requested == "auto" and given is None:
        # nothing handed this process a GPU: a workstation's own GPU if torch sees one, else the CPU
        # (a Slurm job without a GPU request sees none: cgroups hide the node's devices)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    why = (f"this job was given a GPU ({given})" if given else "device: cuda is set in the config")
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        raise DeviceError(f"{why}, but torch {torch.__version__} is a CPU build: install the CUDA build "
                          f"(bash scripts/setup.sh --cuda) or run with device: cpu on a CPU partition")
    if not torch.cuda.is_available():
        raise DeviceError(f"{why}, but torch cannot use it: {_cuda_failure(torch)}")
    return torch.device("cuda")


def cluster_check(gpus_per_job: int, build: Mapping | None = None, allow_cpu_torch: bool = False) -> list[str]:
    """Lines describing what the environment's torch can do for jobs that ask for
    ``gpus_per_job`` GPUs; raises :class:`DeviceError` for GPU jobs with a CPU build (or no torch)
    unless ``allow_cpu_torch``. Torch-free (a login node has no GPU to ask)."""
    b = torch_build() if build is None else build
    lines = [describe_build(b) + f"; training jobs ask for {gpus_per_job} GPU(s) each"]
    if gpus_per_job > 0 and b["kind"] not in ("cuda", "rocm"):
        if not allow_cpu_torch:
            raise DeviceError(
                f"the training jobs ask for {gpus_per_job} GPU(s) each, but {describe_build(b)}: every job would stop "
                f"at start. Build the CUDA environment (bash scripts/setup.sh --cuda) where the GPU nodes can see it, "
                f"or set CMKD_SLURM_GPUS=0 for a CPU partition, or override with --config allow_cpu_torch=True (cmkd check --cluster: --allow-cpu-torch)")
        lines.append("allow_cpu_torch: the GPU jobs will stop at start unless their nodes see another torch")
    return lines


def slurm_gpus_per_job(env: Mapping[str, str] | None = None) -> int:
    """GPUs per training job of the Slurm profile (``slurm/config.yaml``): ``CMKD_SLURM_GPUS``,
    default 1 (the profile reads the same variable with the same default; a test keeps them equal)."""
    env = os.environ if env is None else env
    raw = str(env.get("CMKD_SLURM_GPUS", "")).strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        raise DeviceError(f"CMKD_SLURM_GPUS: an integer number of GPUs per training job, got {raw!r}") from None
    if n < 0:
        raise DeviceError(f"CMKD_SLURM_GPUS: must be >= 0, got {n}")
    return n


def requested_gpus(resources: Mapping | None) -> int:
    """GPUs that a rule's resources (Snakemake's ``--set-resources`` of a profile) ask for: ``gpu`` /
    ``gpus``, or a ``gres`` such as ``gpu:2`` / ``gpu:a100:1``."""
    total = 0
    for key, value in dict(resources or {}).items():
        # Snakemake's Resource objects (a profile's set-resources): their raw value; .value would
        # have to be evaluated in a rule's context
        value = getattr(value, "raw", None) if hasattr(value, "raw") else getattr(value, "_value", value)
        if key in ("gpu", "gpus"):
            try:
                total += int(value)
            except (TypeError, ValueError):
                total += 1
        elif key == "gres" and isinstance(value, str):
            for item in value.split(","):
                parts = item.strip().split(":")
                if parts[0] == "gpu":
                    total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total
