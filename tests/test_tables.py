"""Tables: rows in the configured order, published values beside the reproduced ones."""
import math

import pandas as pd

from cmkd.analysis.tables import build_table


def _summary(methods):
    return pd.DataFrame([{"dataset": "synthetic", "track": "t", "dimension": "arousal", "method": m,
                          "accuracy_mean": 60.0 + i, "accuracy_std": 1.0, "n": 3, "n_failed": 0, "n_stale": 0}
                         for i, m in enumerate(methods)])


def test_rows_follow_the_configured_order_not_the_alphabet():
    summary = _summary(["ambokd", "baseline", "cdgkd", "kd"])
    table = {"track": "t", "metric": "accuracy", "published": "p",
             "rows": {"baseline": None, "kd": "kd", "ambokd": "ambokd", "cdgkd": "cdgkd"}}
    published = {"p": {"deap": {"kd": {"arousal": 62.11}}}}
    df = build_table(summary, table, published, {"synthetic": {"synthetic": True, "published_as": "deap"}})
    assert list(df["method"]) == ["baseline", "kd", "ambokd", "cdgkd"]
    kd = df[df["method"] == "kd"].iloc[0]
    assert kd["mean"] == 63.0 and kd["published"] == 62.11 and math.isclose(kd["diff"], 0.89)
    assert kd["reproduced"].startswith("63.00")
    # without rows, every method of the track, by name
    del table["rows"]
    df = build_table(summary, table, published, {"synthetic": {"synthetic": True, "published_as": "deap"}})
    assert list(df["method"]) == ["ambokd", "baseline", "cdgkd", "kd"]


def test_optional_rows_only_where_the_grid_ran_them():
    """tables.<name>.optional_rows (the paper grid's additions, e.g. the CMCRD comparison's NST row):
    left out of a grid that ran none of their runs; a missing ordinary row still shows (empty)."""
    table = {"track": "t", "metric": "accuracy", "rows": {"baseline": None, "kd": None, "nst_mcc": None},
             "optional_rows": ["nst_mcc"]}
    df = build_table(_summary(["baseline"]), table, {}, {})
    assert list(df["method"]) == ["baseline", "kd"] and math.isnan(df["mean"].iloc[1])
    df = build_table(_summary(["baseline", "kd", "nst_mcc"]), table, {}, {})
    assert list(df["method"]) == ["baseline", "kd", "nst_mcc"]


def test_optional_rows_pass_the_strict_check_and_must_be_rows():
    import pytest

    from cmkd.validation import check_semantics
    from cmkd.errors import ConfigError
    from conftest import tiny_config

    cfg = tiny_config()
    track = cfg["experiments"][0]["track"]
    cfg["methods"]["never_run"] = dict(cfg["methods"][cfg["experiments"][0]["methods"][0]])
    cfg["tables"] = [{"name": "x", "track": track, "rows": {"never_run": None}}]
    with pytest.raises(ConfigError, match="never_run"):
        check_semantics(cfg, strict_tables=True)
    cfg["tables"][0]["optional_rows"] = ["never_run"]
    check_semantics(cfg, strict_tables=True)
    cfg["tables"][0]["optional_rows"] = ["other"]
    with pytest.raises(ConfigError, match=r"tables\.x\.optional_rows"):
        check_semantics(cfg, strict_tables=True)


