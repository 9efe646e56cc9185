"""Aggregation of runs and the results tables (CSV, Markdown, LaTeX, sortable HTML).

``runs.csv`` has one row per run: ``dataset, track, dimension, method, seed`` and the headline
metrics (``accuracy, f1, rmse``), then status and provenance columns, then the other declared
metrics (:data:`cmkd.metrics.METRICS`, in catalog order). Tables give mean ± std over seeds per dataset × track ×
dimension × method, and, where the config maps a row to a published cell, the published number
and the difference. Numbers published for a real data set are shown beside synthetic results as a
reference only, and every such table says so.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from cmkd import atomic
from cmkd.analysis import stats as st
from cmkd.analysis.averaged_gains import build_gains_table, gains_markdown, gains_note
from cmkd.analysis.table_formats import fmt, to_html, to_latex, to_markdown
from cmkd.analysis.table_notes import NOTE_FAMILIES, power_note, table_note
from cmkd.errors import DataError
from cmkd.metrics import METRICS, headline_metrics, metric_names, primary_metric
from cmkd.provenance import code_hash

#: what identifies a run: its cell and seed (``metrics.json``'s ``cell``)
RUN_KEY = ("dataset", "track", "dimension", "method", "seed")
#: the metrics of the test part itself, not of the model: a failed run still reports them, and
#: every table row shows them as reference points (columns ``chance``, ``majority``)
TEST_PART_FIGURES = ("majority_fraction", "chance_level")
#: the model's scores: every declared metric but the test part's own figures
SCORES = tuple(m for m in metric_names() if m not in TEST_PART_FIGURES)
RUN_COLUMNS = [*RUN_KEY, *headline_metrics()]
EXTRA_COLUMNS = ["status", "reason", "class", "task", "synthetic", "best_epoch", "epochs_run",
                 "config_hash", "code_version", "code_hash", "data_hash", "split_hash", "device", "threads",
                 "train_s", "process_s", "peak_rss_mb", "stale", "path",
                 *metric_names(headline=False)]
SUBJECT_COLUMNS = [*RUN_KEY, "group", "subject", "session", "n", *SCORES]
# default labels of the trivial baselines, by class and task
TRIVIAL_LABELS = {("majority", "classification"): "Majority class (training part)",
                  ("majority", "regression"): "Training mean",
                  ("stratified", "classification"): "Class-distribution sampling",
                  ("stratified", "regression"): "Training-distribution sampling"}


def run_cell(m: dict, source) -> dict:
    """A run's identity from its ``metrics.json`` content ``m``: dataset, track, dimension and
    method as strings, the seed as an int. A file without them is a DataError naming ``source``."""
    cell = m.get("cell") if isinstance(m, dict) else None
    if not isinstance(cell, dict):
        raise DataError(f"{source}: no 'cell' (dataset, track, dimension, method, seed) in the metrics file")
    missing = [k for k in RUN_KEY if k not in cell]
    if missing:
        raise DataError(f"{source}: 'cell' lacks {', '.join(missing)}")
    try:
        seed = int(cell["seed"])
    except (TypeError, ValueError):
        raise DataError(f"{source}: 'cell.seed' is not an integer: {cell['seed']!r}") from None
    return {**{k: str(cell[k]) for k in RUN_KEY[:-1]}, "seed": seed}


def aggregate_runs(files, out_csv, current_code_hash: str | None = None, subjects_csv=None) -> pd.DataFrame:
    """One row per run. A run whose code hash differs from the current code's is flagged ``stale``
    (its numbers came from other code): the tables count and mark such runs, never mix them silently.

    With ``subjects_csv``, also one row per run and test subject (``group = subject``) and per run,
    subject and session where the data set has sessions (``group = session``)."""
    if current_code_hash is None:
        current_code_hash = code_hash()
    rows, subject_rows = [], []
    for f in files:
        f = Path(f)
        m = atomic.read_json(f, "metrics file missing")
        cell, test, prov = run_cell(m, f), m.get("test", {}), m.get("provenance", {})
        ok = m.get("status", "ok") == "ok"
        rows.append({
            **cell,
            "status": m.get("status", "ok"), "reason": m.get("reason", ""),
            "class": m.get("class"), "task": m.get("task"),
            "synthetic": m.get("synthetic"), "best_epoch": m.get("best_epoch"), "epochs_run": m.get("epochs_run"),
            "config_hash": prov.get("config_hash"), "code_version": prov.get("code_version"),
            "code_hash": prov.get("code_hash"), "data_hash": prov.get("data_hash"), "split_hash": prov.get("split_hash"),
            "device": prov.get("device"), "threads": prov.get("threads"),
            "train_s": m.get("timing", {}).get("train_s"), "process_s": m.get("timing", {}).get("process_s"),
            "peak_rss_mb": m.get("peak_rss_mb"),
            "stale": bool(prov.get("code_hash") and prov.get("code_hash") != current_code_hash),
            "path": str(f.parent),
            # a run that is not ok (failed, degenerate) shows its status and reason, no score of the
            # model; the test part's own figures (majority, chance) always
            **{k: (test.get(k, math.nan) if ok or k in TEST_PART_FIGURES else math.nan) for k in METRICS},
        })
        if m.get("status", "ok") == "ok":
            subject_rows += _subject_rows(m, cell)
    df = pd.DataFrame(rows, columns=RUN_COLUMNS + EXTRA_COLUMNS)
    df = df.sort_values(["dataset", "track", "dimension", "method", "seed"]).reset_index(drop=True)
    atomic.write_csv(out_csv, df)
    if subjects_csv is not None:
        sub = pd.DataFrame(subject_rows, columns=SUBJECT_COLUMNS)
        atomic.write_csv(subjects_csv, sub.sort_values(["dataset", "track", "dimension", "method", "seed", "group", "subject",
                                                    "session"]).reset_index(drop=True))
    return df


def _subject_rows(m: dict, cell: dict) -> list[dict]:
    out = []
    for group, key in (("subject", "test_per_subject"), ("session", "test_per_session")):
        for name, g in (m.get(key) or {}).items():
            subject, _, session = str(name).partition("/")
            out.append({**cell, "group": group, "subject": subject, "session": session, "n": g.get("n"),
                        **{k: g.get(k, math.nan) for k in SCORES}})
    return out


def summarise_subjects(subjects: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Like :func:`summarise`, over subjects: each subject's metric is first averaged over the seeds
    (the subject's test segments of every seed), then mean, sample std and n are taken over the
    subjects. ``n`` counts subjects. Failed and stale runs are counted from ``runs``."""
    keys = ["dataset", "track", "dimension", "method"]
    sub = subjects[subjects["group"].astype(str) == "subject"] if len(subjects) else subjects
    per = sub.groupby(keys + ["subject"], sort=True)[[m for m in SCORES if m in sub.columns]].mean().reset_index()
    agg = {}
    for m in (m for m in SCORES if m in per.columns):
        agg[f"{m}_mean"] = (m, "mean")
        agg[f"{m}_std"] = (m, lambda s: float(s.std(ddof=1)) if s.notna().sum() > 1 else math.nan)
    agg["n"] = ("subject", "nunique")
    out = per.groupby(keys).agg(**agg).reset_index() if len(per) else pd.DataFrame(columns=keys + list(agg))
    if runs is not None:
        seeds = summarise(runs)
        extra = [c for c in seeds.columns
                 if c in ("n_failed", "n_degenerate", "n_stale") or c.startswith(("chance_level", "majority_fraction"))]
        out = out.merge(seeds[keys + extra], on=keys, how="outer")
    for c in ("n", "n_failed", "n_degenerate", "n_stale"):
        out[c] = out[c].fillna(0).astype(int) if c in out else 0
    return out.sort_values(keys).reset_index(drop=True)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds of each metric per dataset × track × dimension × method (ok runs only)."""
    keys = ["dataset", "track", "dimension", "method"]
    ok = runs[runs["status"].fillna("ok") == "ok"]
    status = runs["status"].fillna("ok")
    failed = runs[status != "ok"].groupby(keys).size().rename("n_failed")
    # of those, the degenerate ones: constant test predictions (the model learned nothing, the code did not fail)
    degenerate = runs[status == "degenerate"].groupby(keys).size().rename("n_degenerate")
    stale = runs[runs["stale"].fillna(False).astype(bool)].groupby(keys).size().rename("n_stale") if "stale" in runs else None
    agg = {}
    for m in (m for m in METRICS if m in runs.columns):
        agg[f"{m}_mean"] = (m, "mean")
        agg[f"{m}_std"] = (m, lambda s: float(s.std(ddof=1)) if s.notna().sum() > 1 else math.nan)
    agg["n"] = ("seed", "nunique")
    out = ok.groupby(keys).agg(**agg).reset_index() if len(ok) else pd.DataFrame(columns=keys + list(agg))
    out = out.merge(failed.reset_index(), on=keys, how="outer").merge(degenerate.reset_index(), on=keys, how="outer")
    out["n_failed"] = out["n_failed"].fillna(0).astype(int)
    out["n_degenerate"] = out["n_degenerate"].fillna(0).astype(int)
    if stale is not None:
        out = out.merge(stale.reset_index(), on=keys, how="left")
        out["n_stale"] = out["n_stale"].fillna(0).astype(int)
    else:
        out["n_stale"] = 0
    out["n"] = out["n"].fillna(0).astype(int)
    return out.sort_values(keys).reset_index(drop=True)


def published_value(published: dict, path: str | None, dataset_key: str, row_key: str | None, dimension: str, metric: str):
    """Look a published number up: ``published[block][table][dataset][row][dimension]`` (or a nested
    metric). A row key ``"."`` means the block has no row level (``[dataset][dimension][metric]``)."""
    if not path or row_key is None:
        return None
    node = published
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    node = node.get(dataset_key) if isinstance(node, dict) else None
    if row_key != ".":
        node = node.get(row_key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        v = node.get(dimension)
        if isinstance(v, dict):
            v = v.get(metric)
        return float(v) if isinstance(v, (int, float)) else None
    return None


def published_scale(published: dict, path: str | None, dataset_key: str, row_key: str | None, dimension: str,
                    metric: str) -> str | None:
    """The scale note of a published number: the ``<metric>_scale`` key beside it in
    ``published_tables.yaml`` (e.g. ``rmse_scale: unknown`` when the paper does not say on which
    scale its RMSE is), or None. Same lookup as :func:`published_value`."""
    if not path or row_key is None:
        return None
    node = published
    for part in path.split(".") + [dataset_key] + ([] if row_key == "." else [row_key]) + [dimension]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    v = node.get(f"{metric}_scale") if isinstance(node, dict) else None
    return str(v) if v is not None else None


def build_table(summary: pd.DataFrame, table: dict, published: dict, datasets: dict,
                marks: dict | None = None, references: dict | None = None, trivial: dict | None = None) -> pd.DataFrame:
    """One configured table: rows = methods; per dataset × dimension the reproduced and published values,
    and the reference the rows are tested against: the table's ``reference``, else the first of the track's
    references that the table shows, else the track's first reference (marks: :func:`add_power`).

    ``trivial`` (method name -> class) lists the trivial baselines put first in every table (unless
    the table says ``trivial: false``). Each row carries the chance level of its test parts (the
    binomial threshold of :func:`cmkd.metrics.chance_level`, mean over the runs) and the share of
    their majority class."""
    metric = table.get("metric", primary_metric("classification"))
    marks = marks or {}
    references = references or {}
    sel = summary[summary["track"] == table["track"]] if "track" in table else summary
    if table.get("datasets"):
        sel = sel[sel["dataset"].isin(table["datasets"])]
    rows = table.get("rows") or {m: None for m in sorted(sel["method"].unique())}
    ran = set(sel["method"].unique())  # optional rows (tables.<name>.optional_rows) only where this grid ran them
    rows = {m: k for m, k in rows.items() if m not in (table.get("optional_rows") or ()) or m in ran}
    trivial = trivial or {}
    if table.get("trivial", True) and trivial:  # the floor first: the trivial baselines of the spec
        rows = {**{m: None for m in trivial}, **{m: k for m, k in rows.items() if m not in trivial}}
    task = METRICS[metric].task
    records = []
    for (ds, tr, dim), g in sel.groupby(["dataset", "track", "dimension"], sort=True):
        if table.get("dimensions") and dim not in table["dimensions"]:
            continue
        dinfo = datasets.get(ds, {})
        pub_ds = dinfo.get("published_as", ds)
        for method, key in rows.items():
            r = g[g["method"] == method]
            if not len(r) and "track" not in table:
                continue  # a table across tracks lists each track's own methods
            mean = float(r[f"{metric}_mean"].iloc[0]) if len(r) else math.nan
            std = float(r[f"{metric}_std"].iloc[0]) if len(r) else math.nan
            n = int(r["n"].iloc[0]) if len(r) else 0
            n_failed = int(r["n_failed"].iloc[0]) if len(r) else 0
            n_degenerate = int(r["n_degenerate"].iloc[0]) if len(r) and "n_degenerate" in r else 0
            n_stale = int(r["n_stale"].iloc[0]) if len(r) else 0
            refs = references.get(tr) or ["baseline"]
            ref = table.get("reference") or next((r for r in refs if r in rows), refs[0])  # one the table shows
            pub_dim = (table.get("dimension_keys") or {}).get(dim, dim)
            pub = published_value(published, table.get("published"), pub_ds, key, pub_dim, metric)
            scale = published_scale(published, table.get("published"), pub_ds, key, pub_dim, metric)
            comparable = pub is not None and scale != "unknown"
            if pub is None:
                comparison = ""
            elif scale == "unknown":
                comparison = "not compared: published scale unknown"
            elif dinfo.get("synthetic", False):
                comparison = "reference only (synthetic data)"
            else:
                comparison = "compared"
            default_label = TRIVIAL_LABELS.get((trivial.get(method), task), method)
            ref_point = {c: float(r[f"{c}_mean"].iloc[0]) if (len(r) and f"{c}_mean" in r) else math.nan
                         for c in ("chance_level", "majority_fraction")}
            records.append({
                "dataset": ds, "track": tr, "dimension": dim, "method": method,
                "label": table.get("labels", {}).get(method, default_label),
                "chance": ref_point["chance_level"], "majority": ref_point["majority_fraction"],
                "metric": metric, "mean": mean, "std": std, "n": n, "n_failed": n_failed, "n_degenerate": n_degenerate,
                "reproduced": fmt(mean, std, metric)
                + (f" ({n_failed - n_degenerate} failed)" if n_failed > n_degenerate else "")
                + (f" ({n_degenerate} did not learn)" if n_degenerate else "")
                + (f" [{n_stale} stale: older code]" if n_stale else ""),
                "n_stale": n_stale,
                "sig": "" if method == ref else marks.get((ds, tr, dim, metric, method, ref), ""),
                "reference": ref,
                "published": pub, "published_source": f"{table.get('published')} [{pub_ds}]" if pub is not None else "",
                "diff": (mean - pub) if (comparable and not math.isnan(mean)) else math.nan,
                "published_scale": scale or "", "comparison": comparison,
                "synthetic": bool(dinfo.get("synthetic", False)),
            })
    return pd.DataFrame(records)


#: the marks of a table: column, which test (stats), what it answers, the MDE column
MARKS = (
    ("sig", "method", "method-level test over training runs (seed x fold; run-to-run and trial-to-trial "
                      "variance in the null): is the method better than the reference?", "mde"),
    ("sig_seeds", "seeds", "corrected resampled t-test over the runs of one split design (Nadeau-Bengio; "
                           "Bouckaert-Frank for folds)", "mde_seeds"),
    ("sig_trials", "trials", "trial-level sign-flip test: these trained models differ on these test trials "
                             "(not a claim about the methods)", "mde_trials"),
)


def _why_absent(stats_df: pd.DataFrame, method: str, n: int) -> str:
    """What a mark cell says when the comparison has no row of the mark's test: from the notes of
    the comparison's other rows (a fixed split, different designs), else 'n too small'."""
    notes = " ".join(str(x) for x in stats_df.loc[stats_df["method"] == method, "note"].dropna())
    if "no resampling" in notes:
        return "fixed split"
    if "different designs" in notes or "different protocols" in notes:
        return "designs differ"
    return "n too small" if n else ""


