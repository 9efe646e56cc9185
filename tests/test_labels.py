"""Targets from ratings: binary (a rating of exactly 5 is low), regression, SEED-IV classes."""
from __future__ import annotations

import numpy as np
import pytest

from cmkd.data.labels import (balance_meta, binary, check_tie, class_balance, high_side, regression, targets,
                              tie_rule)
from cmkd.data.prepared import load_prepared, write_prepared
from cmkd.errors import ConfigError, DataError


def test_binary_threshold_five_is_low():
    r = np.array([1.0, 4.99, 5.0, 5.01, 9.0], dtype=np.float32)
    y = binary(r)
    assert y.dtype == np.int64
    assert y.tolist() == [0, 0, 0, 1, 1]
    assert binary(r, threshold=4.5).tolist() == [0, 1, 1, 1, 1]
    assert binary(np.array([3, 7])).tolist() == [0, 1]  # integer ratings are fine


@pytest.mark.parametrize("bad, where", [(np.nan, 2), (0.5, 2), (9.5, 2), (np.inf, 2)])
def test_bad_ratings_name_dimension_index_value(bad, where):
    r = np.array([2.0, 3.0, bad, 0.0])
    with pytest.raises(DataError, match=rf"valence: rating .* at index {where} "):
        binary(r, dimension="valence")
    with pytest.raises(DataError, match=rf"arousal: rating .* at index {where} "):
        regression(r, dimension="arousal")


def test_bad_threshold_and_non_numeric():
    with pytest.raises(ConfigError, match="threshold"):
        binary(np.array([5.0]), threshold=float("nan"))
    with pytest.raises(DataError, match="liking: ratings must be numeric"):
        binary(np.array(["a"]), dimension="liking")


def test_regression_maps_1_9_to_0_1():
    y = regression(np.array([1.0, 5.0, 9.0, 3.0]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 0.5, 1.0, 0.25])


@pytest.fixture()
def arrays():
    n = 6
    return {
        "subject": np.zeros(n, np.int64), "trial": np.arange(n, dtype=np.int64), "segment": np.zeros(n, np.int64),
        "valence": np.array([1, 5, 5.5, 9, 2, 7], np.float32),
        "arousal": np.array([3, 3, 3, 6, 6, 6], np.float32),
    }


def test_targets_from_mapping(arrays):
    assert targets(arrays, "valence", "classification").tolist() == [0, 0, 1, 1, 0, 1]
    assert targets(arrays, "valence", "classification", threshold=6.0).tolist() == [0, 0, 0, 1, 0, 1]
    np.testing.assert_allclose(targets(arrays, "arousal", "regression"), [0.25] * 3 + [0.625] * 3)


def test_targets_from_prepared_directory(arrays, tmp_path):
    prep = load_prepared(write_prepared(tmp_path / "p", arrays, {"dataset": "x"}))
    assert targets(prep, "valence", "classification").tolist() == [0, 0, 1, 1, 0, 1]
    with pytest.raises(DataError, match=r"dimension 'liking'.*no array 'liking'.*arousal.*valence"):
        targets(prep, "liking", "classification")


def test_targets_missing_array_names_dimension_and_available(arrays):
    with pytest.raises(DataError, match=r"dimension 'dominance'.*\['arousal', 'segment', 'subject', 'trial', 'valence'\]"):
        targets(arrays, "dominance", "regression")
    with pytest.raises(DataError, match=r"dimension 'emotion'.*no array 'label'"):
        targets(arrays, "emotion", "classification")


def test_targets_emotion_returns_seed_iv_classes():
    label = np.array([0, 1, 2, 3, 3], dtype=np.int32)
    y = targets({"label": label}, "emotion", "classification")
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3, 3]
    with pytest.raises(ConfigError, match="task"):
        targets({"label": label}, "emotion", "regression")
    with pytest.raises(DataError, match="negative class -1 at index 1"):
        targets({"label": np.array([0, -1])}, "emotion", "classification")
    with pytest.raises(DataError, match="must hold integers"):
        targets({"label": np.array([0.0, 1.0])}, "emotion", "classification")


def test_targets_bad_dimension_task_and_ratings(arrays):
    with pytest.raises(ConfigError, match="dimension: unknown dimension 'happiness'"):
        targets(arrays, "happiness", "classification")
    with pytest.raises(ConfigError, match="task: unknown task 'ranking'"):
        targets(arrays, "valence", "ranking")
    arrays["valence"][3] = 10.0
    with pytest.raises(DataError, match="valence: rating 10.0 at index 3"):
        targets(arrays, "valence", "classification")


def test_targets_on_synthetic_data_are_roughly_balanced():
    from cmkd.data.synthetic import generate
    a, _ = generate({"n_subjects": 4, "n_trials": 10, "segments_per_trial": 1, "face_size": 16, "face_frames": 1}, 0)
    for dim in ("valence", "arousal", "dominance", "liking"):
        y = targets(a, dim, "classification")
        assert 0.25 < y.mean() < 0.75, dim
        r = targets(a, dim, "regression")
        assert r.min() >= 0 and r.max() <= 1


