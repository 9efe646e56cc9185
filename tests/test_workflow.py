"""The workflow end to end (tiny config) and its config validation."""
import json

import pandas as pd
import pytest

from conftest import tiny_config


def test_tiny_end_to_end(tmp_path, snakemake_runner):
    cfg = tiny_config()
    cfg["trivial_methods"] = ["majority", "stratified"]
    cfg["tables"][0]["rows"] = {"kd": "kd", "baseline": None}  # not alphabetical: the table keeps this order
    r = snakemake_runner(tmp_path, "--cores", "2", config=cfg)
    assert r.returncode == 0, r.stderr[-4000:]
    # the trivial baselines first (trivial_methods), then the configured order
    assert list(pd.read_csv(tmp_path / "results/summary/tables/students.csv")["method"]) == ["majority", "stratified", "kd", "baseline"]
    runs = pd.read_csv(tmp_path / "results/summary/runs.csv")
    assert list(runs.columns[:8]) == ["dataset", "track", "dimension", "method", "seed", "accuracy", "f1", "rmse"]
    assert len(runs) == 5 * 2  # majority, stratified, teacher, baseline, kd x 2 seeds
    assert set(runs["method"]) == {"majority", "stratified", "teacher", "baseline", "kd"}
    # two epochs on 18 trials: a network may predict one class for every test trial, a degenerate run
    # (status and reason, no number); the trivial baselines are constant by design and ok
    assert runs["status"].isin(["ok", "degenerate"]).all() and runs["chance_level"].notna().all()
    ok, bad = runs[runs["status"] == "ok"], runs[runs["status"] == "degenerate"]
    assert set(ok["method"]) >= {"majority", "stratified"}
    assert ok[["balanced_accuracy", "roc_auc"]].notna().all().all() and ok["accuracy"].between(0, 100).all()
    assert bad["accuracy"].isna().all() and bad["reason"].str.contains("constant test predictions|single class").all()
    m = json.loads((tmp_path / "results/synthetic/face_eeg-to-face/arousal/kd/seed1/metrics.json").read_text())
    for key in ("config_hash", "code_version", "code_hash", "data_hash", "split_hash", "seed", "device", "versions"):
        assert key in m["provenance"], key
    assert m["provenance"]["seed"] == 1
    hist = pd.read_csv(tmp_path / "results/synthetic/face_eeg-to-face/arousal/kd/seed1/history.csv")
    assert {"epoch", "train_ce", "train_kd", "val_accuracy"} <= set(hist.columns)
    # the KD student's teacher is the teacher of the same seed (same split)
    t = json.loads((tmp_path / "results/synthetic/face_eeg-to-face/arousal/teacher/seed1/metrics.json").read_text())
    assert t["provenance"]["split_hash"] == m["provenance"]["split_hash"]
    students = (tmp_path / "results/summary/tables/students.md").read_text()
    assert "62.11" in students  # published KD arousal (DEAP) shown beside the synthetic result
    assert "SYNTHETIC" in students
    for name in ("students", "leakage", "all_methods"):  # every table: trivial rows and a chance level
        t = pd.read_csv(tmp_path / f"results/summary/tables/{name}.csv")
        assert list(t["method"][:2]) == ["majority", "stratified"] and t["chance"].notna().all(), name
        assert "chance level (binomial" in (tmp_path / f"results/summary/figures/tables/{name}.svg").read_text()
    subjects = pd.read_csv(tmp_path / "results/summary/subjects.csv")
    assert set(subjects["method"]) == set(ok["method"]) and (tmp_path / "results/summary/figures/gains/face_eeg-to-face.png").exists()
    # the report builds
    r = snakemake_runner(tmp_path, "--report", str(tmp_path / "report.html"), config=cfg)
    assert r.returncode == 0, r.stderr[-4000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert len(html) > 10000
    # the claims table (a demonstration on synthetic data) is part of the run and of the report
    claims = pd.read_csv(tmp_path / "results/summary/claims.csv")
    assert {"claim", "verdict", "evidence"} <= set(claims.columns) and "claims.csv" in html


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["experiments"][0]["methods"].append("nosuch"), "experiments[0].methods: unknown method 'nosuch'"),
        (lambda c: c["training"].update(max_epochs=-1), "max_epochs"),
        (lambda c: c["training"].update(select_on="f1"), "select_on"),
        (lambda c: c.pop("seeds"), "seeds"),
        (lambda c: c["methods"]["kd"].update({"class": "nosuchclass"}), "methods.kd.class: unknown method class"),
        (lambda c: c["methods"]["kd"].pop("requires"), "methods.kd.requires: method class 'kd' needs a 'teacher'"),
        (lambda c: c["datasets"]["synthetic"].update(modalities=["eeg"]), "needs modality 'face'"),
        (lambda c: c["methods"]["teacher"].update(requires={"teacher": "kd"}), "methods.teacher.requires"),
        (lambda c: c["datasets"].update(m={"loader": "mahnob_hci", "modalities": ["eeg", "eog"]}),
         "datasets.m.modalities: no modality 'eog': MAHNOB-HCI recorded no EOG"),
    ],
    ids=["unknown-method", "negative-epochs", "unknown-select-on", "missing-key", "unknown-class", "missing-teacher", "missing-modality", "bad-requires",
         "mahnob-eog"],
)
def test_config_errors_stop_before_any_job(tmp_path, snakemake_runner, mutate, expected):
    cfg = tiny_config()
    mutate(cfg)
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=120)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert expected in out, out[-3000:]
    assert not (tmp_path / "results").exists()


