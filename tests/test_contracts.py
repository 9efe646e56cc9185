"""The contracts that let a method (or a method group) be added in one place: the registry entry
declares the method's parameters, the config check enforces them before any job runs, and every
registered class fulfils the method interface of :class:`cmkd.methods.base.Method`."""
from __future__ import annotations

import copy
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, tiny_config
from cmkd.config import deep_merge, iter_cells, run_spec, select_datasets
from cmkd.validation import check_semantics
from cmkd.errors import ConfigError
from cmkd.methods import REGISTRY, method_class, method_params, registered_name
from cmkd.methods.base import Method, RunContext
from cmkd.params import Param, defaults_of


def _default_config() -> dict:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["trivial_methods"] = []  # the trivial baselines every experiment gets are tested in test_trivial.py
    return cfg


# ----------------------------------------------------------------------------- the registry
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_resolves_and_declares_its_parameters(name):
    info = REGISTRY[name]
    cls = method_class(name)
    assert issubclass(cls, Method)
    assert registered_name(cls) == name  # the class finds its own entry (its parameters)
    for p, decl in info.params.items():
        assert isinstance(decl, Param), f"{name}.{p}: declare a Param (kind, range), not a bare default"
        decl.check(decl.default, f"methods.x.params.{p}")  # every default passes its own check
    assert cls.default_params() == defaults_of(info.params)
    assert method_params(name, None, "methods.x.params") == defaults_of(info.params)
    if not info.variadic_roles:
        assert tuple(cls.roles) == tuple(info.roles)


def test_method_errors_name_the_run_config_key():
    """Errors of a method name the run's config key (``Method.method_key`` / ``params_key``, from
    the run context), never a placeholder such as ``methods.<cdgkd>`` that a user cannot find in
    the config: no method module writes ``methods.<`` into an error message."""
    pkg = ROOT / "src" / "cmkd" / "methods"
    placeholder = re.compile(r"""f?["']methods\.<""")
    bad = [f"{f.name}:{i}" for f in sorted(pkg.glob("*.py")) if f.name != "base.py"
           for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
           if placeholder.search(line) and not line.lstrip().startswith("#")]
    assert not bad, f"placeholder config keys in error messages: {bad}"


def test_every_method_module_is_registered():
    """A class in a module's METHODS table and not in the registry would be unreachable."""
    import importlib
    import pkgutil

    import cmkd.methods as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        m = importlib.import_module(f"cmkd.methods.{mod.name}")
        for name, cls in getattr(m, "METHODS", {}).items():
            assert name in REGISTRY and REGISTRY[name].module == m.__name__, name
            assert method_class(name) is cls


# ----------------------------------------------------------------------------- check_config
def test_check_config_accepts_the_shipped_configs():
    cfg = _default_config()
    cfg.update(select_datasets(cfg))  # as the one validation path does: tables of the paper grid's data sets go
    assert check_semantics(cfg) == []
    paper = deep_merge(cfg, yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    for key, m in paper["methods"].items():  # the paper grid's parameters (its data roots are not here)
        method_params(m["class"], m.get("params"), f"methods.{key}.params")


@pytest.mark.parametrize("params, expected", [
    ({"alpah": 0.5}, r"^methods\.kd\.params\.alpah: unknown key \(accepted: alpha, temperature, weights\)$"),
    ({"alpha": "half"}, r"^methods\.kd\.params\.alpha: must be a finite number, got 'half'$"),
    ({"alpha": 1.5}, r"^methods\.kd\.params\.alpha: must be <= 1\.0, got 1\.5$"),
    ({"temperature": 0}, r"^methods\.kd\.params\.temperature: must be > 0\.0, got 0$"),
    ({"alpha": True}, r"^methods\.kd\.params\.alpha: must be a finite number, got True$"),
    ([0.5], r"^methods\.kd\.params: must be a mapping"),
], ids=["unknown", "string", "range", "open-bound", "bool", "not-a-mapping"])
def test_check_config_rejects_bad_method_parameters(params, expected):
    cfg = _default_config()
    cfg["methods"]["kd"]["params"] = params
    with pytest.raises(ConfigError, match=expected):
        check_semantics(cfg)


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["methods"]["crd"]["params"].update(nce_k=4096.5), r"methods\.crd\.params\.nce_k: must be an integer"),
    (lambda c: c["methods"]["cmcrd"].setdefault("params", {}).update(weighting="both"),
     r"methods\.cmcrd\.params\.weighting: must be one of \['teacher', 'student', 'none'\]"),
    (lambda c: c["methods"]["cdgkd"].setdefault("params", {}).update(stochastic="yes"),
     r"methods\.cdgkd\.params\.stochastic: must be true or false"),
    (lambda c: c["method_groups"].update(kd=["baseline"]), r"method_groups\.kd: the name is also a method"),
    (lambda c: (c["method_groups"].update(extra=["nosuch"]), c["experiments"][0]["methods"].append("extra")),
     r"method_groups\.extra: unknown method 'nosuch'"),
    (lambda c: (c["method_groups"].update(a=["b"], b=["a"]), c["experiments"][0]["methods"].append("a")),
     r"method_groups\.a: circular group a -> b -> a"),
    (lambda c: c["experiments"][0]["methods"].append("nosuch"), r"experiments\[0\]\.methods: unknown method 'nosuch'"),
], ids=["int", "choice", "bool", "group-name-clash", "group-member", "group-cycle", "experiment-method"])
def test_check_config_errors_name_the_key(mutate, expected):
    cfg = _default_config()
    mutate(cfg)
    with pytest.raises(ConfigError, match=expected):
        check_semantics(cfg)


