"""cmkd.workflow: what the rules compute (targets, table lookups, figure plans, input functions,
plan-time checks), on the default config and on small variants of it."""
import copy
import json
import re
from types import SimpleNamespace

import pytest

from cmkd.devices import DeviceError
from cmkd.validation import load_config, validate_config
from cmkd.workflow import figure_jobs as figures, inputs, lookup, plan, summary, targets
from cmkd.workflow.grid import (Grid, cell_protocol, network_method_re, other_protocol_methods, protocol_of,
                                trivial_method_re)
from conftest import ROOT

OTHER_PROTOCOL = ["baseline_eeg_leaky", "baseline_kfold", "baseline_loso", "baseline_trial", "mkd_teacher_leaky",
                  "teacher_leaky"]


def _config(**overrides) -> dict:
    cfg, lines = load_config(base=ROOT / "config.yaml")
    cfg.update(overrides)
    cfg["published_tables"] = str(ROOT / cfg["published_tables"])
    validate_config(cfg, lines)
    return cfg


@pytest.fixture(scope="module")
def default_config():
    return _config()


@pytest.fixture
def grid(default_config):
    return Grid.of(copy.deepcopy(default_config))


def W(**kw):
    return SimpleNamespace(**kw)


# ----------------------------------------------------------------------------- table lookups
def test_table_lookups(default_config):
    cfg = default_config
    names = lookup.table_names(cfg)
    assert names == [t["name"] for t in cfg["tables"]] and names[:2] == ["unimodal_vs_fusion", "students"]
    assert lookup.table_track(cfg, "students") == "face_eeg-to-face"
    assert lookup.table_track(cfg, "mkd_students") == "eeg_eog-to-eog"
    assert lookup.table_track(cfg, "all_methods") == "all tracks"  # a table over every track
    assert lookup.table_bar_track(cfg, "all_methods") == "" and lookup.table_bar_track(cfg, "nosuch") == ""
    assert lookup.table_bar_track(cfg, "uaproto") == "face-to-eeg"
    assert lookup.table_title(cfg, "teachers") == "Multimodal teachers (CDGKD Table 3)"
    assert lookup.table_title(cfg, "nosuch") == "nosuch" and lookup.table_entry(cfg, "nosuch") is None


# ----------------------------------------------------------------------------- protocols, exclusions
def test_methods_on_another_protocol(default_config):
    cfg = default_config
    assert other_protocol_methods(cfg) == OTHER_PROTOCOL
    cell = ("synthetic", "face_eeg-to-face")
    assert cell_protocol(cfg, *cell) == cell_protocol(cfg, *cell, "baseline") == ("kfold", 2, "pooled")
    assert cell_protocol(cfg, *cell, "teacher_leaky") == ("kfold", 5, "segment")
    assert cell_protocol(cfg, *cell, "baseline_trial") == ("trial",)
    assert cell_protocol(cfg, *cell, "baseline_loso") == ("loso",)
    # the kind's declared defaults fill what a split leaves out (5 folds, pooled)
    assert protocol_of({"kind": "kfold"}) == ("kfold", 5, "pooled")
    # the same protocol written out again is the config's
    variant = copy.deepcopy(cfg)
    variant["methods"]["baseline_trial"]["split"] = {"kind": "kfold", "n_folds": 2}
    assert "baseline_trial" not in other_protocol_methods(variant)


