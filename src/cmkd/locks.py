"""Stale Snakemake locks after a hard kill.

Snakemake locks its working directory (``.snakemake/locks``) while it runs and removes the lock
when it ends, also on Ctrl-C. A SIGKILL of Snakemake (a lost node, the OOM killer, ``kill -9``)
leaves the lock behind, and the next run stops with "Directory cannot be locked". The main
command (``scripts/run_default.sh``) therefore clears the lock first, but only when no live
Snakemake process works in that directory; a lock held by a running workflow is never touched.
"""
from __future__ import annotations

import os
from pathlib import Path


def _snakemake_workdir(pid_dir: Path) -> Path | None:
    """The working directory of a Snakemake process, or None if ``pid_dir`` is not one."""
    try:
        argv = [a.decode(errors="replace") for a in (pid_dir / "cmdline").read_bytes().split(b"\0") if a]
        cwd = Path(os.readlink(pid_dir / "cwd"))
    except OSError:
        return None
    if not any(Path(a).name == "snakemake" for a in argv[:3]):
        return None
    for i, a in enumerate(argv):
        if a in ("--directory", "-d") and i + 1 < len(argv):
            return (cwd / argv[i + 1]).resolve()
        if a.startswith("--directory="):
            return (cwd / a.split("=", 1)[1]).resolve()
    return cwd.resolve()


def live_snakemake_pids(workdir: str | os.PathLike) -> list[int]:
    """Processes running Snakemake in ``workdir`` (Linux ``/proc``; empty elsewhere)."""
    workdir = Path(workdir).resolve()
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    me = os.getpid()
    return [int(d.name) for d in proc.iterdir()
            if d.name.isdigit() and int(d.name) != me and _snakemake_workdir(d) == workdir]


def clear_stale_lock(workdir: str | os.PathLike = ".") -> str:
    """Remove ``.snakemake/locks/*`` of ``workdir`` when no Snakemake process runs there.

    Returns a one-line account of what was done (for the log)."""
    workdir = Path(workdir).resolve()
    locks = sorted((workdir / ".snakemake" / "locks").glob("*"))
    if not locks:
        return "no Snakemake lock"
    if not Path("/proc").is_dir():
        return "lock present; cannot tell whether Snakemake runs (no /proc): run `snakemake --unlock` if none does"
    pids = live_snakemake_pids(workdir)
    if pids:
        return f"lock held by running Snakemake process(es) {pids}: left in place"
    for f in locks:
        f.unlink(missing_ok=True)
    return f"removed a stale Snakemake lock ({len(locks)} file(s)) left by a killed run"
