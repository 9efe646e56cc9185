"""The Snakemake profiles (slurm/, profiles/local, profiles/slurm-ci) parse, name only options
that Snakemake knows, read the site settings from the environment, and `snakemake --profile slurm
-n` works on a machine without Slurm (dry-run), grouping the seeds of a cell into one job."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROFILES = {
    "slurm": ROOT / "slurm" / "config.yaml",
    "local": ROOT / "profiles" / "local" / "config.yaml",
    "slurm-ci": ROOT / "profiles" / "slurm-ci" / "config.yaml",
}
SLURM_TOOLS = {"sbatch", "srun", "squeue", "sinfo", "sacct", "scontrol", "scancel", "sacctmgr", "sshare"}


def _parse(path: Path, env: dict | None = None, monkeypatch=None) -> dict:
    from snakemake.profiles import ProfileConfigFileParser

    for k in [k for k in os.environ if k.startswith("CMKD_SLURM_")]:
        monkeypatch.delenv(k)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    with open(path) as f:
        return dict(ProfileConfigFileParser().parse(f))


def _option_names() -> set[str]:
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    return {o[2:] for a in parser._actions for o in a.option_strings if o.startswith("--")}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_names_only_snakemake_options(name, monkeypatch):
    parsed = _parse(PROFILES[name], monkeypatch=monkeypatch)
    unknown = sorted(set(parsed) - _option_names())
    assert not unknown, f"{PROFILES[name]}: not snakemake options: {unknown}"


def test_option_check_catches_a_misspelt_key(tmp_path, monkeypatch):
    bad = tmp_path / "config.yaml"
    bad.write_text("executor: slurm\nslurm-status-comand: squeue\n")
    assert set(_parse(bad, monkeypatch=monkeypatch)) - _option_names() == {"slurm-status-comand"}


def test_slurm_profile_defaults(monkeypatch):
    p = _parse(PROFILES["slurm"], monkeypatch=monkeypatch)
    assert p["executor"] == "slurm"
    assert p["slurm-status-command"] == "squeue"
    assert p["rerun-incomplete"] == "True" and int(p["retries"]) >= 1
    assert p["slurm-requeue"] == "True"
    # the frozen face feature extraction (rule frame_features) gets the training jobs' GPU
    assert p["set-resources"] == ["train:train_slots=1", "train:gpu=1", "frame_features:gpu=1"]
    assert not any(r.startswith(("slurm_partition", "slurm_account")) for r in p["default-resources"])
    cell = "cell_{dataset}_{track}_{dimension}_{method}"
    assert p["groups"] == [f"train={cell}", f"train_trivial={cell}"]
    assert p["group-components"] == [f"{cell}=3"]
    # the cap that makes the members of a group run one after another
    assert p["resources"] == ["train_slots=1"] and p["set-resource-scopes"] == ["train_slots=local"]


def test_slurm_profile_reads_the_environment(monkeypatch):
    p = _parse(PROFILES["slurm"], monkeypatch=monkeypatch, env={
        "CMKD_SLURM_PARTITION": "cpuq", "CMKD_SLURM_GPU_PARTITION": "gpuq", "CMKD_SLURM_ACCOUNT": "lab1",
        "CMKD_SLURM_GPUS": "2", "CMKD_SLURM_GPU_MODEL": "a100", "CMKD_SLURM_SEEDS_PER_JOB": "5",
        "CMKD_SLURM_JOBS": "7",
    })
    assert "slurm_partition=cpuq" in p["default-resources"] and "slurm_account=lab1" in p["default-resources"]
    assert set(p["set-resources"]) == {"train:train_slots=1", "train:gpu=2", "train:gpu_model=a100",
                                       "train:slurm_partition=gpuq", "frame_features:gpu=2",
                                       "frame_features:gpu_model=a100", "frame_features:slurm_partition=gpuq"}
    assert p["group-components"] == ["cell_{dataset}_{track}_{dimension}_{method}=5"]
    assert p["jobs"] == "7"
    # no GPU: no model either; the GPU partition falls back to the CPU one
    p = _parse(PROFILES["slurm"], monkeypatch=monkeypatch,
               env={"CMKD_SLURM_PARTITION": "debug", "CMKD_SLURM_GPUS": "0", "CMKD_SLURM_GPU_MODEL": "a100",
                    "CMKD_SLURM_GROUPS": "0"})
    assert set(p["set-resources"]) == {"train:train_slots=1", "train:gpu=0", "train:slurm_partition=debug",
                                       "frame_features:gpu=0", "frame_features:slurm_partition=debug"}
    assert "groups" not in p and "group-components" not in p


def test_minjobage_rule_of_the_ci_profile(monkeypatch):
    """The local cluster keeps finished jobs for MinJobAge; squeue status needs >= 3 x init seconds."""
    ci = _parse(PROFILES["slurm-ci"], monkeypatch=monkeypatch)
    script = (ROOT / "scripts" / "slurm_local.sh").read_text()
    min_job_age = int(re.search(r"MIN_JOB_AGE=\$\{CMKD_SLURM_MIN_JOB_AGE:-(\d+)\}", script).group(1))
    assert min_job_age >= 3 * int(ci["slurm-init-seconds-before-status-checks"])
    assert "EnforcePartLimits=ALL" in script


@pytest.mark.parametrize("script", ["slurm_local.sh", "slurm_ci.sh"])
def test_scripts_are_valid_bash(script):
    r = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _path_without_slurm(tmp_path: Path, broken: bool) -> str:
    """PATH of this machine with the Slurm commands removed (broken=False: no Slurm installed) or
    replaced by commands that fail (broken=True: Slurm installed, no cluster reachable)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f in SLURM_TOOLS or (bindir / f).exists() or (bindir / f).is_symlink():
                continue
            (bindir / f).symlink_to(os.path.join(d, f))
    if broken:
        for t in SLURM_TOOLS:
            (bindir / t).write_text("#!/bin/sh\necho 'slurm_load_partitions: Unable to contact slurm controller' >&2\nexit 1\n")
            (bindir / t).chmod(0o755)
    return f"{Path(sys.executable).parent}{os.pathsep}{bindir}"


