"""Provenance of every result: config hash, code version, data hash, seed, device, versions."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "timm", "numpy", "scipy", "pandas", "scikit-learn", "mne", "snakemake")
SRC = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 (first 16 hex digits) of the cmkd package sources: changes whenever the code does."""
    h = hashlib.sha256()
    for f in sorted(SRC.rglob("*.py")):
        h.update(str(f.relative_to(SRC)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def git_version() -> str:
    """``git describe --always --dirty`` of the repository holding the code, or 'unknown'."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=SRC,
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def versions() -> dict:
    v = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            v[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    try:
        v["cmkd"] = metadata.version("cmkd")
    except metadata.PackageNotFoundError:
        pass
    return v


def collect(spec: dict, data_hash: str, device: str, extra: dict | None = None) -> dict:
    prov = {
        "config_hash": spec.get("config_hash"),
        "code_version": git_version(),
        "code_hash": code_hash(),
        "data_hash": data_hash,
        "seed": spec.get("seed"),
        "threads": spec.get("threads"),
        "device": device,
        "host": platform.node(),
        "platform": platform.platform(),
        "versions": versions(),
        "argv": sys.argv,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
    if extra:
        prov.update(extra)
    return prov
