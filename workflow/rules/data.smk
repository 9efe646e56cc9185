# Raw data set (or the synthetic generator) -> prepared directory (.npy per array + meta.json).


rule prepare:
    input:
        lambda w: wf_in.raw_root(GRID, w),
    output:
        directory(f"{R}/prepared/{{dataset}}"),
    params:
        py=PY,
        loader=lambda w: config["datasets"][w.dataset]["loader"],
        root=lambda w: wf_in.prepare_root_arg(GRID, w),
        seed=lambda w: config["datasets"][w.dataset].get("seed", 0),
        params=lambda w: wf_in.prepare_params(GRID, w),
    log:
        f"{R}/logs/prepare/{{dataset}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd prepare {params.loader} {params.root} --out {output:q} "
        "--seed {params.seed} --params {params.params:q} > {log:q} 2>&1"
