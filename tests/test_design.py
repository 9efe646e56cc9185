"""python -m cmkd design: one table's rows under a design, and what its table says they resolve."""
from __future__ import annotations

import copy
import math
import re

import pytest
import yaml

from cmkd.config import iter_cells
from cmkd.design import design_config, report, summarise
from cmkd.errors import ConfigError, DataError
from cmkd.validation import load_config, validate_config
from conftest import ROOT


def _config() -> dict:
    cfg, lines = load_config([])
    validate_config(cfg, lines)
    return cfg


def _requires(cfg: dict, method: str) -> set[str]:
    out = set()
    for target in (cfg["methods"][method].get("requires") or {}).values():
        out |= {target} | _requires(cfg, target)
    return out


def test_the_design_runs_the_table_rows_only():
    cfg = _config()
    d = design_config(cfg, "students", "/tmp/x")
    rows = set(next(t for t in cfg["tables"] if t["name"] == "students")["rows"]) | set(cfg["trivial_methods"])
    cells = set(iter_cells(d))  # the rows, and the teachers and assistants they require
    assert {c[3] for c in cells} == rows | {x for m in rows for x in _requires(cfg, m)}
    assert {(c[0], c[1]) for c in cells} == {("synthetic", "face_eeg-to-face")}
    assert {c[2] for c in cells} == {"arousal", "valence"}
    assert d["results"] == "/tmp/x" and cfg["results"] == "results"  # the config itself is not changed
    assert "baseline_loso" in {c[3] for c in iter_cells(cfg)}  # the protocols experiment of the same track is left out


def test_the_design_names_an_unknown_table_and_a_table_without_a_track():
    cfg = _config()
    with pytest.raises(ConfigError, match=r"no table 'studnets'.*students"):
        design_config(cfg, "studnets", "x")
    with pytest.raises(ConfigError, match=r"tables\.cmcrd_average_gains: a gains table"):
        design_config(cfg, "cmcrd_average_gains", "x")
    c = copy.deepcopy(cfg)
    c["experiments"] = [e for e in c["experiments"] if e["track"] != "face_eeg-to-face"]
    with pytest.raises(ConfigError, match=r"no experiment of the config runs a row of table 'students'"):
        design_config(c, "students", "x")