def test_excluded_figures(grid):
    trivial = ["majority", "stratified"]
    assert figures.excluded(grid, "feature_maps") == OTHER_PROTOCOL + trivial
    assert figures.excluded(grid, "gains") == OTHER_PROTOCOL + trivial
    assert figures.excluded(grid, "learning_curves") == trivial
    assert figures.excluded(grid, "cd") == OTHER_PROTOCOL
    # a cell's feature-map inputs leave those methods out, its learning curves only the trivial ones
    w = W(dataset="synthetic", track="face_eeg-to-face", dimension="arousal")
    maps = targets.cell_run_files(grid, w, "features.npz", figures.excluded(grid, "feature_maps"))
    curves = targets.cell_run_files(grid, w, "history.csv", figures.excluded(grid, "learning_curves"))
    method = re.compile(r"results/synthetic/face_eeg-to-face/arousal/([a-z0-9_]+)/seed\d/")
    in_maps = {method.match(p).group(1) for p in maps}
    in_curves = {method.match(p).group(1) for p in curves}
    assert in_maps and not in_maps & set(OTHER_PROTOCOL + trivial)
    assert {"teacher_leaky", "baseline_loso"} <= in_curves and not in_curves & set(trivial)
    assert len(maps) == 3 * len(in_maps)  # every seed


def test_figures_with_nothing_to_draw_are_not_planned(default_config):
    g = Grid.of(copy.deepcopy(default_config))
    planned = figures.plot_targets(g)
    fig = "results/summary/figures"
    assert f"{fig}/cd/face-to-eeg/students/rmse.png" in planned  # the regression dimension's ranking
    # no feature map of a cell whose only networks ran on another protocol; no map of a trivial baseline
    assert all(len(c) == 3 for c in figures.feature_map_cells(g))
    cfg = copy.deepcopy(default_config)
    for exp in cfg["experiments"]:
        exp["dimensions"] = [d for d in exp["dimensions"] if cfg["dimensions"][d].get("task") != "regression"]
    cfg["experiments"] = [e for e in cfg["experiments"] if e["dimensions"]]
    planned = figures.plot_targets(Grid.of(cfg))
    assert not [p for p in planned if p.endswith("/rmse.png")]


# ----------------------------------------------------------------------------- CD groups
def test_cd_groups(grid):
    assert figures.cd_figures(grid) == [
        ("eeg_eog-to-eog", "students", "accuracy"), ("eye-to-eeg", "students", "accuracy"),
        ("eye-to-eeg", "teachers", "accuracy"), ("face-to-eeg", "students", "accuracy"),
        ("face-to-eeg", "students", "rmse"), ("face_eeg-to-face", "students", "accuracy"),
        ("face_eeg-to-face", "teachers", "accuracy")]
    assert figures.cd_group_methods(grid, "eye-to-eeg", "teachers") == ["teacher", "cmcrd_teacher"]
    students = figures.cd_group_methods(grid, "eeg_eog-to-eog", "students")
    assert students[:4] == ["majority", "stratified", "baseline_eog", "mkd_student_nokd"]
    teachers = figures.cd_group_methods(grid, "face_eeg-to-face", "teachers")
    assert "teacher" in teachers and "teacher_leaky" not in teachers  # another protocol: not ranked
    for track in {c[1] for c in grid.cells}:
        s, t = (set(figures.cd_group_methods(grid, track, g)) for g in ("students", "teachers"))
        assert not s & t and not (s | t) & set(OTHER_PROTOCOL), track


# ----------------------------------------------------------------------------- targets
def test_targets_of_the_default_config(grid):
    got = targets.default_targets(grid)
    r, fig = "results/summary", "results/summary/figures"
    assert len(got) == len(set(got)) == 78
    assert got[0] == f"{r}/runs.csv"
    tables = lookup.table_names(grid.config)
    assert got[1:1 + len(tables)] == [f"{r}/tables/{n}.html" for n in tables]
    assert {f"{r}/stats.csv", f"{r}/claims.csv", f"{fig}/published_vs_reproduced.png"} <= set(got)
    gains = [t["name"] for t in grid.config["tables"] if t.get("gains")]   # averaged differences: no bar plot
    assert gains == ["cmcrd_average_gains"] and f"{fig}/tables/cmcrd_average_gains.png" not in got
    assert {f"{fig}/tables/{n}.png" for n in tables if n not in gains} <= set(got)
    assert len([p for p in got if p.endswith("/features_tsne.png")]) == 8 == len(figures.feature_map_cells(grid))
    assert len([p for p in got if p.endswith("/curves.png")]) == 8
    assert sorted(p.rsplit("/", 1)[1] for p in got if p.startswith(f"{fig}/gains/")) == [
        "eeg_eog-to-eog.png", "eye-to-eeg.png", "face-to-eeg.png", "face_eeg-to-face.png"]
    assert not [p for p in got if "tuning" in p]  # tuning is off in the default
    assert len(targets.all_metrics(grid)) == len(grid.cells) * 3 == 139 * 3


