# The equal-budget hyperparameter search (cmkd.tuning, docs/tuning.md), planned only when the config
# turns tuning on (config/tuned.yaml): one job per tuned run and seed, which runs (or resumes, from
# the optuna journal beside its output) the studies of every fold of that seed. Its output, the
# study's result, is an input of the tuned run's training job (train.smk: studies).
TUNED_METHODS = wf_tgt.tuned_methods(config)
TUNING_TARGETS = wf_tgt.tuning_targets(config, TUNING)

if TUNING_TARGETS:

    rule study:
        input:
            prepared=lambda w: prepared_dir(config, w.dataset),
            teachers=lambda w: wf_in.teacher_checkpoints(GRID, w, [w.seed]),
            frame_features=lambda w: wf_ff.run_inputs(GRID, w),
        output:
            f"{RUN.format(seed='{seed}')}/study.json",
        wildcard_constraints:
            method="|".join(TUNED_METHODS),
        params:
            py=PY,
            specs=lambda w: wf_in.study_specs_json(GRID, w),
        benchmark:
            f"{R}/benchmarks/study/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.tsv"
        log:
            f"{R}/logs/study/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.log",
        threads: config["threads"]
        resources:  # a study trains n_trials models of its run's size: the runtime of n_trials runs (cmkd.resources.estimate)
            mem_mb=wf_plan.train_resource(GRID, "mem_mb", JOB_ON_GPU, 1),
            runtime=wf_plan.train_resource(GRID, "runtime", JOB_ON_GPU, int(TUNING["n_trials"])),
        conda:
            TRAIN_ENV
        shell:
            "{params.py:q} -m cmkd tune --specs {params.specs:q} > {log:q} 2>&1"

    rule tuning_cost:
        input:
            wf_in.tuned_study_files(GRID, TUNED_METHODS),
        output:
            csv=f"{R}/summary/tuning.csv",
            html=report(f"{R}/summary/tuning.html", caption="../../report/tuning.rst", category="Tuning",
                        labels={"file": "tuning cost"}),
        params:
            py=PY,
        log:
            f"{R}/logs/tuning_cost.log",
        conda:
            conda_env("cpu")
        shell:
            "{params.py:q} -m cmkd tuning-cost {input:q} --out {output.csv:q} --html {output.html:q} > {log:q} 2>&1"
