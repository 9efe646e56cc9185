# Shared helpers of the rules: config checks and path/spec resolution (logic lives in cmkd.config).
import json
import re
import shlex

import yaml
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from cmkd.config import cell_split, iter_cells, like_networks, prepared_dir, run_dir, run_spec  # noqa: E402
from cmkd.config import trivial_method_names  # noqa: E402
from cmkd.devices import DeviceError, cluster_check, requested_gpus  # noqa: E402
from cmkd.conda_envs import resolved_env_file  # noqa: E402
from cmkd.tuning import expand as expand_tuning, settings as tuning_settings  # noqa: E402
from cmkd.errors import ConfigError, DataError  # noqa: E402
from cmkd.validation import config_lines, validate_config  # noqa: E402
from snakemake.settings.types import DeploymentMethod  # noqa: E402

try:  # schema (defaults filled in), select_datasets, then semantics: cmkd.validation, as `cmkd check`
    _files = ["config.yaml", *workflow.config_settings.configfiles]
    _own_env = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method  # jobs bring their torch
    for _w in validate_config(config, config_lines(_files), jobs_use_this_python=not _own_env):
        print(f"warning: {_w}", file=sys.stderr)
    # tuning on (config/tuned.yaml): a tuned twin of each student, tuned tables (cmkd.tuning.expand)
    config.update(expand_tuning(config))
except ConfigError as e:
    raise WorkflowError(f"invalid config: {e}") from None
except DataError as e:  # a prepared data set the configured split cannot validate on (cmkd.config.check_prepared_validation)
    raise WorkflowError(f"invalid split: {e}") from None

# GPU training jobs (a profile's --set-resources train:gpu, e.g. the Slurm profile's) with a CPU build
# of torch would all stop at start: refuse the plan now (torch-free), unless allow_cpu_torch is set
TRAIN_GPUS = requested_gpus(workflow.resource_settings.overwrite_resources.get("train"))
# (a dry-run only warns: planning on a login node needs no CUDA torch; under --sdm conda the GPU jobs
# run envs/cuda.yaml instead)
if TRAIN_GPUS and DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    try:
        for _line in cluster_check(TRAIN_GPUS, allow_cpu_torch=bool(config.get("allow_cpu_torch"))):
            print(f"cluster: {_line}", file=sys.stderr)
    except DeviceError as e:
        # (a remote executor's plugin is not yet set while the Snakefile is read: the command line tells)
        _dry = workflow.dryrun or any(a in ("--dry-run", "--dryrun", "--just-print") or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a)
                                      for a in sys.argv[1:])
        if not _dry:
            raise WorkflowError(f"GPU jobs: {e}") from None
        print(f"warning: GPU jobs: {e} (a dry-run: planned anyway)", file=sys.stderr)

R = config["results"]
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


def conda_env(name):
    """The conda environment file of the jobs (envs/<name>.yaml): under --sdm conda a copy whose
    pip paths are absolute (cmkd.conda_envs), since conda runs pip from .snakemake/conda/."""
    template = Path(workflow.basedir) / "envs" / f"{name}.yaml"
    if not _CONDA:
        return str(template)
    return str(resolved_env_file(template, Path(R).resolve() / ".conda-envs"))


_pub = Path(config["published_tables"])
PUBLISHED = str(_pub if (_pub.is_absolute() or _pub.exists()) else Path(workflow.basedir) / _pub)
_claims = Path(config.get("claims", "config/claims.yaml"))
CLAIMS = str(_claims if (_claims.is_absolute() or _claims.exists()) else Path(workflow.basedir) / _claims)
# the interpreter of a job: under --sdm conda the one of the rule's env (which installs the
# project), else the one running Snakemake
PY = "python" if _CONDA else sys.executable
CELLS = list(iter_cells(config))
# methods that fit no network (the trivial baselines): their own training rule, without a GPU
TRIVIAL = sorted(trivial_method_names(config))
_NAME_RE = r"[a-z0-9_]+"
TRIVIAL_METHOD_RE = "|".join(TRIVIAL) if TRIVIAL else r"(?!)"  # (?!) matches nothing
# (the wildcard's regex sits inside the path's: a trivial name is refused when a "/" or the end follows)
TRIVIAL_METHOD_RE = rf"(?:{TRIVIAL_METHOD_RE})(?=/|$)" if TRIVIAL else TRIVIAL_METHOD_RE
NETWORK_METHOD_RE = rf"(?!(?:{'|'.join(TRIVIAL)})(?:/|$)){_NAME_RE}" if TRIVIAL else _NAME_RE
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


