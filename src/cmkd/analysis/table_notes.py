"""The notes under a results table, generated from what ran: the design and split captions
(shares of the parts, what a paired test can pair), the class rules, and the power note of the
significance marks."""
from __future__ import annotations

import pandas as pd

from cmkd.data import split_kinds
from cmkd.data.labels import tie_rule


#: the note under a table, per test family: (family, what its MDE says, what is said without a test)
NOTE_FAMILIES = (
    ("method", "method-level MDE {mde:.1f} {unit} (training runs as units, run and trial variance in the null; {holm})",
     "no method-level test (n too small)"),
    ("seeds", "{mde:.1f} {unit} across training runs of one split design ({tests}, {holm})",
     "no corrected resampled t-test (n too small, a fixed split or different designs)"),
    ("trials", "{mde:.1f} {unit} between these trained models on the same test trials (trial-level permutation test, {holm})",
     "no trial-level test (n too small or no per-trial predictions)"),
)


def power_note(lines: list[str]) -> str:
    if not lines:
        return ""
    return (" ".join(lines) + " Marks: sig = method-level test (the headline: is the method better?); sig_seeds = "
            "corrected resampled t-test; sig_trials = trial-level test (these trained models differ on these "
            "trials, not a claim about the methods). * = differs from the reference (Holm-adjusted p < 0.05, Holm "
            "family named above); ≈ = indistinguishable: the difference from the reference is below that test's "
            "minimum detectable difference; 'n too small' = the test cannot reach p < 0.05 at its number of "
            "runs/trials and was not run; 'zero variance' = the differences do not vary, the test is undefined; "
            "'fixed split' = one split for every seed (no resampling): no corrected resampled test, the paired t "
            "over seeds is in stats.csv; 'designs differ' = the method and the reference ran different split "
            "designs, so no runs pair for the corrected test.")


def _class_rules(df: pd.DataFrame, table: dict, dims: dict) -> list[str]:
    """Threshold rule (with its tie side) of each binary dimension the table shows."""
    shown = table.get("dimensions") or (sorted(df["dimension"].unique()) if "dimension" in df else [])
    out = []
    for d in shown:
        spec = dims.get(d) or {}
        if spec.get("task") == "classification" and spec.get("n_classes", 2) == 2:
            out.append(f"{d}: {tie_rule(float(spec.get('threshold', 5.0)), spec.get('tie', 'low'))}")
    return out


# ----------------------------------------------------------------------------- split designs as run
def split_shares(split: dict) -> tuple[float, float, float] | None:
    """The expected (train, validation, test) shares of the segments per seed under ``split`` (a
    run's merged split settings, :func:`cmkd.config.effective_run_config`; its kind's declared
    defaults filled by :func:`cmkd.data.split_kinds.settings`); None where they depend on the data
    (leave-one-subject-out, the SEED-family protocol splits). k-fold: each fold tests ``1/k`` and
    carves ``val_fraction`` of its training groups for validation; single splits: ``ratios``."""
    sp = split_kinds.settings(split)
    kind = split_kinds.get(sp["kind"])
    if kind.folds and "n_folds" in kind.params:
        k, vf = int(sp["n_folds"]), float(sp["val_fraction"])
        return (k - 1) / k * (1 - vf), (k - 1) / k * vf, 1 / k
    if "ratios" in kind.params:
        r = [float(x) for x in sp["ratios"]]
        return r[0], r[1], r[2]
    return None


def _ratios(split: dict) -> str:
    return ":".join(f"{float(r) * 10:g}" for r in split["ratios"])


def describe_split(split: dict) -> str:
    """One phrase saying what a split does, generated from its settings (its kind's declared defaults
    filled in, so captions cannot drift)."""
    sp = split_kinds.settings(split)
    kind = sp["kind"]
    shares = split_shares(sp)
    pct = ("" if shares is None else
           f" ({shares[0] * 100:.0f} % of the segments train, {shares[1] * 100:.0f} % validate, "
           f"{shares[2] * 100:.0f} % test per seed)")
    if kind == "kfold":
        k = sp["n_folds"]
        if sp["folds_by"] == "segment":
            return (f"segment-level {k}-fold cross-validation{pct}: single segments are dealt into the folds, so most "
                    "test segments have a segment of the same trial in training (leaky); every segment is tested once "
                    "per seed")
        by = " within each subject" if sp["folds_by"] == "subject" else ""
        return f"trial-level {k}-fold cross-validation{by}{pct}: every trial tested once per seed"
    if kind == "leaky":
        return (f"one segment-level {_ratios(sp)} split per seed{pct}: segments of one trial fall in different parts "
                "(leaky); a seed tests a random tenth-sized sample of the segments")
    if kind == "trial":
        return f"one trial-level {_ratios(sp)} split per seed{pct}"
    if kind == "subject":
        return f"one subject-level {_ratios(sp)} split per seed{pct}"
    if kind == "loso":
        return "leave-one-subject-out cross-validation (every subject tested once per seed)"
    extra = ", ".join(f"{k} {v}" for k, v in sorted(sp.items()) if k in ("train_trials", "test_session"))
    return f"the {kind} protocol split" + (f" ({extra})" if extra else "") + _models_phrase(sp)