def _dry_run(tmp_path: Path, path: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CMKD_SLURM_", "SLURM_"))}
    e.update(PATH=path, OMP_NUM_THREADS="1", **(env or {}))
    # `--profile slurm` is resolved in the working directory of the command: the repository root
    cmd = [SNAKEMAKE, "--profile", "slurm", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(ROOT / "config.yaml"), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=e)


def _default_grid():
    sys.path.insert(0, str(ROOT / "src"))
    from cmkd.config import iter_cells

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    return list(iter_cells(cfg)), len(cfg["seeds"])


def _group_headers(out: str) -> list[str]:
    return re.findall(r"Group job (cell_\S+) ", out)


def _cell_groups(cells) -> list[str]:
    return sorted(f"cell_{ds}_{tr}_{dim}_{m}" for ds, tr, dim, m in cells)


@pytest.mark.parametrize("broken", [False, True], ids=["no-slurm", "slurm-unreachable"])
def test_slurm_dry_run_needs_no_cluster(tmp_path, broken):
    r = _dry_run(tmp_path, _path_without_slurm(tmp_path, broken))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "This was a dry-run" in out
    cells, n_seeds = _default_grid()
    # the default (seeds_per_job: all) has one training job per cell: one group job per cell
    assert sorted(_group_headers(out)) == _cell_groups(cells)
    runs = set(re.findall(r"results/\S+?/seed\d+/metrics\.json", out))
    assert len(runs) == len(cells) * n_seeds


@pytest.mark.parametrize("per_submission", ["all", "one"])
def test_slurm_dry_run_groups_the_seeds_of_a_cell(tmp_path, per_submission):
    """seeds_per_job: 1 makes one training job per seed; the profile puts the seeds of a cell into
    one submission (CMKD_SLURM_SEEDS_PER_JOB = number of seeds) or one each (=1)."""
    cells, n_seeds = _default_grid()
    r = _dry_run(tmp_path, os.environ["PATH"], "--config", "seeds_per_job=1",
                 env={"CMKD_SLURM_SEEDS_PER_JOB": str(n_seeds if per_submission == "all" else 1)})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    expected = _cell_groups(cells) * (1 if per_submission == "all" else n_seeds)
    assert sorted(_group_headers(out)) == sorted(expected)


def test_slurm_dry_run_ungrouped(tmp_path):
    r = _dry_run(tmp_path, _path_without_slurm(tmp_path, broken=False), env={"CMKD_SLURM_GROUPS": "0"})
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Group job" not in out


def test_slurm_dry_run_from_repo_root():
    """The command of the README, as is: `snakemake --profile slurm -n` in the repository root."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CMKD_SLURM_")}
    r = subprocess.run([SNAKEMAKE, "--profile", "slurm", "-n"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=dict(e, OMP_NUM_THREADS="1"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Using profile slurm" in out
    assert "This was a dry-run" in out or "Nothing to be done" in out


def test_local_profile_dry_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([SNAKEMAKE, "--profile", str(ROOT / "profiles" / "local"), "-n", "-s", str(ROOT / "Snakefile"),
                        "--directory", str(work), "--configfile", str(ROOT / "config.yaml")],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "This was a dry-run" in out and "Group job" not in out
