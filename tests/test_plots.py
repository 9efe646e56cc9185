"""Tests of cmkd.analysis.figures (and `python -m cmkd plots`) on small hand-made run directories (no training): every figure is written,
is not blank, and the same inputs give the same picture."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmkd import cli
from cmkd.analysis.figures import curves, intervals, maps, published, rank_plots, readers
from cmkd.analysis.figures.bars import table_bars
from cmkd.errors import ConfigError, DataError


def _plots(argv: list[str]) -> int:
    """``python -m cmkd plots ...``: its exit status (2 on bad input, with one ``error:`` line)."""
    return cli.main(["plots", *argv])


DS, TR, DIM = "synthetic", "face_eeg-to-face", "arousal"
SEEDS = (0, 1)
# method -> embedding size: the teacher's embedding is larger than the students' (separate fits)
DIMS = {"teacher": 12, "baseline": 6, "kd": 6}
N_TEST = 30


def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(str(path))


def _assert_drawn(png: Path, svg: Path | None = None) -> None:
    assert png.exists() and png.stat().st_size > 0
    img = _png_pixels(png)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].var()) > 0.0  # not a blank canvas
    if svg is not None:
        text = svg.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text


def _features(rng: np.random.Generator, d: int, sep: float) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([0, 1] * (N_TEST // 2), dtype=np.int64)
    x = rng.normal(size=(N_TEST, d)).astype(np.float32)
    x[:, 0] += sep * y  # class 1 shifted along the first axis
    return x, y


def _history(method: str, seed: int, epochs: int) -> pd.DataFrame:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_ce": 1.0 / e + 0.01 * seed}
        if method == "kd":
            row["train_kd"] = 0.5 / e
        row["train_total"] = row["train_ce"] + row.get("train_kd", 0.0)
        row.update(val_loss=0.8 + 0.01 * e, val_accuracy=50.0 + 5 * e + seed, val_f1=40.0 + 5 * e,
                   val_rmse=np.nan, time_s=0.1)
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def grid(tmp_path) -> dict:
    """results/<ds>/<track>/<dim>/<method>/seed<N>/{features.npz,history.csv} and runs.csv."""
    rng = np.random.default_rng(0)
    runs = []
    dirs: dict[str, list[Path]] = {}
    for method, d in DIMS.items():
        for seed in SEEDS:
            rd = tmp_path / "results" / DS / TR / DIM / method / f"seed{seed}"
            rd.mkdir(parents=True)
            x, y = _features(rng, d, sep=3.0)
            np.savez_compressed(rd / "features.npz", embedding=x, logits=np.zeros((N_TEST, 2), np.float32),
                                y=y, index=np.arange(N_TEST))
            _history(method, seed, epochs=3 if method != "kd" else 4).to_csv(rd / "history.csv", index=False)
            dirs.setdefault(method, []).append(rd)
            acc = {"teacher": 80.0, "baseline": 60.0, "kd": 70.0}[method] + seed
            runs.append(dict(dataset=DS, track=TR, dimension=DIM, method=method, seed=seed, accuracy=acc,
                             f1=acc - 5, rmse=np.nan, status="ok", path=str(rd)))
    runs_csv = tmp_path / "results" / "summary" / "runs.csv"
    runs_csv.parent.mkdir(parents=True)
    pd.DataFrame(runs).to_csv(runs_csv, index=False)
    return {"root": tmp_path, "dirs": dirs, "runs_csv": runs_csv}


# ----------------------------------------------------------------------------------------------
# feature maps


def test_tsne_feature_maps_written_not_blank_and_reproducible(grid, tmp_path):
    out = tmp_path / "fig"
    coords1 = maps.feature_maps(grid["dirs"], out / "a.png", out / "a.svg", ["teacher", "baseline", "kd"],
                                 title="t", kind="tsne", seed=0)
    _assert_drawn(out / "a.png", out / "a.svg")
    assert list(coords1) == ["teacher", "baseline", "kd"]
    for xy in coords1.values():
        assert xy.shape == (N_TEST, 2) and np.isfinite(xy).all()
    coords2 = maps.feature_maps(grid["dirs"], out / "b.png", out / "b.svg", ["teacher", "baseline", "kd"],
                                 title="t", kind="tsne", seed=0)
    for m in coords1:
        np.testing.assert_array_equal(coords1[m], coords2[m])  # identical coordinates, not just close
    # same inputs -> byte-identical files (no time stamps, fixed SVG ids)
    assert (out / "a.png").read_bytes() == (out / "b.png").read_bytes()
    assert (out / "a.svg").read_bytes() == (out / "b.svg").read_bytes()
    # other features draw another map
    dirs = {"kd": grid["dirs"]["baseline"]}
    coords3 = maps.feature_maps(dirs, out / "c.png", None, kind="tsne", seed=0)
    assert not np.allclose(coords1["kd"], coords3["kd"])


def test_feature_maps_uses_first_seed_by_default_and_missing_features_do_not_fail(grid, tmp_path):
    dirs = dict(grid["dirs"])
    # the first seed of kd has no features file: its panel says so, the others are drawn
    (dirs["kd"][0] / "features.npz").unlink()
    coords = maps.feature_maps(dirs, tmp_path / "m.png", None, kind="tsne")
    assert set(coords) == {"teacher", "baseline"}
    _assert_drawn(tmp_path / "m.png")
    # seed_index picks the run drawn: the second seed of kd still has its features
    coords = maps.feature_maps(dirs, tmp_path / "m2.png", None, kind="tsne", seed_index=1)
    assert set(coords) == {"teacher", "baseline", "kd"}


def test_project_standardises_and_rejects_bad_input():
    x = np.random.default_rng(0).normal(size=(20, 4))
    a = maps.project(x, "tsne", 0)
    b = maps.project(x * 1000.0 + 5.0, "tsne", 0)  # per-dimension standardisation: same map
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    with pytest.raises(DataError):
        maps.project(x[:2], "tsne", 0)
    with pytest.raises(ConfigError, match="plots.kind"):
        maps.project(x, "pca", 0)


def test_silhouette_hand_computed():
    # two points per class on a line: class 0 at 0 and 1, class 1 at 10 and 11.
    # a(i) = 1 for every point; b = mean distance to the other class:
    # x=0: (10+11)/2 = 10.5; x=1: (9+10)/2 = 9.5; x=10: (10+9)/2 = 9.5; x=11: (11+10)/2 = 10.5
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.array([0, 0, 1, 1])
    s = [(10.5 - 1) / 10.5, (9.5 - 1) / 9.5, (9.5 - 1) / 9.5, (10.5 - 1) / 10.5]
    assert maps.silhouette(x, y) == pytest.approx(sum(s) / 4)
    assert math.isnan(maps.silhouette(x, np.zeros(4, dtype=int)))        # one class
    assert math.isnan(maps.silhouette(x, np.array([0.1, 0.2, 0.3, 0.4])))  # regression targets


@pytest.mark.slow  # numba compiles UMAP on its first fit: ~13 s of CPU
def test_umap_feature_map(grid, tmp_path):
    """The one UMAP test: tiny data, one method; the first fit in a process pays numba's
    compilation (~13 s of CPU), the second is fast."""
    dirs = {"kd": grid["dirs"]["kd"]}
    c1 = maps.feature_maps(dirs, tmp_path / "u.png", tmp_path / "u.svg", kind="umap", seed=0)
    _assert_drawn(tmp_path / "u.png", tmp_path / "u.svg")
    c2 = maps.feature_maps(dirs, tmp_path / "u2.png", None, kind="umap", seed=0)
    for m in c1:
        assert c1[m].shape == (N_TEST, 2)
        np.testing.assert_array_equal(c1[m], c2[m])


@pytest.mark.slow  # two fresh processes: one compiles UMAP into the cache (~25 s of CPU), one loads it
def test_umap_numba_cache_is_filled_once_and_reused_with_identical_maps(tmp_path):
    """``import_umap(cache_dir)`` (the feature-map jobs' ``--numba-cache``): the first process
    writes umap's compiled functions into the directory, a second one loads them instead of
    compiling (its UMAP fit costs a fraction of the first's CPU time) and draws the same map.
    Planting "no cache=True" fails the file count;
    a cache that changed the code would fail the equality."""
    import subprocess
    import sys

    script = (
        "import sys, time, json, numpy as np\n"
        "from cmkd.analysis.figures import maps\n"
        "maps.import_umap(sys.argv[1])\n"
        "x = np.random.default_rng(0).normal(size=(60, 8))\n"
        "t = time.process_time(); y = maps.project(x, 'umap', seed=0)\n"
        "print(json.dumps({'cpu': time.process_time() - t, 'y': y.tolist()}))\n"
    )
    cache = tmp_path / "numba"

    def run(arg):
        r = subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    first = run(str(cache))
    cached = sorted(p.name for p in cache.rglob("*.nbi"))
    assert any(n.startswith("umap_") for n in cached) and len(cached) >= 10, cached
    second = run(str(cache))
    assert second["cpu"] < 0.5 * first["cpu"], (first["cpu"], second["cpu"])
    np.testing.assert_array_equal(np.array(second["y"]), np.array(first["y"]))


def test_features_cli_writes_every_cell(grid, tmp_path, capsys):
    out = tmp_path / "figs"
    rc = _plots(["features", "--runs", str(grid["runs_csv"]), "--out-dir", str(out), "--kinds", "tsne",
                           "--exclude", '["baseline"]', "--class-names", json.dumps({DIM: ["low", "high"]})])
    assert rc == 0
    _assert_drawn(out / DS / TR / DIM / "features_tsne.png", out / DS / TR / DIM / "features_tsne.svg")
    svg = (out / DS / TR / DIM / "features_tsne.svg").read_text()
    assert "high (1)" in svg and "teacher" in svg and ">baseline<" not in svg
    capsys.readouterr()
    assert _plots(["features", "--runs", str(grid["runs_csv"]), "--out-dir", str(out),
                   "--class-names", "{not json"]) == 2
    assert "error: --class-names" in capsys.readouterr().err


def test_features_cli_from_metrics_matches_runs_csv(grid, tmp_path, capsys):
    """The per-cell job reads the runs' metrics.json (cell, seed, status) instead of runs.csv: the
    same figure, and a failed run is left out as runs.csv's status would leave it out."""
    metrics = []
    for method, dirs in grid["dirs"].items():
        for seed, rd in zip(SEEDS, dirs):
            status = "failed" if (method, seed) == ("kd", SEEDS[0]) else "ok"
            (rd / "metrics.json").write_text(json.dumps({
                "cell": {"dataset": DS, "track": TR, "dimension": DIM, "method": method, "seed": seed},
                "status": status}))
            metrics.append(str(rd / "metrics.json"))
    runs = pd.read_csv(grid["runs_csv"])
    runs.loc[(runs.method == "kd") & (runs.seed == SEEDS[0]), "status"] = "failed"
    runs.to_csv(grid["runs_csv"], index=False)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _plots(["features", "--runs", str(grid["runs_csv"]), "--out-dir", str(a), "--kinds", "tsne"]) == 0
    assert _plots(["features", "--metrics", *metrics, "--out-dir", str(b), "--kinds", "tsne"]) == 0
    fa, fb = (d / DS / TR / DIM / "features_tsne.svg" for d in (a, b))
    assert fa.read_bytes() == fb.read_bytes()
    assert readers.runs_from_metrics(metrics).query("method == 'kd'")["status"].tolist()[0] == "failed"
    assert _plots(["features", "--out-dir", str(a)]) == 2
    assert "either --runs" in capsys.readouterr().err
    (grid["dirs"]["kd"][1] / "metrics.json").write_text(json.dumps({"cell": {"dataset": DS}}))
    assert _plots(["features", "--metrics", *metrics, "--out-dir", str(a)]) == 2
    assert "lacks track" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# learning curves


def test_learning_curves(grid, tmp_path):
    hist = {m: [d / "history.csv" for d in ds] for m, ds in grid["dirs"].items()}
    panels = curves.learning_curves(hist, tmp_path / "c.png", tmp_path / "c.svg", title="cell")
    _assert_drawn(tmp_path / "c.png", tmp_path / "c.svg")
    # every loss term, the validation loss and the validation metrics that have values (not rmse)
    assert panels == ["train_total", "train_ce", "train_kd", "val_loss", "val_accuracy", "val_f1"]
    # CLI: the method is the run directory's parent name
    files = [str(d / "history.csv") for ds in grid["dirs"].values() for d in ds]
    assert _plots(["curves", *files, "--out-png", str(tmp_path / "k.png"), "--title", "x"]) == 0
    _assert_drawn(tmp_path / "k.png")
    with pytest.raises(DataError, match="history file missing"):
        curves.learning_curves({"kd": [tmp_path / "nope.csv"]}, tmp_path / "n.png", None)


def test_figures_read_the_metric_catalog(monkeypatch, tmp_path, capsys):
    """A metric declared once in cmkd.metrics.METRICS reaches the figures: its validation curve is
    a panel, the per-subject gain takes its direction (lower is better: reference - method), and
    the rank figure's --metric accepts it. Planting a hand-written metric list or a
    LOWER_IS_BETTER tuple in the figure code fails it."""
    from cmkd.analysis.figures.gains import subject_gains
    from cmkd.metrics import METRICS, Metric

    monkeypatch.setitem(METRICS, "mae", Metric("mae", "regression", False, "", 3, True, "MAE"))
    h = pd.DataFrame({"epoch": [1, 2], "train_total": [1.0, 0.5], "val_loss": [0.9, 0.8], "val_mae": [0.4, 0.3]})
    assert curves._curve_panels([h]) == ["train_total", "val_loss", "val_mae"]
    subjects = pd.DataFrame([
        {"dataset": DS, "track": TR, "dimension": DIM, "method": m, "seed": 0, "subject": "1", "group": "subject",
         "accuracy": np.nan, "rmse": np.nan, "mae": v} for m, v in (("baseline", 0.30), ("kd", 0.20))])
    g = subject_gains(subjects, "baseline", TR, metrics={DIM: "mae"})
    assert g["gain"].tolist() == pytest.approx([0.10])  # an error 0.1 lower: a gain of +0.1
    with pytest.raises(SystemExit) as e:
        cli.main(["plots", "cd", "--help"])
    assert e.value.code == 0 and "mae" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# published vs reproduced


def _table(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_published_vs_reproduced(tmp_path):
    base = dict(dataset=DS, metric="accuracy", n=3, n_failed=0)
    t1 = _table(tmp_path / "students.csv", [
        dict(base, dimension="arousal", method="baseline", label="No KD", mean=60.0, std=2.0, published=None,
             diff=None, synthetic=True),
        dict(base, dimension="arousal", method="kd", label="KD", mean=64.0, std=1.0, published=62.11,
             diff=1.89, synthetic=True),
    ])
    t2 = _table(tmp_path / "real.csv", [
        dict(base, dataset="deap", dimension="valence", method="kd", label="KD", mean=63.0, std=1.5,
             published=64.34, diff=-1.34, synthetic=False),
        dict(base, dataset="deap", dimension="valence", method="x", label="X", mean=0.2, std=0.01,
             published=0.25, diff=-0.05, synthetic=False, metric="rmse"),
    ])
    pts = published.published_vs_reproduced([t1, t2], tmp_path / "s.png", tmp_path / "s.svg")
    _assert_drawn(tmp_path / "s.png", tmp_path / "s.svg")
    assert len(pts) == 3  # the row without a published number is not drawn
    assert sorted(pts["synthetic"].tolist()) == [False, False, True]
    assert set(pts["metric"]) == {"accuracy", "rmse"}  # one panel each
    # no published number anywhere: the figure says so and is still written
    t3 = _table(tmp_path / "np.csv", [dict(base, dimension="arousal", method="kd", mean=1.0, std=0.0,
                                           published=None, synthetic=True)])
    empty = published.published_vs_reproduced([t3], tmp_path / "e.png", None)
    assert empty.empty
    _assert_drawn(tmp_path / "e.png")


# ----------------------------------------------------------------------------------------------
# critical difference diagram


def _cd_runs() -> pd.DataFrame:
    rows = []
    # 5 blocks (dimensions); method a is always best, then b, c, d
    for b, dim in enumerate(["arousal", "valence", "dominance", "liking", "familiarity"]):
        for m, base in (("a", 90.0), ("b", 80.0), ("c", 70.0), ("d", 60.0)):
            for seed in (0, 1):
                rows.append(dict(dataset=DS, track=TR, dimension=dim, method=m, seed=seed,
                                 accuracy=base + b + seed, f1=base, rmse=np.nan, status="ok"))
    rows.append(dict(dataset=DS, track="other", dimension="arousal", method="a", seed=0, accuracy=0.0,
                     f1=0.0, rmse=np.nan, status="ok"))
    return pd.DataFrame(rows)


def test_cd_diagram_written_and_ranks(tmp_path):
    runs = _cd_runs()
    s = rank_plots.cd_diagram(runs, tmp_path / "cd.png", tmp_path / "cd.svg", metric="accuracy", track=TR,
                         exclude=["d"], out_json=tmp_path / "cd.json")
    _assert_drawn(tmp_path / "cd.png", tmp_path / "cd.svg")
    assert s["ranks"] == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert s["n_blocks"] == 5 and s["p"] is not None and s["drawn"] == "cd"
    # Friedman statistic by hand: k=3, N=5, rank sums 5, 10, 15:
    # chi2 = 12/(N k (k+1)) * sum(R^2) - 3 N (k+1) = 12/60 * (25+100+225) - 60 = 70 - 60 = 10
    assert s["statistic"] == pytest.approx(10.0)
    # Nemenyi CD for k=3, N=5: 2.343 * sqrt(3*4/30) (Demsar 2006 Table 5a)
    assert s["critical_difference"] == pytest.approx(2.343 * math.sqrt(12 / 30), abs=2e-3)
    saved = json.loads((tmp_path / "cd.json").read_text())
    assert saved["excluded"] == ["d"] and set(saved["nemenyi"]) == {"a", "b", "c"}
    # too few methods: still a figure, saying so
    s2 = rank_plots.cd_diagram(runs, tmp_path / "cd2.png", tmp_path / "cd2.svg", track=TR, exclude=["c", "d"])
    assert s2["p"] is None
    _assert_drawn(tmp_path / "cd2.png")


def test_cd_diagram_only_like_networks_and_intervals_below_five_blocks(tmp_path):
    runs = _cd_runs()
    s = rank_plots.cd_diagram(runs, tmp_path / "cd.png", tmp_path / "cd.svg", track=TR, methods=["a", "b", "c"],
                         group="students")
    assert set(s["ranks"]) == {"a", "b", "c"}  # d is not one of the group: never ranked
    four = runs[runs["dimension"] != "familiarity"]
    s = rank_plots.cd_diagram(four, tmp_path / "iv.png", tmp_path / "iv.svg", track=TR, methods=["a", "b", "c"],
                         group="students", out_json=tmp_path / "iv.json")
    assert s["drawn"] == "intervals" and "4 block(s)" in s["why"] and s["nemenyi"] == {}
    assert s["methods_compared"] == ["a", "b", "c"]
    _assert_drawn(tmp_path / "iv.png", tmp_path / "iv.svg")


# ----------------------------------------------------------------------------------------------
# bars


def test_mean_ci_hand_computed():
    # values 1, 2, 3: mean 2, sample sd 1, t(0.975, df=2) = 4.302652729911275 (t table)
    m, lo, hi = intervals.mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3.0)
    assert m == pytest.approx(2.0)
    assert (lo, hi) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    m, lo, hi = intervals.mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)


def test_table_bars(grid, tmp_path):
    t = _table(tmp_path / "students.csv", [
        dict(dataset=DS, dimension=DIM, method="baseline", label="No KD", metric="accuracy", mean=60.5, std=0.7,
             n=2, published=None, synthetic=True),
        dict(dataset=DS, dimension=DIM, method="kd", label="KD", metric="accuracy", mean=70.5, std=0.7, n=2,
             published=62.11, synthetic=True),
    ])
    bars = table_bars(t, grid["runs_csv"], tmp_path / "b.png", tmp_path / "b.svg", title="Students",
                            track=TR)
    _assert_drawn(tmp_path / "b.png", tmp_path / "b.svg")
    kd = bars.set_index("method").loc["kd"]
    # kd accuracy per seed: 70, 71 -> mean 70.5, sd 0.7071, t(0.975, 1) = 12.706204736174698
    half = 12.706204736174698 * math.sqrt(0.5) / math.sqrt(2)
    assert kd["mean"] == pytest.approx(70.5) and kd["n"] == 2
    assert kd["ci_high"] == pytest.approx(70.5 + half)
    assert kd["published"] == pytest.approx(62.11)
    # CLI
    assert _plots(["bars", "--table", str(t), "--runs", str(grid["runs_csv"]), "--track", TR,
                             "--out-png", str(tmp_path / "c.png")]) == 0
    _assert_drawn(tmp_path / "c.png")


# ----------------------------------------------------------------------------------------------
# stats CLI


def test_main_stats(grid, tmp_path, capsys):
    out = tmp_path / "stats.csv"
    assert cli.main(["stats", "--runs", str(grid["runs_csv"]), "--out", str(out),
                             "--references", json.dumps({TR: ["baseline"]}),
                             "--test-fraction", "0.1"]) == 0
    st = pd.read_csv(out)
    assert set(st["method"]) == {"teacher", "kd"} and set(st["reference"]) == {"baseline"}
    # kd - baseline = 10 on both seeds: zero variance, no p-value made up
    row = st[(st["method"] == "kd") & (st["metric"] == "accuracy") & (st["test"] == "corrected_t")].iloc[0]
    assert row["effect"] == pytest.approx(10.0) and math.isnan(row["p"])
    capsys.readouterr()
    assert cli.main(["stats", "--runs", str(grid["runs_csv"]), "--out", str(out), "--references", '["baseline"]']) == 2
    assert "error: tracks.<track>.references" in capsys.readouterr().err


def test_rank_figures_group_ambokd_by_what_its_evaluated_network_reads():
    """AMBOKD trains on face + EEG (modalities: teacher) but its evaluated network is the visual
    branch: the rank figures put it among the students of face_eeg-to-face, not the teachers
    (cmkd.config.like_networks, read by cmkd.workflow.figure_jobs.cd_group_methods)."""
    from pathlib import Path

    import yaml

    from cmkd.config import evaluated_modalities, like_networks
    from cmkd.methods import REGISTRY

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    tr = "face_eeg-to-face"
    assert cfg["methods"]["ambokd"]["modalities"] == "teacher" and REGISTRY["ambokd"].evaluates == "student"
    assert evaluated_modalities(cfg, "ambokd", tr) == ["face"]
    assert evaluated_modalities(cfg, "teacher", tr) == ["eeg", "face"]
    students = like_networks(cfg, tr, "students", leave_out=["teacher_leaky", "baseline_eeg_leaky"])
    teachers = like_networks(cfg, tr, "teachers")
    assert "ambokd" in students and "ambokd" not in teachers
    assert {"baseline", "kd", "cdgkd"} <= set(students) and {"teacher", "teacher_proto", "cnn_svm"} <= set(teachers)
    assert not set(students) & set(teachers)
    assert "teacher_leaky" not in students and "teacher_leaky" in teachers