def test_published_number_of_unknown_scale_is_shown_not_compared():
    """The published valence RMSE 0.043 (uncertainty-aware prototype KD) is on an unknown scale:
    the table shows it, gives no difference and no verdict; a known-scale cell is compared."""
    import yaml
    from pathlib import Path

    from cmkd.analysis.table_formats import to_markdown
    from cmkd.analysis.tables import published_scale

    published = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "published_tables.yaml").read_text())
    cell = ("uncertainty_prototype_kd", "mahnob_hci", ".", "valence_regression", "rmse")
    assert published_scale(published, *cell) == "unknown"
    assert published_scale(published, "uncertainty_prototype_kd", "mahnob_hci", ".", "arousal", "accuracy") is None
    summary = pd.DataFrame([{"dataset": "mahnob", "track": "face-to-eeg", "dimension": d, "method": "uaproto",
                             "rmse_mean": 0.2, "rmse_std": 0.01, "accuracy_mean": 58.0, "accuracy_std": 1.0,
                             "n": 3, "n_failed": 0, "n_stale": 0} for d in ("valence_reg", "arousal")])
    datasets = {"mahnob": {"published_as": "mahnob_hci"}}
    rmse = build_table(summary, {"track": "face-to-eeg", "metric": "rmse", "published": "uncertainty_prototype_kd",
                                 "dimension_keys": {"valence_reg": "valence_regression"}, "rows": {"uaproto": "."},
                                 "dimensions": ["valence_reg"]}, published, datasets)
    r = rmse.iloc[0]
    assert r["published"] == 0.043 and r["published_scale"] == "unknown"
    assert math.isnan(r["diff"])
    assert r["comparison"] == "not compared: published scale unknown"
    md = to_markdown(rmse, "t", "n")
    assert "0.043 (scale unknown)" in md and "agree" not in md.lower()
    acc = build_table(summary, {"track": "face-to-eeg", "metric": "accuracy", "published": "uncertainty_prototype_kd",
                                "rows": {"uaproto": "."}, "dimensions": ["arousal"]}, published, datasets)
    a = acc.iloc[0]
    assert a["published"] == 57.1 and a["comparison"] == "compared" and math.isclose(a["diff"], 0.9)


def test_uaproto_f1_table_shows_the_published_f1():
    """Table uaproto_f1 of config.yaml: seed 000's arousal F1 (60.0) beside the reproduced F1 on
    MAHNOB-HCI (compared), shown as a reference on synthetic data; only the full method's row
    carries it, and the accuracy table keeps its 57.1."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    published = yaml.safe_load((root / "config" / "published_tables.yaml").read_text())
    table = next(t for t in cfg["tables"] if t["name"] == "uaproto_f1")
    assert table["metric"] == "f1" and table["caption"].strip()
    assert list(table["rows"]) == list(next(t for t in cfg["tables"] if t["name"] == "uaproto")["rows"])
    summary = pd.DataFrame([{"dataset": ds, "track": "face-to-eeg", "dimension": "arousal", "method": m,
                             "f1_mean": 55.0 + i, "f1_std": 2.0, "accuracy_mean": 50.0, "accuracy_std": 1.0,
                             "n": 10, "n_failed": 0, "n_stale": 0}
                            for ds in ("mahnob_hci", "synthetic") for i, m in enumerate(table["rows"])])
    datasets = {"mahnob_hci": {"published_as": "mahnob_hci"}, "synthetic": {"synthetic": True, "published_as": "mahnob_hci"}}
    df = build_table(summary, table, published, datasets)
    full = df[df["method"] == "uaproto"].set_index("dataset")
    assert full.loc["mahnob_hci", "published"] == 60.0 and full.loc["mahnob_hci", "comparison"] == "compared"
    assert math.isclose(full.loc["mahnob_hci", "diff"], 58.0 - 60.0)
    assert full.loc["synthetic", "published"] == 60.0 and full.loc["synthetic", "comparison"] == "reference only (synthetic data)"
    others = df[df["method"] != "uaproto"]
    assert others["published"].isna().all() and set(df["metric"]) == {"f1"}


def test_published_tables_mark_the_projects_readings():
    """Every attribution of config/published_tables.yaml that the seed text does not make (data sets
    and architectures seed 003 does not name, the PVT version) is listed in project_readings with
    the seed's words, the reading and where it comes from, and marked where it appears."""
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "config" / "published_tables.yaml"
    text = path.read_text()
    pub = yaml.safe_load(text)
    readings = pub["project_readings"]
    assert {"cdgkd.encoders.visual", "cmcrd.average_gains.datasets", "cmcrd.architectures"} <= set(readings)
    for key, r in readings.items():
        assert set(r) == {"seed_says", "reading", "from"} and all(str(v).strip() for v in r.values()), key
        assert key.split(".")[0] in pub, key
    assert pub["cdgkd"]["encoders"]["visual"] == "PVT (pvt_v2)"
    assert pub["cmcrd"]["average_gains"]["datasets"] == ["seed", "seed_iv", "seed_v"]
    for line in text.splitlines():
        if line.strip().startswith(("encoders:", "datasets:")):
            assert "project reading" in line, line


