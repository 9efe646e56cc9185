"""Every workflow input of the bad-input catalogue (tests/bad_inputs.py: config overlays, data
roots, prepared data, the environment) through both `snakemake -n` and `python -m cmkd check`.

For each case both must exit non-zero, print no traceback, and name the culprit (the key, file or
channel the catalogue gives) in the first error line: for the dry-run the first line after
Snakemake's own banner, for `check` the first line of its stderr. One line per case, a summary,
exit status 1 on any failure. The cases run a few at a time (--jobs, default 3), each in a
temporary folder of its own.

The command-line cases (tests/bad_inputs.CLI_CASES: arguments of the other subcommands, not
inputs a workflow can be given) are out of scope here: tests/test_bad_input.py checks them.

Run as: .venv/bin/python scripts/bad_input_catalogue.py [--jobs N] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

from bad_inputs import CLI_CASES, CONFIG_CASES, DRYRUN_EXTRA, TRACE, applies, first_line  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
    [str(ROOT / "src")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))


def check_first_line(err: str) -> str:
    """The first line of `cmkd check`'s stderr that is not a note or a warning (as tests/test_bad_input.py reads it)."""
    return next((ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "warning"))), "")


def _verdict(rc: int, out: str, first: str, expect: str, dry_run: bool) -> str | None:
    """None where the input was stopped as it should be, else why not."""
    if rc == 0:
        return "exit 0 (not stopped)"
    if TRACE in out:
        return "traceback"
    if dry_run and "Job stats" in out:
        return "the DAG was built"
    if expect not in first:
        return f"first line {first[:200]!r} does not name {expect!r}"
    return None


def run_case(case, tmp: Path) -> dict:
    name, overlay, expect = case
    tmp.mkdir(parents=True)
    if callable(overlay):
        overlay = overlay(tmp)
    ov = tmp / "overlay.yaml"
    ov.write_text(yaml.safe_dump({"results": str(tmp / "results"), **overlay}, sort_keys=False))
    res = {"name": name, "expect": expect}
    for path, argv in (("snakemake -n", [SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(ov)]),
                       ("cmkd check", [sys.executable, "-m", "cmkd", "check", "--configfile", str(ov)])):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
            rc, out = r.returncode, r.stdout + r.stderr
            first = first_line(out) if path.startswith("snakemake") else check_first_line(r.stderr)
        except subprocess.TimeoutExpired:
            rc, out, first = -1, "timed out after 300 s", ""
        res[path] = {"rc": rc, "first": first, "problem": _verdict(rc, out, first, expect, path.startswith("snake")),
                     "tail": out[-1500:]}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3, help="cases run at a time (default 3)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these cases")
    ap.add_argument("--verbose", action="store_true", help="print the output's tail of each failure")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    cases = [c for c in CONFIG_CASES + DRYRUN_EXTRA if not args.only or c[0] in args.only]
    skipped = [c[0] for c in cases if not applies(c[0])]
    cases = [c for c in cases if applies(c[0])]
    print(f"{len(cases)} workflow inputs through snakemake -n and cmkd check "
          f"({len(CLI_CASES)} command-line cases out of scope: tests/test_bad_input.py)", flush=True)
    for name in skipped:
        print(f"SKIP {name}: a valid input on this machine (torch is not a CPU-only build)")
    failures = []
    with tempfile.TemporaryDirectory(prefix="cmkd-bad-inputs-") as d, ThreadPoolExecutor(args.jobs) as pool:
        for res in pool.map(lambda c: run_case(c, Path(d) / c[0]), cases):
            problems = [f"{p}: {res[p]['problem']}" for p in ("snakemake -n", "cmkd check") if res[p]["problem"]]
            if problems:
                failures.append(res)
                print(f"FAIL {res['name']}: " + "; ".join(problems), flush=True)
                if args.verbose:
                    for p in ("snakemake -n", "cmkd check"):
                        if res[p]["problem"]:
                            print(f"---- {p} (exit {res[p]['rc']}):\n{res[p]['tail']}\n----")
            else:
                print(f"ok   {res['name']}: {res['snakemake -n']['first'][:110]}", flush=True)
    n = len(cases)
    print(f"\n{n} cases, {n - len(failures)} stopped by both snakemake -n and cmkd check with the culprit named, "
          f"{len(failures)} failed{': ' + ', '.join(r['name'] for r in failures) if failures else ''} "
          f"({time.monotonic() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
