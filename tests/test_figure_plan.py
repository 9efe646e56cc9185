"""No empty figure: which figures exist is decided from the config at plan time
(cmkd.analysis.figure_plan, workflow/rules/plots.smk)."""
import copy
import re
from pathlib import Path

import yaml

from cmkd.analysis import figure_plan as fp
from cmkd.config import iter_cells

ROOT = Path(__file__).resolve().parents[1]


def _default():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _cfg_with(experiments):
    cfg = _default()
    cfg["experiments"] = experiments
    cfg["trivial_methods"] = []
    return cfg


def test_rank_figures_need_two_networks_of_the_metric_task():
    cfg = _cfg_with([{"dataset": "synthetic", "track": "face-to-eeg", "dimensions": ["arousal"],
                      "methods": ["teacher", "baseline", "kd"]}])
    cells = list(iter_cells(cfg))
    # classification only: no RMSE ranking; one teacher: no teachers' ranking
    assert fp.cd_figures(cfg, cells) == [("face-to-eeg", "students", "accuracy")]
    cfg["experiments"][0]["dimensions"] = ["arousal", "valence_reg"]
    cells = list(iter_cells(cfg))
    assert fp.cd_figures(cfg, cells) == [("face-to-eeg", "students", "accuracy"), ("face-to-eeg", "students", "rmse")]
    # a method left out (another split) is not a network to rank
    assert fp.cd_figures(cfg, cells, leave_out=["kd"]) == []


def test_gain_figures_need_the_reference_and_another_network():
    cfg = _cfg_with([{"dataset": "synthetic", "track": "face-to-eeg", "dimensions": ["arousal"],
                      "methods": ["teacher", "baseline"]}])
    cells = list(iter_cells(cfg))
    assert fp.gains_tracks(cfg, cells) == ["face-to-eeg"]
    assert fp.gains_tracks(cfg, cells, leave_out=["teacher"]) == []
    cfg["experiments"][0]["methods"] = ["teacher", "kd"]           # kd requires the teacher; no baseline
    assert fp.gains_tracks(cfg, list(iter_cells(cfg))) == []
    cfg2 = copy.deepcopy(cfg)
    cfg2["tracks"]["face-to-eeg"]["references"] = ["kd", "baseline"]   # kd is not of class baseline
    assert fp.gains_reference(cfg2, "face-to-eeg") == "baseline"


def test_default_plans_no_figure_it_cannot_draw(tmp_path, snakemake_runner):
    """A dry-run of the default lists its figure targets; each must be drawable from the config:
    RMSE rankings only for tracks with a regression dimension and two networks of the group on it,
    gain figures only where the track's no-KD reference and another network ran, feature maps and
    curves only for cells of the grid."""
    cfg = _default()
    cfg["published_tables"] = str(ROOT / "config" / "published_tables.yaml")
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    figs = set(re.findall(r"results/summary/figures/([^\s,]+)\.png", r.stdout + r.stderr))
    assert figs, (r.stdout + r.stderr)[-2000:]
    cells = list(iter_cells(cfg))
    split = cfg["split"]

    def protocol(sp):
        return (sp["kind"], sp.get("n_folds"), sp.get("folds_by", "pooled")) if sp["kind"] == "kfold" else (sp["kind"],)

    def same_split(m):  # runs on another split are left out of rankings and gain figures
        return protocol({**split, **(cfg["methods"][m].get("split") or {})}) == protocol(split)

    trivial = set(cfg.get("trivial_methods") or [])
    checked = {"cd": 0, "gains": 0}
    for f in figs:
        parts = f.split("/")
        if parts[0] == "cd":
            track, group, metric = parts[1:]
            task = "regression" if metric == "rmse" else "classification"
            tr = cfg["tracks"][track]
            want = sorted(tr["student" if group == "students" else "teacher"])
            nets = set()
            for ds, t, dim, m in cells:
                mods = cfg["methods"][m].get("modalities", "student")
                mods = tr["student"] if mods == "student" else tr["teacher"] if mods == "teacher" else mods
                if (t == track and sorted(mods) == want and same_split(m)
                        and cfg["dimensions"][dim].get("task", "classification") == task):
                    nets.add(m)
            assert len(nets) >= 2, f"{f}: {sorted(nets)} cannot be ranked (placeholder figure)"
            checked["cd"] += 1
        elif parts[0] == "gains":
            track = parts[1]
            ref = next(m for m in cfg["tracks"][track]["references"] if cfg["methods"][m]["class"] == "baseline")
            ok = any((ds, track, dim, ref) in cells and any(
                (ds, track, dim, m) in cells for m in cfg["methods"] if m != ref and m not in trivial and same_split(m))
                for ds, dim in {(c[0], c[2]) for c in cells if c[1] == track})
            assert ok, f"{f}: no per-subject results of {ref} and another network (placeholder figure)"
            checked["gains"] += 1
        elif parts[0] not in ("tables", "published_vs_reproduced"):
            ds, track, dim = parts[:3]
            assert any(c[:3] == (ds, track, dim) for c in cells), f
    # every track of the default has its gain figure (per-subject results for every protocol)
    assert checked["gains"] == len({c[1] for c in cells})
    assert checked["cd"] > 0
    regression_tracks = {c[1] for c in cells if cfg["dimensions"][c[2]].get("task") == "regression"}
    assert {f.split("/")[1] for f in figs if f.endswith("/rmse")} <= regression_tracks
