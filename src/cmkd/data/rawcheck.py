"""Check a raw data folder before preparing it: ``python -m cmkd inspect <loader> --root RAW``.

Reads what the loader would read, without decoding video or writing anything (file listings,
``session.xml``, BDF headers and the Status channel, pickles, CSVs, video headers), and reports
what the paper grid would get: subjects, sessions/trials found and skipped (grouped by reason,
each reason once with its count), modalities, sampling rates, class balance per dimension and
the alignment checks. Problems that would make preparing fail or corrupt a table (a missing
``participant_ratings.csv``, CSV ratings that disagree with the labels, an unreadable file, a
wrong channel count) are listed the same way; the command then exits with status 1.

One check per loader (:data:`INSPECTORS`, from each loader module's ``LOADER["inspect"]``), each
``(root, params) -> RawReport``: a function here (DEAP, MAHNOB-HCI, SEED-IV: each reuses the loader's
own planning and checks, so the report says what preparing would do; the synthetic generator: its
ratings drawn from its parameters and seed, no signal generated, no root read) or, by default,
the loader itself run into a temporary folder (SEED, SEED-V, a new loader).
"""
from __future__ import annotations

import importlib
import json
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cmkd.data import LOADER_INFO, loader
from cmkd.data.cache import check_modalities, group_skipped, resolve_params
from cmkd.data.labels import check_tie, class_balance
from cmkd.errors import CmkdError, ConfigError, DataError


@dataclass
class RawReport:
    """What a loader would get from a raw folder."""

    loader: str
    root: str
    unit: str                                   # "session", "trial", ...
    params: dict = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)
    sampling_rates: dict[str, float] = field(default_factory=dict)
    subjects: set = field(default_factory=set)
    usable: list[str] = field(default_factory=list)      # units that would be prepared
    segments: int = 0
    skipped: list[dict] = field(default_factory=list)     # {"item", "reason", "detail"?}: left out, as the loader would
    problems: list[dict] = field(default_factory=list)    # would make preparing fail or corrupt a table
    warnings: list[dict] = field(default_factory=list)    # alignment disagreements the loader tolerates
    checks: Counter = field(default_factory=Counter)      # alignment rules applied, with counts
    ratings: dict[str, list[float]] = field(default_factory=dict)  # per usable unit, per dimension
    classes: dict[str, Counter] = field(default_factory=dict)      # categorical labels per unit

    def problem(self, item: str, ex: Exception | str, reason: str | None = None) -> None:
        msg = str(ex)
        self.problems.append({"item": item, "reason": reason or msg, **({"detail": msg} if reason else {})})

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.usable)


def _grouped(title: str, items: list[dict], lines: list[str]) -> None:
    if not items:
        return
    lines.append(f"{title} ({len(items)}):")
    lines += [f"  {g}" for g in group_skipped(items)]


def format_report(r: RawReport, threshold: float = 5.0, tie: str = "low") -> str:
    """The report as text; class balance split at ``threshold`` with ``tie`` (see cmkd.data.labels)."""
    lines = [f"{r.loader} at {r.root}"]
    if r.params:
        lines.append(f"parameters: {r.params}")
    lines.append(f"modalities: {', '.join(r.modalities)}")
    if r.sampling_rates:
        lines.append("sampling rates: " + ", ".join(f"{k} {v:g} Hz" for k, v in r.sampling_rates.items()))
    subj = sorted(r.subjects)
    lines.append(f"subjects: {len(subj)} ({', '.join(str(s) for s in subj[:40])}{' ...' if len(subj) > 40 else ''})")
    lines.append(f"{r.unit}s usable: {len(r.usable)}; skipped: {len(r.skipped)}; segments: {r.segments}")
    _grouped(f"skipped {r.unit}s, by reason", r.skipped, lines)
    if r.checks:
        lines.append("alignment rules applied:")
        lines += [f"  {n} x {rule}" for rule, n in sorted(r.checks.items(), key=lambda kv: (-kv[1], kv[0]))]
    _grouped("alignment warnings", r.warnings, lines)
    if r.ratings:
        lines.append(f"class balance per dimension ({r.unit}s; threshold {threshold:g}, tie '{tie}'):")
        for dim, vals in r.ratings.items():
            if not vals:
                continue
            b = class_balance(np.asarray(vals), threshold, tie)
            n = b["low"] + b["high"]
            lines.append(f"  {dim}: {b['high']} high / {b['low']} low ({100 * b['high'] / n:.1f}% high; "
                         f"{b['at_threshold']} at exactly {threshold:g}; {b['rule']})")
    for name, cnt in r.classes.items():
        lines.append(f"class balance of {name} ({r.unit}s): " + ", ".join(f"{k}: {v}" for k, v in sorted(cnt.items())))
    single = one_class(r, threshold, tie)
    for msg in single:  # every dimension in one class: a problem (exit 1); some: a warning
        lines.append(f"{'PROBLEM' if _all_one_class(r, single) else 'warning'}: {msg}")
    if r.problems:
        _grouped("PROBLEMS (preparing would fail or corrupt a table)", r.problems, lines)
    elif not r.usable:
        lines.append(f"PROBLEM: no usable {r.unit}")
    elif not _all_one_class(r, single):
        lines.append("no problem found")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- MAHNOB-HCI ----
