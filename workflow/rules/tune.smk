# The equal-budget hyperparameter search (cmkd.tuning, docs/tuning.md), planned only when the config
# turns tuning on (config/tuned.yaml): one job per tuned run and seed, which runs (or resumes, from
# the optuna journal beside its output) the studies of every fold of that seed. Its output, the
# study's result, is an input of the tuned run's training job (train.smk: studies).
TUNING = tuning_settings(config)
TUNED_METHODS = sorted(m for m, e in config["methods"].items() if e.get("tuning"))
TUNING_TARGETS = []

if TUNING and TUNED_METHODS:
    TUNING_TARGETS = [f"{R}/summary/tuning.csv", f"{R}/summary/tuning.html"]

    rule study:
        input:
            prepared=lambda w: prepared_dir(config, w.dataset),
            teachers=teacher_checkpoints,
        output:
            f"{RUN.format(seed='{seed}')}/study.json",
        wildcard_constraints:
            method="|".join(TUNED_METHODS),
        params:
            py=PY,
            specs=study_specs_json,
        benchmark:
            f"{R}/benchmarks/study/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.tsv"
        log:
            f"{R}/logs/study/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.log",
        threads: config["threads"]
        resources:  # a study trains n_trials models of its run's size: the runtime of n_trials runs (cmkd.resources.estimate)
            mem_mb=train_resource("mem_mb", 1),
            runtime=train_resource("runtime", int(TUNING["n_trials"])),
        conda:
            TRAIN_ENV
        shell:
            "{params.py:q} -m cmkd tune --specs {params.specs:q} > {log:q} 2>&1"

    rule tuning_cost:
        input:
            [f"{run_dir(config, ds, tr, dim, m, s)}/study.json" for ds, tr, dim, m in CELLS if m in TUNED_METHODS
             for s in SEEDS],
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