def test_tuning_targets_only_with_tuning_and_a_tuned_method(default_config):
    cfg = copy.deepcopy(default_config)
    assert targets.tuning_targets(cfg, {"n_trials": 2}) == []  # no tuned method
    cfg["methods"]["kd"]["tuning"] = {"n_trials": 2}
    assert targets.tuning_targets(cfg, None) == []
    assert targets.tuning_targets(cfg, {"n_trials": 2}) == ["results/summary/tuning.csv", "results/summary/tuning.html"]
    assert targets.tuned_methods(cfg) == ["kd"]


# ----------------------------------------------------------------------------- training jobs
def test_training_rule_inputs_per_cell_and_per_seed(default_config):
    cfg = copy.deepcopy(default_config)
    g = Grid.of(cfg)
    w = W(dataset="synthetic", track="face_eeg-to-face", dimension="arousal", method="kd")
    run = "results/synthetic/face_eeg-to-face/arousal"
    assert inputs.teacher_checkpoints(g, w) == [f"{run}/teacher/seed{s}/model.pt" for s in (0, 1, 2)]
    assert inputs.train_outputs(g, "model.pt") == [
        "results/{dataset}/{track}/{dimension}/{method}/seed" + f"{s}/model.pt" for s in (0, 1, 2)]
    assert inputs.job_file(g, "logs", "train", "log") == "results/logs/train/{dataset}/{track}/{dimension}/{method}.log"
    assert [item["out"] for item in json.loads(inputs.train_specs_json(g, w))] == [
        f"{run}/kd/seed{s}" for s in (0, 1, 2)]
    g1 = Grid.of({**cfg, "seeds_per_job": 1})
    w1 = W(**vars(w), seed="2")
    assert inputs.teacher_checkpoints(g1, w1) == [f"{run}/teacher/seed2/model.pt"]
    assert inputs.train_outputs(g1, "model.pt") == "results/{dataset}/{track}/{dimension}/{method}/seed{seed}/model.pt"
    assert inputs.job_file(g1, "benchmarks", "train", "tsv").endswith("/{method}/seed{seed}.tsv")
    assert inputs.study_files(g, w) == []  # untuned
    assert inputs.teacher_checkpoints(g, W(**{**vars(w), "method": "teacher"})) == []


def test_method_wildcards_tell_network_from_trivial_jobs(grid):
    net, triv = network_method_re(grid), trivial_method_re(grid)
    path = r"results/synthetic/t/arousal/({})/seed0/metrics\.json"
    for name, is_trivial in [("majority", True), ("stratified", True), ("teacher", False), ("majority_vote", False)]:
        p = f"results/synthetic/t/arousal/{name}/seed0/metrics.json"
        assert bool(re.fullmatch(path.format(triv), p)) is is_trivial, name
        assert bool(re.fullmatch(path.format(net), p)) is not is_trivial, name
    empty = Grid(config=grid.config)  # no trivial baseline: the trivial rule matches nothing
    assert not re.fullmatch(trivial_method_re(empty), "majority") and re.fullmatch(network_method_re(empty), "majority")


# ----------------------------------------------------------------------------- planning
def test_dry_run_detection():
    assert plan.is_dry_run(True, [])
    for argv in (["-n"], ["-pn"], ["--dry-run"], ["--cores", "1", "--just-print"]):
        assert plan.is_dry_run(False, argv), argv
    for argv in ([], ["--cores", "1"], ["--notemp"], ["-p"]):
        assert not plan.is_dry_run(False, argv), argv


