"""The bad-input catalogue: every input a new user can get wrong (config, command line, raw data,
environment) is stopped before any job runs, with exit status 2 (1 for `inspect`'s findings) and
a first error line that names the key, file or argument; none ends in a traceback.

Most config inputs go through `cmkd check` in process (the same validation path as the
Snakefile: cmkd.validation); a representative subset also through `snakemake -n`.
"""
from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import fixtures as fx
from conftest import ROOT
from bad_inputs import CLI_CASES, CONFIG_CASES, TRACE, full_dir, prepared_one_class, real_deap
from cmkd import cli, feasibility



def _check(tmp_path, overlay, monkeypatch, capsys, extra=()):
    monkeypatch.chdir(ROOT)
    files = []
    if overlay is not None:
        ov = tmp_path / "overlay.yaml"
        ov.write_text(yaml.safe_dump({"results": str(tmp_path / "results"), **overlay}, sort_keys=False))
        files.append(str(ov))
    rc = cli.main(["check", *(["--configfile", *files] if files else []), *extra])
    err = capsys.readouterr().err
    return rc, err


def _first(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "warning"))]
    return lines[0] if lines else ""


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_stopped_by_check(case, tmp_path, monkeypatch, capsys):
    _, overlay, expect = case
    if callable(overlay):
        overlay = overlay(tmp_path)
    rc, err = _check(tmp_path, overlay, monkeypatch, capsys)
    assert rc == 2, err
    first = _first(err)
    assert expect in first, err
    assert TRACE not in err
    assert len(err.splitlines()) <= 10, err  # one short line per error, never the document


def test_the_default_passes_check(tmp_path, monkeypatch, capsys):
    rc, err = _check(tmp_path, {}, monkeypatch, capsys)
    assert rc == 0, err


def test_schema_error_names_file_and_line(tmp_path, monkeypatch, capsys):
    rc, err = _check(tmp_path, {"datasets": {"synthetic": {"parms": {}}}}, monkeypatch, capsys)
    ov = tmp_path / "overlay.yaml"
    line = next(i for i, ln in enumerate(ov.read_text().splitlines(), 1) if "parms" in ln)
    assert rc == 2 and _first(err).startswith(f"error: {ov}:{line}: datasets.synthetic.parms"), err