def _models_phrase(split: dict) -> str:
    """How many models a protocol split trains (its ``models`` parameter), or "" for other kinds."""
    if "models" not in split_kinds.get(split_kinds.settings(split)["kind"]).params:
        return ""
    if split_kinds.per_subject_models(split):
        return (", one model per subject (trained on its training clips, selected on its validation clips), the "
                "metrics the mean over subjects")
    return ", one pooled model over all subjects (every subject's training clips), tested on all test clips"


def protocol_note(df: pd.DataFrame, table: dict, splits: dict) -> str:
    """The SEED-family protocol each data set of the table ran, pooled or per-subject models
    (generated from the runs' split settings; a table that describes its splits says it there)."""
    if not len(df) or table.get("describe_splits") or not {"dataset", "track", "method"} <= set(df.columns):
        return ""
    lines: dict[str, list[str]] = {}
    for ds, tr, m in dict.fromkeys(zip(df["dataset"], df["track"], df["method"])):
        sp = splits.get(f"{ds}/{tr}/{m}")
        if sp is not None and _models_phrase(sp):
            lines.setdefault(describe_split(sp), [])
            if ds not in lines[describe_split(sp)]:
                lines[describe_split(sp)].append(ds)
    if not lines:
        return ""
    return ("Protocol as run (generated from the split settings): "
            + "; ".join(f"{', '.join(d)}: {t}" for t, d in lines.items()) + ".")


def _tests_every_segment(split: dict) -> bool:
    """A cross-validation that deals the trials (or segments) into folds: every segment tested once per seed."""
    kind = split_kinds.get(split_kinds.settings(split)["kind"])
    return kind.folds and "n_folds" in kind.params


def split_pairing(a: dict, b: dict) -> str:
    """What the paired test over test trials can pair between runs under splits ``a`` and ``b``."""
    if _tests_every_segment(a) and _tests_every_segment(b):
        return ("Both splits test every segment once per seed, so the paired test over test trials pairs every "
                "trial.")
    sa, sb = split_shares(a), split_shares(b)
    if sa is None or sb is None:
        return "The two runs' test parts differ; the paired test pairs only the segments both test."
    if _tests_every_segment(a) or _tests_every_segment(b):  # a cross-validation tests every segment once per seed
        single = sb if _tests_every_segment(a) else sa
        return (f"The cross-validation tests every segment once per seed, so the single split's test part "
                f"({single[2] * 100:.0f} % of the segments per seed) is paired in full.")
    both = sa[2] * sb[2]
    return (f"The two runs' test parts are drawn separately ({sa[2] * 100:.0f} % and {sb[2] * 100:.0f} % of the "
            f"segments per seed; expected overlap about {both * 100:.1f} % of the segments), so the paired test over "
            "test trials has little to pair; the test over seeds (training runs as units) is the comparison that "
            "uses every run.")


def splits_note(df: pd.DataFrame, table: dict, splits: dict) -> str:
    """``describe_splits: true``: the split design of every row as it ran, per data set (from the
    spec's ``splits``, "dataset/track/method" -> merged settings), the training-share difference and
    what the paired test can pair between each row and the table's reference."""
    if not len(df) or not table.get("describe_splits"):
        return ""
    lines: dict[str, list[str]] = {}
    pairs: dict[str, list[str]] = {}
    for ds, g in df.groupby("dataset", sort=True):
        ref = str(g["reference"].iloc[0])
        ref_split = splits.get(f"{ds}/{g['track'].iloc[0]}/{ref}")
        for method, label in dict(zip(g["method"], g["label"])).items():
            sp = splits.get(f"{ds}/{g['track'].iloc[0]}/{method}")
            if sp is None:
                continue
            lines.setdefault(f"{label}: {describe_split(sp)}", []).append(ds)
            if ref_split is not None and method != ref:
                txt = split_pairing(ref_split, sp)
                a, b = split_shares(ref_split), split_shares(sp)
                if a and b and abs(a[0] - b[0]) >= 0.005:
                    txt = (f"Part of a difference can come from the training share ({a[0] * 100:.0f} % vs "
                           f"{b[0] * 100:.0f} % of the segments train). " + txt)
                pairs.setdefault(txt, []).append(ds)
    if not lines:
        return ""

    def where(dss):
        return "" if len(set(df["dataset"])) == 1 else f" [{', '.join(dict.fromkeys(dss))}]"

    out = "Splits as run (generated from the split settings): " + "; ".join(f"{t}{where(d)}" for t, d in lines.items()) + "."
    return out + "".join(f" {t}{where(d)}" for t, d in pairs.items())


