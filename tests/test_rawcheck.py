"""`python -m cmkd inspect`: the raw-data check before preparing, on good and broken fixtures."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmkd.data.rawcheck import INSPECTORS, format_report, inspect_raw, main
from cmkd.errors import ConfigError

try:
    from tests import fixtures as fx
except ImportError:  # pytest run with tests/ (not the repository root) on sys.path
    import fixtures as fx

OK = {"feltArsl": 6, "feltVlnc": 5, "feltCtrl": 5, "feltPred": 5}


def run(loader, root, params=None, **kw) -> tuple[int, str]:
    buf = io.StringIO()
    rc = main(loader, str(root), params, out=buf, **kw)
    return rc, buf.getvalue()


def listing(root: Path) -> list:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*"))


def test_every_loader_has_an_inspector():
    from cmkd.data import LOADERS

    assert set(LOADERS) <= set(INSPECTORS)


SMALL = {"n_subjects": 3, "n_trials": 4, "segments_per_trial": 2, "face_size": 16, "face_frames": 1}


def test_inspect_synthetic_reports_the_ratings_prepare_writes(tmp_path):
    """The synthetic check draws the ratings without the signals: they are the trial ratings of
    the prepared folder `prepare synthetic` writes with the same parameters and seed."""
    import numpy as np

    from cmkd.data.prepared import load_prepared
    from cmkd.data.synthetic import write_synthetic

    r = inspect_raw("synthetic", None, SMALL, seed=3)
    prep = load_prepared(write_synthetic(tmp_path / "prep", SMALL, 3))
    first = np.asarray(prep["segment"]) == 0
    assert r.ok and r.segments == prep.n == 24 and r.subjects == {0, 1, 2} and len(r.usable) == 12
    for k in ("valence", "arousal", "dominance", "liking"):
        assert r.ratings[k] == [float(v) for v in np.asarray(prep[k])[first]], k
    assert inspect_raw("synthetic", None, SMALL, seed=4).ratings != r.ratings


def test_inspect_synthetic_command_line(capsys):
    from cmkd import cli

    assert cli.main(["inspect", "synthetic", "--params", '{"n_subjects": 2}']) == 0
    assert "no problem found" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # a threshold above every rating: one class, exit 1
        cli.main(["inspect", "synthetic", "--threshold", "9.5"])
    assert e.value.code == 1 and "PROBLEM: valence: no rating is high at threshold 9.5" in capsys.readouterr().out
    assert cli.main(["inspect", "synthetic", "--params", '{"n_trial": 2}']) == 2
    assert "--params.n_trial" in capsys.readouterr().err
    assert cli.main(["inspect", "deap"]) == 2
    assert "inspect deap: --root (the raw data root) is required" in capsys.readouterr().err
    assert cli.main(["inspect", "deap", "--root", ".", "--seed", "1"]) == 2
    assert "inspect deap: --seed" in capsys.readouterr().err


@pytest.mark.parametrize("loader", ["seed", "seed_v"])
def test_inspect_seed_family_fixtures(tmp_path, loader):
    import fixtures_seed as fs

    writer = fs.write_seed if loader == "seed" else fs.write_seed_v
    root = writer(tmp_path / "raw")
    before = listing(root)
    rc, out = run(loader, root, {})
    assert rc == 0, out
    assert listing(root) == before  # nothing written under the raw root
    assert "emotion" in out


def test_inspect_good_mahnob(tmp_path):
    root = fx.write_mahnob(tmp_path / "raw", video=True, size=(48, 40))
    before = listing(root)
    rc, out = run("mahnob_hci", root, {"modalities": ["eeg", "face"]})
    assert rc == 0, out
    assert listing(root) == before  # nothing written, nothing decoded into the folder
    assert "subjects: 2 (1, 2)" in out and "sessions usable: 3; skipped: 2; segments: 12" in out
    assert "bdf 256 Hz" in out and "video 60 Hz" in out and "eeg (prepared) 128 Hz" in out
    assert "3 x stimulus window: status" in out and "3 x face: video frame 0 = stimulus onset" in out
    assert out.count("1 x no *_emotion.bdf (session 12)") == 1
    # class balance per dimension; the tie side moves the ratings equal to 5
    assert "valence: 1 high / 2 low (33.3% high; 1 at exactly 5; rating > 5 is high (5 is low))" in out
    rc, out = run("mahnob_hci", root, tie="high")
    assert "valence: 2 high / 1 low" in out and "rating >= 5 is high (5 is high)" in out
    assert out.strip().endswith("no problem found")


def test_inspect_broken_mahnob_prints_each_problem_once_with_its_count(tmp_path):
    sessions = [{"id": 1, "subject": 1, "ratings": OK},
                {"id": 2, "subject": 1, "ratings": OK, "cutLenSec": 20.0},   # Status window 12.5 s
                {"id": 3, "subject": 2, "ratings": OK, "cutLenSec": 9.0},
                {"id": 4, "subject": 2, "ratings": OK, "video_s": 8.0},      # video shorter than the stimulus
                {"id": 5, "subject": 3, "ratings": None}]
    root = fx.write_mahnob(tmp_path / "raw", sessions=sessions, pre_s=2.0, stim_s=12.5, post_s=2.0, video=True,
                           size=(48, 40))
    rc, out = run("mahnob_hci", root, {"modalities": ["eeg", "face"]})
    assert rc == 0, out  # the loader skips these sessions: fewer data, nothing corrupt
    assert "sessions usable: 1; skipped: 4" in out
    line = "2 x Status window differs from cutLenSec by more than 1 s (session 2, session 3)"
    assert out.count(line) == 1 and out.count("cutLenSec by more than") == 1
    assert out.count("1 x segment windows run past the end of the frontal video (session 4)") == 1
    assert out.count("missing or out-of-range ratings") == 1
    # the documented fallback instead of skipping: onset + cutLenSec where it fits the recording
    rc, out = run("mahnob_hci", root, {"window_check": "cutlen"})
    assert "1 x stimulus window: onset+cutLenSec (Status window disagrees)" in out
    assert "1 x stimulus window ends after the recording (session 2)" in out
    with pytest.raises(ConfigError, match="recorded no EOG"):
        run("mahnob_hci", root, {"modalities": ["eeg", "eog"]})


def test_inspect_good_and_broken_deap(tmp_path):
    root = fx.write_deap(tmp_path / "raw", subjects=(1, 2), n_trials=3)
    fx.write_deap_video(root, subjects=(1, 2), n_trials=3, size=(32, 24), short={2: 30.0})
    rc, out = run("deap", root, {"modalities": ["eeg", "face"]})
    assert rc == 0, out
    assert "subjects: 2 (1, 2)" in out and "trials usable: 4; skipped: 2; segments: 60" in out
    assert out.count("2 x face video shorter than the stimulus (s01 trial") == 1
    assert "4 x face: trial mapping participant_ratings.csv, ratings cross-checked" in out
    assert "eeg 128 Hz" in out and "video 50 Hz" in out
    # without the CSV the videos cannot be mapped to the trials: a problem, exit 1
    (root / "metadata_csv" / "participant_ratings.csv").unlink()
    rc, out = run("deap", root, {"modalities": ["eeg", "face"]})
    assert rc == 1
    assert out.count("1 x participant_ratings.csv missing or unreadable: face videos cannot be mapped to trials") == 1
    assert "PROBLEMS" in out
    rc, out = run("deap", root, {"modalities": ["eeg"]})  # EEG alone needs no mapping
    assert rc == 0 and "trials usable: 6" in out


def test_inspect_deap_csv_that_disagrees_with_the_labels(tmp_path):
    root = fx.write_deap(tmp_path / "raw", subjects=(1, 2), n_trials=2)
    fx.write_deap_video(root, subjects=(1, 2), n_trials=2, seconds=61.0, size=(32, 24))
    path = root / "metadata_csv" / "participant_ratings.csv"
    lines = path.read_text().splitlines()
    for i in (1, 3):  # first trial of each participant: Valence off by 2
        cells = lines[i].split(",")
        cells[4] = str(float(cells[4]) + 2)
        lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    rc, out = run("deap", root, {"modalities": ["face"]})
    assert rc == 1
    assert out.count("2 x participant_ratings.csv disagrees with the data files (s01, s02)") == 1


def test_inspect_seed_iv_and_unknown_loader(tmp_path):
    root = fx.write_seed_iv(tmp_path / "raw", subjects=(1, 2), sessions=(1,))
    (root / "eeg_feature_smooth" / "1" / "2_20160518.mat").unlink()
    rc, out = run("seed_iv", root)
    assert rc == 0, out
    assert "trials usable: 24; skipped: 1" in out and "1 x no eeg_feature_smooth file (session 1 subject 2)" in out
    assert "fear: 6, happy: 6, neutral: 6, sad: 6" in out
    assert "1 x eye and EEG window counts differ" in out
    with pytest.raises(ConfigError, match="no raw-data check for loader 'nosuch'"):
        inspect_raw("nosuch", root)


def test_inspect_command_line_exit_status(tmp_path):
    root = fx.write_deap(tmp_path / "raw", subjects=(1,), n_trials=2, ratings_csv=False)
    fx.write_deap_video(root, subjects=(1,), n_trials=2, seconds=61.0, size=(32, 24))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "cmkd", "inspect", "deap", "--root", str(root), "--params", '{"modalities": ["eeg", "face"]}']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "participant_ratings.csv missing" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cmd[:-1] + ['{"modalities": ["eeg", "face"], "face_trial_mapping": "identity"}'],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "face_trial_mapping 'identity'" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cmd[:-2] + ["--tie", "middle"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "--tie: must be one of ['low', 'high']" in r.stderr


def test_report_with_nothing_usable_is_a_problem(tmp_path):
    from cmkd.data.rawcheck import RawReport

    r = RawReport("x", str(tmp_path), "trial")
    assert not r.ok and "PROBLEM: no usable trial" in format_report(r)
