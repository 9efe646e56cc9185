"""Paired tests of every method against every reference, per dataset x track x dimension cell
(:func:`paired_tests`), with the design of each comparison (fold pairs, holdout splits)."""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from cmkd.analysis.stats.base import (_KEY, _REQUIRED, FAMILY, FIXED_SPLIT_KINDS, N_PERMUTATIONS, POWER, QUESTIONS,
                                      STATS_COLUMNS, TESTS, _check_columns, _is_ok, _seed_values, _split_ratio)
from cmkd.analysis.stats.comparison import _method_level_row, _t_rows, _trial_row
from cmkd.analysis.stats.family import _holm
from cmkd.analysis.stats.power import detectable_difference, minimum_detectable_difference, tarone_size
from cmkd.metrics import headline_metrics


def _fold_pairs(fm: pd.DataFrame, fr: pd.DataFrame, seeds, metric: str) -> tuple[pd.DataFrame, int]:
    """The (seed, fold) runs of the method and the reference that ran the same fold split (equal
    ``split_hash``, recorded per fold in ``metrics.json``), with the metric on both sides; and the
    number of fold runs without such a partner. A fold number alone pairs nothing: fold 0 of a
    leaky 5-fold design and fold 0 of a 2-fold design test different data."""
    fj = fm.merge(fr, on=["seed", "fold"], suffixes=("_m", "_r"))
    fj = fj[fj["seed"].isin(list(seeds))].dropna(subset=[f"{metric}_m", f"{metric}_r"])
    if "split_hash_m" in fj:
        same = fj["split_hash_m"].notna() & (fj["split_hash_m"].astype(str) == fj["split_hash_r"].astype(str))
    else:
        same = pd.Series(False, index=fj.index)
    fj = fj[same]
    unpaired = int(len(fm[fm["seed"].isin(list(seeds))]) + len(fr[fr["seed"].isin(list(seeds))]) - 2 * len(fj))
    return fj, unpaired


def _holdout_design(dm: pd.DataFrame | None, dr: pd.DataFrame | None, seeds) -> dict:
    """What the holdout runs of a comparison ran: ``fixed`` (a seed-independent split: a kind of
    :data:`FIXED_SPLIT_KINDS`, or one split hash for every seed), the seeds whose method and
    reference runs share the split (equal split hash), and ``n_test / n_train`` over those runs
    (``n_train`` = training + validation segments). Unknown (no recorded design): ``None``."""
    if dm is None or dr is None or not len(dm) or not len(dr):
        return {"known": False}
    j = dm.merge(dr, on="seed", suffixes=("_m", "_r"))
    j = j[j["seed"].isin(list(seeds))]
    if j.empty or j["split_hash_m"].isna().all() or j["split_hash_r"].isna().all():
        return {"known": False}  # runs that recorded no split (older runs, hand-made tables)
    kinds = sorted(set(j["kind_m"].dropna().astype(str)) | set(j["kind_r"].dropna().astype(str)))
    fixed_kind = [k for k in kinds if k in FIXED_SPLIT_KINDS]
    hashes_m, hashes_r = j["split_hash_m"].dropna().astype(str), j["split_hash_r"].dropna().astype(str)
    one_split = len(j) >= 2 and hashes_m.nunique() == 1 and hashes_r.nunique() == 1 and len(hashes_m) == len(j)
    same = j[j["split_hash_m"].notna() & (j["split_hash_m"].astype(str) == j["split_hash_r"].astype(str))]
    ratio = math.nan
    if len(same) and same["n_test_m"].notna().all() and same["n_nontest_m"].notna().all():
        ratio = float(same["n_test_m"].mean() / same["n_nontest_m"].mean())
    return {"known": True, "fixed": bool(fixed_kind) or one_split,
            "why": (f"fixed split ({', '.join(fixed_kind)})" if fixed_kind else "one split for every seed"),
            "seeds": set(same["seed"].tolist()), "ratio": ratio, "kinds": kinds}