def test_tie_puts_the_threshold_on_the_chosen_side():
    r = np.array([1.0, 4.0, 5.0, 5.0, 6.0, 9.0])
    assert binary(r).tolist() == [0, 0, 0, 0, 1, 1]  # default: 5 is low (unchanged)
    assert binary(r, tie="high").tolist() == [0, 0, 1, 1, 1, 1]
    assert binary(r, threshold=6.0, tie="high").tolist() == [0, 0, 0, 0, 1, 1]
    arrays = {"valence": r.astype(np.float32)}
    assert targets(arrays, "valence", "classification", tie="high").sum() == 4
    # the rule serves any values (regression targets in [0, 1], bin edges), without a range check
    assert high_side(np.array([0.25, 0.5, 0.75]), 0.5, "low").tolist() == [False, False, True]
    assert high_side(np.array([0.25, 0.5, 0.75]), 0.5, "high").tolist() == [False, True, True]
    with pytest.raises(ConfigError, match=r"dimensions\.valence\.tie: must be one of \['low', 'high'\]"):
        binary(r, dimension="valence", tie="up")
    assert class_balance(r, 5.0, "low") == {"low": 4, "high": 2, "at_threshold": 2, "rule": "rating > 5 is high (5 is low)"}
    assert class_balance(r, 5.0, "high")["high"] == 4 and tie_rule(5, "high") == "rating >= 5 is high (5 is high)"


def test_tie_rule_defaults_and_checks():
    """The defaults are the protocol's (threshold 5, a 5 is low); every entry point checks ``tie``."""
    assert check_tie("high") == "high" and check_tie("low") == "low"
    assert tie_rule() == "rating > 5 is high (5 is low)"
    r = np.array([5.0, 5.0, 6.0, 9.0, 1.0])
    assert class_balance(r) == {"low": 3, "high": 2, "at_threshold": 2, "rule": "rating > 5 is high (5 is low)"}
    for call in (lambda: high_side(r, 5.0, "mid"), lambda: tie_rule(5.0, "mid"), lambda: class_balance(r, 5.0, "mid")):
        with pytest.raises(ConfigError, match=r"tie: must be one of \['low', 'high'\]"):
            call()


def test_balance_meta_counts_both_tie_sides_by_hand():
    """meta.json's class balance: per dimension the trials, the high count under each tie side
    and the ratings equal to the threshold (5 by default)."""
    meta = balance_meta({"valence": [5.0, 5.0, 6.0, 9.0, 1.0], "arousal": [4.0, 7.0]})
    assert meta == {"threshold": 5.0, "unit": "trial",
                    "valence": {"trials": 5, "high_tie_low": 2, "high_tie_high": 4, "at_threshold": 2},
                    "arousal": {"trials": 2, "high_tie_low": 1, "high_tie_high": 1, "at_threshold": 0}}
    assert balance_meta({"valence": [6.0, 7.0]}, threshold=6.0)["valence"] == {
        "trials": 2, "high_tie_low": 1, "high_tie_high": 2, "at_threshold": 1}


def test_config_check_reads_tie_and_not_recorded_modalities():
    from conftest import tiny_config

    from cmkd.validation import check_semantics

    cfg = tiny_config()
    cfg["dimensions"]["arousal"]["tie"] = "high"
    check_semantics(cfg)
    cfg["dimensions"]["valence_reg"]["tie"] = "high"
    with pytest.raises(ConfigError, match=r"dimensions\.valence_reg\.tie: applies to binary classification"):
        check_semantics(cfg)
    cfg = tiny_config()
    cfg["datasets"]["m"] = {"loader": "mahnob_hci", "modalities": ["eeg"], "params": {"modalities": ["eeg", "eog"]}}
    with pytest.raises(ConfigError, match=r"datasets\.m\.params\.modalities: no modality 'eog': MAHNOB-HCI recorded no EOG"):
        check_semantics(cfg)


def test_table_note_states_the_threshold_and_tie_of_each_binary_dimension():
    import pandas as pd

    from cmkd.analysis.tables import table_note

    df = pd.DataFrame({"dimension": ["arousal", "valence", "valence_reg"], "synthetic": [False] * 3})
    dims = {"arousal": {"task": "classification", "threshold": 5.0, "tie": "high"},
            "valence": {"task": "classification", "threshold": 5.0},
            "valence_reg": {"task": "regression"}}
    note = table_note(df, {"caption": "C."}, {"split": {}, "seeds": [0], "dimensions": dims})
    assert "Binary classes: arousal: rating >= 5 is high (5 is high); valence: rating > 5 is high (5 is low)." in note
    assert "valence_reg" not in note
