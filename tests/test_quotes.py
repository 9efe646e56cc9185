"""Run numbers in README.md and docs/statistics.md are generated from the committed snapshot
(cmkd.analysis.quotes, docs/snapshot/), never typed by hand."""
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cmkd.analysis import quotes
from cmkd.analysis.quotes import FILES, fill, refresh, render_blocks, table_sentence
from cmkd.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", FILES)
def test_docs_are_what_the_snapshot_generates(name):
    """Re-runs the generator on the committed snapshot: a number edited by hand, or a snapshot
    refreshed without re-running `python -m cmkd quote`, fails here."""
    text = (ROOT / name).read_text(encoding="utf-8")
    assert "<!-- generated:default-resolves" in text
    assert fill(text, render_blocks(ROOT / "docs" / "snapshot"), name) == text


def test_readme_statistics_section_types_no_run_number():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    sec = text[text.index("## Statistics and reference points"):]
    sec = sec[:sec.index("\n## ", 3)]
    outside = re.sub(r"<!-- generated:(\S+).*?<!-- /generated:\1 -->", "", sec, flags=re.S)
    assert "generated:default-resolves" in sec
    # levels and design facts (alpha = 0.05, 80 % power, 2-fold) are not run numbers; decimals are
    assert re.findall(r"\d+\.\d+", outside) == ["0.05"], re.findall(r"\d+\.\d+", outside)


def test_a_table_in_words_by_hand():
    tab = pd.DataFrame([
        {"dataset": "synthetic", "dimension": "arousal", "method": "baseline", "reference": "baseline",
         "metric": "accuracy", "sig": None, "effect": None, "mde": 7.04},
        {"dataset": "synthetic", "dimension": "arousal", "method": "cdgkd", "reference": "baseline",
         "metric": "accuracy", "sig": "*", "effect": 9.26, "mde": 7.04},
        {"dataset": "synthetic", "dimension": "arousal", "method": "kd", "reference": "baseline",
         "metric": "accuracy", "sig": "≈", "effect": 1.0, "mde": 7.04},
    ])
    assert table_sentence("students", tab) == (
        "**students** (against baseline): MDE 7.0 points on synthetic / arousal (K = 2); significant: cdgkd +9.3 on arousal")
    tab["mde"] = float("nan")  # the reference is not one of the track's references: no test
    assert table_sentence("students", tab).startswith(
        "**students** (against baseline): no method-level test against baseline on synthetic / arousal;")


def test_refresh_and_fill(tmp_path):
    res = tmp_path / "results" / "summary"
    (res / "tables").mkdir(parents=True)
    pd.DataFrame({"a": [1]}).to_csv(res / "stats.csv", index=False)
    pd.DataFrame([{"dataset": "d", "dimension": "x", "method": "kd", "reference": "baseline", "metric": "accuracy",
                   "sig": "≈", "effect": 0.5, "mde": 12.0}]).to_csv(res / "tables" / "students.csv", index=False)
    pd.DataFrame({"code_version": ["abc", "abc"]}).to_csv(res / "runs.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"split": {"kind": "trial", "ratios": [0.8, 0.1, 0.1]}, "seeds": [0, 1],
                                   "tables": [{"name": "students"}]}))
    refresh(tmp_path / "results", cfg, "a test run", tmp_path / "snap")
    blocks = render_blocks(tmp_path / "snap")
    assert "default-time" not in blocks  # the run left no timing record
    (res / "timing.yaml").write_text("code_version: abc\ncores: 2\nsetup_s: 5\nworkflow_and_report_s: 55\n"
                                     "total_s: 60\ntraining_jobs: 3\n")
    refresh(tmp_path / "results", cfg, "a test run", tmp_path / "snap")
    assert "1 min 0 s on 2 cores, 5 s of it set-up, 3 training jobs" in render_blocks(tmp_path / "snap")["default-time"]
    body = " ".join(blocks["default-resolves"].split())
    assert "(a test run; code abc; one split by trial per seed, 0.8 : 0.1 : 0.1, seeds [0, 1]; 2 training runs)" in body
    assert "MDE 12.0 points on d / x (K = 1); none significant" in body
    doc = "a\n<!-- generated:default-resolves (x) -->\nold\n<!-- /generated:default-resolves -->\nb\n"
    assert fill(doc, blocks) == doc.replace("old\n", blocks["default-resolves"])
    with pytest.raises(ConfigError, match="'other'"):
        fill("<!-- generated:other -->\n<!-- /generated:other -->", blocks, "README.md")


def test_the_default_time_is_the_run_record(tmp_path):
    """README's time of the default comes from the timing record run_default.sh writes beside the
    run's summary, carried into the snapshot by --refresh; no record, no block."""
    rec = tmp_path / "timing.yaml"
    rec.write_text("code_version: 'abc123'\ncores: 2\nsetup_s: 61\nworkflow_and_report_s: 1000\n"
                   "total_s: 1061\ntraining_jobs: 139\n")
    assert quotes.timing_sentence(rec) == ("measured by `scripts/run_default.sh` from a fresh clone of abc123: "
                                           "17 min 41 s on 2 cores, 1 min 1 s of it set-up, 139 training jobs")
    rec.write_text("cores: 2\n")
    with pytest.raises(DataError, match="timing.yaml: not a timing record"):
        quotes.timing_sentence(rec)