def test_method_groups_expand_in_order():
    cfg = _default_config()
    cells = [c for c in iter_cells(cfg) if c[1] == "face-to-eeg" and c[2] == "arousal"]
    assert [c[3] for c in cells] == cfg["method_groups"]["uaproto_setting"]


def test_groups_no_experiment_uses_are_not_checked():
    """A config trimmed to a few methods keeps the shipped groups without listing their members."""
    cfg = _default_config()
    cfg["methods"] = {k: cfg["methods"][k] for k in ("teacher", "baseline", "kd")}
    cfg["experiments"] = [{"dataset": "synthetic", "track": "face-to-eeg", "dimensions": ["arousal"],
                           "methods": ["teacher", "baseline", "kd"]}]
    cfg["tables"] = []
    assert check_semantics(cfg) == []


def test_parameter_typo_stops_snakemake_before_any_job(tmp_path, snakemake_runner):
    cfg = tiny_config()
    cfg["methods"]["kd"]["params"]["alpah"] = 0.5
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "methods.kd.params.alpah" in ln]
    assert len(lines) == 1, lines
    assert "unknown key" in lines[0]
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- the method interface
def test_train_loop_calls_hooks_without_probing():
    src = (ROOT / "src" / "cmkd" / "train.py").read_text()
    assert not re.search(r"hasattr\(method|getattr\(method", src)
    assert "run_seed" not in src
    m = Method(torch.nn.Linear(1, 1), {}, {}, "classification", 2)
    m.configure(parts=None, device=None, optimizer=None)
    m.after_step({})
    m.on_epoch_start(1, torch.Generator())
    assert m.epoch_summary() == {}  # no extra history.csv columns by default
    assert dict(m.diagnostics) == {}
    with pytest.raises(AttributeError, match="context=RunContext"):
        m.run_seed = 3  # the seed is given at construction
    m = Method(torch.nn.Linear(1, 1), {}, {}, "classification", 2, context=RunContext(seed=5, key="kd_x"))
    assert m.context.seed == 5 and m.run_seed == 5 and m.params_key == "methods.kd_x.params"


def _tiny_grid() -> dict:
    cfg = _default_config()
    cfg["datasets"]["synthetic"]["params"] = {
        "n_subjects": 3, "n_trials": 6, "segments_per_trial": 2, "sampling_rate": 32, "face_frames": 1, "face_size": 32}
    cfg["encoders"]["eeg"].update({"num_T": 4, "num_S": 4})
    return cfg


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from cmkd.data.prepared import load_prepared
    from cmkd.data.synthetic import write_synthetic

    cfg = _tiny_grid()
    out = tmp_path_factory.mktemp("prep") / "synthetic"
    write_synthetic(out, cfg["datasets"]["synthetic"]["params"], 0)
    return cfg, load_prepared(out)


