"""The GPU cluster route: GPU requests by need, the cell re-run with several config files and a
profile, part of the paper grid by data set, quoted paths, conda environments that build."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cmkd import conda_envs, devices
from cmkd.cell import snakemake_command
from conftest import ROOT, SNAKEMAKE, tiny_config


# ----------------------------------------------------------------------------- GPU by need
def test_trivial_baselines_have_a_rule_of_their_own_without_a_gpu(tmp_path, snakemake_runner):
    cfg = tiny_config()
    cfg["trivial_methods"] = ["majority", "stratified"]
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    jobs = re.findall(r"rule (train\w*):\n(?:.*\n)*?\s+output: (\S+)", out)
    kinds = {(rule, Path(path).parts[-3]) for rule, path in jobs}
    assert kinds == {("train_trivial", "majority"), ("train_trivial", "stratified"), ("train", "teacher"),
                     ("train", "baseline"), ("train", "kd")}, kinds
    # the Slurm profile gives a GPU to the network rule only; the trivial rule joins the cell groups
    profile = (ROOT / "slurm/config.yaml").read_text()
    set_res = yaml.safe_load(profile.split("set-resources:", 1)[1].split("\n# ---", 1)[0].replace("?", ""))
    assert "gpu" in set_res["train"] and "train_trivial" not in set_res
    assert "train_trivial: ?cell" in profile


def test_profile_and_check_read_the_same_gpu_default():
    profile = (ROOT / "slurm/config.yaml").read_text()
    default = re.search(r'gpus = int\(env\("CMKD_SLURM_GPUS", "(\d+)"\)\)', profile).group(1)
    assert devices.slurm_gpus_per_job({}) == int(default)
    assert devices.slurm_gpus_per_job({"CMKD_SLURM_GPUS": "0"}) == 0
    with pytest.raises(devices.DeviceError, match="CMKD_SLURM_GPUS"):
        devices.slurm_gpus_per_job({"CMKD_SLURM_GPUS": "two"})
    assert devices.requested_gpus({"gpu": 2}) == 2 and devices.requested_gpus({"gres": "gpu:a100:1"}) == 1
    assert devices.requested_gpus({"mem_mb": 100}) == 0 and devices.requested_gpus(None) == 0
    from snakemake.resources import Resource

    assert devices.requested_gpus({"gpu": Resource("gpu", 1), "mem_mb": Resource("mem_mb", 9)}) == 1  # a profile's


def test_gpu_jobs_with_a_cpu_torch_are_refused_at_plan_time(tmp_path, snakemake_runner):
    """A run whose training jobs ask for a GPU (the profile's train:gpu) with a CPU build of torch
    stops before any job; a dry-run only warns (a login node plans without a CUDA torch)."""
    if devices.torch_build()["kind"] != "cpu":
        pytest.skip("a CUDA build of torch")
    cfg = tiny_config()
    target = "results/prepared/synthetic"  # a cheap first job: it must not start
    r = snakemake_runner(tmp_path, "--cores", "1", target, "--set-resources", "train:gpu=1", config=cfg, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "GPU jobs: the training jobs ask for 1 GPU(s) each, but torch" in out and "CPU build" in out, out[-2000:]
    assert "Traceback" not in out and not (tmp_path / target).exists()
    r = snakemake_runner(tmp_path, "-n", "--set-resources", "train:gpu=1", config=cfg, timeout=120)
    assert r.returncode == 0 and "warning: GPU jobs:" in r.stderr + r.stdout, r.stderr[-2000:]
    r = snakemake_runner(tmp_path, "--cores", "1", target, "--set-resources", "train:gpu=1", "--config", "allow_cpu_torch=True",
                         config=cfg, timeout=180)
    assert r.returncode == 0 and (tmp_path / target).is_dir(), r.stderr[-2000:]
    # through the Slurm profile itself (its set-resources are Snakemake Resource objects): a dry-run warns
    r = subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                        str(tmp_path / "config.yaml"), "--profile", str(ROOT / "slurm"), "-n"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "CMKD_SLURM_GPUS": "1"})
    assert r.returncode == 0 and "warning: GPU jobs: the training jobs ask for 1 GPU(s) each" in r.stdout + r.stderr, \
        r.stdout[-2000:]
    # the login-node check refuses
    chk = subprocess.run([sys.executable, "-m", "cmkd", "check", "--cluster", "--configfile", str(tmp_path / "config.yaml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "CMKD_SLURM_GPUS": "1"})
    assert chk.returncode == 2 and chk.stderr.startswith("error: the training jobs ask for 1 GPU(s)"), chk.stderr


# ----------------------------------------------------------------------------- cmkd cell
def test_cell_command_puts_every_config_file_after_one_option():
    cmd = snakemake_command(["t/metrics.json"], ["config/paper.yaml", "roots.yaml"], ["select_datasets=[deap]"],
                            profile="slurm", jobs=32)
    i = cmd.index("--configfile")
    assert cmd[i + 1:i + 3] == ["config/paper.yaml", "roots.yaml"] and cmd.count("--configfile") == 1
    assert cmd[1] == "t/metrics.json"  # targets before the list options, which would swallow them
    assert cmd[cmd.index("--profile") + 1] == "slurm" and "--cores" not in cmd
    assert cmd[cmd.index("--config") + 1] == "select_datasets=[deap]"
    assert "--cores" in snakemake_command(["t"], [], cores=2)


def test_cell_command_runs_with_two_config_files(tmp_path):
    """Both overlays apply (Snakemake 9 keeps only the last of repeated --configfile options): the
    first sets the seeds, the second the epochs."""
    cfg = tiny_config()
    cfg["experiments"][0]["methods"] = ["baseline"]
    cfg["tables"] = [{"name": "unimodal", "track": "face_eeg-to-face", "published": "cdgkd.table1_unimodal_vs_fusion",
                      "rows": {"baseline": "visual"}}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (tmp_path / "a.yaml").write_text("seeds: [3]\n")
    (tmp_path / "b.yaml").write_text("training:\n  max_epochs: 1\n")
    cmd = [sys.executable, "-m", "cmkd", "cell", "synthetic", "face_eeg-to-face", "arousal", "baseline",
           "--configfile", "a.yaml", "--configfile", "b.yaml"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "results/synthetic/face_eeg-to-face/arousal/baseline"
    assert sorted(p.name for p in run.glob("seed*")) == ["seed3"]
    assert len(pd.read_csv(run / "seed3/history.csv")) == 1
    assert "reproduced now" in r.stdout  # (one epoch on tiny data may predict one class: a degenerate run)


# ----------------------------------------------------------------------------- select_datasets
@pytest.fixture(scope="module")
def deap_root(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures import write_deap, write_deap_video

    raw = tmp_path_factory.mktemp("raw")
    deap = write_deap(raw / "deap", subjects=(1, 2), n_trials=4)
    write_deap_video(deap, subjects=(1,), n_trials=4)
    return deap


def _dry(tmp_path, *args, timeout=180):
    return subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "-n", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_select_datasets_plans_one_data_set_with_only_its_root(tmp_path, deap_root):
    roots = tmp_path / "roots.yaml"
    roots.write_text(yaml.safe_dump({"datasets": {"deap": {"root": str(deap_root)}}}))
    # config.yaml too: under --directory Snakemake does not find the Snakefile's configfile
    paper = [str(ROOT / "config.yaml"), str(ROOT / "config/paper.yaml")]
    r = _dry(tmp_path, "--configfile", *paper, str(roots), "--config", "select_datasets=[deap]")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    planned = set(re.findall(r"results/([a-z0-9_]+)/[^/\s]+/[a-z0-9_]+/[a-z0-9_]+/seed\d+/metrics\.json", out))
    assert planned == {"deap"}, planned
    assert re.search(r"results/prepared/deap\b", out) and "results/prepared/mahnob_hci" not in out
    tables = set(re.findall(r"results/summary/tables/(\w+)\.html", out))
    assert tables and "cmcrd_main" not in tables and not any(t.startswith("mkd") for t in tables), tables
    # without the selection the other data sets' roots are missing: one error naming the key
    r = _dry(tmp_path, "--configfile", *paper, str(roots))
    assert r.returncode != 0 and re.search(r"datasets\.\w+\.root: not set", r.stdout + r.stderr), r.stderr[-2000:]
    # a selected data set without its root, and an unknown key: one line each
    r = _dry(tmp_path, "--configfile", *paper, str(roots), "--config", "select_datasets=[deap,seed_iv]")
    assert r.returncode != 0 and "datasets.seed_iv.root: not set" in r.stdout + r.stderr, r.stderr[-2000:]
    r = _dry(tmp_path, "--configfile", *paper, str(roots), "--config", "select_datasets=[deapp]")
    assert r.returncode != 0 and "select_datasets: unknown data set 'deapp'" in r.stdout + r.stderr, r.stderr[-2000:]


def test_check_applies_the_selection_and_the_cell_its_config_items(deap_root, tmp_path):
    roots = tmp_path / "roots.yaml"
    roots.write_text(yaml.safe_dump({"datasets": {"deap": {"root": str(deap_root)}}}))
    r = subprocess.run([sys.executable, "-m", "cmkd", "check", "--configfile", "config/paper.yaml", str(roots),
                        "--config", "select_datasets=[deap]"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("config OK"), r.stderr


# ----------------------------------------------------------------------------- quoted paths
def test_jobs_run_under_a_path_with_a_space(tmp_path, snakemake_runner):
    work = tmp_path / "with space" / "run dir"
    work.mkdir(parents=True)
    cfg = tiny_config("results of run")
    cfg["seeds"] = [0]
    cfg["trivial_methods"] = ["majority"]
    cfg["experiments"][0]["methods"] = ["baseline"]
    cfg["tables"] = [t for t in cfg["tables"] if t["name"] == "all_methods"]
    run = "results of run/synthetic/face_eeg-to-face/arousal"
    r = snakemake_runner(work, "--cores", "2", f"{run}/majority/seed0/metrics.json", f"{run}/baseline/seed0/metrics.json",
                         "results of run/summary/runs.csv", config=cfg, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for m in ("majority", "baseline"):
        assert json.loads((work / run / m / "seed0/metrics.json").read_text())["status"] == "ok"
    assert len(pd.read_csv(work / "results of run/summary/runs.csv")) == 2
    assert (work / "results of run/logs/prepare/synthetic.log").is_file()
    assert not list(work.glob("results")) and not list(work.glob("of*")), "a path split at its space"


# ----------------------------------------------------------------------------- conda environments
@pytest.mark.parametrize("env, lock", [("cpu.yaml", "requirements.lock.txt"), ("cuda.yaml", "requirements.cuda.lock.txt")])
def test_conda_envs_hand_conda_absolute_paths(env, lock, tmp_path):
    """What conda's pip sees: every -r / -e path absolute and existing (conda runs pip from
    .snakemake/conda/, where the templates' relative paths point at nothing)."""
    where = tmp_path / "a dir"
    out = conda_envs.resolved_env_file(ROOT / "envs" / env, where)
    doc = yaml.safe_load(out.read_text())
    paths = conda_envs.pip_paths(doc)
    assert paths and all(p.is_absolute() and p.exists() for p in paths), paths
    assert ROOT / lock in paths and ROOT in paths  # the lock and the project (-e)
    # the templates themselves name paths relative to envs/ that do resolve there
    raw = conda_envs.pip_paths(yaml.safe_load((ROOT / "envs" / env).read_text()))
    assert all((ROOT / "envs" / p).resolve().exists() for p in raw)
    mtime = out.stat().st_mtime_ns
    assert conda_envs.resolved_env_file(ROOT / "envs" / env, where).stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_cuda_lock_is_the_cuda_build_at_the_direct_pins():
    def pins(path):
        out = {}
        for line in path.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)", line)
            if m:
                out[m.group(1).lower().replace("_", "-")] = m.group(2)
        return out

    cuda, direct = pins(ROOT / "requirements.cuda.lock.txt"), pins(ROOT / "requirements.txt")
    assert cuda["torch"] == "2.13.0" and any(k.startswith("nvidia-cuda-runtime") for k in cuda)
    for name, version in direct.items():
        assert cuda.get(name) == version, f"requirements.cuda.lock.txt: {name} {cuda.get(name)} != {version}"


