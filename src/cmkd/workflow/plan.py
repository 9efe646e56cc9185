"""Planning: the config check before any job, the refusal of GPU jobs that could not use their GPU,
the jobs' environment and interpreter, and the resources of a training job."""
from __future__ import annotations

import re
import sys
from typing import Callable, Iterable, Mapping

from cmkd.devices import DeviceError, cluster_check, requested_gpus
from cmkd.errors import ConfigError, DataError
from cmkd.resources import estimate
from cmkd.tuning import expand as expand_tuning
from cmkd.validation import config_lines, validate_config
from cmkd.workflow.grid import Grid


class PlanError(Exception):
    """The workflow cannot be planned (the rules raise it as Snakemake's WorkflowError)."""


def check_config(config: dict, files: Iterable[str], jobs_use_this_python: bool) -> list[str]:
    """Validate ``config`` in place as ``cmkd check`` does (the schema fills defaults,
    select_datasets, then semantics: :func:`cmkd.validation.validate_config`) and, with tuning on,
    add the tuned twins (:func:`cmkd.tuning.expand`). Returns the warnings; raises
    :class:`PlanError` ("invalid config: ...", or "invalid split: ..." for a prepared data set the
    configured split cannot validate on)."""
    try:
        warnings = list(validate_config(config, config_lines(list(files)), jobs_use_this_python=jobs_use_this_python))
        config.update(expand_tuning(config))
    except ConfigError as e:
        raise PlanError(f"invalid config: {e}") from None
    except DataError as e:
        raise PlanError(f"invalid split: {e}") from None
    return warnings


_DRY_FLAGS = ("--dry-run", "--dryrun", "--just-print")


def is_dry_run(dryrun: bool, argv: Iterable[str]) -> bool:
    """Snakemake's dry-run flag, or a dry-run asked on the command line (``-n``, ``-pn``, ...: a
    remote executor's plugin is not yet set while the Snakefile is read, so the command line tells)."""
    return bool(dryrun) or any(a in _DRY_FLAGS or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a) for a in argv)


def train_gpus(overwrite_resources: Mapping) -> int:
    """GPUs per training job that a profile's ``--set-resources train:gpu=...`` asks for."""
    return requested_gpus(overwrite_resources.get("train"))


def gpu_plan_lines(gpus: int, config: Mapping, conda: bool, dry_run: bool) -> list[str]:
    """The plan-time check of GPU training jobs (torch-free): lines to print. GPU jobs with a CPU
    build of torch would all stop at start: refused now (:class:`PlanError`), unless
    ``allow_cpu_torch`` is set; a dry-run only warns (planning on a login node needs no CUDA torch);
    under ``--sdm conda`` the GPU jobs run envs/cuda.yaml instead, nothing is checked."""
    if not gpus or conda:
        return []
    try:
        return [f"cluster: {line}" for line in cluster_check(gpus, allow_cpu_torch=bool(config.get("allow_cpu_torch")))]
    except DeviceError as e:
        if not dry_run:
            raise PlanError(f"GPU jobs: {e}") from None
        return [f"warning: GPU jobs: {e} (a dry-run: planned anyway)"]


def interpreter(conda: bool) -> str:
    """The interpreter of a job: under ``--sdm conda`` the one of the rule's env (which installs the
    project), else the one running Snakemake."""
    return "python" if conda else sys.executable


def train_env_name(config: Mapping, gpus: int) -> str:
    """The conda env of the network training jobs: ``cuda`` when they ask for a GPU (a profile's
    ``train:gpu``) or the config says ``device: cuda``, else ``cpu``."""
    return "cuda" if (gpus or config.get("device") == "cuda") else "cpu"


def job_on_gpu(config: Mapping, gpus: int) -> bool:
    """A training job given a GPU keeps its activations in GPU memory: its host request is the CUDA
    context's, not the CPU activations' (``device: cpu`` keeps the CPU estimate)."""
    device = config.get("device", "auto")
    return device == "cuda" or (bool(gpus) and device != "cpu")


def train_resources(grid: Grid, w, n_seeds: int, attempt: int, gpu: bool) -> dict:
    """:func:`cmkd.resources.estimate` of the training job of cell ``w``, computed once per grid."""
    key = (w.dataset, w.track, w.dimension, w.method, n_seeds, attempt, gpu)
    cache = grid.cache.setdefault("train_resources", {})
    if key not in cache:
        cache[key] = estimate(grid.config, *key[:4], n_seeds, attempt, gpu=gpu)
    return cache[key]


def train_resource(grid: Grid, key: str, gpu: bool, n_seeds: int | None = None) -> Callable:
    """A resource callable of the training rules: ``mem_mb`` or ``runtime`` of the job from
    :func:`cmkd.resources.estimate`, scaled by Snakemake's attempt (retries ask for more).
    ``n_seeds``: the job's seeds (default: one job's, :func:`cmkd.workflow.inputs.job_seeds`) -
    a tuning study passes its number of trials."""
    n = n_seeds if n_seeds is not None else (1 if grid.per_seed_jobs else len(grid.seeds))
    return lambda w, attempt: train_resources(grid, w, n, attempt, gpu)[key]
