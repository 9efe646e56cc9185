"""Reference points of every table: trivial-baseline rows, chance level, test class balance,
per-subject results (tables over subjects, gain plot), and the licence and citation files."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cmkd import cli
from cmkd.config import iter_cells, table_datasets
from cmkd.analysis.figures.bars import table_bars
from cmkd.analysis.figures.gains import gains_figure, subject_gains
from cmkd.analysis.tables import aggregate_runs, build_table, summarise, table_note, write_tables

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = {"majority": "majority", "stratified": "stratified"}


def _summary_of(cells, chance=62.5, majority=56.25):
    rows = []
    for i, (ds, tr, dim, m) in enumerate(sorted(cells)):
        reg = dim.endswith("_reg")
        rows.append({"dataset": ds, "track": tr, "dimension": dim, "method": m,
                     "accuracy_mean": math.nan if reg else 50.0 + i % 20, "accuracy_std": 1.0,
                     "f1_mean": math.nan if reg else 45.0 + i % 20, "f1_std": 1.0,
                     "rmse_mean": 0.3 if reg else math.nan, "rmse_std": 0.01,
                     "chance_level_mean": math.nan if reg else chance, "majority_fraction_mean": math.nan if reg else majority,
                     "n": 3, "n_failed": 0, "n_stale": 0})
    return pd.DataFrame(rows)


def test_every_table_of_the_default_config_starts_with_the_trivial_rows_and_has_a_chance_level():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    trivial = {m: cfg["methods"][m]["class"] for m in cfg["trivial_methods"]}
    assert set(trivial.values()) == {"majority", "stratified"}
    summary = _summary_of(iter_cells(cfg))
    run = {e["dataset"] for e in cfg["experiments"]}
    for table in cfg["tables"]:
        if not table_datasets(cfg, table) & run:
            continue  # a table of the paper grid's data sets only (e.g. mkd_ablation_control): empty here by design
        df = build_table(summary, table, {}, cfg["datasets"], trivial=trivial)
        assert len(df), table["name"]
        for (_, _, dim), g in df.groupby(["dataset", "track", "dimension"]):
            assert list(g["method"][:2]) == list(trivial), table["name"]
            if table.get("metric", "accuracy") == "accuracy" and cfg["dimensions"][dim]["task"] == "classification":
                assert g["chance"].notna().all(), table["name"]
        labels = set(df[df["method"] == "majority"]["label"])
        assert labels == ({"Training mean"} if table.get("metric") == "rmse" else {"Majority class (training part)"})


def test_trivial_rows_can_be_switched_off_and_are_not_repeated():
    summary = _summary_of([("s", "t", "arousal", m) for m in ("majority", "stratified", "baseline", "kd")])
    table = {"track": "t", "metric": "accuracy", "rows": {"baseline": None, "majority": None, "kd": None}}
    df = build_table(summary, table, {}, {}, trivial=TRIVIAL)
    assert list(df["method"]) == ["majority", "stratified", "baseline", "kd"]
    assert list(build_table(summary, {**table, "trivial": False}, {}, {}, trivial=TRIVIAL)["method"]) == ["baseline", "majority", "kd"]
    note = table_note(df, table, {"split": {"kind": "trial"}, "seeds": [0]})
    assert "majority class holds 56.2 %" in note and "Combrisson & Jerbi 2015" in note


def _metrics_json(path: Path, method: str, seed: int, subjects: dict, status="ok"):
    path.mkdir(parents=True)
    n = sum(v["n"] for v in subjects.values())
    acc = sum(v["n"] * v["accuracy"] for v in subjects.values()) / n
    m = {"status": status, "cell": {"dataset": "s", "track": "t", "dimension": "arousal", "method": method, "seed": seed},
         "task": "classification",
         "test": {"accuracy": acc, "f1": acc, "f1_macro": acc, "rmse": math.nan, "balanced_accuracy": acc - 1,
                  "roc_auc": 0.6, "majority_fraction": 56.25, "chance_level": 68.75},
         "test_per_subject": {s: {"n": v["n"], "accuracy": v["accuracy"], "f1": v["accuracy"], "rmse": math.nan,
                                  "balanced_accuracy": v["accuracy"], "roc_auc": 0.5} for s, v in subjects.items()},
         "provenance": {}}
    (path / "metrics.json").write_text(json.dumps(m))
    return path / "metrics.json"


def _grid(tmp_path):
    """Two methods x two seeds x four subjects; kd gains 40 points on subjects 1 and 2, none on
    subject 3, and loses 10 on subject 4."""
    files = []
    for method in ("baseline", "kd"):
        for seed in (0, 1):
            subj = {}
            for s in range(4):
                acc = 50.0 + seed + ({0: 40.0, 1: 40.0, 2: 0.0, 3: -10.0}[s] if method == "kd" else 0.0)
                subj[str(s + 1)] = {"n": 6 + s, "accuracy": acc}
            files.append(_metrics_json(tmp_path / method / f"seed{seed}", method, seed, subj))
    runs = aggregate_runs(files, tmp_path / "runs.csv", current_code_hash="x", subjects_csv=tmp_path / "subjects.csv")
    return runs


def test_runs_csv_carries_the_reference_metrics_and_subjects_csv_the_subjects(tmp_path):
    runs = _grid(tmp_path)
    for c in ("balanced_accuracy", "roc_auc", "majority_fraction", "chance_level"):
        assert c in pd.read_csv(tmp_path / "runs.csv").columns
    assert runs["chance_level"].eq(68.75).all()
    sub = pd.read_csv(tmp_path / "subjects.csv", dtype={"subject": str})
    assert len(sub) == 2 * 2 * 4 and set(sub["group"]) == {"subject"}
    # the subjects' n-weighted accuracy is the run's
    for (m, seed), g in sub.groupby(["method", "seed"]):
        run = runs[(runs["method"] == m) & (runs["seed"] == seed)].iloc[0]
        assert (g["n"] * g["accuracy"]).sum() / g["n"].sum() == pytest.approx(run["accuracy"])
    s = summarise(runs)
    assert s.set_index("method").loc["kd", "chance_level_mean"] == 68.75


def test_table_over_subjects_reports_the_spread_over_subjects(tmp_path):
    _grid(tmp_path)
    spec = {"tables": [{"name": "by_subject", "track": "t", "metric": "accuracy", "over": "subjects",
                        "rows": {"baseline": None, "kd": None}},
                       {"name": "by_seed", "track": "t", "metric": "accuracy", "rows": {"baseline": None, "kd": None}}],
            "datasets": {}, "protocol": {}}
    write_tables(tmp_path / "runs.csv", spec, tmp_path / "tables", subjects_csv=tmp_path / "subjects.csv")
    by_subject = pd.read_csv(tmp_path / "tables" / "by_subject.csv").set_index("method")
    by_seed = pd.read_csv(tmp_path / "tables" / "by_seed.csv").set_index("method")
    # kd per subject (mean over seeds): 90.5, 90.5, 50.5, 40.5 -> mean 68.0, n = 4 subjects
    assert by_subject.loc["kd", "mean"] == pytest.approx(68.0)
    assert by_subject.loc["kd", "std"] == pytest.approx(np.std([90.5, 90.5, 50.5, 40.5], ddof=1))
    assert by_subject.loc["kd", "n"] == 4 and by_seed.loc["kd", "n"] == 2
    assert by_subject.loc["kd", "chance"] == 68.75
    assert "over subjects" in (tmp_path / "tables" / "by_subject.md").read_text()


def test_gain_plot_shows_a_gain_carried_by_two_subjects(tmp_path):
    _grid(tmp_path)
    g = subject_gains(pd.read_csv(tmp_path / "subjects.csv", dtype={"subject": str}), "baseline", "t")
    assert list(g["method"].unique()) == ["kd"]
    assert g.set_index("subject")["gain"].to_dict() == pytest.approx({"1": 40.0, "2": 40.0, "3": 0.0, "4": -10.0})
    out = gains_figure(tmp_path / "subjects.csv", tmp_path / "g.png", tmp_path / "g.svg", reference="baseline", track="t")
    assert len(out) == 4 and (tmp_path / "g.png").stat().st_size > 0
    assert "2/4" in (tmp_path / "g.svg").read_text(encoding="utf-8")  # subjects improved, on the figure
    assert cli.main(["plots", "gains", "--subjects", str(tmp_path / "subjects.csv"), "--reference", "baseline",
                             "--out-png", str(tmp_path / "h.png")]) == 0


def test_bar_plot_draws_the_chance_level(tmp_path):
    _grid(tmp_path)
    spec = {"tables": [{"name": "t1", "track": "t", "metric": "accuracy", "rows": {"baseline": None, "kd": None}}],
            "datasets": {}, "protocol": {}}
    write_tables(tmp_path / "runs.csv", spec, tmp_path / "tables")
    bars = table_bars(tmp_path / "tables" / "t1.csv", tmp_path / "runs.csv", tmp_path / "b.png", tmp_path / "b.svg", track="t")
    assert bars["chance"].eq(68.75).all()
    svg = (tmp_path / "b.svg").read_text(encoding="utf-8")
    assert "chance level (binomial" in svg


# ---- licence and citation


_STR = {"type": "string", "minLength": 1}
_PERSON = {"type": "object", "additionalProperties": False, "required": ["family-names"],
           "properties": {k: _STR for k in ("family-names", "given-names", "name-particle", "name-suffix", "affiliation",
                                            "email", "alias", "website", "address", "city", "country")}
           | {"orcid": {"type": "string", "pattern": r"^https://orcid\.org/[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{3}[0-9X]$"}}}
_ENTITY = {"type": "object", "additionalProperties": False, "required": ["name"],
           "properties": {k: _STR for k in ("name", "address", "city", "country", "email", "website", "alias")}}
_AUTHORS = {"type": "array", "minItems": 1, "items": {"anyOf": [_PERSON, _ENTITY]}}
_DOI = {"type": "string", "pattern": r"^10\.\d{4,9}(\.\d+)?/[A-Za-z0-9:/_;\-\.\(\)\[\]\\]+$"}
_IDENTIFIERS = {"type": "array", "items": {"type": "object", "required": ["type", "value"], "additionalProperties": False,
                                           "properties": {"type": {"enum": ["doi", "url", "swh", "other"]}, "value": _STR,
                                                          "description": _STR}}}
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_URL = {"type": "string", "pattern": r"^(https|http|ftp|sftp)://.+"}
_REFERENCE_TYPES = ["article", "book", "conference-paper", "data", "generic", "software", "report", "thesis",
                    "proceedings", "unpublished"]  # a subset of CFF's reference types
_REFERENCE = {
    "type": "object", "required": ["type", "title", "authors"], "additionalProperties": False,
    "properties": {"type": {"enum": _REFERENCE_TYPES}, "title": _STR, "authors": _AUTHORS, "journal": _STR,
                   "volume": {"type": "integer"}, "issue": {"type": ["string", "integer"]},
                   "start": {"type": ["string", "integer"]}, "end": {"type": ["string", "integer"]},
                   "year": {"type": "integer"}, "doi": _DOI, "url": _URL, "identifiers": _IDENTIFIERS,
                   "conference": {"type": "object"}, "publisher": {"type": "object"}, "notes": _STR}}
# The essential part of the Citation File Format 1.2.0 schema (citation-file-format/schema.json):
# required keys and their types, persons and entities, references and their own required keys.
CFF_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "additionalProperties": False,
    "required": ["cff-version", "message", "title", "authors"],
    "properties": {
        "cff-version": {"const": "1.2.0"}, "message": _STR, "title": _STR, "authors": _AUTHORS,
        "abstract": _STR, "version": {"type": ["string", "number"]}, "date-released": _DATE, "doi": _DOI,
        "identifiers": _IDENTIFIERS, "keywords": {"type": "array", "items": _STR},
        "license": {"enum": ["BSD-3-Clause", "MIT", "Apache-2.0", "BSD-2-Clause"]},  # SPDX ids (a subset)
        "repository-code": _URL, "url": _URL, "type": {"enum": ["software", "dataset"]},
        "references": {"type": "array", "items": _REFERENCE}, "preferred-citation": _REFERENCE,
        "contact": {"type": "array", "items": {"anyOf": [_PERSON, _ENTITY]}}, "commit": _STR,
    },
}


def check_cff(data: dict) -> None:
    import jsonschema

    jsonschema.validate(data, CFF_SCHEMA)


def test_citation_cff_is_valid_cff_1_2_0_and_names_the_licence():
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    check_cff(data)
    assert "cmkd-bench" in data["title"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert data["license"] == "BSD-3-Clause" and "Redistribution and use in source and binary forms" in licence
    # the seed papers whose methods are reproduced are cited
    titles = " ".join(r["title"] for r in data["references"]).lower()
    for word in ("densely guided", "multimodal knowledge distillation for emotion", "contrastive", "prototype"):
        assert word in titles


def test_cff_check_catches_a_broken_file():
    import jsonschema

    good = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for broken in ({k: v for k, v in good.items() if k != "authors"}, {**good, "cff-version": "1.1.0"},
                   {**good, "authors": [{"affiliation": "x"}]}, {**good, "titel": "typo"},
                   {**good, "references": [{**good["references"][0], "year": "2025"}]}):
        with pytest.raises(jsonschema.ValidationError):
            check_cff(broken)


def test_gain_in_rmse_is_positive_when_the_error_drops():
    rows = [{"dataset": "s", "track": "t", "dimension": "valence_reg", "method": m, "seed": 0, "group": "subject",
             "subject": "1", "accuracy": math.nan, "rmse": r} for m, r in (("baseline", 0.30), ("uaproto", 0.20))]
    g = subject_gains(pd.DataFrame(rows), "baseline", "t")
    assert g["metric"].tolist() == ["rmse"] and g["gain"].tolist() == pytest.approx([0.10])