def study_files(wildcards, seeds=None):
    """The study results (study.json) a tuned run's training job reads: its seed's, or every seed's
    of the cell (seeds_per_job: all); none for an untuned method."""
    if not config["methods"][wildcards.method].get("tuning"):
        return []
    seeds = [wildcards.seed] if seeds is None else seeds
    return [f"{run_dir(config, wildcards.dataset, wildcards.track, wildcards.dimension, wildcards.method, s)}/study.json"
            for s in seeds]


def cell_study_files(wildcards):
    return study_files(wildcards, SEEDS)


def study_specs_json(wildcards):
    item = _run_item(wildcards, wildcards.seed)
    return json.dumps([{"spec": item["spec"], "out": f"{item['out']}/study.json"}], sort_keys=True)


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
    return f"--root {shlex.quote(str(root))}" if root else ""


def tables_spec():
    with open(PUBLISHED, encoding="utf-8") as f:
        published = yaml.safe_load(f)
    return json.dumps(
        {
            "published": published,
            "tables": config.get("tables", []),
            "datasets": config["datasets"],
            "protocol": {"split": config["split"], "seeds": config["seeds"], "dimensions": config["dimensions"],
                         # every run's split settings, for the tables that describe the splits as run
                         "splits": {f"{ds}/{tr}/{m}": cell_split(config, ds, tr, m) for ds, tr, _dim, m in CELLS}},
            "references": {t: list(v.get("references") or ["baseline"]) for t, v in config["tracks"].items()},
            "trivial_methods": {m: config["methods"][m]["class"] for m in config.get("trivial_methods") or []},
        },
        # no sort_keys: a table's rows keep the config's order (the config loads in file order)
    )


# ----------------------------------------------------------------------------- training resources
from functools import lru_cache  # noqa: E402

from cmkd.resources import estimate as _estimate_resources  # noqa: E402


# a training job given a GPU (the profile's train:gpu) keeps its activations in GPU memory: its host
# request is the CUDA context's, not the CPU activations' (device: cpu keeps the CPU estimate)
_JOB_ON_GPU = config.get("device", "auto") == "cuda" or (bool(TRAIN_GPUS) and config.get("device", "auto") != "cpu")


@lru_cache(maxsize=None)
def _train_resources(dataset, track, dimension, method, n_seeds, attempt):
    return _estimate_resources(config, dataset, track, dimension, method, n_seeds, attempt, gpu=_JOB_ON_GPU)


def train_resource(key, n_seeds):
    """A resource callable of the training rules: mem_mb or runtime of the job from
    cmkd.resources.estimate, scaled by Snakemake's attempt (retries ask for more)."""
    return lambda w, attempt: _train_resources(w.dataset, w.track, w.dimension, w.method, n_seeds, attempt)[key]


def cd_group_methods(track, group):
    """Networks of a track that solve the same task from the same input: its students (the
    track's student modalities) or its teachers (the teacher modalities), by the modalities the
    evaluated network reads (cmkd.config.evaluated_modalities: AMBOKD trains on the teacher's
    modalities and is evaluated as a student); leaky runs left out (cmkd.analysis.figure_plan.group_methods)."""
    from cmkd.analysis.figure_plan import group_methods

    return group_methods(config, CELLS, track, group, PLOT_LEAKY)


def protocol_of(method_split):
    """kind (and, for k-fold, the number of folds and how trials are dealt) of a method's split
    merged over the config's: runs on another protocol are left out of figures and rankings."""
    sp = {**config["split"], **(method_split or {})}
    return (sp["kind"], sp.get("n_folds"), sp.get("folds_by", "pooled")) if sp["kind"] == "kfold" else (sp["kind"],)