def test_cell_command_reruns_one_cell(tmp_path, snakemake_runner):
    """`python -m cmkd cell` re-runs every seed of one cell and compares with the previous values."""
    import subprocess
    import sys

    import yaml

    cfg = tiny_config()
    cfg["experiments"][0]["methods"] = ["baseline"]
    cfg["tables"] = [{"name": "unimodal", "track": "face_eeg-to-face", "published": "cdgkd.table1_unimodal_vs_fusion",
                      "rows": {"baseline": "visual"}}]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "cmkd", "cell", "synthetic", "face_eeg-to-face", "arousal", "baseline"]
    r1 = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert "previous       : none" in r1.stdout
    r2 = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "agree within the seeds' spread" in r2.stdout  # deterministic on CPU: identical values
    assert "61.47" in r2.stdout  # published visual-only arousal (CDGKD Table 1, DEAP) as a reference
    bad = subprocess.run(cmd[:-1] + ["nosuch"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not in the configured grid" in bad.stderr


def test_feature_maps_wait_only_for_their_cell(tmp_path, snakemake_runner):
    """One feature-map job per cell, whose inputs are that cell's runs only (not runs.csv, which
    waits for every training job): a cell's maps are drawn while other cells still train."""
    cfg = tiny_config()
    cfg["experiments"][0]["dimensions"] = ["arousal", "valence"]
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    blocks = out.split("rule feature_maps:")[1:]
    assert len(blocks) == 2, out[-3000:]
    dims = set()
    for b in blocks:
        inputs = b.split("input:", 1)[1].split("\n", 1)[0].split(", ")
        dim = b.split("dimension=", 1)[1].split("\n", 1)[0].split(",")[0].strip()
        dims.add(dim)
        assert not any("runs.csv" in p for p in inputs), inputs
        assert inputs and all(f"/{dim}/" in p for p in inputs), inputs
        assert {p.rsplit("/", 1)[1] for p in inputs} == {"metrics.json", "features.npz"}
    assert dims == {"arousal", "valence"}


def test_workflow_passes_snakemake_lint():
    """CI's lint step, here too, so a rule that breaks it fails the test suite and not only CI
    (planting a module-level function in plots.smk, or a hard-coded path prefix param, fails it)."""
    import subprocess

    from conftest import ROOT, SNAKEMAKE

    r = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out[-4000:]


def test_a_split_whose_validation_misses_a_class_stops_planning(tmp_path, snakemake_runner):
    """With the data prepared, Snakemake's planning computes every run's split and stops with one
    line naming the data set and the class when a validation part misses a training class."""
    from cmkd.data.synthetic import write_synthetic

    cfg = tiny_config()
    cfg["split"].update(stratify=False, ratios=[0.9, 0.05, 0.05])  # one validation trial: one class
    write_synthetic(tmp_path / "results/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "data set 'synthetic', all subjects (pooled split): class" in ln]
    assert len(lines) == 1 and "invalid split" in lines[0] and "found at plan time" in lines[0], (r.stdout + r.stderr)[-3000:]
    assert not (tmp_path / "results/synthetic").exists()