def _build(spec, prep, n_classes):
    from cmkd.models.registry import build_model
    from cmkd.train import model_inputs

    return build_model({"architecture": spec.get("architecture"), "model": spec.get("model") or {},
                        "modalities": spec["modalities"], "encoders": spec["encoders"],
                        "inputs": model_inputs(prep, spec["modalities"]), "head": spec["head"], "n_outputs": n_classes})


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_one_step_of_every_registered_method(name, grid):
    """Built as the training loop builds it (first cell of the default grid using the class): one
    step gives finite terms, the step changes the student and leaves the frozen checkpoints alone
    (unless the class declares ``teachers_trainable``). Trivial baselines take no step (test_trivial.py)."""
    if REGISTRY[name].trivial:
        pytest.skip("a trivial baseline is fitted, not trained by steps")
    from cmkd.data import labels as labels_mod
    from cmkd.data import selection
    from cmkd.data import splits as splits_mod
    from cmkd.run.method_setup import method_parts
    from cmkd.train import build_parts

    cfg, prep = grid
    cell = next((c for c in iter_cells(cfg) if cfg["methods"][c[3]]["class"] == name
                 and cfg["dimensions"][c[2]]["task"] == "classification"), None)
    assert cell is not None, f"no classification cell of the default grid uses method class {name!r}"
    ds, tr, dim, key = cell
    spec = run_spec(cfg, ds, tr, dim, key, 0)
    torch.manual_seed(0)
    student = _build(spec, prep, 2)
    teachers, needed = {}, list(spec["modalities"])
    for role, req in spec["requires"].items():
        tspec = run_spec(cfg, ds, tr, dim, req["method"], 0)
        teachers[role] = _build(tspec, prep, 2)
        needed += [m for m in tspec["modalities"] if m not in needed]
    y = labels_mod.targets(prep, spec["dimension_spec"].get("target", dim), "classification", 5.0)
    split = splits_mod.make_split(np.asarray(prep["subject"]), np.asarray(prep["trial"]), 0, ratios=spec["split"]["ratios"])
    parts, _ = build_parts(prep, needed, y, split, "classification")
    held_out = selection.hold_out_feedback(parts, prep["subject"], prep["trial"], spec["split"].get("feedback_fraction"),
                                           "classification").pop("feedback", None)  # the split's hold-out, as the loop makes it
    cls = method_class(name)
    parts = method_parts(cls, parts, held_out)  # and gives it to a method that declares the need
    val_before = np.asarray(parts["val"].index).copy()
    m = cls(student, teachers, spec["params"], "classification", 2, context=RunContext(seed=0, key=key, device="cpu"))
    opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-2)
    m.configure(parts=parts, device=torch.device("cpu"), optimizer=opt)
    # one validation set per table column: no method changes the part it selects on
    assert np.array_equal(np.asarray(parts["val"].index), val_before), f"{name}: configure() changed the validation part"
    m.train()
    m.on_epoch_start(1, torch.Generator().manual_seed(0))
    batch = parts["train"].batch(torch.arange(min(8, len(parts["train"]))), torch.device("cpu"))
    before_s = [p.detach().clone() for p in m.student.parameters()]
    before_t = {r: [p.detach().clone() for p in t.parameters()] for r, t in m.teachers.items()}
    logits, terms = m.training_step(batch)
    assert terms and logits.shape[0] == len(batch["y"])
    for k, v in terms.items():
        assert torch.isfinite(v).all(), f"{name}: term {k} is not finite"
    total = sum(terms.values())
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    m.after_step(batch)
    assert any(not torch.equal(a, p) for a, p in zip(before_s, m.student.parameters())), f"{name}: the student did not change"
    if not cls.teachers_trainable:
        for r, t in m.teachers.items():
            assert all(torch.equal(a, p) for a, p in zip(before_t[r], t.parameters())), f"{name}: frozen {r} changed"
    for k, v in dict(m.diagnostics).items():
        assert np.isfinite(float(v)), f"{name}: diagnostic {k}"


# ----------------------------------------------------------------------------- adding a method
def _package_copy(tmp_path) -> Path:
    """A copy of ``src/cmkd`` (the source tree a new module is added to, leaving the real one alone)."""
    import shutil

    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "cmkd", src / "cmkd", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def _run_in(src: Path, script: str, *args: str, timeout: int = 240):
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


TOY_METHOD = '''
    """A throwaway method: its registry entry and its class, in one file."""
    from cmkd.methods.base import Method


    class Toy(Method):
        def training_step(self, batch):
            out = self.student(batch)
            return out.logits, {"ce": self.params["weight"] * self.task_loss(out.logits, batch["y"])}


    REGISTER = {"toy": {"description": "a throwaway method", "extends": ["temperature"],
                        "params": {"weight": {"default": 1.0, "lo": 0.0}}}}

    METHODS = {"toy": Toy}
'''