def _mark(p_holm: float, mde: float, eff: float, note: str, alpha: float) -> str:
    if p_holm is not None and math.isfinite(p_holm):
        if p_holm < alpha:
            return "*"
        return "≈" if (math.isfinite(mde) and math.isfinite(eff) and abs(eff) < mde) else ""
    if "zero variance" in note or "do not vary" in note:
        return "zero variance"
    return "no p-value" if note else ""


def _run_counts(fam: dict) -> tuple[float, float] | None:
    """``(runs, runs for the target)``: the medians over a method-level family's comparisons of the
    training runs each ran and would need for :data:`MDE_TARGET_POINTS` (``fam["runs"]``), or None."""
    counts = pd.DataFrame(list(fam["runs"].values()), columns=["n", "r"], dtype=float).dropna()
    return (float(counts["n"].median()), float(counts["r"].median())) if len(counts) else None


def required_closure(methods, requires: dict | None) -> list[str]:
    """The methods that ``methods`` distil from (``requires``: method -> the methods it requires,
    ``methods.<name>.requires`` of the config), directly or through another, that are not in
    ``methods`` themselves; in the order first met."""
    requires, seen, out = requires or {}, set(methods), []
    todo = list(methods)
    while todo:
        for r in requires.get(todo.pop(0)) or []:
            if r not in seen:
                seen.add(r)
                out.append(r)
                todo.append(r)
    return out