def inspect_mahnob(root: str | Path, params: dict | None = None) -> RawReport:
    from cmkd.data import mahnob as M  # lazy: plugin
    from cmkd.data import video as vid  # lazy: plugin
    p = resolve_params(params, M.DEFAULTS, "MAHNOB-HCI")
    mods = M.check_params(p)
    want_face = "face" in mods
    seg_s = float(p["segment_seconds"])
    r = RawReport("mahnob_hci", str(root), "session", params=dict(params or {}), modalities=mods)
    plan, skipped, _ = M.scan_sessions(Path(root), p, want_face)
    r.skipped += skipped
    r.ratings = {k: [] for k in M.RATINGS}
    for e in plan:
        item = e["item"]
        try:
            raw = M.read_bdf(e["bdf"], preload=False)
            M.eeg_channels(list(raw.ch_names), e["bdf"])
            sf = float(raw.info["sfreq"])
            r.sampling_rates.setdefault("bdf", sf)
            if sf != r.sampling_rates["bdf"]:
                r.warnings.append({"item": item, "reason": "BDF sampling rate differs from the first session's",
                                   "detail": f"{sf:g} Hz"})
            onset_s, offset_s, align = M.resolve_window(M.stimulus_window(raw, e["bdf"]), sf, raw.n_times,
                                                        e["cut_len"], p["window_check"], float(p["window_tolerance_s"]))
            n_seg = int((offset_s - onset_s + 1e-9) // seg_s)
            if n_seg == 0:
                raise M.SessionSkip(f"stimulus shorter than one {seg_s:g} s segment")
            rules = [f"stimulus window: {align['window_rule']}"]
            if want_face:
                v0, face_rule = M.video_onset(p["face_align"], e["attrs"], onset_s)
                fps, n_frames = vid.video_info(e["video"])
                r.sampling_rates.setdefault("video", round(fps, 3))
                _, warns = M.video_checks(e["attrs"], fps, n_frames, v0, n_seg * seg_s, e["cut_len"])
                r.warnings += [{"item": item, "reason": w} for w in warns]
                rules.append(f"face: {face_rule}")
        except M.SessionSkip as ex:
            r.skipped.append(ex.record(item))
            continue
        except CmkdError as ex:
            r.problem(item, ex, "unreadable or malformed file")
            continue
        r.checks.update(rules)
        r.usable.append(item)
        r.segments += n_seg
        r.subjects.add(e["subject"])
        for k, v in e["ratings"].items():
            r.ratings[k].append(v)
    if "eeg" in mods:
        r.sampling_rates["eeg (prepared)"] = float(p["sampling_rate"])
    return r


# ------------------------------------------------------------------------------------- DEAP ----
def inspect_deap(root: str | Path, params: dict | None = None) -> RawReport:
    from cmkd.data import deap as D  # lazy: plugin
    from cmkd.data import video as vid  # lazy: plugin
    p = resolve_params(params, D.DEFAULTS, "DEAP")
    mods = D.check_params(p)
    want_face = "face" in mods
    seg_s = float(p["segment_seconds"])
    n_seg = int((D.N_SAMPLES - D.BASELINE_SECONDS * D.SFREQ) // round(seg_s * D.SFREQ))
    root = Path(root)
    r = RawReport("deap", str(root), "trial", params=dict(params or {}), modalities=mods,
                  sampling_rates={m: float(D.SFREQ) for m in mods if m != "face"})
    files = D.find_subject_files(root, p["subjects"])
    order = order_file = video_root = None
    if want_face:
        try:
            video_root, order_file = D.face_sources(root, p)
            if p["face_trial_mapping"] == "csv":
                order = D.read_participant_ratings(order_file)
            else:
                r.warnings.append({"item": "all subjects", "reason": "face_trial_mapping 'identity': video YY paired "
                                                                     "with row YY-1 without participant_ratings.csv"})
        except DataError as ex:
            r.problem(str(root), ex, "participant_ratings.csv missing or unreadable: face videos cannot be "
                                     "mapped to trials")
            want_face = False  # report the rest without the mapping
    r.ratings = {k: [] for k in ("valence", "arousal", "dominance", "liking")}
    for s, path in sorted(files.items()):
        try:
            data, labels = D.read_deap_file(path)
        except DataError as ex:
            r.problem(f"s{s:02d}", ex, "unreadable or malformed sXX.dat")
            continue
        rows = list(range(data.shape[0]))
        del data
        if want_face:
            videos = D._find_videos(video_root, s)
            if not videos:
                r.skipped.append({"item": f"s{s:02d}", "reason": "no face video"})
                continue
            try:
                tv, sk = D.plan_face_trials(s, labels, videos, order, order_file, path, p["face_align"], n_seg * seg_s)
            except CmkdError as ex:
                r.problem(f"s{s:02d}", ex, "participant_ratings.csv disagrees with the data files")
                continue
            r.skipped += sk
            for t in tv:
                fps, _ = vid.video_info(tv[t])
                r.sampling_rates.setdefault("video", round(fps, 3))
            mapping = "participant_ratings.csv, ratings cross-checked" if order is not None else "identity"
            onset = "video length - 60 s" if p["face_align"] == "end" else f"{p['face_align']} s into the video"
            r.checks[f"face: trial mapping {mapping}"] += len(tv)
            r.checks[f"face: stimulus onset at {onset}"] += len(tv)
            rows = [t for t in rows if t in tv]
        for t in rows:
            r.usable.append(f"s{s:02d} trial {t}")
            for j, k in enumerate(r.ratings):
                r.ratings[k].append(float(labels[t, j]))
        r.segments += len(rows) * n_seg
        if rows:
            r.subjects.add(s)
    return r


# ---------------------------------------------------------------------------------- SEED-IV ----
def inspect_seed_iv(root: str | Path, params: dict | None = None) -> RawReport:
    from cmkd.data import seed_iv as S  # lazy: plugin
    p = resolve_params(params, S.DEFAULTS, "SEED-IV")
    mods = check_modalities(p["modalities"], S.MODALITIES, "SEED-IV")
    root = Path(root)
    r = RawReport("seed_iv", str(root), "trial", params=dict(params or {}), modalities=mods)
    if not root.is_dir():
        raise DataError(f"{root}: SEED-IV root directory not found")
    emotion: Counter = Counter()
    wanted = {int(s) for s in p["subjects"]} if p["subjects"] is not None else None
    for sess in [int(x) for x in p["sessions"]]:
        found = {m: S._scan(root / S._FOLDERS[m], sess) for m in mods}
        for s in sorted(set().union(*found.values())):
            if wanted is not None and s not in wanted:
                continue
            item = f"session {sess} subject {s}"
            missing = [m for m in mods if s not in found[m]]
            if missing:
                r.skipped.append({"item": item, "reason": f"no {' and '.join(S._FOLDERS[m] for m in missing)} file"})
                continue
            try:
                mats = {m: S._loadmat(found[m][s]) for m in mods}
                for k in range(S.N_TRIALS):
                    counts = {}
                    if "eye" in mods:
                        counts["eye"] = S._trial_array(mats["eye"], f"eye_{k + 1}", found["eye"][s], (S.N_EYE, None)).shape[1]
                    if "eeg_de" in mods:
                        counts["eeg_de"] = S._trial_array(mats["eeg_de"], f"{p['eeg_feature']}{k + 1}", found["eeg_de"][s],
                                                          (S.N_EEG, None, S.N_BANDS)).shape[1]
                    n = min(counts.values())
                    if len(set(counts.values())) > 1:
                        r.warnings.append({"item": f"{item} trial {k}", "reason": "eye and EEG window counts differ "
                                                                                "(common prefix kept)",
                                           "detail": str(counts)})
                    if n == 0:
                        r.skipped.append({"item": f"{item} trial {k}", "reason": "no feature window"})
                        continue
                    r.usable.append(f"{item} trial {k}")
                    r.segments += n
                    emotion[S.LABEL_NAMES[S.SESSION_LABELS[sess][k]]] += 1
            except CmkdError as ex:
                r.problem(item, ex, "unreadable or malformed MAT file")
                continue
            r.subjects.add(s)
    r.classes = {"emotion": emotion}
    r.checks[f"windows of {S.WINDOW_SECONDS:g} s (features precomputed by the data set)"] = len(r.usable)
    return r


# -------------------------------------------------------------------------------- synthetic ----
def inspect_synthetic(root: str | Path | None = None, params: dict | None = None, seed: int = 0) -> RawReport:
    """The synthetic data set as ``prepare synthetic`` with ``params`` and ``seed`` would write it:
    subjects, trials, segments and the ratings per trial (drawn as the generator draws them,
    without generating the signals; ``root`` is not read). Bad parameters raise the generator's
    :class:`~cmkd.errors.ConfigError`."""
    from cmkd.data import synthetic as SYN  # lazy: plugin
    plan = SYN._plan(params or {}, seed, "--params")
    p, small = plan["p"], plan["small"]
    r = RawReport("synthetic", "(generated, no raw root)" if root is None else str(root), "trial",
                  params={**dict(params or {}), "seed": seed}, modalities=["eeg", "eog", "face", "eye"],
                  sampling_rates={m: float(v) for m, v in plan["meta"]["sampling_rates"].items()})
    first = small["segment"] == 0
    r.subjects = {int(x) for x in np.unique(small["subject"])}
    r.usable = [f"subject {a} trial {b}" for a, b in zip(small["subject"][first].tolist(), small["trial"][first].tolist())]
    r.segments = int(small["subject"].size)
    r.ratings = {k: [float(v) for v in small[k][first]] for k in ("valence", "arousal", "dominance", "liking")}
    r.checks[f"generated: {p['segments_per_trial']} segments of {p['segment_seconds']:g} s per trial"] = len(r.usable)
    return r


def _inspect_by_preparing(loader: str, name: str, prepare: Callable, root: str | Path, params: dict | None) -> RawReport:
    """For feature data sets (SEED, SEED-V: a few MB per subject, no video): run the loader itself
    into a temporary folder, report from what it wrote (its skipped items, windows, labels), then
    delete the folder. Nothing is written under the raw root or the results."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: {name} root directory not found")
    r = RawReport(loader, str(root), "trial", params=dict(params or {}))
    with tempfile.TemporaryDirectory(prefix=f"cmkd-inspect-{loader}-") as tmp:
        try:
            out = Path(prepare(root, Path(tmp) / "prepared", params or {}))
        except CmkdError as ex:
            r.problem(str(root), ex, f"the {name} loader stops")
            return r
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        r.modalities = [m for m in meta.get("arrays", {}) if m not in ("subject", "trial", "segment", "session", "emotion", "label")]
        r.sampling_rates = dict(meta.get("sampling_rates") or {})
        r.skipped = list(meta.get("skipped") or [])
        subj = np.load(out / "subject.npy")
        trial = np.load(out / "trial.npy")
        sess = np.load(out / "session.npy") if (out / "session.npy").exists() else np.zeros_like(subj)
        r.subjects = {int(x) for x in np.unique(subj)}
        keys, first = np.unique(np.stack([subj, sess, trial], 1), axis=0, return_index=True)
        r.usable = [f"subject {a} session {b} trial {c}" for a, b, c in keys.tolist()]
        r.segments = int(len(subj))
        lab = next((out / f"{k}.npy" for k in ("emotion", "label") if (out / f"{k}.npy").exists()), None)
        if lab is not None:
            emo = np.load(lab)
            names = meta.get("label_names") or {}
            r.classes = {"emotion": Counter(str(names.get(str(int(v)), int(v))) for v in emo[first])}
        r.checks[f"{name}: windows as the loader prepares them (run into a temporary folder)"] = len(r.usable)
    return r


def _inspector(name: str, how: str) -> Callable[[str | Path, dict | None], RawReport]:
    """The raw-data check a loader's ``LOADER["inspect"]`` names, imported on use: ``"prepare"`` runs
    the loader into a temporary folder (:func:`_inspect_by_preparing`), ``"module:function"`` calls
    that function."""
    def inspect(root: str | Path, params: dict | None = None, **kw) -> RawReport:
        if how == "prepare":
            return _inspect_by_preparing(name, LOADER_INFO[name].title, loader(name), root, params)
        mod, fn = how.split(":")
        return getattr(importlib.import_module(mod), fn)(root, params, **kw)

    return inspect


def _inspectors() -> dict[str, Callable[[str | Path, dict | None], RawReport]]:
    return {name: _inspector(name, info.inspect) for name, info in LOADER_INFO.items() if info.inspect}


#: loader name -> its raw-data check (every loader whose ``LOADER["inspect"]`` is not None)
INSPECTORS: dict[str, Callable[[str | Path, dict | None], RawReport]] = _inspectors()


def inspect_raw(loader: str, root: str | Path | None, params: dict | None = None,
                inspectors: dict[str, Callable[..., RawReport]] | None = None, **kw) -> RawReport:
    """Run the inspector of ``loader`` (from ``inspectors``, default :data:`INSPECTORS`); ``kw``
    (the synthetic generator's ``seed``) goes to it."""
    table = inspectors or INSPECTORS
    if loader not in table:
        raise ConfigError(f"inspect: no raw-data check for loader '{loader}' (known: {', '.join(sorted(table))})")
    return table[loader](root, params, **kw)


def main(loader: str, root: str | None, params: dict | None = None, threshold: float = 5.0, tie: str = "low",
         out: Any = None, seed: int | None = None) -> int:
    """Print the report; return 0 when preparing would go through cleanly, 1 when not. ``root``
    may be None for the synthetic generator only; ``seed`` is the generator's (synthetic only)."""
    check_tie(tie, "--tie")
    if loader != "synthetic" and root is None:
        raise ConfigError(f"inspect {loader}: --root (the raw data root) is required")
    if loader != "synthetic" and seed is not None:
        raise ConfigError(f"inspect {loader}: --seed is the synthetic generator's; loader '{loader}' takes none")
    r = inspect_raw(loader, root, params, **({"seed": seed} if seed is not None else {}))
    print(format_report(r, threshold, tie), file=out or sys.stdout)
    return 0 if r.ok and not _all_one_class(r, one_class(r, threshold, tie)) else 1


def _all_one_class(r: RawReport, single: list[str]) -> bool:
    """Every rated dimension in one class, over more than one unit (a single unit has one class anyway)."""
    return bool(single) and len(r.usable) > 1 and len(single) == sum(1 for v in r.ratings.values() if v)


def one_class(r: RawReport, threshold: float = 5.0, tie: str = "low") -> list[str]:
    """Dimensions whose ratings all fall on one side of ``threshold``: a classifier of them has a
    single class to learn (the check of ``dimensions.<name>.threshold`` before any job)."""
    out = []
    for dim, vals in r.ratings.items():
        if not vals:
            continue
        b = class_balance(np.asarray(vals), threshold, tie)
        if b["high"] == 0 or b["low"] == 0:
            side = "high" if b["high"] == 0 else "low"
            out.append(f"{dim}: no rating is {side} at threshold {threshold:g} (tie '{tie}'): every {r.unit} "
                       f"falls in one class")
    return out
