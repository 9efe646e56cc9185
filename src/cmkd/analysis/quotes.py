"""Run numbers quoted in the docs, generated from a committed results snapshot (never typed by hand).

``docs/snapshot/`` holds the summary files of one run (``stats.csv``, ``claims.csv``,
``tables/<name>.csv``), the config that ran (``config.yaml``) and ``source.yaml`` (what the run
was, its code version). :func:`render_blocks` turns them into text; :func:`fill` writes that text
between the markers ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` of README.md and
docs/statistics.md. ``python -m cmkd quote`` fills the files (``--check``: exit 1 when a file
differs from what the snapshot gives, the test suite's check); ``--refresh RESULTS --config FILE
--description TEXT`` first copies a run's summary into the snapshot.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import textwrap
from pathlib import Path
from typing import Mapping

import pandas as pd
import yaml

from cmkd.analysis.stats.base import MDE_TARGET_POINTS
from cmkd.errors import ConfigError, DataError
from cmkd.metrics import METRICS

SNAPSHOT = Path("docs/snapshot")
FILES = ("README.md", "docs/statistics.md")
_BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z0-9_-]+)[^>]*-->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)",
                    re.S)


def _fmt(x: float, nd: int = 1) -> str:
    return f"{x:.{nd}f}" if math.isfinite(x) else "n/a"


def split_text(split: Mapping) -> str:
    """The split of a config in words (the protocol that ran)."""
    kind = split["kind"]
    if kind == "kfold":
        return (f"stratified {split.get('n_folds', 5)}-fold cross-validation over "
                f"{'segments' if split.get('folds_by') == 'segment' else 'trials'}")
    if kind == "loso":
        return "leave one subject out"
    if kind in ("trial", "subject", "leaky"):
        return f"one split by {kind} per seed, {' : '.join(str(r) for r in split.get('ratios', [0.8, 0.1, 0.1]))}"
    models = {"per_subject": ", one model per subject", "pooled": ", one pooled model"}.get(split.get("models"), "")
    return f"the fixed {kind} protocol{models}"


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot read the snapshot file ({exc})") from None


def table_sentence(name: str, table: pd.DataFrame) -> str:
    """One table of the snapshot in words: its reference, the method-level MDE per dataset x
    dimension (at the level of the table's Holm family) and the comparisons it marks significant."""
    parts, sig = [], []
    ref = str(table["reference"].dropna().iloc[0]) if table["reference"].notna().any() else "?"
    metric = str(table["metric"].iloc[0])
    spec = METRICS.get(metric)
    unit = "points" if spec is not None and spec.unit == "%" else metric
    # percentages in prose to one decimal; other metrics with the catalog's decimals (an RMSE on
    # [0, 1] targets needs three)
    nd = 1 if unit == "points" else spec.decimals if spec is not None else 3
    for (ds, dim), g in table.groupby(["dataset", "dimension"], sort=False):
        mde = pd.to_numeric(g["mde"], errors="coerce").dropna()
        k = int((g["method"] != ref).sum())
        need = ""
        if unit == "points" and {"runs", "runs_for_target"} <= set(g.columns):
            n_now = pd.to_numeric(g["runs"], errors="coerce").dropna()
            n_need = pd.to_numeric(g["runs_for_target"], errors="coerce").dropna()
            if len(n_now) and len(n_need) and float(n_need.iloc[0]) > float(n_now.iloc[0]):
                need = (f"; {MDE_TARGET_POINTS:g} points would take about {float(n_need.iloc[0]):.0f} training runs "
                        f"per method, against {float(n_now.iloc[0]):.0f} here")
        parts.append(f"MDE {_fmt(float(mde.iloc[0]), nd)} {unit} on {ds} / {dim} (K = {k}{need})" if len(mde)
                     else f"no method-level test against {ref} on {ds} / {dim}")
        for row in g.itertuples(index=False):
            if str(row.sig) == "*":  # (no effect in the table when its reference is not one of its rows)
                eff = float(row.effect)
                sig.append(f"{row.method} {eff:+.{nd}f} on {dim}" if math.isfinite(eff) else f"{row.method} on {dim}")
    return (f"**{name}** (against {ref}): {', '.join(parts)}; "
            + (("significant: " + ", ".join(sig)) if sig else "none significant"))


def render_blocks(snapshot: str | os.PathLike = SNAPSHOT) -> dict[str, str]:
    """The generated text blocks (name -> markdown) of a snapshot folder."""
    snap = Path(snapshot)
    try:
        cfg = yaml.safe_load((snap / "config.yaml").read_text(encoding="utf-8"))
        source = yaml.safe_load((snap / "source.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{snap}: not a results snapshot ({exc})") from None
    runs = int(source.get("n_runs", 0))
    tables = []
    for t in cfg.get("tables") or []:
        f = snap / "tables" / f"{t['name']}.csv"
        if f.exists():
            tab = _read(f)
            if len(tab) and "sig" in tab:
                tables.append(table_sentence(t["name"], tab))
    claims = _read(snap / "claims.csv") if (snap / "claims.csv").exists() else pd.DataFrame()
    counts = claims["verdict"].value_counts() if len(claims) else pd.Series(dtype=int)
    demo = bool(len(claims)) and claims["evidence"].astype(str).str.startswith("demonstration").all()
    head = (f"the committed snapshot `{snap.parent.name}/{snap.name}/` ({source['description']}; code {source.get('code_version', '?')}; "
            f"{split_text(cfg['split'])}, seeds {cfg['seeds']}; {runs} training runs)")
    text = ("What a run can resolve is generated from the run: each table of its report states its "
            "method-level MDE per dataset x dimension, and `stats.csv` holds every comparison's effect, CI, "
            "Holm family and MDE. The numbers here are not typed by hand: `python -m cmkd quote` writes them "
            f"from {head}, and `tests/test_quotes.py` re-runs it. Method-level MDE (80 % power at the level of "
            "Holm over a table's K comparisons with its reference in one dataset x dimension, the family of "
            "the table's marks) and the comparisons marked significant: " + "; ".join(tables) + ".")
    if len(claims):
        text += (f" Claims of the seed papers checked there ({len(claims)} claim x dataset x dimension row(s)"
                 + (", a demonstration on synthetic data, no evidence about the papers" if demo else "") + "): "
                 + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in ("supported", "contradicted", "inconclusive"))
                 + " (`claims.csv`, the report's claims table).")
    blocks = {"default-resolves": textwrap.fill(text, width=100, initial_indent="- ", subsequent_indent="  ",
                                                break_on_hyphens=False, break_long_words=False) + "\n"}
    if (snap / "timing.yaml").exists():
        blocks["default-time"] = timing_sentence(snap / "timing.yaml") + "\n"
    return blocks


def _min_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def timing_sentence(path: Path) -> str:
    """How long the snapshot's run took (``timing.yaml``, written by scripts/run_default.sh)."""
    try:
        t = yaml.safe_load(path.read_text(encoding="utf-8"))
        total, setup = float(t["total_s"]), float(t["setup_s"])
        text = (f"measured by `scripts/run_default.sh` from a fresh clone of {t['code_version']}: "
                f"{_min_s(total)} on {int(t['cores'])} cores, {_min_s(setup)} of it set-up, "
                f"{int(t['training_jobs'])} training jobs")
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a timing record of scripts/run_default.sh ({exc})") from None
    return text


def fill(text: str, blocks: Mapping[str, str], where: str = "") -> str:
    """``text`` with the body of every ``<!-- generated:NAME -->`` block replaced by ``blocks[NAME]``;
    :class:`ConfigError` for a block the snapshot does not generate."""
    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in blocks:
            raise ConfigError(f"{where}: generated block {name!r} is not one the snapshot renders ({sorted(blocks)})")
        return m.group(1) + blocks[name] + m.group(4)

    return _BLOCK.sub(sub, text)


def refresh(results: str | os.PathLike, config: str | os.PathLike, description: str,
            snapshot: str | os.PathLike = SNAPSHOT) -> None:
    """Copy a run's summary (``<results>/summary``: stats.csv, claims.csv, tables/*.csv) and its
    config into ``snapshot``, with ``source.yaml`` (description, code version, number of runs)."""
    summ = Path(results) / "summary"
    if not (summ / "stats.csv").exists():
        raise DataError(f"{summ}: no stats.csv (run the workflow first)")
    snap = Path(snapshot)
    if snap.exists():
        shutil.rmtree(snap)
    (snap / "tables").mkdir(parents=True)
    for f in ("stats.csv", "claims.csv", "timing.yaml"):
        if (summ / f).exists():
            shutil.copyfile(summ / f, snap / f)
    for f in sorted((summ / "tables").glob("*.csv")):
        shutil.copyfile(f, snap / "tables" / f.name)
    shutil.copyfile(config, snap / "config.yaml")
    runs = _read(summ / "runs.csv")
    versions = sorted(set(runs["code_version"].dropna().astype(str))) if "code_version" in runs else []
    (snap / "source.yaml").write_text(yaml.safe_dump(
        {"description": description, "code_version": ", ".join(versions) or "unknown",
         "n_runs": int(len(runs))}, sort_keys=False), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="cmkd quote", description="fill the docs' generated blocks from a results snapshot")
    p.add_argument("files", nargs="*", default=list(FILES))
    p.add_argument("--snapshot", default=str(SNAPSHOT))
    p.add_argument("--check", action="store_true", help="exit 1 when a file differs from what the snapshot gives")
    p.add_argument("--refresh", metavar="RESULTS", help="first copy RESULTS/summary into the snapshot")
    p.add_argument("--config", help="with --refresh: the config file that run used")
    p.add_argument("--description", help="with --refresh: what the run was, in words")
    a = p.parse_args(argv)
    if a.refresh:
        if not (a.config and a.description):
            raise ConfigError("quote --refresh needs --config and --description")
        refresh(a.refresh, a.config, a.description, a.snapshot)
    blocks = render_blocks(a.snapshot)
    stale = []
    for f in a.files:
        path = Path(f)
        old = path.read_text(encoding="utf-8")
        if not _BLOCK.search(old):
            raise ConfigError(f"{f}: no <!-- generated:NAME --> block")
        new = fill(old, blocks, f)
        if new != old:
            stale.append(f)
            if not a.check:
                path.write_text(new, encoding="utf-8")
    if a.check and stale:
        raise SystemExit(f"out of date with {a.snapshot}: {', '.join(stale)} (run python -m cmkd quote)")