def _cell_runs(runs: pd.DataFrame, ds, tr, dim, methods) -> pd.DataFrame:
    """The rows of runs.csv of ``methods`` in the cell (ds, tr, dim)."""
    return runs[(runs["dataset"].astype(str) == str(ds)) & (runs["track"].astype(str) == str(tr))
                & (runs["dimension"].astype(str) == str(dim)) & runs["method"].isin(list(methods))]


def _process_minutes(runs: pd.DataFrame, col: str, ds, tr, dim, methods, factor: float) -> tuple[float, float]:
    """``(minutes, more)``: the summed ``col`` time of the runs of ``methods`` in the cell (ds, tr, dim),
    in minutes, and what ``factor`` times as many runs more would add: per method the median time of
    its runs times the added runs (the median leaves out the job start-up, which only a job's first run
    pays and added runs of the same job do not)."""
    sel = _cell_runs(runs, ds, tr, dim, methods)
    here = more = 0.0
    for _, m in sel.groupby("method", sort=False):
        t = pd.to_numeric(m[col], errors="coerce").dropna()
        if len(t):
            here += float(t.sum()) / 60.0
            more += factor * len(t) * float(t.median()) / 60.0
    return here, more


def whole_seeds(n_now: float, r_need: float, runs: pd.DataFrame | None, ds, tr, dim, methods) -> tuple[float, int, int]:
    """``(runs, seeds, runs per seed)``: ``r_need`` training runs per method rounded up to whole seeds,
    each with every fold of its split (runs per seed = ``n_now`` over the median number of seeds of
    ``methods`` in runs.csv's cell). ``(r_need, 0, 0)`` where runs.csv does not tell the seeds."""
    sel = None if runs is None else _cell_runs(runs, ds, tr, dim, methods)
    seeds = float(sel.groupby("method").size().median()) if sel is not None and len(sel) else math.nan
    per_seed = n_now / seeds if seeds > 0 else math.nan
    if not (math.isfinite(r_need) and math.isfinite(per_seed) and per_seed >= 1
            and abs(per_seed - round(per_seed)) < 1e-9):
        return r_need, 0, 0
    per_seed = int(round(per_seed))
    n_seeds = math.ceil(r_need / per_seed - 1e-9)
    return float(n_seeds * per_seed), n_seeds, per_seed


