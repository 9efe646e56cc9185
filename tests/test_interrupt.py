"""Interrupted workflows resume: SIGINT of Snakemake, SIGKILL of a training job, SIGKILL of the
whole workflow (Snakemake and its jobs, as a lost node or the OOM killer).

Each test injects the interruption while the second training job runs (one core, so jobs run one
after another: prepare -> teacher -> kd). What must hold after a rerun with the README's flag
(``--rerun-incomplete``):

- the rerun completes;
- it redoes only the incomplete jobs: the teacher, finished before the interruption, keeps its
  outputs (same modification times);
- the final tables and per-run metrics equal those of an uninterrupted run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE, tiny_config

METRIC_COLS = ["dataset", "track", "dimension", "method", "seed", "accuracy", "f1", "rmse", "status"]
TEACHER = "results/synthetic/face_eeg-to-face/arousal/teacher"
KD = "results/synthetic/face_eeg-to-face/arousal/kd"


def _config() -> dict:
    cfg = tiny_config()
    cfg["experiments"][0]["methods"] = ["teacher", "kd"]
    cfg["tables"] = [t for t in cfg["tables"] if t["name"] == "students"]
    cfg["tables"][0]["rows"] = {"kd": "kd"}
    cfg["training"].update({"max_epochs": 3, "patience": 3})
    return cfg


def _cmd(workdir: Path, *extra: str) -> list[str]:
    return [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
            str(workdir / "config.yaml"), "--cores", "1", *extra]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1")


def _run(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(workdir, *extra), capture_output=True, text=True, timeout=1200, env=_env())


def _setup(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))


def _results(workdir: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    runs = pd.read_csv(workdir / "results/summary/runs.csv")[METRIC_COLS].sort_values(["method", "seed"])
    tables = {p.name: p.read_text() for p in sorted((workdir / "results/summary/tables").glob("*.csv"))}
    assert tables, "no table written"
    return runs.reset_index(drop=True), tables


def _train_pids(workdir: Path) -> list[int]:
    """Training processes (``python -m cmkd train``) whose working directory is ``workdir``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if b"cmkd" in cmd and b"train" in cmd and Path(cwd) == workdir:
            pids.append(int(d.name))
    return pids


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default disposition. A process started in the
    background by a non-interactive shell (``cmd &``, nohup, many CI runners) has SIGINT ignored,
    the child inherits that, and Python then installs no KeyboardInterrupt handler: Snakemake would
    ignore the test's Ctrl-C and run on (seen: SigIgn bit 2 set in /proc/<pid>/status). A user's
    terminal gives Snakemake the default disposition; so does this."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_kd(workdir: Path) -> subprocess.Popen:
    """Start the workflow; return once the teacher is done and the kd job has finished its first
    epoch and waits (``CMKD_PAUSE_AT``, see :func:`cmkd.train.pause_point`): the injection
    point is known, not guessed from a delay."""
    barrier = workdir / "barrier"
    barrier.mkdir()
    # PYTHONFAULTHANDLER: a Snakemake that hangs is sent SIGABRT and prints every thread's stack
    env = dict(_env(), CMKD_PAUSE_AT=f"kd:1:{barrier}", PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen(_cmd(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 900  # bounds a hang only: a loaded 2-core machine takes minutes
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the workflow ended before the injection point:\n{proc.stdout.read()[-3000:]}")
        if (barrier / "paused").exists():
            assert all((workdir / TEACHER / f"seed{s}/metrics.json").exists() for s in (0, 1))
            assert int((barrier / "paused").read_text()) in _train_pids(workdir)
            return proc
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the kd training job did not reach the end of its first epoch in time")


def _mtimes(workdir: Path, run: str) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((workdir / run).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    wd = tmp_path_factory.mktemp("uninterrupted")
    _setup(wd)
    r = _run(wd)
    assert r.returncode == 0, r.stderr[-4000:]
    return _results(wd)


def _inject(proc: subprocess.Popen, workdir: Path, how: str) -> None:
    if how == "sigint":  # Ctrl-C in the terminal: SIGINT to the foreground process group (Snakemake and its jobs)
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "kill_job":  # the training job dies (OOM killer, scancel of one step)
        for pid in _train_pids(workdir):
            os.kill(pid, signal.SIGKILL)
    elif how == "kill_all":  # Snakemake and every job die at once (lost node)
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        # Killing it here would leave Snakemake's lock behind and the rerun would then fail with
        # "Directory cannot be locked", blaming the workflow for what the test did: say what happened.
        ps = subprocess.run(["ps", "-e", "-o", "pgid=,pid=,stat=,wchan:24=,args="], capture_output=True, text=True).stdout
        alive = "\n".join(line[:200] for line in ps.splitlines() if line.split(None, 1)[0] == str(proc.pid))
        os.kill(proc.pid, signal.SIGABRT)  # the stacks of Snakemake's threads (PYTHONFAULTHANDLER)
        time.sleep(5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"{how}: Snakemake had not exited 600 s after the interruption (killed by the test)\n"
                    f"processes of its group then:\n{alive[:3000]}\n{proc.stdout.read()[-8000:]}")
    deadline = time.monotonic() + 120
    while _train_pids(workdir) and time.monotonic() < deadline:  # a SIGINT stops the jobs too
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["sigint", "kill_job", "kill_all"])
def test_interrupted_workflow_resumes_and_matches(how, tmp_path, reference):
    wd = tmp_path / how
    _setup(wd)
    proc = _start_and_wait_for_kd(wd)
    teacher_before = _mtimes(wd, TEACHER)
    _inject(proc, wd, how)
    assert proc.returncode != 0, f"{how}: the interrupted workflow reported success"
    assert not _train_pids(wd), f"{how}: a training process survived"
    # nothing of the interrupted job that Snakemake would take as complete
    assert not (wd / "results/summary/runs.csv").exists()

    if how == "kill_all":
        # a killed Snakemake leaves its lock: a plain rerun refuses, the main command clears it first
        r = _run(wd, "--rerun-incomplete")
        assert r.returncode != 0 and "cannot be locked" in r.stderr, r.stderr[-2000:]
        u = subprocess.run([sys.executable, "-m", "cmkd", "unlock-stale", "--directory", str(wd)],
                           capture_output=True, text=True, timeout=60)
        assert u.returncode == 0 and "removed a stale Snakemake lock" in u.stdout, u.stdout + u.stderr
    r = _run(wd, "--rerun-incomplete")
    assert r.returncode == 0, f"{how}: rerun failed\n{r.stderr[-4000:]}"
    assert _mtimes(wd, TEACHER) == teacher_before, f"{how}: the finished teacher job was redone"
    assert "rule train" in r.stdout + r.stderr and "method=kd" in r.stdout + r.stderr
    assert "method=teacher" not in r.stdout + r.stderr, f"{how}: the teacher was scheduled again"

    runs, tables = _results(wd)
    ref_runs, ref_tables = reference
    pd.testing.assert_frame_equal(runs, ref_runs)
    assert tables == ref_tables


def test_unlock_leaves_a_live_runs_lock(tmp_path):
    """A lock whose Snakemake process still runs in that directory is never removed."""
    from cmkd.locks import clear_stale_lock

    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("x")
    fake = tmp_path / "bin"
    fake.mkdir()
    exe = fake / "snakemake"  # a process named snakemake, working in tmp_path
    exe.write_text("#!/bin/sh\nsleep 30\n")
    exe.chmod(0o755)
    p = subprocess.Popen([str(exe)], cwd=tmp_path)
    try:
        time.sleep(0.3)
        assert "left in place" in clear_stale_lock(tmp_path)
        assert (locks / "0.input.lock").exists()
    finally:
        p.kill()
        p.wait()
    assert "removed" in clear_stale_lock(tmp_path)
    assert not any(locks.iterdir())
    assert clear_stale_lock(tmp_path) == "no Snakemake lock"