def test_a_new_method_is_one_module_plus_its_config_entry(tmp_path):
    """A throwaway method file added to a copy of the package, and its config entry, are all it
    takes for the registry, the config check, the grid and a training run (no registry line, schema,
    CLI or table list to edit): the copy differs from the source tree by that one file."""
    import filecmp

    from snakemake.utils import validate

    src = _package_copy(tmp_path)
    (src / "cmkd" / "methods" / "toy.py").write_text(textwrap.dedent(TOY_METHOD))
    cmp = filecmp.dircmp(ROOT / "src" / "cmkd" / "methods", src / "cmkd" / "methods", ignore=["__pycache__"])
    assert cmp.right_only == ["toy.py"] and not cmp.diff_files and not cmp.left_only
    cfg = _tiny_grid()
    cfg["methods"]["toy"] = {"class": "toy", "modalities": ["eeg"], "params": {"weight": 2.0}}
    cfg["experiments"] = [{"dataset": "synthetic", "track": "face-to-eeg", "dimensions": ["arousal"], "methods": ["toy"]}]
    cfg["training"].update(max_epochs=1, patience=1)
    cfg["tables"] = []
    validate(copy.deepcopy(cfg), str(ROOT / "config" / "schema.yaml"))  # no schema list of classes either
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    r = _run_in(src, r'''
        import json, sys
        from pathlib import Path

        import pytest

        import cmkd
        from cmkd.config import iter_cells, run_spec
        from cmkd.validation import check_semantics
        from cmkd.data.synthetic import write_synthetic
        from cmkd.errors import ConfigError
        from cmkd.methods import REGISTRY
        from cmkd.train import run

        assert Path(cmkd.__file__).parent.parent == Path(sys.argv[2]), cmkd.__file__  # the copy
        assert REGISTRY["toy"].module == "cmkd.methods.toy" and "temperature" in REGISTRY["toy"].params
        cfg = json.loads(Path(sys.argv[1]).read_text())
        assert check_semantics(cfg) == []
        assert list(iter_cells(cfg)) == [("synthetic", "face-to-eeg", "arousal", "toy")]
        out = Path(sys.argv[1]).parent
        write_synthetic(out / "prep", cfg["datasets"]["synthetic"]["params"], 0)
        spec = run_spec(cfg, "synthetic", "face-to-eeg", "arousal", "toy", 0)
        spec["prepared"] = str(out / "prep")
        res = run(spec, out / "run")
        assert res["status"] in ("ok", "degenerate") and res["class"] == "toy", res  # 1 epoch: may predict one class
        cfg["methods"]["toy"]["params"] = {"weight": -1}
        with pytest.raises(ConfigError, match=r"^methods\.toy\.params\.weight: must be >= 0\.0, got -1$"):
            check_semantics(cfg)
        print("toy ok")
    ''', str(tmp_path / "cfg.json"), str(src))
    assert r.returncode == 0 and "toy ok" in r.stdout, (r.stdout + r.stderr)[-3000:]
    assert "toy" not in REGISTRY  # this process's registry (the source tree) is untouched


TOY_LOADER = '''
    """A throwaway data set: everything the package tables hold about it, and its prepare function."""
    from pathlib import Path

    from cmkd.data.synthetic import write_synthetic
    from cmkd.errors import DataError

    LOADER = {"name": "toy", "prepare": "prepare_toy", "title": "TOY", "family": "seed",
              "nominal_segments": {"default": 2 * 4 * 1}, "not_recorded": {"eye": "the toy set has no eye tracker"}}


    def prepare_toy(root, out, params):
        if not Path(root).is_dir():
            raise DataError(f"{root}: TOY root directory not found")
        return write_synthetic(out, {"n_subjects": 2, "n_trials": 4, "segments_per_trial": 1,
                                     "face_frames": 1, "face_size": 32, **params}, 0)
'''