def _runs_needed(n_now: float, need: tuple[float, int, int], g: pd.DataFrame, runs: pd.DataFrame | None, ds, tr, dim,
                 requires: dict | None = None) -> str:
    """The sentence on what :data:`MDE_TARGET_POINTS` would take (``need``: the training runs per
    method, in whole seeds, of :func:`whole_seeds`, against ``n_now``: :func:`_run_counts`) and, from
    this run's own time (``process_s`` of runs.csv, else ``train_s``), the minutes that many more runs
    would add: for the table's rows and for the teachers and assistants they distil from
    (:func:`required_closure` of ``requires``), which must run as many seeds for the rows to run them."""
    target = st.MDE_TARGET_POINTS
    r_need, n_seeds, per_seed = need
    if r_need <= n_now:
        return f"the method-level MDE is within {target:g} points at this run's {n_now:.0f} training runs per method"
    rows = list(g["method"])
    how = f"{n_seeds} seeds" + (f" x {per_seed} folds" if per_seed > 1 else "") + "; " if n_seeds else ""
    text = (f"reaching a method-level MDE of {target:g} points would take about {r_need:.0f} training runs per "
            f"method ({how}this run: {n_now:.0f})")
    col = next((c for c in ("process_s", "train_s") if runs is not None and c in runs.columns), None)
    if col is None or n_now <= 0:
        return text
    what = "process" if col == "process_s" else "training"
    factor = r_need / n_now - 1.0
    req = required_closure(rows, requires)
    here_rows, more_rows = _process_minutes(runs, col, ds, tr, dim, rows, factor)
    here_req, more_req = _process_minutes(runs, col, ds, tr, dim, req, factor)
    if here_rows + here_req <= 0:
        return text
    text += f": about {more_rows + more_req:.1f} more minutes of {what} time on this run's machine"
    if req:
        shown = ", ".join(req[:6]) + (", ..." if len(req) > 6 else "")
        what_req = f"the {len(req)} methods" if len(req) > 1 else "the method"
        text += (f", {more_rows:.1f} for the table's {len(rows)} rows and {more_req:.1f} for {what_req} they distil "
                 f"from ({shown}), which must run as many seeds")
    return text + f", against {here_rows + here_req:.1f} minutes for these runs here"


