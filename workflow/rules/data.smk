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


# Frozen face features (encoders.face.frozen: true; cmkd.run.frame_features): one job per data set
# and extraction settings that a frozen face encoder of the grid reads (cmkd.workflow.frame_jobs),
# a forward pass of the backbone over the frames; its output folder is keyed by the configured
# settings (cmkd.frame_keys), and meta.json (an input of every training job whose run reads these
# features) holds the frames' content hash and the weights' sha256, which the training jobs check.
# The job runs where the training jobs run: their env, and the Slurm profile gives it their GPU.
rule frame_features:
    input:
        prepared=lambda w: prepared_dir(config, w.dataset),
        weights=lambda w: wf_ff.weights_input(GRID, w),
    output:
        meta=f"{R}/frame_features/{{dataset}}/{{fkey}}/meta.json",
        face=f"{R}/frame_features/{{dataset}}/{{fkey}}/face.npy",
    wildcard_constraints:
        fkey=wf_ff.KEY_RE,
    params:
        py=PY,
        encoder=lambda w: wf_ff.encoder_json(GRID, w),
        out=f"{R}/frame_features/{{dataset}}/{{fkey}}",
        device=config.get("device", "auto"),
    log:
        f"{R}/logs/frame_features/{{dataset}}/{{fkey}}.log",
    threads: config["threads"]
    resources:
        mem_mb=wf_ff.extraction_resource(GRID, "mem_mb", JOB_ON_GPU),
        runtime=wf_ff.extraction_resource(GRID, "runtime", JOB_ON_GPU),
    conda:
        TRAIN_ENV
    shell:
        "{params.py:q} -m cmkd frame-features --prepared {input.prepared:q} --encoder {params.encoder:q} "
        "--out {params.out:q} --device {params.device} --threads {threads} > {log:q} 2>&1"
