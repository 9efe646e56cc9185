# Shared state of the rules: the validated config and its grid; every function the rules call lives
# in cmkd.workflow (torch-free, tested in tests/test_workflow_module.py).
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from cmkd.conda_envs import job_env_file  # noqa: E402
from cmkd.config import prepared_dir  # noqa: E402
from cmkd.tuning import settings as tuning_settings  # noqa: E402
from cmkd.workflow import figure_jobs as wf_fig, frame_jobs as wf_ff, inputs as wf_in, lookup as wf_tab, plan as wf_plan  # noqa: E402
from cmkd.workflow import summary as wf_sum, targets as wf_tgt  # noqa: E402
from cmkd.workflow.grid import Grid, network_method_re, trivial_method_re  # noqa: E402
from snakemake.settings.types import DeploymentMethod  # noqa: E402

_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method  # jobs bring their torch
# GPUs of a training job (a profile's --set-resources train:gpu, e.g. the Slurm profile's)
TRAIN_GPUS = wf_plan.train_gpus(workflow.resource_settings.overwrite_resources)
try:  # the config as `cmkd check` validates it; GPU jobs that could not use their GPU refused now
    for _line in wf_plan.check_config(config, ["config.yaml", *workflow.config_settings.configfiles], not _CONDA):
        print(f"warning: {_line}", file=sys.stderr)
    for _line in wf_plan.gpu_plan_lines(TRAIN_GPUS, config, _CONDA, wf_plan.is_dry_run(workflow.dryrun, sys.argv[1:])):
        print(_line, file=sys.stderr)
except wf_plan.PlanError as e:
    raise WorkflowError(str(e)) from None

GRID = Grid.of(config)
R = GRID.results
PY = wf_plan.interpreter(_CONDA)
SEEDS = GRID.seeds
PUBLISHED = wf_sum.project_file(config["published_tables"], workflow.basedir)
CLAIMS = wf_sum.project_file(config.get("claims", "config/claims.yaml"), workflow.basedir)
# a training job given a GPU keeps its activations in GPU memory (host request: the CUDA context's)
JOB_ON_GPU = wf_plan.job_on_gpu(config, TRAIN_GPUS)
TUNING = tuning_settings(config)


def conda_env(name):
    """envs/<name>.yaml (under --sdm conda a copy with absolute pip paths: cmkd.conda_envs)."""
    return job_env_file(workflow.basedir, name, _CONDA, R)


wildcard_constraints:
    dataset=r"[a-z0-9_]+",
    track=r"[a-z0-9_+\-]+",
    dimension=r"[a-z0-9_]+",
    method=r"[a-z0-9_]+",
    seed=r"\d+",


# training jobs (and the frozen face feature extraction) that ask for a GPU (the profile's train:gpu)
# or say device: cuda run in the CUDA env, every other job in the CPU env
TRAIN_ENV = conda_env(wf_plan.train_env_name(config, TRAIN_GPUS))
