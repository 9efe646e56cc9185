# Training runs: dataset x track x dimension x method x seed. A student's inputs are the
# checkpoints of the runs its method requires (teacher, teacher assistants), so the DAG follows.
#
# mem_mb and runtime of a training job come from the data set's size, the model and a step time
# (train_resource in common.smk, cmkd.resources.estimate; docs/scale.md); a retried job (Slurm
# profile: retries) asks for attempt x as much.
#
# seeds_per_job: all (default) trains every seed of one cell in one process, one output per seed:
# the fixed cost of a job (interpreter, torch/timm imports, data loading) is paid once per cell.
# seeds_per_job: 1 makes one job per seed (more parallelism for few cells).

# the run folder (cmkd.config.RUN_DIR) with the cell's wildcards; seed filled per output
RUN = run_dir(config, "{{dataset}}", "{{track}}", "{{dimension}}", "{{method}}", "{seed}")

# training jobs that ask for a GPU (the profile's train:gpu) or say device: cuda run in the CUDA
# env, every other job in the CPU env
TRAIN_ENV = conda_env("cuda") if (TRAIN_GPUS or config.get("device") == "cuda") else conda_env("cpu")

# Two job kinds, one rule each, told apart by the method wildcard: `train` fits a network (the
# Slurm profile gives it a GPU), `train_trivial` fits a trivial baseline on the training labels
# alone (no network, no epoch: no GPU request, CPU partition). Both run the same command.
TRAIN_RULES = [("train", NETWORK_METHOD_RE, "network"), ("train_trivial", TRIVIAL_METHOD_RE, "trivial")]

for _name, _method_re, _kind in TRAIN_RULES:
    if config.get("seeds_per_job", "all") == "all":

        rule:
            name:
                _name
            input:
                prepared=lambda w: prepared_dir(config, w.dataset),
                teachers=cell_teacher_checkpoints,
                studies=cell_study_files,  # a tuned run's studies (tune.smk): the best parameters of each split
            output:
                metrics=[f"{RUN.format(seed=s)}/metrics.json" for s in SEEDS],
                model=[f"{RUN.format(seed=s)}/model.pt" for s in SEEDS],
                history=[f"{RUN.format(seed=s)}/history.csv" for s in SEEDS],
                features=[f"{RUN.format(seed=s)}/features.npz" for s in SEEDS],
            wildcard_constraints:
                method=_method_re,
            params:
                py=PY,
                specs=cell_specs_json,
            benchmark:
                f"{R}/benchmarks/train/{{dataset}}/{{track}}/{{dimension}}/{{method}}.tsv"
            log:
                f"{R}/logs/train/{{dataset}}/{{track}}/{{dimension}}/{{method}}.log",
            threads: config["threads"]
            resources:
                mem_mb=train_resource("mem_mb", len(SEEDS)),
                runtime=train_resource("runtime", len(SEEDS)),
            conda:
                TRAIN_ENV if _kind == "network" else conda_env("cpu")
            shell:
                "{params.py:q} -m cmkd train --specs {params.specs:q} > {log:q} 2>&1"

    else:

        rule:
            name:
                _name
            input:
                prepared=lambda w: prepared_dir(config, w.dataset),
                teachers=teacher_checkpoints,
                studies=study_files,
            output:
                metrics=f"{RUN.format(seed='{seed}')}/metrics.json",
                model=f"{RUN.format(seed='{seed}')}/model.pt",
                history=f"{RUN.format(seed='{seed}')}/history.csv",
                features=f"{RUN.format(seed='{seed}')}/features.npz",
            wildcard_constraints:
                method=_method_re,
            params:
                py=PY,
                specs=seed_specs_json,
            benchmark:
                f"{R}/benchmarks/train/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.tsv"
            log:
                f"{R}/logs/train/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.log",
            threads: config["threads"]
            resources:
                mem_mb=train_resource("mem_mb", 1),
                runtime=train_resource("runtime", 1),
            conda:
                TRAIN_ENV if _kind == "network" else conda_env("cpu")
            shell:
                "{params.py:q} -m cmkd train --specs {params.specs:q} > {log:q} 2>&1"
