"""Benchmark of the workflow itself (``python -m cmkd bench``); prints figures for the README.

- per-job overhead: Σ job wall time (Snakemake's ``benchmark:`` files) ÷ Σ in-process training
  time (``timing.train_s`` in metrics.json) over the training jobs of a finished run;
- DAG build + dry-run time of a grid (default: the paper grid over generated fixture roots);
- training throughput (segments/s) of the TSception and visual students in the project's loop
  vs a minimal plain PyTorch loop over the same model and data;
- peak memory (max RSS) of the training jobs, per method class.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from cmkd.methods.baseline import Baseline
from cmkd.models.registry import build_model
from cmkd.train import Part, setup_torch

ROOT = Path(__file__).resolve().parents[2]


def overhead(results: str | Path) -> dict:
    results = Path(results)
    rows = []
    for b in results.glob("benchmarks/train/**/*.tsv"):
        rel = b.relative_to(results / "benchmarks/train").with_suffix("")
        # one job per seed (.../method/seedN.tsv) or per cell (.../method.tsv, all seeds)
        runs = [results / rel] if rel.name.startswith("seed") else sorted((results / rel).glob("seed*"))
        mets = [json.loads((r / "metrics.json").read_text()) for r in runs if (r / "metrics.json").exists()]
        if not mets or any(m.get("status", "ok") != "ok" for m in mets):
            continue
        wall = float(pd.read_csv(b, sep="\t")["s"].iloc[0])
        rows.append({"run": str(rel), "class": mets[0].get("class"), "wall_s": wall,
                     "train_s": sum(m["timing"]["train_s"] for m in mets),
                     "peak_rss_mb": max(m.get("peak_rss_mb") or 0 for m in mets)})
    df = pd.DataFrame(rows)
    if df.empty:
        return {"n_jobs": 0}
    return {"n_jobs": len(df), "sum_wall_s": float(df.wall_s.sum()), "sum_train_s": float(df.train_s.sum()),
            "overhead_ratio": float(df.wall_s.sum() / df.train_s.sum()),
            "peak_rss_mb_by_class": df.groupby("class")["peak_rss_mb"].max().round(0).to_dict()}


def dag_time(configfiles: list[str], overlay: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(ROOT / "tests"))
        from fixtures import write_all  # lazy: optional (tests/fixtures, on sys.path only from the line above)

        roots = write_all(Path(tmp) / "raw")
        rf = Path(tmp) / "roots.yaml"
        rf.write_text(yaml.safe_dump({"datasets": {k: {"root": str(v)} for k, v in roots.items()}}))
        cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-n", "--quiet", "rules",
               "--configfile", *configfiles, str(rf)]
        if overlay:
            of = Path(tmp) / "overlay.yaml"
            of.write_text(yaml.safe_dump(overlay))
            cmd.append(str(of))
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        dt = time.perf_counter() - t0
    n = None
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "train":
            n = int(parts[1])
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
    return {"returncode": r.returncode, "dry_run_s": dt, "train_jobs": n}


def throughput(kind: str, epochs: int = 3, n: int = 512) -> dict:
    """Segments/s of one student trained by the project's loop vs a plain loop (same model, data, batch size)."""
    setup_torch(1, 0, "cpu")
    rng = np.random.default_rng(0)
    if kind == "tsception":
        x = {"eeg": torch.from_numpy(rng.standard_normal((n, 32, 128)).astype(np.float32))}
        spec = {"modalities": ["eeg"], "encoders": {"eeg": {"name": "tsception"}},
                "inputs": {"eeg": {"shape": [32, 128], "sampling_rate": 32}}, "head": {"hidden": 32, "dropout": 0.5}, "n_outputs": 2}
    else:
        x = {"face": torch.from_numpy(rng.integers(0, 255, (n, 2, 3, 32, 32), dtype=np.uint8))}
        spec = {"modalities": ["face"], "encoders": {"face": {"name": "timm", "arch": "test_convnext3"}},
                "inputs": {"face": {"shape": [2, 3, 32, 32]}}, "head": {"hidden": 32, "dropout": 0.5}, "n_outputs": 2}
    y = torch.from_numpy(rng.integers(0, 2, n))
    bs = 32

    def plain():
        torch.manual_seed(0)
        model = build_model(spec)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, bs):
                idx = perm[s:s + bs]
                out = model({k: v[idx] for k, v in x.items()})
                loss = torch.nn.functional.cross_entropy(out.logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return n * epochs / (time.perf_counter() - t0)

    def framework():
        torch.manual_seed(0)
        model = build_model(spec)
        method = Baseline(model, {}, {}, "classification", 2)
        opt = torch.optim.Adam(method.trainable_parameters(), 1e-3)
        part = Part(x=x, y=y, index=np.arange(n))
        g = torch.Generator().manual_seed(0)
        dev = torch.device("cpu")
        t0 = time.perf_counter()
        for epoch in range(epochs):
            method.train()
            method.on_epoch_start(epoch, g)
            perm = torch.randperm(n, generator=g)
            for s in range(0, n, bs):
                _, terms = method.training_step(part.batch(perm[s:s + bs], dev))
                total = sum(terms.values())
                if not torch.isfinite(total):
                    raise RuntimeError("diverged")
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                float(total.detach())
        return n * epochs / (time.perf_counter() - t0)

    plain()  # warm-up
    p = np.median([plain() for _ in range(3)])
    f = np.median([framework() for _ in range(3)])
    return {"model": kind, "plain_seg_per_s": float(p), "framework_seg_per_s": float(f), "ratio": float(f / p)}


def main(results: str = "results", configfiles: list[str] | None = None) -> None:
    print("== per-job overhead (default workflow results)")
    o = overhead(results)
    if o.get("n_jobs"):
        print(f"training jobs: {o['n_jobs']}; Σ wall {o['sum_wall_s']:.1f} s; Σ training {o['sum_train_s']:.1f} s")
        print(f"overhead ratio: {o['overhead_ratio']:.2f}")
        print("peak memory (MB) by method class:", o["peak_rss_mb_by_class"])
    else:
        print(f"no benchmarked training jobs under {results}/benchmarks: run the default workflow first")
    print("== DAG build + dry-run of the paper grid")
    grid = configfiles or ["config/paper.yaml"]
    d = dag_time(grid)
    print(f"one job per cell: train jobs: {d['train_jobs']}; dry-run: {d['dry_run_s']:.1f} s (exit {d['returncode']})")
    # the same grid at its largest: one job per seed and 20 seeds (> 3,000 training jobs)
    d = dag_time(grid, {"seeds_per_job": 1, "seeds": list(range(20))})
    print(f"one job per seed, 20 seeds: train jobs: {d['train_jobs']}; dry-run: {d['dry_run_s']:.1f} s "
          f"(exit {d['returncode']})")
    print("== training throughput, project loop vs plain PyTorch loop (1 thread)")
    for kind in ("tsception", "visual"):
        t = throughput(kind)
        print(f"{kind}: plain {t['plain_seg_per_s']:.0f} seg/s, framework {t['framework_seg_per_s']:.0f} seg/s, ratio {t['ratio']:.2f}")
