"""The paper grid holds CMCRD on SEED, SEED-IV and SEED-V in both directions, with the official splits."""
from __future__ import annotations

import os

import yaml

from cmkd.config import iter_cells, run_spec
from cmkd.validation import check_semantics
from cmkd.config import deep_merge
from tests.conftest import ROOT


def test_paper_grid_holds_cmcrd_on_the_seed_family(tmp_path):
    cfg = {}
    for f in (ROOT / "config.yaml", ROOT / "config" / "paper.yaml"):
        cfg = deep_merge(cfg, yaml.safe_load(f.read_text(encoding="utf-8")))
    for name in cfg["datasets"]:
        if cfg["datasets"][name]["loader"] != "synthetic":
            os.makedirs(tmp_path / name, exist_ok=True)
            (tmp_path / name / "raw.txt").write_text("x")  # an empty raw root is a config error of its own
            cfg["datasets"][name]["root"] = str(tmp_path / name)
    check_semantics(cfg, strict_tables=True)  # every table cell maps to runs
    cells = set(iter_cells(cfg))
    for ds, dim in (("seed", "emotion3"), ("seed_iv", "emotion"), ("seed_v", "emotion5")):
        for track in ("eye-to-eeg_de", "eeg_de-to-eye"):
            for m in ("cmcrd", "baseline", "kd_mcc", "crd_mcc"):  # every KD row from the CMCRD teacher
                assert (ds, track, dim, m) in cells, (ds, track, dim, m)
        spec = run_spec(cfg, ds, "eye-to-eeg_de", dim, "cmcrd", 0)
        assert spec["split"]["kind"] == "chronological"
        assert spec["split"]["train_trials"] == {"seed": 9, "seed_iv": 16, "seed_v": 10}[ds]
    for ds, dim in (("seed_raw", "emotion3"), ("seed_iv_raw", "emotion")):
        for m in ("cmcrd_eegnet", "cmcrd_shallow", "cmcrd_deep"):
            assert (ds, "eye-to-eeg", dim, m) in cells
        for m in ("cmcrd_from_eegnet", "cmcrd_from_shallow", "cmcrd_from_deep"):
            assert (ds, "eeg-to-eye", dim, m) in cells
    assert run_spec(cfg, "seed_iv_cross_session", "eye-to-eeg_de", "emotion", "cmcrd", 0)["split"]["kind"] == "cross_session"
