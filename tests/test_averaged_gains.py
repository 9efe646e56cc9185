"""The averaged-gain rows of a gains table (cmkd.analysis.averaged_gains; config.yaml tables.cmcrd_average_gains)
against values computed by hand on a small runs.csv."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from cmkd.analysis.averaged_gains import build_gains_table, gain_methods
from cmkd.analysis.tables import write_tables
from tests.conftest import ROOT

TABLE = {"name": "gains", "track": "eye-to-eeg", "metric": "accuracy", "published": "cmcrd.average_gains",
         "gains": {"cmcrd_minus_eeg_only": {"method": "cmcrd", "versus": ["baseline"]},
                   "cmcrd_minus_kd_baselines": {"method": "cmcrd", "versus": ["kd_mcc", "crd_mcc", "nst_mcc"]}},
         "variants": {"TSception": "", "EEGNet": "_eegnet"}, "caption": "Gains."}
PUBLISHED = {"cmcrd": {"average_gains": {"cmcrd_minus_eeg_only": 6.2, "cmcrd_minus_kd_baselines": 2.0}}}


def _runs() -> pd.DataFrame:
    acc = {  # (dataset, method) -> accuracy of seeds 0 and 1
        ("a", "cmcrd"): (60, 62), ("a", "baseline"): (50, 54), ("a", "kd_mcc"): (55, 55), ("a", "crd_mcc"): (57, 59),
        ("a", "cmcrd_eegnet"): (40, 44), ("a", "baseline_eegnet"): (38, 40), ("a", "kd_mcc_eegnet"): (41, 41),
        ("b", "cmcrd"): (70, 72), ("b", "baseline"): (61, 65),
    }
    rows = [{"dataset": ds, "track": "eye-to-eeg", "dimension": "emotion", "method": m, "seed": s, "accuracy": v,
             "status": "ok"} for (ds, m), vals in acc.items() for s, v in enumerate(vals)]
    rows += [  # not averaged: a failed run, a run that did not learn, another track
        {"dataset": "b", "track": "eye-to-eeg", "dimension": "emotion", "method": "baseline", "seed": 2,
         "accuracy": math.nan, "status": "failed"},
        {"dataset": "b", "track": "eye-to-eeg", "dimension": "emotion", "method": "cmcrd_eegnet", "seed": 0,
         "accuracy": 33.0, "status": "degenerate"},
        {"dataset": "b", "track": "eye-to-eeg", "dimension": "emotion", "method": "baseline_eegnet", "seed": 0,
         "accuracy": 33.0, "status": "ok"},
        {"dataset": "a", "track": "eye-to-eeg_de", "dimension": "emotion", "method": "cmcrd", "seed": 0,
         "accuracy": 99.0, "status": "ok"},
        {"dataset": "a", "track": "eye-to-eeg_de", "dimension": "emotion", "method": "baseline", "seed": 0,
         "accuracy": 1.0, "status": "ok"},
    ]
    return pd.DataFrame(rows)


def test_averaged_gains_by_hand():
    df = build_gains_table(_runs(), TABLE, PUBLISHED, {}).set_index("method")
    # EEG only: units a/TSception (60-50, 62-54) -> 9, a/EEGNet (40-38, 44-40) -> 3, b/TSception (70-61, 72-65) -> 8
    eeg = df.loc["cmcrd_minus_eeg_only"]
    assert eeg["mean"] == pytest.approx(20 / 3) and eeg["n"] == 3
    assert eeg["std"] == pytest.approx(math.sqrt(((9 - 20 / 3) ** 2 + (3 - 20 / 3) ** 2 + (8 - 20 / 3) ** 2) / 2))
    assert eeg["published"] == 6.2 and eeg["diff"] == pytest.approx(20 / 3 - 6.2)
    assert eeg["architectures"] == "TSception, EEGNet" and eeg["dataset"] == "a+b"
    assert df.loc["cmcrd_minus_eeg_only@TSception", "mean"] == pytest.approx(8.5)
    assert df.loc["cmcrd_minus_eeg_only@EEGNet", "mean"] == pytest.approx(3.0)
    assert math.isnan(df.loc["cmcrd_minus_eeg_only@EEGNet", "published"])
    # KD baselines (those that ran): a/TSception 60 - (55+57)/2 = 4, 62 - (55+59)/2 = 5 -> 4.5; a/EEGNet 40-41, 44-41 -> 1
    kd = df.loc["cmcrd_minus_kd_baselines"]
    assert kd["mean"] == pytest.approx(2.75) and kd["n"] == 2 and kd["diff"] == pytest.approx(0.75)
    assert "crd_mcc" in kd["basis"] and "nst_mcc" not in kd["basis"]      # NST did not run: left out
    assert "b/" not in kd["basis"]                                        # b ran no KD baseline
    assert gain_methods(TABLE)[:4] == ["cmcrd", "baseline", "cmcrd_eegnet", "baseline_eegnet"]


def test_the_gains_table_is_written(tmp_path):
    runs = tmp_path / "runs.csv"
    _runs().to_csv(runs, index=False)
    write_tables(runs, {"tables": [TABLE], "published": PUBLISHED, "datasets": {}}, tmp_path / "t")
    csv = pd.read_csv(tmp_path / "t" / "gains.csv")
    assert csv.loc[csv["method"] == "cmcrd_minus_kd_baselines", "mean"].iloc[0] == pytest.approx(2.75)
    md = (tmp_path / "t" / "gains.md").read_text()
    assert "6.67 ± 3.21" in md and "+0.47" in md and "Gains." in md
    from cmkd.analysis.figures.published import published_vs_reproduced

    # the gains are differences, not accuracies: not points of the published-vs-reproduced scatter
    pts = published_vs_reproduced([tmp_path / "t" / "gains.csv"], tmp_path / "p.png", None)
    assert pts.empty


def test_the_configured_gains_table_names_declared_methods():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))
    table = next(t for t in cfg["tables"] if t["name"] == "cmcrd_average_gains")
    published = yaml.safe_load((ROOT / "config" / "published_tables.yaml").read_text(encoding="utf-8"))
    assert set(table["gains"]) == {k for k in published["cmcrd"]["average_gains"] if k.startswith("cmcrd_minus")}
    every = set(cfg["methods"]) | set(paper["methods"])
    assert set(gain_methods(table)) <= every                      # the paper grid declares every variant
    assert {g["method"] for g in table["gains"].values()} == {"cmcrd"}
    claims = yaml.safe_load((ROOT / "config" / "claims.yaml").read_text(encoding="utf-8"))
    kd_claim = next(c for c in claims["claims"] if c["id"] == "cmcrd_vs_kd_baselines")
    assert set(kd_claim["versus"]) <= set(table["gains"]["cmcrd_minus_kd_baselines"]["versus"])


@pytest.mark.parametrize("grid, archs, kd_archs, datasets", [
    ("default", "TSception, EEGNet", "TSception", "synthetic"),
    ("paper", "TSception, EEGNet, ShallowConvNet, DeepConvNet", "TSception, EEGNet, ShallowConvNet, DeepConvNet",
     "seed_iv_raw+seed_raw")])
def test_the_configured_gains_table_on_each_grid(grid, archs, kd_archs, datasets):
    """On runs of every cell of a grid's eye -> EEG track, the gains table averages what that grid runs:
    the default's TSception and EEGNet (KD baselines with TSception only, no NST), the paper grid's four
    architectures with all seven KD baselines on SEED and SEED-IV raw EEG."""
    import numpy as np

    from cmkd.config import iter_cells, select_datasets
    from cmkd.validation import load_config

    cfg = select_datasets(load_config([str(ROOT / "config" / "paper.yaml")] if grid == "paper" else [],
                                      base=str(ROOT / "config.yaml"))[0])
    table = next(t for t in cfg["tables"] if t["name"] == "cmcrd_average_gains")
    rng = np.random.default_rng(0)
    runs = pd.DataFrame([{"dataset": ds, "track": tr, "dimension": dim, "method": m, "seed": s,
                          "accuracy": float(rng.uniform(30, 70)), "status": "ok"}
                         for ds, tr, dim, m in iter_cells(cfg) if tr == "eye-to-eeg" for s in cfg["seeds"][:3]])
    df = build_gains_table(runs, table, PUBLISHED, cfg["datasets"]).set_index("method")
    assert df.loc["cmcrd_minus_eeg_only", "architectures"] == archs
    assert df.loc["cmcrd_minus_kd_baselines", "architectures"] == kd_archs
    assert df.loc["cmcrd_minus_eeg_only", "dataset"] == datasets
    cells = len({(c[0], c[2]) for c in iter_cells(cfg) if c[1] == "eye-to-eeg"})   # data set x dimension
    assert df.loc["cmcrd_minus_eeg_only", "n"] == len(archs.split(", ")) * cells
    basis = df.loc["cmcrd_minus_kd_baselines", "basis"]
    assert ("nst_mcc" in basis) == (grid == "paper") and ("pkt_mcc_deep" in basis) == (grid == "paper")
    assert df.loc["cmcrd_minus_eeg_only", "published"] == 6.2
