# Aggregation: every run's metrics -> runs.csv -> mean ± std tables beside the published numbers.
rule aggregate:
    input:
        all_metrics(),
    output:
        runs=report(
            f"{R}/summary/runs.csv",
            caption="../../report/runs.rst",
            category="Data",
            labels={"file": "runs.csv"},
        ),
        subjects=f"{R}/summary/subjects.csv",
    params:
        py=PY,
    log:
        f"{R}/logs/aggregate.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "{params.py} -m cmkd aggregate {input} --out {output.runs} --subjects-out {output.subjects} > {log} 2>&1"


rule tables:
    input:
        runs=f"{R}/summary/runs.csv",
        stats=f"{R}/summary/stats.csv",
        subjects=f"{R}/summary/subjects.csv",
        published=PUBLISHED,
    output:
        [
            report(
                f"{R}/summary/tables/{n}.html",
                caption="../../report/table.rst",
                category="Tables",
                subcategory=table_track(n),
                labels={"table": n},
            )
            for n in table_names()
        ],
        [f"{R}/summary/tables/{n}.{ext}" for n in table_names() for ext in ("csv", "md", "tex")],
        summary=f"{R}/summary/tables/summary.csv",
    params:
        py=PY,
        spec=tables_spec(),
        outdir=lambda w, output: str(Path(output.summary).parent),
    log:
        f"{R}/logs/tables.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "{params.py} -m cmkd tables --runs {input.runs} --spec {params.spec:q} --out-dir {params.outdir} --stats {input.stats} --subjects {input.subjects} > {log} 2>&1"