def add_power(df: pd.DataFrame, stats_df: pd.DataFrame, alpha: float = 0.05,
              runs: pd.DataFrame | None = None, requires: dict | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Significance marks and the minimum detectable difference (MDE) of one built table.

    The table's comparisons with its reference, per dataset x dimension, form the Holm family of
    each mark (:func:`cmkd.analysis.stats.table_family`). Columns set on ``df`` (:data:`MARKS`):
    ``sig``, the headline mark, from the method-level test (:data:`cmkd.analysis.stats.MARK_TEST`);
    ``sig_seeds`` from the corrected resampled t-test of each method's own design
    (:data:`cmkd.analysis.stats.SEED_MARK_TESTS`); ``sig_trials`` from the trial-level test
    (:data:`cmkd.analysis.stats.TRIAL_MARK_TEST`). Each holds ``*`` (Holm-adjusted p < alpha),
    ``≈`` (indistinguishable: |difference from the reference| below the table's MDE of that
    test), or what happened: ``zero variance``, ``n too small`` (the test cannot reach alpha at
    its n), ``fixed split`` (no resampling: no corrected test), ``designs differ``. Also
    ``effect`` (mean minus the reference's mean) and ``mde``, ``mde_seeds``, ``mde_trials`` (the
    median MDE of the table's comparisons, 80 % power at the table's level alpha/K). Returns
    ``(df, lines)``: one sentence per dataset x dimension for the table's note, naming each
    test's Holm family and, where the method-level MDE is above :data:`MDE_TARGET_POINTS`, what
    reaching it would take (:func:`_runs_needed`; ``requires``: method -> the methods it requires).
    """
    if df.empty:
        return df, []
    df = df.copy()
    lines = []
    for col, _, _, mcol in MARKS:
        df[col] = ""
        df[mcol] = math.nan
    df["effect"] = math.nan
    df["runs"] = math.nan          # training runs per method of the method-level comparisons (median)
    df["runs_for_target"] = math.nan  # ... that MDE_TARGET_POINTS would need (median; runs_for_mde), in whole seeds
    for (ds, tr, dim), g in df.groupby(["dataset", "track", "dimension"], sort=False):
        ref = g["reference"].iloc[0]
        metric = g["metric"].iloc[0]
        ref_mean = g.loc[g["method"] == ref, "mean"]
        ref_mean = float(ref_mean.iloc[0]) if len(ref_mean) else math.nan
        others = [m for m in g["method"] if m != ref]
        fam = stats_df[(stats_df["dataset"].astype(str) == str(ds)) & (stats_df["track"].astype(str) == str(tr))
                       & (stats_df["dimension"].astype(str) == str(dim)) & (stats_df["metric"] == metric)
                       & (stats_df["reference"] == ref)]
        if fam.empty:
            lines.append(f"{ds} / {dim}: no tests against {ref} (not one of tracks.{tr}.references).")
            continue
        # the corrected test of each method's own design (k-fold or holdout)
        seed_test = {m: next((t for t in st.SEED_MARK_TESTS
                              if ((fam["method"] == m) & (fam["test"] == t)).any()), None) for m in others}
        unit = "points" if METRICS[metric].unit == "%" else metric
        fams = {"method": st.table_family(stats_df, ds, tr, dim, metric, ref, others, st.MARK_TEST, alpha,
                                          target=st.MDE_TARGET_POINTS if unit == "points" else None),
                "seeds": st.table_family(stats_df, ds, tr, dim, metric, ref, others, seed_test, alpha),
                "trials": st.table_family(stats_df, ds, tr, dim, metric, ref, others, st.TRIAL_MARK_TEST, alpha)}
        med = {k: float(pd.Series(list(f["mde"].values()), dtype=float).median()) if f["mde"] else math.nan
               for k, f in fams.items()}
        for i in g.index:
            method = df.at[i, "method"]
            if method == ref:
                continue
            eff = df.at[i, "mean"] - ref_mean
            df.at[i, "effect"] = eff
            for col, key, _, mcol in MARKS:
                f = fams[key]
                df.at[i, mcol] = med[key]
                if method not in f["mde"]:
                    df.at[i, col] = _why_absent(fam, method, int(df.at[i, "n"]))
                else:
                    df.at[i, col] = _mark(f["p_holm"].get(method, math.nan), med[key], eff,
                                          f["note"].get(method, ""), alpha)
        family = f"Holm over this table's {{k}} comparison(s) with {ref} in {ds} / {dim} ({metric})"
        tests = ", ".join(sorted({t for m, t in seed_test.items() if t and m in fams["seeds"]["mde"]}))
        parts = []
        for key, says, absent in NOTE_FAMILIES:
            f = fams[key]
            parts.append(says.format(mde=med[key], unit=unit, tests=tests,
                                     holm=f"{family.format(k=f['k'])}: alpha {f['alpha']:.3g}") if f["k"] else absent)
        counts = _run_counts(fams["method"])
        need = ""
        if counts is not None:
            n_now, r_need = counts
            in_seeds = whole_seeds(n_now, r_need, runs, ds, tr, dim, list(g["method"]))
            df.loc[g.index, "runs"], df.loc[g.index, "runs_for_target"] = n_now, in_seeds[0]
            need = _runs_needed(n_now, in_seeds, g, runs, ds, tr, dim, requires)
        lines.append(f"Minimum detectable difference from {ref} (80 % power), {ds} / {dim}: " + "; ".join(parts)
                     + (f"; {need}" if need else "") + ".")
    return df, lines


def write_tables(runs_csv, spec: dict, out_dir, stats_csv=None, subjects_csv=None) -> list[Path]:
    """Write ``summary.*`` and one set of files per configured table; return the paths written.

    With ``stats_csv`` (cmkd.analysis.stats output) each row carries the marks of :func:`add_power` against the
    table's reference, and the table the minimum detectable difference of its comparisons.

    ``over: subjects`` reports mean ± sd over subjects, from ``subjects_csv`` (:func:`aggregate_runs`)."""
    out_dir = Path(out_dir)
    runs = pd.read_csv(runs_csv)
    marks = {}
    stats_df = None
    if stats_csv:
        stats_df = pd.read_csv(stats_csv)
        for c in ("dataset", "track", "dimension", "method", "reference"):
            stats_df[c] = stats_df[c].astype(str)
    summary = summarise(runs)
    written = []
    atomic.write_csv(out_dir / "summary.csv", summary)
    written.append(out_dir / "summary.csv")
    published = spec.get("published", {})
    protocol = spec.get("protocol", {})
    by_subject = None
    for table in spec.get("tables", []):
        if table.get("gains"):  # a paper's averaged gains as rows (cmkd.analysis.averaged_gains)
            written += _write_gains(runs, table, published, spec.get("datasets", {}), out_dir)
            continue
        src = summary
        if table.get("over") == "subjects":
            if subjects_csv is None:
                raise DataError(f"tables.{table['name']}.over: 'subjects' needs the per-subject file (tables --subjects)")
            if by_subject is None:
                by_subject = summarise_subjects(pd.read_csv(subjects_csv, dtype={"subject": str, "session": str}), runs)
            src = by_subject
        df = build_table(src, table, published, spec.get("datasets", {}), marks, spec.get("references", {}),
                         spec.get("trivial_methods") or {})
        title = table.get("title", table["name"])
        note = table_note(df, table, protocol)
        power = ""
        if stats_df is not None:
            df, mde_lines = add_power(df, stats_df, runs=runs, requires=spec.get("requires"))
            power = power_note(mde_lines)
        base = out_dir / table["name"]
        atomic.write_csv(base.with_suffix(".csv"), df)
        atomic.write_text(base.with_suffix(".md"), to_markdown(df, title, note, power))
        atomic.write_text(base.with_suffix(".tex"), to_latex(df, title, power))
        atomic.write_text(base.with_suffix(".html"), to_html(df, title, note + (" " + power if power else "")))
        written += [base.with_suffix(s) for s in (".csv", ".md", ".tex", ".html")]
    return written


def _write_gains(runs: pd.DataFrame, table: dict, published: dict, datasets: dict, out_dir: Path) -> list[Path]:
    """The files of a gains table (``tables.<name>.gains``: :mod:`cmkd.analysis.averaged_gains`)."""
    df = build_gains_table(runs, table, published, datasets)
    title, note = table.get("title", table["name"]), gains_note(df, table) if len(df) else table.get("caption", "")
    base = out_dir / table["name"]
    atomic.write_csv(base.with_suffix(".csv"), df)
    atomic.write_text(base.with_suffix(".md"), gains_markdown(df, title, note))
    atomic.write_text(base.with_suffix(".tex"), to_latex(df, title) if len(df) else "")
    atomic.write_text(base.with_suffix(".html"), to_html(df, title, note))
    return [base.with_suffix(s) for s in (".csv", ".md", ".tex", ".html")]
