"""The seed papers' claims checked on the runs (cmkd.analysis.claims, config/claims.yaml)."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cmkd.analysis.claims import (CLAIM_COLUMNS, check_claims, load_claims, resolve_published, tost, verdict,
                                  write_claims)
from cmkd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "config" / "published_tables.yaml"
T_95_10 = 1.812461  # one-sided 95 % quantile of t with 10 df (printed t tables: 1.812)


def test_tost_by_hand():
    # effect 0, se 1, df 10, bounds [-1.812461, 3]: p_low = P(T > 1.812461) = 0.05, p_high = P(T < -3) < 0.05
    assert tost(0.0, 1.0, 10, -T_95_10, 3.0) == pytest.approx(0.05, abs=1e-6)
    # symmetric bounds +-1.812461 around an estimate of 0: both one-sided p-values are 0.05
    assert tost(0.0, 1.0, 10, -T_95_10, T_95_10) == pytest.approx(0.05, abs=1e-6)
    # the upper test decides when the estimate sits near the upper bound: (1 - 2.812461) / 1 = -1.812461
    assert tost(1.0, 1.0, 10, -5.0, 1.0 + T_95_10) == pytest.approx(0.05, abs=1e-6)
    assert math.isnan(tost(0.0, 0.0, 10, -1, 1))


@pytest.mark.parametrize("effect, lo, hi, se, pub, want", [
    (4.2, 3.16, 5.24, 0.5, 4.0, "supported"),       # TOST: (4.2-2)/0.5 = 4.4 and (4.2-6)/0.5 = -3.6, both p < 0.001
    (0.0, -1.0, 1.0, 0.5, 4.0, "contradicted"),     # the CI [-1, 1] lies below 4 - 2 = 2
    (9.0, 8.0, 10.0, 0.5, 4.0, "contradicted"),     # ... or above 4 + 2 = 6: the gain is not the published one
    (3.0, -1.2, 7.2, 2.0, 4.0, "inconclusive"),     # overlaps [2, 6] without lying inside it
    (1.5, 0.5, 2.5, 0.5, 4.0, "inconclusive"),      # CI [0.5, 2.5] overlaps [2, 6]: neither
])
def test_verdict_of_a_published_value(effect, lo, hi, se, pub, want):
    v = verdict(effect, lo, hi, se, 20, better=1, published=pub, margin=2.0, mde=3.0)
    assert v["verdict"] == want
    assert v["equivalent"] is (want == "supported")
    if want == "inconclusive":
        assert "MDE is 3" in v["reason"]


@pytest.mark.parametrize("lo, hi, better, want", [
    (0.5, 2.0, 1, "supported"),
    (-2.0, -0.5, 1, "contradicted"),
    (-1.0, 1.0, 1, "inconclusive"),
    (-0.05, -0.01, -1, "supported"),    # RMSE: lower is the claim
    (0.01, 0.05, -1, "contradicted"),
])
def test_verdict_of_a_direction(lo, hi, better, want):
    v = verdict((lo + hi) / 2, lo, hi, (hi - lo) / 4, 10, better=better, mde=2.5)
    assert v["verdict"] == want
    assert math.isnan(v["tost_p"]) and v["equivalent"] is None
    assert v["direction_holds"] is ((lo + hi) / 2 * better > 0)
    if want == "inconclusive":
        assert "includes 0" in v["reason"] and "2.5" in v["reason"]


def test_published_effects_come_from_the_published_tables():
    pub = yaml.safe_load(PUBLISHED.read_text())
    got = resolve_published({"table": "cdgkd.table5_ablation_cdgkd", "method": "variant5_cdgkd_full",
                             "versus": "variant3_no_kd"}, pub, "x")
    assert got == {"deap": {"arousal": pytest.approx(65.97 - 61.47), "valence": pytest.approx(65.74 - 63.02)}}
    got = resolve_published({"table": "cdgkd.table2_student_kd", "method": "cdgkd", "versus": "kd"}, pub, "x")
    assert got["mahnob_hci"]["arousal"] == pytest.approx(63.02 - 58.42)
    assert resolve_published({"table": "cmcrd.average_gains", "value": "cmcrd_minus_kd_baselines"}, pub, "x") == 2.0
    with pytest.raises(ConfigError, match="claims\\[0\\].*no_such_table"):
        resolve_published({"table": "cdgkd.no_such_table", "method": "a", "versus": "b"}, pub, "claims[0]")


def test_every_claim_names_configured_methods_and_tracks():
    claims = load_claims(ROOT / "config" / "claims.yaml", PUBLISHED)["claims"]
    methods, tracks = set(), set()
    for f in ("config.yaml", "config/paper.yaml"):
        cfg = yaml.safe_load((ROOT / f).read_text())
        methods |= set(cfg.get("methods") or {})
        tracks |= set(cfg.get("tracks") or {})
    for c in claims:
        assert c["track"] in tracks, c["id"]
        assert set(c["method"]) | set(c["versus"]) <= methods, c["id"]
        assert c["paper"] and c["source"], c["id"]


def test_a_bad_claims_file_is_one_error(tmp_path):
    f = tmp_path / "claims.yaml"
    f.write_text(yaml.safe_dump({"margin": 2.0, "claims": [{"id": "c1", "paper": "p", "source": "s", "text": "t",
                                                             "track": "x", "method": "a", "versus": "a"}]}))
    with pytest.raises(ConfigError, match="claims.yaml: claims\\[0\\] \\(c1\\): a method on both sides"):
        load_claims(f, PUBLISHED)
    f.write_text(yaml.safe_dump({"claims": [{"id": "c1", "paper": "p", "source": "s", "text": "t", "track": "x",
                                             "method": "a", "versus": "b",
                                             "published": {"table": "cmcrd.average_gains", "value": "cmcrd_minus_eeg_only"}}]}))
    with pytest.raises(ConfigError, match="needs a margin"):
        load_claims(f, PUBLISHED)


def _predictions(correct: dict, seeds=(0, 1, 2), folds=(0, 1), trials=4):
    """One prediction per (seed, fold, trial): ``correct[method](seed, fold, trial) -> 0/1``."""
    rows = []
    for m, fn in correct.items():
        for s in seeds:
            for f in folds:
                for t in range(trials):
                    rows.append({"dataset": "synth", "track": "tr", "dimension": "arousal", "method": m, "seed": s,
                                 "index": f * trials + t, "subject": 0, "trial": f * trials + t, "fold": f,
                                 "correct": float(fn(s, f, t))})
    return pd.DataFrame(rows)


def _runs(methods, seeds=(0, 1, 2)):
    return pd.DataFrame([{"dataset": "synth", "track": "tr", "dimension": "arousal", "method": m, "seed": s,
                          "accuracy": 50.0, "status": "ok"} for m in methods for s in seeds])


def test_an_averaged_claim_is_the_mean_difference_by_hand():
    # a right on every trial; b on trials 0, 1; c on trial 0 only (of 4); seed 2 of c also on trial 3
    pred = _predictions({"a": lambda s, f, t: 1, "b": lambda s, f, t: t < 2,
                         "c": lambda s, f, t: t == 0 or (s == 2 and t == 3)})
    claims = {"claims": [{"id": "avg", "paper": "P", "source": "T1", "text": "a beats the mean of b and c",
                          "track": "tr", "metric": "accuracy", "method": ["a"], "versus": ["b", "c"],
                          "direction": "better", "published": 60.0, "margin": 2.0}]}
    out = check_claims(_runs(["a", "b", "c"]), claims, {"synth": {"published_as": "deap", "synthetic": True}}, pred)
    assert list(out.columns) == list(CLAIM_COLUMNS) and len(out) == 1
    row = out.iloc[0]
    # per seed: a = 100 %, b = 50 %, c = 25 % (seed 2: 50 %); a - (b + c) / 2 = 62.5 (seeds 0, 1), 50 (seed 2)
    assert row["effect"] == pytest.approx((62.5 + 62.5 + 50.0) / 3)
    assert row["n_runs"] == 6 and row["n_trials"] == 8          # 3 seeds x 2 folds; 2 folds x 4 trials
    assert row["published"] == 60.0 and row["published_as"] == "deap"
    assert row["evidence"].startswith("demonstration") and bool(row["direction_holds"])
    assert row["ci_low"] < row["effect"] < row["ci_high"]
    assert row["verdict"] in ("supported", "contradicted", "inconclusive")


def test_a_claim_runs_only_where_all_its_methods_ran_and_needs_the_pairs():
    pred = _predictions({"a": lambda s, f, t: (s + t) % 2, "b": lambda s, f, t: t % 2})
    claims = {"claims": [
        {"id": "ab", "paper": "P", "source": "T", "text": "t", "track": "tr", "metric": "accuracy",
         "method": ["a"], "versus": ["b"], "direction": "better"},
        {"id": "az", "paper": "P", "source": "T", "text": "t", "track": "tr", "metric": "accuracy",
         "method": ["a"], "versus": ["z"], "direction": "better"}]}
    out = check_claims(_runs(["a", "b"]), claims, {}, pred)
    assert out["claim"].tolist() == ["ab"]
    row = out.iloc[0]
    # seed 1: a right where b is wrong and vice versa (+-100 per trial, mean 0); seeds 0, 2: a == b
    assert row["effect"] == pytest.approx(0.0) and row["verdict"] == "inconclusive"
    assert row["evidence"] == "evidence"


def test_without_predictions_the_claim_uses_one_value_per_seed():
    runs = _runs(["a", "b"])
    runs.loc[runs["method"] == "a", "accuracy"] = [60.0, 62.0, 64.0]
    runs.loc[runs["method"] == "b", "accuracy"] = [50.0, 51.0, 52.0]
    claims = {"claims": [{"id": "ab", "paper": "P", "source": "T", "text": "t", "track": "tr", "metric": "accuracy",
                          "method": ["a"], "versus": ["b"], "direction": "better"}]}
    row = check_claims(runs, claims, {}, None).iloc[0]
    # differences 10, 11, 12: mean 11, se = 1 / sqrt(3), df 2; t_{0.975, 2} = 4.303
    assert row["effect"] == pytest.approx(11.0)
    assert row["ci_low"] == pytest.approx(11.0 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert row["n_runs"] == 3 and row["n_trials"] == 0
    assert row["verdict"] == "supported"


def test_write_claims_from_a_run_table(tmp_path):
    runs = _runs(["cdgkd", "baseline"])
    runs["track"] = "face_eeg-to-face"
    runs.loc[runs["method"] == "cdgkd", "accuracy"] = [60.0, 61.0, 63.0]
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = write_claims(tmp_path / "runs.csv", ROOT / "config" / "claims.yaml", tmp_path / "claims.csv", PUBLISHED,
                       {"synth": {"published_as": "deap", "synthetic": True}})
    got = pd.read_csv(tmp_path / "claims.csv")
    assert got["claim"].tolist() == out["claim"].tolist() == ["cdgkd_vs_no_kd"]
    assert got["published"].iloc[0] == pytest.approx(4.5)
    # differences 10, 11, 13: far above 4.5 +- 2 -> the published gain is not reproduced
    assert got["verdict"].iloc[0] == "contradicted" and bool(got["direction_holds"].iloc[0])
