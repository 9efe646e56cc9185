"""Tables: rows in the configured order, published values beside the reproduced ones."""
import math

import pandas as pd

from cmkd.tables import build_table


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