def test_gpu_jobs_with_a_cpu_torch_are_refused_unless_a_dry_run(monkeypatch):
    def no_cuda(gpus, allow_cpu_torch=False):
        if allow_cpu_torch:
            return ["torch is a CPU build (allowed)"]
        raise DeviceError("torch is a CPU build")

    monkeypatch.setattr(plan, "cluster_check", no_cuda)
    assert plan.gpu_plan_lines(0, {}, conda=False, dry_run=False) == []  # no GPU asked: nothing checked
    assert plan.gpu_plan_lines(1, {}, conda=True, dry_run=False) == []  # the jobs run envs/cuda.yaml
    with pytest.raises(plan.PlanError, match="GPU jobs: torch is a CPU build"):
        plan.gpu_plan_lines(1, {}, conda=False, dry_run=False)
    assert plan.gpu_plan_lines(1, {}, conda=False, dry_run=True) == [
        "warning: GPU jobs: torch is a CPU build (a dry-run: planned anyway)"]
    assert plan.gpu_plan_lines(1, {"allow_cpu_torch": True}, conda=False, dry_run=False) == [
        "cluster: torch is a CPU build (allowed)"]


def test_where_training_jobs_run():
    assert plan.job_on_gpu({"device": "cuda"}, 0) and plan.job_on_gpu({}, 1)
    assert not plan.job_on_gpu({"device": "cpu"}, 1) and not plan.job_on_gpu({}, 0)
    assert plan.train_env_name({}, 1) == "cuda" == plan.train_env_name({"device": "cuda"}, 0)
    assert plan.train_env_name({"device": "auto"}, 0) == "cpu"
    assert plan.train_gpus({"train": {"gpu": 2}}) == 2 and plan.train_gpus({}) == 0


def test_invalid_config_stops_planning(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["training"]["max_epochs"] = -1
    with pytest.raises(plan.PlanError, match=r"^invalid config: .*max_epochs"):
        plan.check_config(cfg, [str(ROOT / "config.yaml")], jobs_use_this_python=True)


def test_training_resources_are_the_estimate_per_job(grid):
    from cmkd import resources

    w = W(dataset="synthetic", track="face_eeg-to-face", dimension="arousal", method="teacher")
    mem = plan.train_resource(grid, "mem_mb", gpu=False)
    assert mem(w, 2) == resources.estimate(grid.config, "synthetic", "face_eeg-to-face", "arousal", "teacher", 3, 2)["mem_mb"]
    runtime = plan.train_resource(grid, "runtime", gpu=False, n_seeds=7)
    assert runtime(w, 1) == resources.estimate(grid.config, "synthetic", "face_eeg-to-face", "arousal", "teacher", 7)["runtime"]


# ----------------------------------------------------------------------------- summary specs
def test_summary_specs(grid):
    cfg = grid.config
    assert summary.test_fraction(grid) == pytest.approx(0.1)  # baseline_trial's 8:1:1 (the config's split is k-fold)
    refs = summary.track_references(cfg)
    assert set(refs) == set(cfg["tracks"]) and all(refs.values())
    spec = json.loads(summary.tables_spec(grid, cfg["published_tables"]))
    assert [t["name"] for t in spec["tables"]] == lookup.table_names(cfg)
    assert spec["trivial_methods"] == {"majority": "majority", "stratified": "stratified"}
    assert spec["protocol"]["splits"]["synthetic/face_eeg-to-face/teacher_leaky"]["folds_by"] == "segment"
    # what each method distils from (the cost of more runs counts them): CDGKD's teacher and assistants
    assert spec["requires"]["cdgkd"] == list(cfg["methods"]["cdgkd"]["requires"].values())
    assert "baseline" not in spec["requires"]
    assert json.loads(summary.claims_datasets_json(cfg))["synthetic"]["synthetic"] is True
    assert summary.project_file("config/claims.yaml", "/elsewhere") in ("config/claims.yaml", "/elsewhere/config/claims.yaml")
    assert summary.project_file("no/such.yaml", "/base") == "/base/no/such.yaml"