def test_a_new_data_set_is_one_loader_module_plus_its_config_entry(tmp_path):
    """A throwaway loader file added to a copy of the package is all the command line (prepare,
    inspect), the config check, the SEED-family list and the resource estimate need (the schema
    lists no loader or modality): the copy differs from the source tree by that one file."""
    import filecmp

    from snakemake.utils import validate

    from cmkd.data import LOADERS

    src = _package_copy(tmp_path)
    (src / "cmkd" / "data" / "toy_loader.py").write_text(textwrap.dedent(TOY_LOADER))
    cmp = filecmp.dircmp(ROOT / "src" / "cmkd" / "data", src / "cmkd" / "data", ignore=["__pycache__"])
    assert cmp.right_only == ["toy_loader.py"] and not cmp.diff_files and not cmp.left_only
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "subjects.txt").write_text("toy\n")  # an empty raw root is a config error
    cfg = _default_config()
    cfg["results"] = str(tmp_path / "results")
    cfg["datasets"]["toy"] = {"loader": "toy", "root": str(raw), "modalities": ["eeg", "eog", "face"]}
    cfg["encoders"]["face"]["allow_random_init"] = True  # a throwaway data set: no ImageNet weights here
    cfg["experiments"][0]["dataset"] = "toy"
    validate(copy.deepcopy(cfg), str(ROOT / "config" / "schema.yaml"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    r = _run_in(src, '''
        import json, sys
        from pathlib import Path

        import pytest

        from cmkd import cli
        from cmkd.config import SEED_FAMILY_LOADERS
        from cmkd.validation import check_semantics
        from cmkd.data.prepared import load_prepared
        from cmkd.data.rawcheck import INSPECTORS
        from cmkd.errors import ConfigError
        from cmkd.resources import NOMINAL_SEGMENTS, dataset_size

        cfg_file = Path(sys.argv[1])
        tmp, raw = cfg_file.parent, cfg_file.parent / "raw"
        assert "toy" in SEED_FAMILY_LOADERS and "toy" in INSPECTORS and NOMINAL_SEGMENTS["toy"] == {"default": 8}
        assert cli.main(["prepare", "toy", "--root", str(raw), "--out", str(tmp / "prep")]) in (0, None)
        assert set(load_prepared(tmp / "prep").modalities) >= {"eeg", "face"}
        try:
            cli.main(["inspect", "toy", "--root", str(raw)])  # the loader run into a temporary folder
        except SystemExit as e:
            assert e.code in (0, None), e.code
        cfg = json.loads(cfg_file.read_text())
        check_semantics(cfg)
        assert dataset_size(cfg, "toy")["n"] == 8  # not prepared under results/: the nominal size
        cfg["datasets"]["toy"]["modalities"].append("eye")
        with pytest.raises(ConfigError, match="^datasets.toy.modalities: no modality 'eye': the toy set has no eye tracker$"):
            check_semantics(cfg)
        cfg["datasets"]["toy"]["loader"] = "nosuch"
        with pytest.raises(ConfigError, match="^datasets.toy.loader: unknown loader 'nosuch'"):
            check_semantics(cfg)
        print("toy ok")
    ''', str(tmp_path / "cfg.json"))
    assert r.returncode == 0 and "toy ok" in r.stdout, (r.stdout + r.stderr)[-3000:]
    assert "subjects: 2" in r.stdout, r.stdout[-2000:]  # the inspect report
    assert "toy" not in LOADERS  # this process's tables (the source tree) are untouched


# ----------------------------------------------------------------------------- deployment
def _pins(path: Path, seen=None) -> dict:
    """``{name: version}`` of the ``name==version`` lines of a pip requirements file (and of the
    files it includes with ``-r``)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            out.update(_pins(path.parent / line[3:].strip()))
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(3)
    return out


@pytest.mark.parametrize("env", ["cpu.yaml", "cuda.yaml"])
def test_conda_envs_pin_the_lock_versions_and_install_the_project(env, tmp_path):
    doc = yaml.safe_load((ROOT / "envs" / env).read_text())
    pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e .." in pip, f"envs/{env}: the project itself must be installed (a job runs `python -m cmkd`)"
    # the pip lines as a requirements file beside the env file, so that -r paths resolve the same
    req = ROOT / "envs" / f".{env}.requirements.txt"
    try:
        req.write_text("\n".join(pip) + "\n")
        pins = _pins(req)
    finally:
        req.unlink()
    lock = _pins(ROOT / ("requirements.cuda.lock.txt" if env == "cuda.yaml" else "requirements.lock.txt"))
    assert "torch" in pins
    for name, version in pins.items():
        assert name in lock, f"envs/{env}: {name} is not in its lock file"
        assert version.split("+")[0] == lock[name].split("+")[0], f"envs/{env}: {name}=={version}, lock {lock[name]}"


def test_jobs_run_the_env_python_under_sdm_conda(tmp_path, snakemake_runner):
    """``--sdm conda -n -p`` prints each job's command: the env's ``python`` (not this venv's),
    and the CUDA env for training with ``device: cuda``. A stand-in ``conda`` answers the version
    and info queries of the dry run (no channel is reached)."""
    import os

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "conda").write_text(textwrap.dedent('''\
        #!/bin/sh
        case "$*" in
          *--version*) echo "conda 24.7.1";;
          *"config --get"*) echo '{"get": {"channel_priority": "strict"}, "rc_path": null, "success": true, "warnings": []}';;
          *info*) echo '{"conda_version": "24.7.1", "root_prefix": "/nonexistent", "conda_prefix": "/nonexistent", "envs_dirs": ["/nonexistent/envs"], "pkgs_dirs": [], "platform": "linux-64", "channels": [], "active_prefix": null}';;
          *) exit 1;;
        esac
    '''))
    (fake / "conda").chmod(0o755)
    cfg = tiny_config()
    cfg["device"] = "cuda"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    try:
        r = snakemake_runner(tmp_path, "--sdm", "conda", "-n", "-p", config=cfg, timeout=180)
    finally:
        monkeypatch.undo()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    # the copies with absolute pip paths (cmkd.conda_envs), not the templates
    assert ".conda-envs/cuda.yaml will be created" in out and ".conda-envs/cpu.yaml will be created" in out
    cmds = [ln for ln in out.splitlines() if "-m cmkd " in ln]
    assert cmds and all(re.search(r"(^|\s)python -m cmkd ", ln) for ln in cmds), cmds[:3]
    assert sys.executable not in out


# ----------------------------------------------------------------------------- models
def test_models_import_graph_is_acyclic():
    """Static imports (module level and inside functions) among cmkd.models modules form no
    cycle; the registry reaches its contributing modules only through EXTRA_MODULES."""
    import ast

    pkg = ROOT / "src" / "cmkd" / "models"
    graph = {}
    for f in pkg.glob("*.py"):
        mod = f"cmkd.models.{f.stem}" if f.stem != "__init__" else "cmkd.models"
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cmkd.models"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)  # from cmkd.models import registry
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("cmkd.models"))
        graph[mod] = deps
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        visit(m, [])


def test_registry_reports_a_broken_extra_module(monkeypatch):
    from cmkd.models import registry

    monkeypatch.setattr(registry, "EXTRA_MODULES", registry.EXTRA_MODULES + ("cmkd.models.nosuch",))
    monkeypatch.setattr(registry, "_extras_loaded", False)
    with pytest.raises(ImportError, match=r"EXTRA_MODULES lists 'cmkd.models.nosuch'"):
        registry.build_model({"modalities": []})


#: tables that compare splits on purpose (their rows differ in split kind): the exception to one
#: validation set per column
SPLIT_COMPARISONS = {"protocols", "leakage", "leakage_eeg", "mkd_leakage"}


def test_every_row_of_a_column_selects_on_the_same_validation_trials(grid):
    """One validation set per table column: for every table of the default grid, every row of a
    column (data set, track, dimension, seed; every fold) selects on the same validation trials
    (:func:`cmkd.data.selection.validation_hashes`, the ``val_hash`` a run records); only the tables
    that compare splits on purpose differ. With the per-method check above (no ``configure`` changes
    the validation part), this covers every registered method."""
    from cmkd.data.selection import validation_hashes

    cfg, prep = grid
    cells = set(iter_cells(cfg))
    cache, differing = {}, set()
    for t in cfg["tables"]:
        rows = list(t.get("rows") or {})
        for ds, tr, dim in sorted({(c[0], c[1], c[2]) for c in cells if "track" not in t or c[1] == t["track"]}):
            present = [m for m in rows if (ds, tr, dim, m) in cells]
            if len(present) < 2:
                continue
            for seed in cfg["seeds"]:
                hashes = {}
                for m in present:
                    spec = run_spec(cfg, ds, tr, dim, m, seed)
                    key = (dim, seed, json.dumps(spec["split"], sort_keys=True))
                    if key not in cache:
                        cache[key] = validation_hashes(prep, spec)
                    hashes[m] = cache[key]
                if len({tuple(h) for h in hashes.values()}) > 1:
                    differing.add(t["name"])
                    assert t["name"] in SPLIT_COMPARISONS, (t["name"], ds, tr, dim, seed, hashes)
    assert differing == SPLIT_COMPARISONS  # the exceptions are real: their rows differ
    assert len(cache) > 5
    # the check sees one row selecting on other trials (here: a row that holds half of its
    # validation trials out, as EmotionKD's feedback did before)
    bad = copy.deepcopy(cfg)
    bad["methods"]["emotionkd"]["split"] = {"feedback_fraction": 0.5}
    a, b = (validation_hashes(prep, run_spec(bad, "synthetic", "face_eeg-to-face", "arousal", m, 0)) for m in ("emotionkd", "kd"))
    assert a != b
