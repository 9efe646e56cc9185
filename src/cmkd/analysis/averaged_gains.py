"""A paper's averaged gains as rows of a results table (``tables.<name>.gains``).

Seed 003 (CMCRD) gives its results as two averages only: CMCRD minus the EEG-only model, and CMCRD
minus the KD baselines, each "averaged over three data sets and three architectures". A gains table
computes them from ``runs.csv``: for every gain ``{method, versus}`` and every architecture of the
table's ``variants`` (architecture -> method-name suffix: ``cmcrd`` + ``_eegnet`` is the EEGNet
CMCRD run), in every data set x dimension of the table's track, the paired effect
``method - mean(versus)`` over the seeds that ran every one of them (ok runs only), by
:func:`cmkd.analysis.claims.contrast_samples`, the same contrast as the averaged claims of
``config/claims.yaml``; the versus methods that did not run in a cell are left out of its mean. A
unit is one data set x dimension x architecture; the gain row is the mean over the units (the
paper's average) with the sample std over them, and one row per architecture averages that
architecture's units over the data sets. The published value (``published``: the block of
``published_tables.yaml`` that holds one number per gain key) sits beside the all-architecture row.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cmkd.analysis.claims import contrast_samples
from cmkd.analysis.table_formats import fmt


def gain_methods(table: dict) -> list[str]:
    """Every method a gains table can average (each gain's method and versus, under each variant's
    suffix), in order."""
    out: list[str] = []
    for g in (table.get("gains") or {}).values():
        for suffix in (table.get("variants") or {"": ""}).values():
            for m in [g["method"], *g["versus"]]:
                if m + suffix not in out:
                    out.append(m + suffix)
    return out


def gain_units(runs: pd.DataFrame, table: dict, gain: dict, metric: str) -> list[dict]:
    """The units of one gain: one per data set x dimension x architecture where the method and at
    least one versus method ran (ok runs with a value of ``metric``) on the table's track, with the
    mean over seeds of the paired effect ``method - mean(versus)``."""
    ok = runs[runs["status"].fillna("ok").astype(str) == "ok"] if "status" in runs else runs
    ok = ok[(ok["track"].astype(str) == str(table["track"])) & ok[metric].notna()]
    if table.get("datasets"):
        ok = ok[ok["dataset"].isin(table["datasets"])]
    units = []
    for (ds, tr, dim), cell in ok.groupby(["dataset", "track", "dimension"], sort=True):
        if table.get("dimensions") and dim not in table["dimensions"]:
            continue
        ran = set(cell["method"].astype(str))
        for arch, suffix in (table.get("variants") or {"": ""}).items():
            m = gain["method"] + suffix
            versus = [v + suffix for v in gain["versus"] if v + suffix in ran]
            if m not in ran or not versus:
                continue
            d, _, _, _ = contrast_samples(ok, None, (ds, tr, dim), [m], versus, metric)
            if d.size:
                units.append({"dataset": ds, "dimension": dim, "architecture": arch, "method": m,
                              "versus": versus, "gain": float(np.mean(d)), "n_seeds": int(d.size)})
    return units


def _row(key: str, label: str, units: list[dict], metric: str, track: str, pub: float | None,
         datasets: dict) -> dict:
    g = np.array([u["gain"] for u in units], dtype=float)
    mean = float(g.mean()) if g.size else math.nan
    std = float(g.std(ddof=1)) if g.size > 1 else math.nan
    syn = any((datasets.get(u["dataset"]) or {}).get("synthetic", False) for u in units)
    basis = "; ".join(f"{u['dataset']}/{u['dimension']} {u['architecture']}: {u['method']} - mean({', '.join(u['versus'])}) "
                      f"= {u['gain']:+.2f} ({u['n_seeds']} seeds)" for u in units)
    return {"dataset": "+".join(sorted({u["dataset"] for u in units})) or "–",
            "track": track, "dimension": "+".join(sorted({u["dimension"] for u in units})) or "–",
            "method": key, "label": label, "metric": metric, "mean": mean, "std": std, "n": int(g.size),
            "architectures": ", ".join(dict.fromkeys(u["architecture"] for u in units)),
            "reproduced": fmt(mean, std, metric), "chance": math.nan, "majority": math.nan,
            "published": pub if pub is not None else math.nan,
            "diff": (mean - pub) if (pub is not None and math.isfinite(mean)) else math.nan,
            "published_scale": "", "published_source": "",
            "comparison": "" if pub is None else ("reference only (synthetic data)" if syn else "compared"),
            "synthetic": syn, "basis": basis, "kind": "gain"}


def build_gains_table(runs: pd.DataFrame, table: dict, published: dict, datasets: dict) -> pd.DataFrame:
    """The rows of a gains table: per gain, the average over every unit (with the published value),
    then one row per architecture that has units (see the module docstring)."""
    metric = table.get("metric", "accuracy")
    node = published
    for part in str(table.get("published") or "").split("."):
        node = node.get(part) if isinstance(node, dict) and part else None
    labels = table.get("labels") or {}
    records = []
    for key, gain in (table.get("gains") or {}).items():
        units = gain_units(runs, table, gain, metric)
        v = node.get(key) if isinstance(node, dict) else None
        pub = float(v) if isinstance(v, (int, float)) else None
        row = _row(key, labels.get(key, key), units, metric, table["track"], pub, datasets)
        if pub is not None:
            row["published_source"] = f"{table.get('published')}.{key}"
        records.append(row)
        for arch in dict.fromkeys(u["architecture"] for u in units):
            sub = [u for u in units if u["architecture"] == arch]
            records.append(_row(f"{key}@{arch}", f"{labels.get(key, key)}: {arch} only", sub, metric, table["track"],
                                None, datasets))
    return pd.DataFrame(records)


def gains_note(df: pd.DataFrame, table: dict) -> str:
    """The caption of a gains table and what entered each row (generated from the runs)."""
    parts = [table.get("caption", "")]
    parts.append("Each row: the mean over its units (data set x dimension x architecture) of the paired effect "
                 "method - mean(versus) over the seeds that ran all of them (ok runs), ± the sample std over the "
                 "units; n = units. A versus method that did not run in a data set is left out of that unit's mean.")
    for r in df.itertuples(index=False):
        if "@" not in r.method:
            parts.append(f"{r.label}: " + (r.basis + "." if r.basis else "no unit ran."))
    if len(df) and df["synthetic"].any():
        parts.append("SYNTHETIC DATA: the published gains are the paper's, on real data; a reference only.")
    return " ".join(p for p in parts if p)


def gains_markdown(df: pd.DataFrame, title: str, note: str) -> str:
    cols = ["label", "architectures", "dataset", "dimension", "reproduced", "n", "published", "diff"]
    lines = [f"# {title}", "", note, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        vals = []
        for c in cols:
            v = r.get(c)
            if c in ("published", "diff"):
                v = "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.2f}" if c == "diff" else f"{v:.2f}"
            vals.append(str(v))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"
