# One training run: dataset x track x dimension x method x seed. A student's inputs are the
# checkpoints of the runs its method requires (teacher, teacher assistants), so the DAG follows.


rule train:
    input:
        prepared=lambda w: prepared_dir(config, w.dataset),
        teachers=teacher_checkpoints,
    output:
        metrics=f"{R}/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}/metrics.json",
        model=f"{R}/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}/model.pt",
        history=f"{R}/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}/history.csv",
        features=f"{R}/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}/features.npz",
    params:
        py=PY,
        spec=spec_json,
        outdir=lambda w, output: str(Path(output.metrics).parent),
    benchmark:
        f"{R}/benchmarks/train/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.tsv"
    log:
        f"{R}/logs/train/{{dataset}}/{{track}}/{{dimension}}/{{method}}/seed{{seed}}.log",
    threads: config["threads"]
    resources:
        mem_mb=lambda w: config["methods"][w.method].get("resources", {}).get("mem_mb", 4000),
        runtime=lambda w: config["methods"][w.method].get("resources", {}).get("runtime", 60),
    conda:
        "../../envs/cpu.yaml"
    shell:
        "{params.py} -m cmkd train --spec {params.spec:q} --out {params.outdir} > {log} 2>&1"