def test_leakage_captions_describe_the_splits_that_ran():
    """describe_splits: the leakage captions are generated from each row's merged split settings, so
    the default (trial-level 2-fold vs segment-level 5-fold: every segment tested under both) and
    the paper grid (single 8:1:1 splits: test parts overlap on about 1 % of the segments) read
    differently, and the shares are computed, not typed."""
    from pathlib import Path

    import yaml

    from cmkd.analysis.table_notes import describe_split, split_shares, table_note
    from cmkd.config import cell_split, deep_merge

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    paper = deep_merge(cfg, yaml.safe_load((root / "config" / "paper.yaml").read_text()))
    table = next(t for t in cfg["tables"] if t["name"] == "leakage")
    assert table["describe_splits"]
    df = pd.DataFrame([{"dataset": "d", "track": table["track"], "method": m, "label": table["labels"][m],
                        "reference": "teacher", "synthetic": False, "published_scale": ""} for m in table["rows"]])

    def note(c, ds):
        splits = {f"d/{table['track']}/{m}": cell_split(c, ds, table["track"], m) for m in table["rows"]}
        return table_note(df, table, {"split": c["split"], "seeds": c["seeds"], "splits": splits})

    default = note(cfg, "synthetic")
    assert "trial-level 2-fold cross-validation (40 % of the segments train, 10 % validate, 50 % test per seed)" in default
    assert "segment-level 5-fold cross-validation (64 % of the segments train, 16 % validate, 20 % test" in default
    assert "Both splits test every segment once per seed" in default and "40 % vs 64 %" in default
    grid = note(paper, "deap")
    assert "one trial-level 8:1:1 split per seed (80 % of the segments train" in grid
    assert "one segment-level 8:1:1 split per seed" in grid
    assert "expected overlap about 1.0 % of the segments" in grid and "Both splits test every segment" not in grid
    assert split_shares({"kind": "loso"}) is None and "leave-one-subject-out" in describe_split({"kind": "loso"})


def test_degenerate_runs_show_as_did_not_learn_apart_from_failed_runs():
    """A run with constant test predictions (status degenerate) learned nothing; the code did not
    fail. The table says so apart from failed runs, and its note says what it means."""
    from cmkd.analysis.table_notes import table_note
    from cmkd.analysis.tables import summarise

    runs = pd.DataFrame([{"dataset": "synthetic", "track": "t", "dimension": "arousal", "method": m, "seed": s,
                          "status": st, "accuracy": 60.0 + s if st == "ok" else math.nan, "stale": False}
                         for m, sts in (("kd", ("ok", "ok", "degenerate")), ("baseline", ("ok", "failed", "degenerate")),
                                        ("cdgkd", ("ok", "ok", "ok")))
                         for s, st in enumerate(sts)])
    summary = summarise(runs)
    table = {"track": "t", "metric": "accuracy", "rows": {"baseline": None, "kd": None, "cdgkd": None}}
    df = build_table(summary, table, {}, {}).set_index("method")
    assert df.loc["kd", "reproduced"].endswith("(1 did not learn)") and "failed" not in df.loc["kd", "reproduced"]
    assert df.loc["kd", "mean"] == 60.5 and df.loc["kd", "n"] == 2  # not averaged
    assert df.loc["baseline", "reproduced"].endswith("(1 failed) (1 did not learn)")
    assert "(" not in df.loc["cdgkd", "reproduced"]
    note = table_note(df.reset_index().assign(synthetic=False), table, {})
    assert "'(N did not learn)'" in note and "constant value on the whole test part" in note
    note = table_note(df.reset_index().assign(synthetic=False, n_degenerate=0), table, {})
    assert "did not learn" not in note
