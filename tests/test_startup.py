"""What a training job imports before its first epoch: every rule's command line builds the whole
parser, and every training job imports cmkd.train. Neither may pull in Snakemake's command line,
jsonschema or pandas (0.2-0.8 s each, paid once per job; the default runs about 200 jobs). The
start-up time itself is measured by the default's timing, not here; this guards the import graph."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("snakemake", "snakemake.cli", "jsonschema", "pandas")

PROBE = """
import json, sys
from cmkd import cli
try:
    cli.main(["train", "--help"])
except SystemExit:
    pass
import cmkd.train, cmkd.crossval
print(json.dumps(sorted(m for m in sys.modules if m in %r)))
""" % (HEAVY,)


def test_training_job_imports_no_heavy_planning_module():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"a training job imports {loaded}"


def test_history_rows_round_trip(tmp_path):
    """The history writer (no pandas): first-seen column order, empty fields for missing/NaN."""
    import pandas as pd

    from cmkd import atomic

    rows = [{"epoch": 1, "loss": 0.5, "val_accuracy": float("nan")}, {"epoch": 2, "loss": 0.25, "extra": True}]
    atomic.write_rows(tmp_path / "h.csv", rows)
    text = (tmp_path / "h.csv").read_text()
    assert text.splitlines() == ["epoch,loss,val_accuracy,extra", "1,0.5,,", "2,0.25,,True"]
    back = pd.read_csv(tmp_path / "h.csv")
    assert back["loss"].tolist() == [0.5, 0.25] and back["val_accuracy"].isna().all()


def test_figures_do_not_import_seaborn():
    """The figures' style is matplotlib settings (seaborn's whitegrid written out): a plotting job
    (about 50 in the default) does not pay seaborn's 0.7 CPU-s import for it."""
    probe = ("import json, sys\nimport cmkd.analysis.figures.bars, cmkd.analysis.figures.style as s\n"
             "s.palette(4)\nprint(json.dumps('seaborn' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False


def test_whitegrid_matches_seaborn():
    """The written-out style is seaborn's (when seaborn is installed), so the figures look as before."""
    import pytest

    sns = pytest.importorskip("seaborn")
    from cmkd.analysis.figures import style

    want = dict(sns.axes_style("whitegrid", {"axes.spines.top": False, "axes.spines.right": False}))
    want.pop("image.cmap")
    assert style._WHITEGRID == want
    assert style.palette(10) == [tuple(c) for c in sns.color_palette("tab10", 10)]