# ----------------------------------------------------------------------------- memory requests
def _face_job_config(tmp_path, n_segments, batch, eval_batch):
    """The paper grid's face student on a prepared DEAP-sized set of ``n_segments`` (meta.json only)."""
    from cmkd import bench_scale

    cfg = bench_scale._bench_cfg(bench_scale.paper_config(), "deap")
    cfg["results"] = str(tmp_path / "results")
    cfg["training"].update(batch_size=batch, eval_batch_size=eval_batch)
    prep = tmp_path / "results" / "prepared" / "bench"
    prep.mkdir(parents=True, exist_ok=True)
    arrays = {"face": ([n_segments, 5, 3, 224, 224], "uint8"), "eeg": ([n_segments, 32, 512], "float32"),
              "eog": ([n_segments, 2, 512], "float32")}
    (prep / "meta.json").write_text(json.dumps({"n_segments": n_segments,
                                                "arrays": {k: {"shape": s, "dtype": d} for k, (s, d) in arrays.items()}}))
    return cfg


def test_memory_request_lies_within_1_and_1_5_times_the_measured_peak(tmp_path):
    """The Slurm request of the pvt_v2_b0 face job (5 x 224 px, streamed) against its measured peak
    (cmkd.resources.MEASURED), for every combination of a measured training batch and a measured
    evaluation batch: the job's peak is its larger phase. The 912213b factors asked 31.4 GB for a
    job whose training steps peak at 8.5 GB."""
    from cmkd import resources

    train = {(n, b): p for n, b, p in resources.MEASURED["face_train"]}
    evals = {(n, b): p for n, b, p in resources.MEASURED["face_eval"]}
    checked = 0
    for (n, bs), p_train in train.items():
        for (n_eval, ebs), p_eval in evals.items():
            peak = max(p_train, p_eval)  # (the evaluation passes ran on 600 segments; streamed, size-free)
            cfg = _face_job_config(tmp_path / f"{n}_{bs}_{ebs}", n, bs, ebs)
            est = resources.estimate(cfg, "bench", "face_eeg-to-face", "arousal", "baseline", 1)
            assert est["streamed"] and est["size_source"] == "prepared"
            ratio = est["mem_mb"] / peak
            assert 1.0 <= ratio <= 1.5, (n, bs, ebs, peak, est["mem_mb"], round(ratio, 2))
            checked += 1
    assert checked == 8
    # flat in the data set's size (streamed): 600 and 1,200 segments ask the same
    a = resources.estimate(_face_job_config(tmp_path / "a", 600, 32, 256), "bench", "face_eeg-to-face", "arousal", "baseline", 1)
    b = resources.estimate(_face_job_config(tmp_path / "b", 1200, 32, 256), "bench", "face_eeg-to-face", "arousal", "baseline", 1)
    assert a["mem_mb"] == b["mem_mb"]


