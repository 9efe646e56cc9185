import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def tiny_config(results: str = "results") -> dict:
    """A config small enough for an end-to-end Snakemake run in well under a minute."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["results"] = results
    cfg["published_tables"] = str(ROOT / "config" / "published_tables.yaml")
    cfg["seeds"] = [0, 1]
    cfg["datasets"]["synthetic"]["params"] = {
        "n_subjects": 3, "n_trials": 6, "segments_per_trial": 3, "sampling_rate": 32, "face_frames": 1, "face_size": 32,
    }
    cfg["training"].update({"max_epochs": 2, "patience": 1, "batch_size": 16})
    # one holdout split by trial (the papers' protocol): one model per seed keeps the end-to-end tests fast;
    # the default's k-fold protocol runs end to end in test_protocols.py
    cfg["split"] = {"kind": "trial", "ratios": [0.8, 0.1, 0.1], "stratify": True}
    cfg["trivial_methods"] = []  # tests that want the trivial baselines turn them on
    cfg["encoders"]["eeg"].update({"num_T": 4, "num_S": 4})
    cfg["tables"] = [t for t in cfg["tables"] if t["name"] in ("students", "leakage", "all_methods")]
    cfg["tables"][0]["rows"] = {"baseline": None, "kd": "kd"}
    cfg["tables"][1]["rows"] = {"teacher": None}
    cfg["experiments"] = [{"dataset": "synthetic", "track": "face_eeg-to-face", "dimensions": ["arousal"],
                           "methods": ["teacher", "baseline", "kd"]}]
    return cfg


def fresh_python(code: str) -> str:
    """The stdout of ``code`` run by a new interpreter on this tree's ``src`` (nothing imported
    before it); a failure fails the test with its stderr."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def run_snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    import yaml

    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    if config is not None:
        cf = workdir / "config.yaml"
        cf.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(cf)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def snakemake_runner():
    if shutil.which(SNAKEMAKE) is None and not Path(SNAKEMAKE).exists():
        pytest.fail(f"snakemake not found at {SNAKEMAKE}")
    return run_snakemake
