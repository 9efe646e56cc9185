# Aggregation: every run's metrics -> runs.csv -> mean ± std tables beside the published numbers.
rule aggregate:
    input:
        wf_tgt.all_metrics(GRID),
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
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd aggregate {input:q} --out {output.runs:q} --subjects-out {output.subjects:q} > {log:q} 2>&1"


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
                subcategory=wf_tab.table_track(config, n),
                labels={"table": n},
            )
            for n in wf_tab.table_names(config)
        ],
        [f"{R}/summary/tables/{n}.{ext}" for n in wf_tab.table_names(config) for ext in ("csv", "md", "tex")],
        summary=f"{R}/summary/tables/summary.csv",
    params:
        py=PY,
        spec=wf_sum.tables_spec(GRID, PUBLISHED),
        outdir=lambda w, output: str(Path(output.summary).parent),
    log:
        f"{R}/logs/tables.log",
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd tables --runs {input.runs:q} --spec {params.spec:q} --out-dir {params.outdir:q} --stats {input.stats:q} --subjects {input.subjects:q} > {log:q} 2>&1"
