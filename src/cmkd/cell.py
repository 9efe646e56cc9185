"""Re-run one table cell (dataset × track × dimension × method, all seeds) with one command.

``python -m cmkd cell DATASET TRACK DIMENSION METHOD [--configfile ...]`` forces the training
runs of that cell (every seed; teachers and assistants it needs are trained only if missing),
then prints the reproduced mean ± std beside the published value and the previous reproduced
value, and says whether the new and previous values agree within the seeds' spread.
"""
from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from cmkd.analysis.tables import published_scale, published_value
from cmkd.config import effective_run_config, iter_cells, run_dir
from cmkd.errors import ConfigError, DataError
from cmkd.metrics import headline_metrics, primary_metric
from cmkd.validation import load_config, validate_config

ROOT = Path(__file__).resolve().parents[2]


def snakemake_command(targets: list[str], configfiles: list[str], config_items: list[str] | None = None,
                      profile: str | None = None, cores: int = 2, jobs: int | None = None,
                      dry_run: bool = False, extra: list[str] | None = None) -> list[str]:
    """The Snakemake command that forces ``targets``: every config file after ONE ``--configfile``
    (Snakemake 9 keeps only the last of repeated ``--configfile`` options), the ``--config`` items,
    and either ``--profile`` (the cluster's executor, its jobs and resources) or local ``--cores``."""
    snakemake = Path(sys.executable).parent / "snakemake"
    # the targets first: after --configfile or --config (lists) they would be read as more files
    cmd = [str(snakemake), *targets, "-s", str(ROOT / "Snakefile"), "--force", "--rerun-incomplete"]
    if profile:
        cmd += ["--profile", profile]
        if jobs:
            cmd += ["--jobs", str(jobs)]
    else:
        cmd += ["--cores", str(cores)]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    if config_items:
        cmd += ["--config", *config_items]
    if dry_run:
        cmd.append("-n")
    return cmd + list(extra or [])


def _read(paths: list[Path]) -> dict:
    vals = {m: [] for m in headline_metrics()}
    status = []
    for p in paths:
        if not p.exists():
            continue
        m = json.loads(p.read_text(encoding="utf-8"))
        status.append(m.get("status", "ok"))
        if m.get("status", "ok") == "ok":
            for k in vals:
                vals[k].append(float(m["test"].get(k, math.nan)))
    return {"values": vals, "status": status}


def _summary(values: list[float]) -> tuple[float, float, int]:
    v = np.array([x for x in values if not math.isnan(x)])
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def published_for(cfg: dict, dataset: str, track: str, dimension: str, method: str) -> list[tuple[str, float]]:
    pub_file = Path(cfg["published_tables"])
    if not pub_file.is_absolute():
        pub_file = ROOT / pub_file
    published = yaml.safe_load(pub_file.read_text(encoding="utf-8"))
    ds_key = cfg["datasets"][dataset].get("published_as", dataset)
    out = []
    for t in cfg.get("tables", []) or []:
        if t.get("track", track) != track or method not in (t.get("rows") or {}):
            continue
        v = published_value(published, t.get("published"), ds_key, t["rows"][method], dimension, t.get("metric", "accuracy"))
        if v is not None:
            unknown = published_scale(published, t.get("published"), ds_key, t["rows"][method], dimension,
                                      t.get("metric", "accuracy")) == "unknown"
            out.append((f"{t['name']} ({t.get('published')} [{ds_key}], {t.get('metric', 'accuracy')})"
                        + ("; scale unknown, not compared" if unknown else ""), v))
    return out


def run_cell(dataset: str, track: str, dimension: str, method: str, configfiles: list[str],
             cores: int = 2, extra: list[str] | None = None, dry_run: bool = False,
             config_items: list[str] | None = None, profile: str | None = None, jobs: int | None = None) -> dict:
    cfg, lines = load_config(configfiles, items=config_items)
    validate_config(cfg, lines)  # the workflow's own validation: schema, select_datasets, then semantics
    cells = set(iter_cells(cfg))
    if (dataset, track, dimension, method) not in cells:
        known = sorted({c for c in cells if c[0] == dataset and c[1] == track})
        raise ConfigError(f"cell {dataset}/{track}/{dimension}/{method} is not in the configured grid "
                          f"(cells of {dataset}/{track}: {[f'{c[2]}/{c[3]}' for c in known][:20]})")
    targets = [Path(run_dir(cfg, dataset, track, dimension, method, s)) / "metrics.json" for s in cfg["seeds"]]
    old = _read(targets)
    cmd = snakemake_command([str(t) for t in targets], configfiles, config_items, profile, cores, jobs, dry_run, extra)
    print("running:", " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise DataError(f"snakemake failed (exit {r.returncode}) while re-running the cell; see the job logs under {cfg['results']}/logs/train/{dataset}/{track}/{dimension}/{method}/")
    new = _read(targets)
    metric = primary_metric(effective_run_config(cfg, dataset, track, dimension, method)["dimension"]["task"])
    nm, ns, nn = _summary(new["values"][metric])
    om, os_, on = _summary(old["values"][metric])
    pubs = published_for(cfg, dataset, track, dimension, method)
    lines = [f"cell {dataset} / {track} / {dimension} / {method}: {metric} over {nn} seed(s)"]
    lines.append(f"  reproduced now : {nm:.3f} ± {ns:.3f}" if nn else "  reproduced now : no successful run")
    lines.append(f"  previous       : {om:.3f} ± {os_:.3f} ({on} seeds)" if on else "  previous       : none")
    for name, v in pubs:
        lines.append(f"  published      : {v:.2f}  [{name}]" + ("  (synthetic data: a reference only)" if cfg["datasets"][dataset].get("synthetic") else ""))
    if not pubs:
        lines.append("  published      : none for this cell")
    verdict = None
    if nn and on:
        spread = max(x for x in (ns, os_, 0.0) if not math.isnan(x))
        se = spread / math.sqrt(min(nn, on)) if spread > 0 else 0.0
        diff = abs(nm - om)
        verdict = diff <= 2 * se + 1e-9
        lines.append(f"  agreement      : |Δ| = {diff:.3f} {'≤' if verdict else '>'} 2·sd/√n = {2 * se:.3f}: "
                     + ("agree within the seeds' spread" if verdict else "DIFFER beyond the seeds' spread"))
    print("\n".join(lines))
    return {"new": (nm, ns, nn), "old": (om, os_, on), "published": pubs, "agree": verdict}
