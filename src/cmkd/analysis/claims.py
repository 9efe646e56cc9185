"""The seed papers' claims, checked on the runs (``config/claims.yaml`` -> ``claims.csv``).

A claim compares methods of one track: the mean of its ``method`` list against the mean of its
``versus`` list (``effect = mean(method) - mean(versus)`` in the metric's unit; one method each
for a plain comparison, several for the papers' averaged claims, e.g. CMCRD's gain over the mean
of the KD baselines). The effect is estimated by the benchmark's method-level test
(:func:`cmkd.analysis.stats.method_level_test`): the units are the training runs (seed x fold,
every method of the claim tested on the same segments) and, for accuracy, their test trials, so
run-to-run and trial-to-trial variance are both in its standard error. Its 95 % CI is a t interval
with the test's Welch-Satterthwaite degrees of freedom, its MDE the smallest true difference the
design detects with 80 % power at ``alpha`` (:func:`cmkd.analysis.stats.detectable_difference`).

Verdict (:func:`verdict`), per claim, data set and dimension:

* a claim with a **published value** ``P`` for the data set (the paper's effect, published as
  method - versus) gets the equivalence test (TOST, Schuirmann 1987, J. Pharmacokinet. Biopharm.
  15:657-680) against ``[P - margin, P + margin]``: ``p_TOST = max(p_low, p_high)`` with
  ``p_low = P(T > (e - (P - margin)) / se)`` and ``p_high = P(T < (e - (P + margin)) / se)``
  (``T`` t-distributed with the test's df); **supported** when ``p_TOST < alpha`` (the
  ``1 - 2 alpha`` CI lies inside the margin), **contradicted** when the 95 % CI lies wholly outside
  the margin interval (the reproduced effect differs from the published one by more than the
  margin), else **inconclusive**;
* a claim with a **direction only** (``direction: better``: the method beats the comparison in
  the metric's better direction, :func:`cmkd.metrics.higher_is_better`) is **supported**
  when the 95 % CI lies wholly on the claimed side of 0, **contradicted** when it lies wholly on
  the other side, else **inconclusive**.

An inconclusive row says what this design can resolve (its MDE). Each claim is its own question:
no correction across claims (and the column ``family`` says so). Claims on synthetic data sets
are labelled a demonstration (column ``evidence``): they run the pipeline, they are no evidence
about the papers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats as ss
import yaml

from cmkd.analysis.stats import detectable_difference, load_run_details, method_level_test
from cmkd.atomic import write_csv
from cmkd.errors import ConfigError, DataError
from cmkd.metrics import headline_metrics, higher_is_better

#: Columns of claims.csv, in order.
CLAIM_COLUMNS = (
    "claim", "paper", "source", "text", "dataset", "published_as", "track", "dimension", "metric",
    "method", "versus", "effect", "ci_low", "ci_high", "se", "df", "n_runs", "n_trials", "mde",
    "direction", "direction_holds", "published", "margin", "tost_p", "equivalent", "verdict",
    "reason", "evidence", "family",
)
VERDICTS = ("supported", "contradicted", "inconclusive")
#: What the claims table corrects for (no Holm family: each claim is its own question).
FAMILY = "none: each claim is one question, tested once per data set and dimension (no correction across claims)"
_CLAIM_KEYS = {"id", "paper", "source", "text", "track", "metric", "method", "versus", "direction",
               "published", "margin", "dimensions"}


def tost(effect: float, se: float, df: float, low: float, high: float) -> float:
    """Two one-sided tests (Schuirmann 1987) of ``low < true effect < high`` for an estimate
    ``effect`` with standard error ``se`` and ``df`` degrees of freedom: ``max`` of the two
    one-sided p-values (a small p: equivalent within ``[low, high]``)."""
    if not (se > 0 and math.isfinite(se) and df > 0):
        return math.nan
    p_low = float(ss.t.sf((effect - low) / se, df))
    p_high = float(ss.t.cdf((effect - high) / se, df))
    return max(p_low, p_high)


def verdict(effect: float, ci_low: float, ci_high: float, se: float, df: float, *, better: int,
            published: float | None = None, margin: float | None = None, alpha: float = 0.05,
            mde: float = math.nan) -> dict:
    """The verdict of one claim from the method-level effect ``method - versus`` and its 95 % CI.

    ``better`` is the claimed sign of the effect (+1: higher is the claim, -1: lower, e.g. RMSE).
    With ``published`` (and ``margin``): the equivalence test (:func:`tost`); else the direction.
    Returns ``direction_holds, tost_p, equivalent, verdict, reason`` (see the module docstring).
    """
    out = {"direction_holds": bool(np.sign(effect) == better) if math.isfinite(effect) else None,
           "tost_p": math.nan, "equivalent": None}
    if not all(math.isfinite(x) for x in (effect, ci_low, ci_high)):
        return {**out, "verdict": "inconclusive", "reason": "no method-level estimate"}
    res = f"this design's MDE is {mde:.3g} points" if math.isfinite(mde) else "MDE unknown"
    if published is not None and math.isfinite(float(published)):
        p, m = float(published), float(margin)
        lo, hi = p - m, p + m
        out["tost_p"] = tost(effect, se, df, lo, hi)
        out["equivalent"] = bool(out["tost_p"] < alpha)
        if out["equivalent"]:
            return {**out, "verdict": "supported",
                    "reason": f"equivalent to the published {p:+.3g} within +-{m:.3g} (TOST p = {out['tost_p']:.3g})"}
        if ci_high < lo or ci_low > hi:
            return {**out, "verdict": "contradicted",
                    "reason": f"the 95 % CI [{ci_low:.3g}, {ci_high:.3g}] lies outside the published "
                              f"{p:+.3g} +- {m:.3g}"}
        return {**out, "verdict": "inconclusive",
                "reason": f"neither equivalent to the published {p:+.3g} +- {m:.3g} nor outside it "
                          f"(95 % CI [{ci_low:.3g}, {ci_high:.3g}]); {res}"}
    if better * ci_low > 0 and better * ci_high > 0:
        return {**out, "verdict": "supported", "reason": "the 95 % CI lies on the claimed side of 0"}
    if better * ci_low < 0 and better * ci_high < 0:
        return {**out, "verdict": "contradicted", "reason": "the 95 % CI lies on the other side of 0"}
    return {**out, "verdict": "inconclusive", "reason": f"the 95 % CI includes 0; {res}"}


def resolve_published(ref: Mapping, published: Mapping, where: str):
    """The published effect a claim's ``published`` entry points to in ``published_tables.yaml``
    (``published``): ``{table, method, versus}`` -> ``{dataset: {dimension: method - versus}}`` over
    the data sets and dimensions where the table has both rows; ``{table, value}`` -> the one number
    (an averaged claim). :class:`ConfigError` naming ``where`` when the entry is not there."""
    if not isinstance(ref, Mapping) or "table" not in ref:
        raise ConfigError(f"{where}: 'published' must be {{table, method, versus}} or {{table, value}} "
                          "(numbers are read from published_tables.yaml)")
    node = published
    for part in str(ref["table"]).split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{where}: published table {ref['table']!r} is not in published_tables.yaml")
        node = node[part]
    if "value" in ref:
        v = node.get(ref["value"]) if isinstance(node, Mapping) else None
        if not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: {ref['table']}.{ref['value']} is not a published number")
        return float(v)
    if not (ref.get("method") and ref.get("versus")):
        raise ConfigError(f"{where}: 'published' needs method and versus (rows of {ref['table']})")
    out: dict = {}
    for ds, rows in node.items():
        if not isinstance(rows, Mapping):
            continue
        a, b = rows.get(ref["method"]), rows.get(ref["versus"])
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            dims = {d: round(float(a[d]) - float(b[d]), 10) for d in a
                    if isinstance(a.get(d), (int, float)) and isinstance(b.get(d), (int, float))}
            if dims:
                out[ds] = dims
    if not out:
        raise ConfigError(f"{where}: {ref['table']} has no data set with both rows {ref['method']!r} and "
                          f"{ref['versus']!r}")
    return out


def load_claims(path: str | os.PathLike, published: Mapping | str | os.PathLike | None = None) -> dict:
    """Read and check ``claims.yaml``: ``margin`` (default equivalence margin) and ``claims``, a
    list of ``{id, paper, source, text, track, metric, method, versus, direction, published}``;
    ``published`` entries are resolved against ``published`` (the parsed ``published_tables.yaml``
    or its path: :func:`resolve_published`). One :class:`ConfigError` naming the file and the claim
    on a bad entry."""
    if published is not None and not isinstance(published, Mapping):
        try:
            published = yaml.safe_load(Path(published).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{published}: cannot read the published tables ({exc})") from None
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read the claims file ({exc})") from None
    claims = doc.get("claims")
    if not isinstance(claims, list) or not claims:
        raise ConfigError(f"{p}: 'claims' must be a non-empty list")
    margin = doc.get("margin")
    seen = set()
    for i, c in enumerate(claims):
        where = f"{p}: claims[{i}] ({c.get('id', '?') if isinstance(c, dict) else '?'})"
        if not isinstance(c, dict):
            raise ConfigError(f"{where}: must be a mapping")
        unknown = set(c) - _CLAIM_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        for k in ("id", "paper", "source", "text", "track", "method", "versus"):
            if not c.get(k):
                raise ConfigError(f"{where}: '{k}' is required")
        if c["id"] in seen:
            raise ConfigError(f"{where}: duplicate id")
        seen.add(c["id"])
        if c.get("metric", "accuracy") not in headline_metrics():
            raise ConfigError(f"{where}: metric {c.get('metric')!r} is not one of {sorted(headline_metrics())}")
        if c.get("direction", "better") not in ("better", "worse"):
            raise ConfigError(f"{where}: direction must be 'better' or 'worse'")
        if "published" in c:
            if c.get("margin", margin) is None:
                raise ConfigError(f"{where}: a published value needs a margin (the claim's or the file's 'margin')")
            if published is None:
                raise ConfigError(f"{where}: a published value needs published_tables.yaml")
            c["published"] = resolve_published(c["published"], published, where)
        for side in ("method", "versus"):
            if isinstance(c[side], str):
                c[side] = [c[side]]
        if set(c["method"]) & set(c["versus"]):
            raise ConfigError(f"{where}: a method on both sides")
        c.setdefault("metric", "accuracy")
        c.setdefault("direction", "better")
        if "published" in c:
            c.setdefault("margin", margin)
    return {"margin": margin, "claims": claims}


def published_effect(claim: Mapping, dataset_key: str, dimension: str) -> float | None:
    """The published effect of ``claim`` for a data set (its ``published_as`` name) and dimension:
    ``published`` (resolved by :func:`resolve_published`) is a number (one value for every data
    set: the papers' averaged claims) or ``{dataset: {dimension: value}}``; ``None`` where the
    paper gives none."""
    pub = claim.get("published")
    if pub is None:
        return None
    if isinstance(pub, (int, float)):
        return float(pub)
    v = (pub.get(dataset_key) or {}) if isinstance(pub, Mapping) else {}
    v = v.get(dimension) if isinstance(v, Mapping) else v
    return float(v) if isinstance(v, (int, float)) else None


def contrast_samples(runs: pd.DataFrame, predictions: pd.DataFrame | None, key: tuple, methods: list,
                     versus: list, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """Paired differences ``mean(methods) - mean(versus)`` of one cell ``key`` (dataset, track,
    dimension) and their units: ``(d, run, trial, note)``. For accuracy with per-segment
    predictions: one value per training run (seed x fold, when every method ran the same folds;
    else the seed) and test trial, over the segments every method was tested on in that seed;
    else one value per seed from ``runs`` (the seeds every method ran)."""
    ds, tr, dim = key
    every = list(methods) + list(versus)
    w = {m: 1.0 / len(methods) for m in methods} | {m: -1.0 / len(versus) for m in versus}
    if metric == "accuracy" and predictions is not None and len(predictions):
        p = predictions[(predictions["dataset"] == ds) & (predictions["track"] == tr)
                        & (predictions["dimension"] == dim)]
        parts = [p[p["method"] == m].set_index(["seed", "index"])[["fold", "subject", "trial", "correct"]]
                 .add_suffix(f"@{m}") for m in every]
        if all(len(x) for x in parts):
            j = pd.concat(parts, axis=1, join="inner").reset_index()
            if len(j):
                j["d"] = sum(w[m] * j[f"correct@{m}"].astype(float) for m in every) * 100.0
                folds = j[[f"fold@{m}" for m in every]]
                by_fold = bool((folds.nunique(axis=1) == 1).all())
                j["run"] = j["seed"].astype(str) + ("/" + j[f"fold@{every[0]}"].astype(str) if by_fold else "")
                j["unit"] = j[f"subject@{every[0]}"].astype(str) + "/" + j[f"trial@{every[0]}"].astype(str)
                cells = j.groupby(["run", "unit"], sort=True)["d"].mean().reset_index()
                note = "" if by_fold else "runs paired by seed (the methods ran different fold designs)"
                return cells["d"].to_numpy(float), cells["run"].to_numpy(), cells["unit"].to_numpy(), note
    c = runs[(runs["dataset"] == ds) & (runs["track"] == tr) & (runs["dimension"] == dim)]
    vals = {m: c[c["method"] == m].groupby("seed")[metric].mean() for m in every}
    j = pd.concat(vals, axis=1, join="inner").dropna()
    d = sum(w[m] * j[m].astype(float) for m in every)
    return np.asarray(d, dtype=float), j.index.astype(str).to_numpy(), None, "one value per seed (no per-trial predictions)"


def check_claims(runs: pd.DataFrame, claims: Mapping, datasets: Mapping[str, Mapping] | None = None,
                 predictions: pd.DataFrame | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """One row per claim, data set and dimension where every method of the claim ran (ok runs);
    columns :data:`CLAIM_COLUMNS`. ``datasets`` is the config's ``datasets`` (``published_as``,
    ``synthetic``)."""
    datasets = datasets or {}
    ok = runs["status"].astype(str).eq("ok") if "status" in runs else pd.Series(True, index=runs.index)
    runs = runs[ok].copy()
    for col in ("dataset", "track", "dimension", "method"):
        runs[col] = runs[col].astype(str)
    rows = []
    for c in claims["claims"]:
        metric = c["metric"]
        if metric not in runs:
            continue
        better = (1 if higher_is_better(metric) else -1) * (1 if c["direction"] == "better" else -1)
        every = set(c["method"]) | set(c["versus"])
        sub = runs[runs["track"] == str(c["track"])]
        for (ds, tr, dim), cell in sub.groupby(["dataset", "track", "dimension"], sort=True):
            if c.get("dimensions") and dim not in c["dimensions"]:
                continue
            if not every <= set(cell["method"]) or cell[cell["method"].isin(every)][metric].isna().all():
                continue
            info = datasets.get(ds) or {}
            ds_key = str(info.get("published_as", ds))
            d, run, trial, note = contrast_samples(runs, predictions, (ds, tr, dim), c["method"], c["versus"], metric)
            row = {"claim": c["id"], "paper": c["paper"], "source": c["source"], "text": c["text"],
                   "dataset": ds, "published_as": ds_key, "track": tr, "dimension": dim, "metric": metric,
                   "method": " + ".join(c["method"]), "versus": " + ".join(c["versus"]),
                   "direction": ("higher" if better > 0 else "lower"), "family": FAMILY,
                   "evidence": ("demonstration only (synthetic data): no evidence about the papers"
                                if info.get("synthetic") else "evidence")}
            est = {"effect": float(np.mean(d)) if d.size else math.nan, "ci_low": math.nan, "ci_high": math.nan,
                   "se": math.nan, "df": math.nan, "n_runs": int(np.unique(run).size), "n_trials":
                   int(np.unique(trial).size) if trial is not None else 0, "mde": math.nan}
            try:
                res = method_level_test(d, run, trial)
            except ValueError as exc:
                note = "; ".join(x for x in (f"method-level test not run: {exc}", note) if x)
            else:
                half = float(ss.t.ppf(0.975, res["df"])) * res["se"]
                est.update(effect=res["effect"], ci_low=res["effect"] - half, ci_high=res["effect"] + half,
                           se=res["se"], df=res["df"], mde=detectable_difference(res["se"], res["df"], alpha))
            pub = published_effect(c, ds_key, dim)
            margin = float(c["margin"]) if pub is not None else math.nan
            v = verdict(est["effect"], est["ci_low"], est["ci_high"], est["se"], est["df"], better=better,
                        published=pub, margin=margin, alpha=alpha, mde=est["mde"])
            if pub is None and c.get("published") is not None:
                v["reason"] += f"; no published value for {ds_key}/{dim}: direction only"
            if note:
                v["reason"] += f"; {note}"
            rows.append({**row, **est, "published": pub if pub is not None else math.nan, "margin": margin, **v})
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def write_claims(runs_csv: str | os.PathLike, claims_yaml: str | os.PathLike, out_csv: str | os.PathLike,
                 published: str | os.PathLike, datasets: Mapping[str, Mapping] | None = None,
                 alpha: float = 0.05) -> pd.DataFrame:
    """``runs.csv`` (and, through its ``path`` column, each run's test predictions) + ``claims.yaml``
    (published effects from ``published``, the published_tables.yaml) -> ``claims.csv`` (written
    atomically). Returns the table."""
    try:
        runs = pd.read_csv(runs_csv)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{runs_csv}: cannot read run table: {exc}") from exc
    missing = {"dataset", "track", "dimension", "method", "seed"} - set(runs.columns)
    if missing:
        raise DataError(f"{runs_csv}: missing column(s) {sorted(missing)}")
    for col in ("dataset", "track", "dimension", "method"):
        runs[col] = runs[col].astype(str)
    _, predictions = load_run_details(runs)
    table = check_claims(runs, load_claims(claims_yaml, published), datasets, predictions, alpha)
    write_csv(out_csv, table)
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="cmkd claims", description="runs.csv + claims.yaml -> claims.csv")
    p.add_argument("--runs", required=True)
    p.add_argument("--claims", required=True, help="claims.yaml (config/claims.yaml)")
    p.add_argument("--published", required=True, help="published_tables.yaml")
    p.add_argument("--datasets", default="{}", help="JSON: the config's datasets (published_as, synthetic)")
    p.add_argument("--out", required=True)
    p.add_argument("--alpha", type=float, default=0.05)
    a = p.parse_args(argv)
    try:
        datasets = json.loads(a.datasets)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--datasets is not valid JSON: {exc}") from None
    write_claims(a.runs, a.claims, a.out, a.published, datasets, a.alpha)
