# Shared helpers of the rules: config checks and path/spec resolution (logic lives in cmkd.config).
import json

import yaml
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from cmkd.config import iter_cells, prepared_dir, run_dir, run_spec  # noqa: E402
from cmkd.errors import ConfigError  # noqa: E402
from cmkd.validation import config_lines, validate_config  # noqa: E402
from snakemake.settings.types import DeploymentMethod  # noqa: E402

try:  # schema (defaults filled in), then semantics: cmkd.validation, as `cmkd check`
    _files = ["config.yaml", *workflow.config_settings.configfiles]
    _own_env = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method  # jobs bring their torch
    for _w in validate_config(config, config_lines(_files), jobs_use_this_python=not _own_env):
        print(f"warning: {_w}", file=sys.stderr)
except ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None

R = config["results"]
_pub = Path(config["published_tables"])
PUBLISHED = str(_pub if (_pub.is_absolute() or _pub.exists()) else Path(workflow.basedir) / _pub)
# the interpreter of a job: under --sdm conda the one of the rule's env (which installs the
# project), else the one running Snakemake
PY = "python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method else sys.executable
CELLS = list(iter_cells(config))
SEEDS = [int(s) for s in config["seeds"]]


wildcard_constraints:
    dataset=r"[a-z0-9_]+",
    track=r"[a-z0-9_+\-]+",
    dimension=r"[a-z0-9_]+",
    method=r"[a-z0-9_]+",
    seed=r"\d+",


def metrics_path(ds, tr, dim, m, seed):
    return f"{run_dir(config, ds, tr, dim, m, seed)}/metrics.json"


def cell_run_files(w, name, exclude=()):
    """The ``name`` file (metrics.json, features.npz, ...) of every run of the cell ``w`` (dataset,
    track, dimension), all seeds, methods in ``exclude`` left out."""
    return [
        f"{run_dir(config, ds, tr, dim, m, s)}/{name}"
        for ds, tr, dim, m in CELLS
        if (ds, tr, dim) == (w.dataset, w.track, w.dimension) and m not in exclude
        for s in SEEDS
    ]


def all_metrics():
    return [metrics_path(ds, tr, dim, m, s) for ds, tr, dim, m in CELLS for s in SEEDS]


def teacher_checkpoints(wildcards):
    reqs = config["methods"][wildcards.method].get("requires") or {}
    return [
        f"{run_dir(config, wildcards.dataset, wildcards.track, wildcards.dimension, t, wildcards.seed)}/model.pt"
        for t in reqs.values()
    ]


def _run_item(w, seed):
    return {
        "spec": run_spec(config, w.dataset, w.track, w.dimension, w.method, int(seed)),
        "out": run_dir(config, w.dataset, w.track, w.dimension, w.method, seed),
    }


def seed_specs_json(wildcards):
    return json.dumps([_run_item(wildcards, wildcards.seed)], sort_keys=True)


def cell_specs_json(wildcards):
    return json.dumps([_run_item(wildcards, s) for s in SEEDS], sort_keys=True)


def cell_teacher_checkpoints(wildcards):
    reqs = config["methods"][wildcards.method].get("requires") or {}
    return [
        f"{run_dir(config, wildcards.dataset, wildcards.track, wildcards.dimension, t, s)}/model.pt"
        for t in reqs.values()
        for s in SEEDS
    ]


def table_names():
    return [t["name"] for t in config.get("tables", [])]


def table_track(name):
    """The report subcategory of a table: its track, or "all tracks"."""
    t = next(t for t in config.get("tables", []) if t["name"] == name)
    return t.get("track") or "all tracks"


def all_targets():
    return [f"{R}/summary/runs.csv"] + [f"{R}/summary/tables/{n}.html" for n in table_names()]


def prepare_params(wildcards):
    return json.dumps(config["datasets"][wildcards.dataset].get("params", {}) or {}, sort_keys=True)


def raw_root(wildcards):
    root = config["datasets"][wildcards.dataset].get("root")
    return [root] if root else []


def prepare_root_arg(wildcards):
    root = config["datasets"][wildcards.dataset].get("root")
    return f"--root {root!r}" if root else ""


def tables_spec():
    with open(PUBLISHED, encoding="utf-8") as f:
        published = yaml.safe_load(f)
    return json.dumps(
        {
            "published": published,
            "tables": config.get("tables", []),
            "datasets": config["datasets"],
            "protocol": {"split": config["split"], "seeds": config["seeds"], "dimensions": config["dimensions"]},
            "references": {t: list(v.get("references") or ["baseline"]) for t, v in config["tracks"].items()},
            "trivial_methods": {m: config["methods"][m]["class"] for m in config.get("trivial_methods") or []},
        },
        # no sort_keys: a table's rows keep the config's order (the config loads in file order)
    )


# ----------------------------------------------------------------------------- training resources
from functools import lru_cache  # noqa: E402

from cmkd.resources import estimate as _estimate_resources  # noqa: E402


@lru_cache(maxsize=None)
def _train_resources(dataset, track, dimension, method, n_seeds, attempt):
    return _estimate_resources(config, dataset, track, dimension, method, n_seeds, attempt)


def train_resource(key, n_seeds):
    """A resource callable of the training rules: mem_mb or runtime of the job from
    cmkd.resources.estimate, scaled by Snakemake's attempt (retries ask for more)."""
    return lambda w, attempt: _train_resources(w.dataset, w.track, w.dimension, w.method, n_seeds, attempt)[key]


def cd_group_methods(track, group):
    """Networks of a track that solve the same task from the same input: its students (the
    track's student modalities) or its teachers (the teacher modalities); leaky runs left out."""
    tr = config["tracks"][track]
    want = sorted(tr["student" if group == "students" else "teacher"])
    out = []
    for ds, t, dim, m in CELLS:
        mods = config["methods"][m].get("modalities", "student")
        mods = tr["student"] if mods == "student" else tr["teacher"] if mods == "teacher" else mods
        if t == track and m not in PLOT_LEAKY and sorted(mods) == want and m not in out:
            out.append(m)
    return out


def protocol_of(method_split):
    """kind (and, for k-fold, the number of folds and how trials are dealt) of a method's split
    merged over the config's: runs on another protocol are left out of figures and rankings."""
    sp = {**config["split"], **(method_split or {})}
    return (sp["kind"], sp.get("n_folds"), sp.get("folds_by", "pooled")) if sp["kind"] == "kfold" else (sp["kind"],)