def paired_tests(
    runs: pd.DataFrame,
    references: Sequence[str],
    metrics: Sequence[str] | None = None,
    test_fraction: float = 0.1,
    alpha: float = 0.05,
    folds: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    n_permutations: int = N_PERMUTATIONS,
    designs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Paired tests of every method against every reference, per dataset x track x dimension.

    Returns a table with the columns :data:`STATS_COLUMNS`. Method-level row (the headline mark):
    ``method_level`` (:func:`method_level_test`) over the training runs both methods ran on the
    same split (seed x fold; the seed when the two ran different fold designs) and, for accuracy
    with ``predictions``, their test trials. Seed-level rows (one value per seed from ``runs``):
    ``paired_t``, ``wilcoxon`` and the corrected resampled t-test that fits the design:
    ``corrected_kfold_t`` over the (seed, fold) pairs of ``folds`` that ran the same fold split
    (equal split hash) when both methods ran a cross-validation protocol; ``corrected_t`` over the
    seeds whose holdout splits are the same for both, with ``n_test/n_train`` from those runs'
    ``designs`` (``n_train`` = training + validation data; without recorded designs from
    ``test_fraction``: ``test_fraction / (1 - test_fraction)``); neither on a fixed split
    (:data:`FIXED_SPLIT_KINDS`, or one split for every seed: no resampling, the paired t over
    seeds is the test there) nor between different protocols. Trial-level row (``predictions``,
    accuracy only): ``trial_permutation``.

    A test that cannot reach ``alpha`` at its n after the family's Holm correction
    (:func:`smallest_p` times the family size is not below ``alpha``; t-tests with fewer than 2
    pairs) is not run and has no row. ``alpha_family`` is ``alpha / m`` (Holm's first step, m =
    the comparisons of the family, :data:`FAMILY`) and ``mde`` the minimum detectable difference
    at that level with 80 % power (:func:`minimum_detectable_difference`; for the method-level
    test :func:`detectable_difference` of its standard error and df; for the trial-level test from
    the standard deviation of the per-trial differences; empty for Wilcoxon). See the module
    docstring.
    """
    _check_columns(runs, _REQUIRED)
    ratio = _split_ratio(test_fraction)
    references = list(dict.fromkeys(references))
    metrics = [m for m in (headline_metrics() if metrics is None else metrics) if m in runs.columns]
    ok = _is_ok(runs)
    rows: list[dict] = []
    fold_groups = dict(iter(folds.groupby(list(_KEY), sort=False))) if folds is not None and len(folds) else {}
    pred_groups = (dict(iter(predictions.groupby(list(_KEY), sort=False)))
                   if predictions is not None and len(predictions) else {})
    design_groups = (dict(iter(designs.groupby(list(_KEY), sort=False)))
                     if designs is not None and len(designs) else {})
    for key, cell in runs.groupby(list(_KEY), sort=True, dropna=False):
        cell_ok = cell[ok.loc[cell.index]]
        failed_by_method = cell[~ok.loc[cell.index]].groupby("method").size()
        methods = sorted(cell["method"].astype(str).unique())
        present_refs = [r for r in references if r in methods]
        cf = fold_groups.get(tuple(key))
        cp = pred_groups.get(tuple(key))
        cd = design_groups.get(tuple(key))
        where = "/".join(map(str, key))
        for metric in metrics:
            if cell_ok[metric].astype(float).notna().sum() == 0:
                continue
            for ref in present_refs:
                ref_frame = cell_ok[cell_ok["method"].astype(str) == ref]
                ref_vals = _seed_values(ref_frame, metric, f"{where}/{ref}")
                for method in methods:
                    if method == ref:
                        continue
                    m_frame = cell_ok[cell_ok["method"].astype(str) == method]
                    m_vals = _seed_values(m_frame, metric, f"{where}/{method}")
                    joined = pd.concat({"m": m_vals, "r": ref_vals}, axis=1, join="inner")
                    d = (joined["m"] - joined["r"]).to_numpy(dtype=float)
                    n_failed = int(failed_by_method.get(method, 0) + failed_by_method.get(ref, 0))
                    extra = []
                    if n_failed:
                        extra.append(
                            f"excluded failed runs: method {int(failed_by_method.get(method, 0))},"
                            f" reference {int(failed_by_method.get(ref, 0))}"
                        )
                    m_alone, r_alone = len(m_vals) - len(joined), len(ref_vals) - len(joined)
                    if m_alone or r_alone:
                        extra.append(
                            f"runs without a partner seed dropped: method {m_alone}, "
                            f"reference {r_alone}"
                        )
                    out = []
                    fm = cf[cf["method"] == method] if cf is not None else None
                    fr = cf[cf["method"] == ref] if cf is not None else None
                    has_m, has_r = fm is not None and len(fm) > 0, fr is not None and len(fr) > 0
                    seed_rows = _t_rows(d, None)
                    pt = next((r for r in seed_rows if r["test"] == "paired_t"), None)
                    run_d, run_id, design_note = None, None, ""
                    same_design = False
                    if has_m and has_r:
                        # cross-validated: seeds are repetitions, folds the resamples; only folds of one split pair
                        fj, unpaired = _fold_pairs(fm, fr, joined.index, metric)
                        out += seed_rows
                        same_design = len(fj) > 0 and unpaired == 0
                        fixed_kind = sorted({str(k) for k in (cd[cd["method"].isin([method, ref])]["kind"].dropna()
                                                              if cd is not None else [])} & set(FIXED_SPLIT_KINDS))
                        if not len(fj):
                            design_note = ("the folds of the method and the reference are of different designs "
                                           "(no fold with the same split hash): no corrected k-fold t-test; "
                                           "method-level runs paired by seed")
                        else:
                            fd = (fj[f"{metric}_m"] - fj[f"{metric}_r"]).to_numpy(float)
                            run_d, run_id = fd, (fj["seed"].astype(str) + "/" + fj["fold"].astype(str)).to_numpy()
                            if fixed_kind:
                                # per-subject models of a protocol split: the folds are the subjects, whose
                                # training sets do not overlap, and the split does not change with the seed
                                design_note = (f"fixed split ({', '.join(fixed_kind)}, one model per subject): no "
                                               "resampling of the training set, so no corrected resampled t-test; "
                                               "the paired t over seeds is the test (training-run variance only)")
                            else:
                                k_ratio = float(fj["n_test_m"].mean() / fj["n_train_m"].mean())
                                kr = [r for r in _t_rows(fd, k_ratio, "corrected_kfold_t")
                                      if r["test"] == "corrected_kfold_t"]
                                for r in kr:
                                    r["note"] = "; ".join(x for x in (
                                        r["note"], f"{fj['seed'].nunique()} repetition(s) x {fj['fold'].nunique()} "
                                        f"fold(s) of the same split; n_test/n_train = {k_ratio:.3g} "
                                        "(n_train: training + validation segments of the fold)",
                                        f"{unpaired} fold run(s) of another split not paired" if unpaired else "")
                                        if x)
                                out += kr
                    elif has_m or has_r:
                        out += seed_rows
                        design_note = ("the method and the reference ran different protocols (cross-validation "
                                       "vs holdout): no corrected resampled t-test; method-level runs paired by seed")
                    else:
                        hd = _holdout_design(cd[cd["method"] == method] if cd is not None else None,
                                             cd[cd["method"] == ref] if cd is not None else None, joined.index)
                        if not hd["known"]:  # no recorded design: the config's fractions
                            out += _t_rows(d, ratio)
                            same_design = True
                        elif hd["fixed"]:
                            out += seed_rows
                            design_note = (f"{hd['why']}: no resampling of the training set, so no Nadeau-Bengio "
                                           "correction; the paired t over seeds is the test (training-run variance "
                                           "only)")
                            same_design = True
                        else:
                            keep = joined.index.isin(list(hd["seeds"]))
                            r_ratio = hd["ratio"] if math.isfinite(hd["ratio"]) else ratio
                            ct = [r for r in _t_rows(d[keep], r_ratio) if r["test"] == "corrected_t"]
                            for r in ct:
                                r["note"] = "; ".join(x for x in (
                                    r["note"], f"n_test/n_train = {r_ratio:.3g} (n_train: training + validation "
                                    "segments of the runs)",
                                    f"{int((~keep).sum())} seed(s) with different splits not paired"
                                    if (~keep).any() else "") if x)
                            out += seed_rows + ct
                            same_design = bool(keep.all())
                    if design_note and pt is not None:
                        pt["note"] = "; ".join(x for x in (pt["note"], design_note) if x)
                    # method-level: training runs as units (seed x fold of one split; else the seed)
                    ml = None
                    if metric == "accuracy" and cp is not None:
                        pm = cp[(cp["method"] == method) & cp["seed"].isin(joined.index)]
                        pr = cp[(cp["method"] == ref) & cp["seed"].isin(joined.index)]
                        j = pm.merge(pr, on=["seed", "index"], suffixes=("_m", "_r"))
                        if len(j):
                            j = j.assign(d=(j["correct_m"] - j["correct_r"]).astype(float) * 100.0)
                            by_fold = same_design and "fold_m" in j and bool((j["fold_m"] == j["fold_r"]).all())
                            j["run"] = (j["seed"].astype(str) + ("/" + j["fold_m"].astype(str) if by_fold else ""))
                            j["unit"] = j["subject_m"].astype(str) + "/" + j["trial_m"].astype(str)
                            cells = j.groupby(["run", "unit"], sort=True)["d"].mean().reset_index()
                            ml = _method_level_row(cells["d"].to_numpy(float), cells["run"].to_numpy(),
                                                   cells["unit"].to_numpy(), "" if by_fold else
                                                   "runs paired by seed (different fold designs)" if (has_m or has_r)
                                                   else "")
                    if ml is None:
                        if run_d is None:
                            run_d, run_id = d, joined.index.astype(str).to_numpy()
                        if len(run_d):
                            ml = _method_level_row(run_d, run_id, None, "")
                    if ml is not None:
                        out.insert(0, ml)
                    if metric == "accuracy" and cp is not None:
                        pm = cp[(cp["method"] == method) & cp["seed"].isin(joined.index)]
                        pr = cp[(cp["method"] == ref) & cp["seed"].isin(joined.index)]
                        if len(pm) and len(pr):
                            tr, why = _trial_row(pm, pr, "correct", 100.0, n_permutations)
                            if tr is not None:
                                out.append(tr)
                    for r in out:
                        note = "; ".join([x for x in [r["note"], *extra] if x])
                        rows.append({
                            "dataset": key[0], "track": key[1], "dimension": key[2],
                            "metric": metric, "method": method, "reference": ref,
                            **r, "note": note, "n_failed": n_failed,
                        })
    private = ["_sd", "_ratio", "_pmin", "_se"]
    cols = [c for c in STATS_COLUMNS if c not in ("p_holm", "alpha_family", "mde", "question", "family")] + private
    table = pd.DataFrame(rows, columns=cols)
    if len(table):
        family = ["dataset", "track", "dimension", "metric", "test", "reference"]
        k = table.groupby(family, sort=False, dropna=False)["_pmin"].transform(
            lambda p: tarone_size(p.to_numpy(float), alpha)).astype(float)
        alpha_fam = float(alpha) / k
        keep = table["_pmin"].astype(float) < alpha_fam
        table = table[keep].copy()
        table["alpha_family"] = alpha_fam[keep]
        table["mde"] = [
            detectable_difference(se, df, a) if t == "method_level"
            else minimum_detectable_difference(sd, n, a, POWER, rt) if t != "wilcoxon" else math.nan
            for t, sd, n, a, rt, se, df in zip(table["test"], table["_sd"].astype(float), table["n"],
                                               table["alpha_family"], table["_ratio"].astype(float),
                                               table["_se"].astype(float), table["df"].astype(float))
        ]
        table["question"] = table["test"].map(QUESTIONS)
        table["family"] = FAMILY
    order = {t: i for i, t in enumerate(TESTS)}
    table = table.drop(columns=private)
    if len(table):
        table = table.assign(_o=table["test"].map(order)).sort_values(
            [*_KEY, "metric", "reference", "method", "_o"], kind="stable").drop(columns="_o")
    table["p_holm"] = _holm(table) if len(table) else pd.Series(dtype=float)
    for c in ("alpha_family", "mde", "question", "family"):
        if c not in table:
            table[c] = pd.Series(dtype=float if c not in ("question", "family") else object)
    table = table[list(STATS_COLUMNS)]
    table["n"] = table["n"].astype(int)
    table["n_failed"] = table["n_failed"].astype(int)
    return table.reset_index(drop=True)