def visual_note(table: dict, visual: dict) -> str:
    """The frozen visual features the table's rows ran with (``protocol.visual``: run -> description,
    :func:`cmkd.workflow.summary.frozen_visual`); empty when every face network fine-tunes."""
    rows = set(table.get("rows") or {})
    descs = {}
    for run, desc in visual.items():
        _ds, tr, m = run.split("/", 2)
        if m in rows and tr == table.get("track", tr):
            descs.setdefault(desc, []).append(m)
    if not descs:
        return ""
    pvt = any("pvt" in d for d in descs)
    return ("Visual encoder (generated from the config): " + "; ".join(
        f"{d} [{', '.join(dict.fromkeys(ms))}]" if len(descs) > 1 else d for d, ms in descs.items())
        + (". CDGKD's authors train on stored PVT features as well (their code reads precomputed frame features)."
           if pvt else "."))


def table_note(df: pd.DataFrame, table: dict, protocol: dict) -> str:
    syn = bool(len(df) and df["synthetic"].any())
    parts = [table.get("caption", "")]
    sp = split_kinds.settings(protocol.get("split"))  # the config's split, its kind's defaults filled
    kind = sp["kind"]
    if kind == "kfold":
        design = (f"stratified {sp['n_folds']}-fold cross-validation over trials "
                  f"({sp['folds_by']}; every trial tested once per seed, the seed is the repetition)")
    elif kind == "loso":
        design = "leave-one-subject-out cross-validation (every subject tested once per seed)"
    else:
        design = f"{kind}-level split {_ratios({'ratios': sp.get('ratios', split_kinds.RATIOS.default)})}"
    over = ("sample std over subjects (each subject's test segments of every seed pooled per subject; n = subjects)"
            if table.get("over") == "subjects" else "sample std over seeds")
    parts.append(f"Metric: {table.get('metric', 'accuracy')}; mean ± {over}; {design} "
                 f"unless the method says otherwise; seeds {protocol.get('seeds', '?')}; model selection on "
                 "validation, test evaluated once.")
    parts.append(protocol_note(df, table, protocol.get("splits") or {}))
    parts.append(splits_note(df, table, protocol.get("splits") or {}))
    parts.append(visual_note(table, protocol.get("visual") or {}))
    if len(df) and "n_degenerate" in df and (df["n_degenerate"] > 0).any():
        parts.append("'(N did not learn)': N runs of the row predicted one constant value on the whole test part "
                     "(status degenerate: the model learned nothing, the code did not fail); they are not averaged "
                     "into the mean, and are counted apart from failed runs ('(N failed)').")
    rules = _class_rules(df, table, protocol.get("dimensions") or {})
    if rules:
        parts.append("Binary classes: " + "; ".join(rules) + ".")
    if len(df) and "published_scale" in df and (df["published_scale"] == "unknown").any():
        parts.append("Published numbers marked '(scale unknown)' are on a scale the paper does not state; they are "
                     "shown, not compared (no difference, no verdict).")
    parts.append("Significance against the reference (column sig, the headline): the method-level test over training "
                 "runs (seed x fold) and their test trials, whose null holds run-to-run and trial-to-trial variance "
                 "(is the method better?). Beside it: the corrected resampled t-test over the runs of one split "
                 "design (sig_seeds) and the trial-level sign-flip test (sig_trials: these trained models differ on "
                 "these trials; not a claim about the methods). Each is Holm-adjusted over the table's comparisons "
                 "with the reference in one dataset x dimension.")
    maj = df["majority"].dropna() if "majority" in df else pd.Series(dtype=float)
    if len(maj):
        lo, hi = float(maj.min()), float(maj.max())
        parts.append(f"Test parts: the majority class holds {lo:.1f} %" + (f" to {hi:.1f} %" if hi - lo >= 0.05 else "")
                     + " of the segments (column 'majority'). Chance: the accuracy a classifier must exceed to beat "
                     "the majority-class share at one-sided alpha = 0.05 under a binomial null over the test segments "
                     "(Combrisson & Jerbi 2015); segments of one trial are not independent, so it is a floor, not a test.")
    if syn:
        parts.append("SYNTHETIC DATA: published numbers are from the real data set named in 'Published source' "
                     "and are shown as a reference only; they are not comparable to the reproduced values.")
    return " ".join(p for p in parts if p)