def test_trivial_baseline_jobs_ask_for_the_interpreter_only():
    from cmkd import resources

    cfg = tiny_config()
    cfg["trivial_methods"] = ["majority"]
    est = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "majority", 3)
    assert est["mem_mb"] == resources.TRIVIAL_MB and est["runtime"] == resources.MIN_RUNTIME and not est["gpu"]
    assert resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "majority", 3, attempt=2)["mem_mb"] == 2 * resources.TRIVIAL_MB


def test_training_jobs_given_a_gpu_ask_for_host_memory_of_a_gpu_job(tmp_path, snakemake_runner):
    """With the profile's train:gpu the activations live in GPU memory: the host request is the
    CUDA estimate (cmkd.resources, gpu=True), not the CPU one; device: cpu keeps the CPU estimate."""
    from cmkd import resources

    cfg = tiny_config()
    cpu = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "teacher", 2)["mem_mb"]
    gpu = resources.estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "teacher", 2, gpu=True)["mem_mb"]
    assert cpu != gpu

    def mem_of_teacher_job(*args):
        r = snakemake_runner(tmp_path, "-n", *args, config=cfg, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-2000:]
        block = next(b for b in out.split("rule train:")[1:] if "method=teacher" in b)
        return int(re.search(r"mem_mb=(\d+)", block).group(1))

    assert mem_of_teacher_job() == cpu
    assert mem_of_teacher_job("--set-resources", "train:gpu=1", "--config", "allow_cpu_torch=True") == gpu
    assert mem_of_teacher_job("--set-resources", "train:gpu=1", "--config", "allow_cpu_torch=True", "device=cpu") == cpu
