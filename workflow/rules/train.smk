# Training runs: dataset x track x dimension x method x seed. A student's inputs are the
# checkpoints of the runs its method requires (teacher, teacher assistants), so the DAG follows.
#
# mem_mb and runtime of a training job come from the data set's size, the model and a step time
# (cmkd.workflow.plan.train_resource, cmkd.resources.estimate; docs/scale.md); a retried job (Slurm
# profile: retries) asks for attempt x as much.
#
# seeds_per_job: all (default) trains every seed of one cell in one process, one output per seed:
# the fixed cost of a job (interpreter, torch/timm imports, data loading) is paid once per cell.
# seeds_per_job: 1 makes one job per seed (more parallelism for few cells): a {seed} wildcard
# (cmkd.workflow.inputs: train_outputs, job_seeds).

# the run folder (cmkd.config.RUN_DIR) with the cell's wildcards; seed filled per output
RUN = wf_in.run_pattern(GRID)


# Two job kinds, told apart by the method wildcard: `train` fits a network (the Slurm profile gives
# it a GPU), `train_trivial` fits a trivial baseline on the training labels alone (no network, no
# epoch: no GPU request, CPU partition). Both run the same command.
rule train:
    input:
        prepared=lambda w: prepared_dir(config, w.dataset),
        teachers=lambda w: wf_in.teacher_checkpoints(GRID, w),
        studies=lambda w: wf_in.study_files(GRID, w),  # a tuned run's studies (tune.smk): the best parameters of each split
        frame_features=lambda w: wf_ff.run_inputs(GRID, w),  # frozen face features (data.smk): extracted before
    output:
        metrics=wf_in.train_outputs(GRID, "metrics.json"),
        model=wf_in.train_outputs(GRID, "model.pt"),
        history=wf_in.train_outputs(GRID, "history.csv"),
        features=wf_in.train_outputs(GRID, "features.npz"),
    wildcard_constraints:
        method=network_method_re(GRID),
    params:
        py=PY,
        specs=lambda w: wf_in.train_specs_json(GRID, w),
    benchmark:
        wf_in.job_file(GRID, "benchmarks", "train", "tsv")
    log:
        wf_in.job_file(GRID, "logs", "train", "log"),
    threads: config["threads"]
    resources:
        mem_mb=wf_plan.train_resource(GRID, "mem_mb", JOB_ON_GPU),
        runtime=wf_plan.train_resource(GRID, "runtime", JOB_ON_GPU),
    conda:
        TRAIN_ENV
    shell:
        "{params.py:q} -m cmkd train --specs {params.specs:q} > {log:q} 2>&1"


use rule train as train_trivial with:
    wildcard_constraints:
        method=trivial_method_re(GRID),
    conda:
        conda_env("cpu")