def test_the_dry_run_of_a_design_trains_the_rows_and_what_they_require(tmp_path, snakemake_runner):
    cfg = _config()
    d = design_config(cfg, "students", "results")
    r = snakemake_runner(tmp_path, "-n", "results/summary/tables/students.csv", config=d, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    jobs = re.findall(r"rule (train(?:_trivial)?):\n(?:.*\n)*?\s+wildcards: dataset=(\w+), track=([\w-]+), "
                      r"dimension=(\w+), method=(\w+)", out)
    planned = {(j[3], j[4]) for j in jobs}
    rows = set(next(t for t in cfg["tables"] if t["name"] == "students")["rows"]) | set(cfg["trivial_methods"])
    chain = rows | {x for m in rows for x in _requires(cfg, m)}
    assert planned == {(dim, m) for dim in ("arousal", "valence") for m in chain}, sorted(planned)


_OUT = {"table": "students", "configfiles": ["d.yaml"], "seeds": [0, 1, 2], "training_jobs": 36,
        "training_cpu_s": 500.0, "training_job_s": 520.0, "wall_s": 300.0}


def test_summary_reads_the_built_table(tmp_path):
    f = tmp_path / "students.csv"
    f.write_text("dataset,track,dimension,method,metric,mean,mde,runs,runs_for_target\n"
                 "synthetic,face_eeg-to-face,arousal,baseline,accuracy,65.0,16.0,6.0,10.0\n"
                 "synthetic,face_eeg-to-face,arousal,cdgkd,accuracy,68.5,16.0,6.0,10.0\n"
                 "synthetic,face_eeg-to-face,valence,baseline,accuracy,51.0,,6.0,\n")
    s = summarise(f, "students")
    assert [d["dimension"] for d in s] == ["arousal", "valence"]
    assert s[0]["mde"] == 16.0 and s[0]["runs"] == 6.0 and s[0]["runs_for_target"] == 10.0
    assert s[0]["means"] == {"baseline": 65.0, "cdgkd": 68.5} and math.isnan(s[1]["mde"])
    text = report({**_OUT, "dimensions": s})
    assert "arousal: method-level MDE 16 points at 6 runs per method (the target would take 10)" in text
    assert "valence: no method-level MDE" in text
    s[0]["mde"], s[0]["runs_for_target"] = 9.3, 10.0
    s[0]["runs"] = 10.0
    assert "MDE 9.3 points at 10 runs per method (within the target)" in report({**_OUT, "dimensions": s[:1]})
    rmse = {"dimension": "valence_reg", "metric": "rmse", "mde": 0.0407, "runs": math.nan, "runs_for_target": math.nan,
            "means": {"baseline": 0.2634, "uaproto": 0.2711}}
    none = {"dimension": "arousal", "metric": "rmse", "mde": math.nan, "runs": math.nan, "runs_for_target": math.nan,
            "means": {"baseline": math.nan}}
    text = report({**_OUT, "dimensions": [none, rmse]})
    assert "arousal: no rmse of this table's rows" in text
    assert "valence_reg: method-level MDE 0.0407 rmse (no projection to the target); rmse: baseline 0.263, uaproto 0.271" in text
    empty = tmp_path / "empty.csv"
    empty.write_text("dataset,track,dimension,method\n")
    with pytest.raises(DataError, match="nothing ran"):
        summarise(empty, "students")


def test_an_overlay_changes_the_design_not_the_rows(tmp_path):
    overlay = tmp_path / "more_seeds.yaml"
    overlay.write_text(yaml.safe_dump({"seeds": [0, 1, 2, 3, 4], "training": {"max_epochs": 4}}))
    cfg, lines = load_config([str(overlay)])
    validate_config(cfg, lines)
    d = design_config(cfg, "students", "r")
    assert d["seeds"] == [0, 1, 2, 3, 4] and d["training"]["max_epochs"] == 4
    assert set(iter_cells(d)) == set(iter_cells(design_config(_config(), "students", "r")))
    assert (ROOT / "Snakefile").exists()


def test_the_command_goes_to_a_profile_or_local_cores_and_names_a_failure(tmp_path, monkeypatch):
    import subprocess as sp

    import cmkd.design as design

    seen = []
    real_run = sp.run

    def fake_run(cmd, *a, **k):  # the design's Snakemake call fails; any other command runs
        if isinstance(cmd, list) and len(cmd) > 1 and str(cmd[1]).endswith("students.csv"):
            seen.append(cmd)
            return sp.CompletedProcess(cmd, 1)
        return real_run(cmd, *a, **k)

    monkeypatch.setattr(design.subprocess, "run", fake_run)
    with pytest.raises(DataError, match=r"snakemake failed \(exit 1\) while running the design of 'students'"):
        design.run_design("students", [], results=str(tmp_path / "d"), profile="slurm", jobs=8)
    with pytest.raises(DataError):
        design.run_design("students", [], results=str(tmp_path / "d"), cores=3)
    cluster, local = seen
    assert cluster[cluster.index("--profile") + 1] == "slurm" and "--jobs" in cluster and "--scheduler" not in cluster
    assert local[local.index("--cores") + 1] == "3" and "--profile" not in local and "--force" not in local
    assert cluster[1] == str(tmp_path / "d" / "summary" / "tables" / "students.csv")
    overlay = yaml.safe_load((tmp_path / "d" / "design.yaml").read_text())
    assert overlay["results"] == str(tmp_path / "d") and {e["track"] for e in overlay["experiments"]} == {"face_eeg-to-face"}
