"""What a design resolves, and what it costs (``python -m cmkd design TABLE [--configfile ...]``).

A design is the config (config.yaml and its overlays, merged in order: seeds, folds, epochs, data
set knobs). The command trains one table's rows under it (and, through the DAG, the teachers and
assistants they require: nothing else of the grid), builds that table as the workflow builds it
(the same stats and the same Holm family), and prints, per dimension, the table's method-level
minimum detectable difference (the median over its comparisons, 80 % power at the table's level
alpha/K), the training runs per method it rests on and those ``MDE_TARGET_POINTS`` would take, beside
the mean of the rows and the CPU time of the training jobs (Snakemake's ``benchmark:`` files).
Two designs of the same table are compared by running it twice with different overlays; every
figure comes from the runs, in a results folder of its own.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from cmkd.cell import snakemake_command
from cmkd.config import experiment_methods, iter_cells
from cmkd.errors import ConfigError, DataError
from cmkd.validation import load_config, validate_config
from cmkd.workflow.lookup import table_entry, table_names


def design_config(config: dict, table: str, results: str) -> dict:
    """``config`` reduced to what table ``table`` reports: its track's experiments, each with only
    the table's rows (and the trivial baselines), written under ``results``. A row's teachers and
    assistants are not cells of their own: the training jobs of the rows require them."""
    spec = table_entry(config, table)
    if spec is None:
        raise ConfigError(f"design: no table '{table}' in the config (tables: {', '.join(table_names(config))})")
    if spec.get("gains") or "track" not in spec:
        raise ConfigError(f"tables.{table}: a gains table reports averages over other runs, not comparisons with a "
                          "method-level MDE; name a table of the methods it averages")
    rows = set(spec.get("rows") or {})
    keep = rows | set(config.get("trivial_methods") or [])
    exps = []
    for i, e in enumerate(config.get("experiments") or []):
        if e.get("track") != spec["track"]:
            continue
        methods = [m for m in experiment_methods(config, e, f"experiments[{i}]") if not rows or m in keep]
        if methods:
            exps.append({**copy.deepcopy(e), "methods": methods})
    if not exps:
        raise ConfigError(f"design: no experiment of the config runs a row of table '{table}' (track {spec['track']})")
    out = copy.deepcopy(config)
    out["experiments"] = exps
    out["results"] = str(results)
    return out


def _train_seconds(results: Path) -> tuple[float, float, int]:
    """(job wall seconds, CPU seconds, jobs) summed over the training jobs' benchmark files."""
    wall = cpu = 0.0
    jobs = 0
    for f in sorted((results / "benchmarks" / "train").rglob("*.tsv")):
        with open(f, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        for r in rows:
            wall += float(r.get("s") or 0.0)
            cpu += float(r.get("cpu_time") or 0.0)
            jobs += 1
    return wall, cpu, jobs


def summarise(table_csv: str | Path, table: str) -> list[dict]:
    """Per dimension of a built table (its CSV): the method-level MDE (median over the comparisons),
    the runs per method and the runs the target would take (medians, as the table's note gives
    them), the rows and their mean metric."""
    with open(table_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise DataError(f"{table_csv}: table '{table}' has no row: nothing ran")
    out: dict[str, dict] = {}

    def num(v) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    for r in rows:
        d = out.setdefault(r["dimension"], {"dimension": r["dimension"], "metric": r.get("metric", ""),
                                            "mde": num(r.get("mde")), "runs": num(r.get("runs")),
                                            "runs_for_target": num(r.get("runs_for_target")), "means": {}})
        d["means"][r["method"]] = num(r.get("mean"))
    return list(out.values())


def run_design(table: str, configfiles: list[str], results: str | None = None, cores: int = 2,
               profile: str | None = None, jobs: int | None = None) -> dict:
    """Train table ``table``'s rows under the design of ``configfiles`` (overlays over config.yaml)
    in ``results`` (default: ``design/<table>-<key of the merged config>``), build the table, print and return
    the summary (also written to ``<results>/design.json``). ``profile`` (e.g. ``slurm``) sends the
    jobs to the cluster, as ``cmkd cell`` does; else they run on ``cores`` local cores."""
    cfg, lines = load_config(configfiles)
    validate_config(cfg, lines)
    if results is None:  # one folder per table and design: the same design re-run reuses its runs
        key = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if k != "results"}, sort_keys=True,
                                        default=str).encode()).hexdigest()[:12]
        results = f"design/{table}-{key}"
    res = Path(results).resolve()
    res.mkdir(parents=True, exist_ok=True)
    design = design_config(cfg, table, str(res))
    overlay = res / "design.yaml"
    overlay.write_text(yaml.safe_dump({"results": design["results"], "experiments": design["experiments"]},
                                      sort_keys=False), encoding="utf-8")
    files = [*configfiles, str(overlay)]
    dcfg, dlines = load_config(files)
    validate_config(dcfg, dlines)
    target = res / "summary" / "tables" / f"{table}.csv"
    cmd = snakemake_command([str(target)], files, profile=profile, cores=cores, jobs=jobs,
                            extra=[] if profile else ["--scheduler", "greedy"])
    cmd.remove("--force")  # a fresh folder: nothing to force; a re-run reuses what ran
    print("running:", " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd)
    wall_s = time.perf_counter() - t0
    if r.returncode != 0:
        raise DataError(f"snakemake failed (exit {r.returncode}) while running the design of '{table}'; see the logs under {res}/logs/")
    train_wall, train_cpu, n_jobs = _train_seconds(res)
    out = {"table": table, "configfiles": files, "seeds": list(dcfg["seeds"]),
           "cells": len(list(iter_cells(dcfg))), "training_jobs": n_jobs,
           "training_job_s": round(train_wall, 1), "training_cpu_s": round(train_cpu, 1), "wall_s": round(wall_s, 1),
           "dimensions": summarise(target, table)}
    (res / "design.json").write_text(json.dumps(out, indent=2, sort_keys=True), encoding="utf-8")
    print(report(out))
    return out


def report(out: dict) -> str:
    """The summary as text, one line per dimension."""
    lines = [f"design of table '{out['table']}' ({' + '.join(out['configfiles'])}): seeds {out['seeds']}, "
             f"{out['training_jobs']} training jobs, {out['training_cpu_s']:.0f} CPU s of training "
             f"({out['training_job_s']:.0f} s of job time), {out['wall_s']:.0f} s in all"]
    for d in out["dimensions"]:
        unit = "rmse" if d["metric"] == "rmse" else "points"
        fmt = "{:.3g}" if unit == "rmse" else "{:.1f}"
        means = ", ".join(f"{m} {fmt.format(v)}" for m, v in d["means"].items() if math.isfinite(v))
        if not means:
            lines.append(f"  {d['dimension']}: no {d['metric']} of this table's rows (its metric does not apply)")
            continue
        if not math.isfinite(d["mde"]):
            lines.append(f"  {d['dimension']}: no method-level MDE (no method-level test ran); {d['metric']}: {means}")
            continue
        runs, need = d["runs"], d["runs_for_target"]
        at = f" at {runs:.0f} runs per method" if math.isfinite(runs) else ""
        target = ("within the target" if math.isfinite(need) and need <= runs else
                  f"the target would take {need:.0f}" if math.isfinite(need) else "no projection to the target")
        lines.append(f"  {d['dimension']}: method-level MDE {d['mde']:.3g} {unit}{at} ({target}); {d['metric']}: {means}")
    return "\n".join(lines)