def test_device_cuda_on_a_cpu_only_torch(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(feasibility, "torch_build", lambda: {"installed": True, "version": "2.4.1+cpu", "cuda": None, "kind": "cpu"})
    rc, err = _check(tmp_path, {"device": "cuda"}, monkeypatch, capsys)
    assert rc == 2 and "device: 'cuda'" in _first(err) and "CPU-only" in err, err
    monkeypatch.setattr(feasibility, "torch_build", lambda: {"installed": True, "version": "2.4.1+cu121", "cuda": "12.1", "kind": "cuda"})
    rc, err = _check(tmp_path, {"device": "cuda"}, monkeypatch, capsys)
    assert rc == 0, err
    assert "torch" not in sys.modules or True  # planning imports no torch: checked by test_check_imports_no_torch


def test_frame_size_table_matches_the_installed_timm():
    """cmkd.models.visual_sizes.FRAME_SIZES (read at plan time, without torch) against the
    encoder the job builds: each architecture takes its smallest size and refuses the one below
    (and, for a multiple above 1, the side between)."""
    from cmkd.models.visual import TimmFrameEncoder, import_timm
    from cmkd.models.visual_sizes import FRAME_SIZES

    assert feasibility.frame_sizes() == FRAME_SIZES  # what the check reads with ast

    import_timm()  # through the torchvision shim

    for arch, (smallest, multiple) in FRAME_SIZES.items():
        TimmFrameEncoder(arch, smallest)
        TimmFrameEncoder(arch, smallest + multiple)
        refused = [smallest - 1] if smallest > 1 else []
        refused += [smallest + multiple // 2] if multiple > 1 else []
        for side in refused:
            with pytest.raises(ValueError, match=f"cannot take {side}x{side} px frames"):
                TimmFrameEncoder(arch, side)


def test_check_imports_no_torch(tmp_path):
    code = ("import sys; from cmkd.validation import load_config, validate_config; c, l = load_config([]); "
            "validate_config(c, l, True); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr


@pytest.mark.parametrize("text,expect_line", [("datasets:\n  synthetic: {loader: synthetic\n", 3),
                                              ("threads: 1\nseeds: [0, 1\n", 3),
                                              ("a: b: c\n", 1)])
def test_yaml_syntax_error_in_overlay_names_file_and_line(text, expect_line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    ov = tmp_path / "broken.yaml"
    ov.write_text(text)
    rc = cli.main(["check", "--configfile", str(ov)])
    err = capsys.readouterr().err
    assert rc == 2 and _first(err).startswith(f"error: {ov}:{expect_line}:"), err
    assert "YAML syntax error" in err and TRACE not in err


def test_overlays_merge_in_order_and_missing_or_non_mapping_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"results: {tmp_path}\nthreads: 0\n")
    b.write_text("threads: 2\n")
    assert cli.main(["check", "--configfile", str(a), str(b)]) == 0, capsys.readouterr().err  # b mends a
    assert cli.main(["check", "--configfile", str(b), "--configfile", str(a)]) == 2
    assert f"{a}:2: threads" in _first(capsys.readouterr().err)
    assert cli.main(["check", "--configfile", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml' not found" in _first(capsys.readouterr().err)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert cli.main(["check", "--configfile", str(tmp_path / "list.yaml")]) == 2
    assert "list.yaml: a config file holds a mapping" in _first(capsys.readouterr().err)


def test_prepared_data_decide_the_class_balance(tmp_path, monkeypatch, capsys):
    """A real data set already prepared: its ratings tell the classes before any job."""
    real = prepared_one_class(tmp_path)
    real["experiments"][0]["dimensions"] = ["arousal"]
    rc, err = _check(tmp_path, real, monkeypatch, capsys)
    assert rc == 2 and "dimensions.arousal.threshold" in _first(err) and "meta.json" in err, err
    real["experiments"][0]["dimensions"] = ["valence"]
    rc, err = _check(tmp_path, real, monkeypatch, capsys)
    assert rc == 0, err
    real["split"] = {"kind": "kfold", "n_folds": 25}  # more folds than the 20 prepared trials
    rc, err = _check(tmp_path, real, monkeypatch, capsys)
    assert rc == 2 and "n_folds 25 is more than the 20 trials" in _first(err), err


# ------------------------------------------------------------------------------ snakemake -n
# the catalogue through `snakemake -n`: tests/test_bad_input_dryrun.py


# ------------------------------------------------------------------------------ command line
def _cli(argv, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("argv,code,expect", CLI_CASES, ids=[" ".join(c[0][:3]) + f"-{i}" for i, c in enumerate(CLI_CASES)])
def test_bad_command_line_argument(argv, code, expect, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc, out, err = _cli(argv, capsys)
    assert rc == code, out + err
    msg = [ln for ln in err.splitlines() if ln.startswith(("error:", "python -m cmkd")) and "usage" not in ln]
    assert msg and expect in msg[0] + err, err
    assert TRACE not in err


@pytest.mark.parametrize("command", ["prepare", "inspect", "train", "frame-features", "aggregate", "tables", "cell", "bench", "check",
                                     "unlock-stale", "plots", "stats"])
def test_every_subcommand_help(command, capsys):
    rc, out, err = _cli([command, "--help"], capsys)
    assert rc == 0 and "usage:" in out and TRACE not in err, err


def test_inspect_threshold_with_no_high_rating(tmp_path, capsys):
    root = fx.write_deap(tmp_path / "raw", subjects=(1,), n_trials=3)
    rc, out, err = _cli(["inspect", "deap", "--root", str(root), "--params", '{"modalities": ["eeg"]}'], capsys)
    assert rc == 0 and "no problem found" in out, out + err
    assert "warning: dominance: no rating is high at threshold 5" in out  # one dimension: a warning
    rc, out, err = _cli(["inspect", "deap", "--root", str(root), "--params", '{"modalities": ["eeg"]}',
                         "--threshold", "12"], capsys)
    assert rc == 1, out + err
    assert "PROBLEM: valence: no rating is high at threshold 12" in out and "no problem found" not in out, out


# ------------------------------------------------------------------------------ inside a job
def _spec(dim="arousal", **dim_spec):
    return {"dimension": dim, "dimension_spec": {"task": "classification", **dim_spec}, "method": "baseline"}


def test_job_start_refuses_one_class_labels_and_wrong_n_classes():
    from cmkd.errors import ConfigError
    from cmkd.train import check_labels

    y = np.array([0, 1, 0, 1, 1, 0])
    split = {"train": np.array([0, 1, 2, 3]), "val": np.array([4]), "test": np.array([5])}
    check_labels(y, split, 2, _spec(), "prep")
    with pytest.raises(ConfigError, match=r"^dimensions\.arousal\.threshold: every label of prep falls in one class"):
        check_labels(np.zeros(6, int), split, 2, _spec(), "prep")
    with pytest.raises(ConfigError, match=r"^dimensions\.arousal\.n_classes: a rating .* got 3"):
        check_labels(y, split, 3, _spec(), "prep")
    with pytest.raises(ConfigError, match=r"^split: the training part of baseline"):
        check_labels(y, {**split, "train": np.array([0, 2])}, 2, _spec(), "prep")
    with pytest.raises(ConfigError, match=r"^dimensions\.emotion\.n_classes: 3, but prep has class 3"):
        check_labels(np.array([0, 1, 2, 3, 0, 1]), split, 3, _spec("emotion", n_classes=3), "prep")


def test_degenerate_runs_are_named():
    from cmkd.train import degenerate_reason

    y = np.array([0, 1, 0, 1])
    good = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.5]])
    assert degenerate_reason("classification", y, good, [{"epoch": 1, "val_loss": 0.6, "train_total": 0.7}]) is None
    const = np.tile([[0.2, 0.9]], (4, 1))
    assert degenerate_reason("classification", y, const).startswith("constant test predictions (every test segment "
                                                                     "predicted class 1)")
    assert degenerate_reason("classification", y, good, [{"epoch": 3, "val_loss": math.nan}]) == \
        "non-finite val_loss at epoch 3"
    assert degenerate_reason("classification", np.ones(4, int), good).startswith("the test labels have a single class")
    assert degenerate_reason("regression", np.array([0.1, 0.5, 0.9]), np.full(3, 0.4)).startswith("constant test")
    assert degenerate_reason("regression", np.array([0.1, 0.5, 0.9]), np.array([0.1, 0.4, 0.8])) is None


def test_runs_csv_shows_a_degenerate_run_as_such(tmp_path):
    from cmkd.analysis.tables import aggregate_runs, summarise

    files = []
    for seed, status in ((0, "ok"), (1, "degenerate")):
        d = tmp_path / f"seed{seed}"
        d.mkdir()
        m = {"status": status, "cell": {"dataset": "synthetic", "track": "t", "dimension": "arousal", "method": "kd",
                                        "seed": seed},
             "test": {"accuracy": 0.7 if status == "ok" else 0.5, "f1": 0.6, "rmse": math.nan}, "provenance": {}}
        if status != "ok":
            m["reason"] = "constant test predictions (every test segment predicted class 0)"
        (d / "metrics.json").write_text(json.dumps(m))
        files.append(d / "metrics.json")
    df = aggregate_runs(files, tmp_path / "runs.csv", current_code_hash="x")
    bad = df[df["seed"] == 1].iloc[0]
    assert bad["status"] == "degenerate" and "constant test predictions" in bad["reason"]
    assert math.isnan(bad["accuracy"]) and math.isnan(bad["f1"])
    s = summarise(df)
    assert s["accuracy_mean"].iloc[0] == pytest.approx(0.7) and s["n_failed"].iloc[0] == 1


# ------------------------------------------------------------------------ disk full, write errors
_NO_SPACE = """\
import errno, os
def _full(fd, offset, length):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
os.posix_fallocate = _full
"""


def test_prepare_on_a_full_disk_names_the_file_and_leaves_no_temporary_folder(tmp_path):
    """A full disk (os.posix_fallocate refusing the space, as it does on a full file system) ends
    `prepare` with one line naming the file, exit 2, no traceback, no temporary folder: not a
    `Bus error` from a memory-mapped write into a sparse file."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_NO_SPACE)
    out = tmp_path / "prep" / "synthetic"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT / "src")]), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "cmkd", "prepare", "synthetic", "--out", str(out),
                        "--params", json.dumps({"n_subjects": 2, "n_trials": 2, "segments_per_trial": 1})],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    assert TRACE not in r.stderr
    first = _first(r.stderr)
    assert first.startswith(f"error: {out}/") and ".npy: could not write (No space left on device)" in first, first
    assert not out.exists()
    assert list((tmp_path / "prep").iterdir()) == []  # no .synthetic.*.tmp left


def test_write_error_of_meta_json_names_it(tmp_path, monkeypatch):
    from pathlib import Path

    from cmkd.data.prepared import PreparedWriter
    from cmkd.errors import DataError

    real = Path.write_text

    def failing(self, *a, **k):
        if self.name == "meta.json":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", failing)
    w = PreparedWriter(tmp_path / "out", {"subject": ((3,), np.int64), "trial": ((3,), np.int64),
                                          "segment": ((3,), np.int64)})
    for k in ("subject", "trial", "segment"):
        w.write(k, 0, np.arange(3))
    with pytest.raises(DataError, match=r"out/meta\.json: could not write \(Input/output error\)"):
        w.finish({"dataset": "x"})
    assert list(tmp_path.iterdir()) == []


def test_write_prepared_and_atomic_writers_on_a_read_only_file_system(tmp_path, monkeypatch):
    from cmkd import atomic
    from cmkd.data import prepared
    from cmkd.errors import DataError

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(np, "save", read_only)
    arrays = {k: np.arange(3) for k in ("subject", "trial", "segment")}
    with pytest.raises(DataError, match=r"out/(subject|trial|segment)\.npy: could not write \(Read-only file system\)"):
        prepared.write_prepared(tmp_path / "out", arrays, {"dataset": "x"})
    with pytest.raises(DataError, match=r"a\.npy: could not write \(Read-only file system\)"):
        atomic.write_npy(tmp_path / "a.npy", np.arange(3))
    assert list(tmp_path.iterdir()) == []


def test_face_size_of_a_real_data_set(tmp_path):
    """A real data set's face size: a prepared meta.json's face array, else the loader's
    face_size parameter, else its declared default; a value the loader has not checked is left
    to it."""
    config = {"results": str(tmp_path / "results"), "datasets": {"deap": {"loader": "deap", "root": str(tmp_path)}}}
    size = lambda: feasibility.face_size(config, "deap", None)  # noqa: E731
    assert size() == (224, "datasets.deap.params.face_size (default)")
    config["datasets"]["deap"]["params"] = {"face_size": 48}
    assert size() == (48, "datasets.deap.params.face_size")
    config["datasets"]["deap"]["params"] = {"face_size": "big"}
    assert size() is None
    meta = tmp_path / "results" / "prepared" / "deap" / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"arrays": {"face": {"shape": [10, 5, 3, 64, 64], "dtype": "|u1"}}}))
    assert size() == (64, f"{meta} (face array)")
    assert feasibility.frame_size_problem("pvt_v2_b0", 28) and not feasibility.frame_size_problem("pvt_v2_b0", 29)
    assert feasibility.frame_size_problem("some_new_arch", 1) is None  # checked by the job
