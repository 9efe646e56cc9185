# Aggregation: every run's metrics -> runs.csv -> mean ± std tables beside the published numbers.
import yaml


def tables_spec():
    with open(config["published_tables"], encoding="utf-8") as f:
        published = yaml.safe_load(f)
    return json.dumps(
        {
            "published": published,
            "tables": config.get("tables", []),
            "datasets": config["datasets"],
            "protocol": {"split": config["split"], "seeds": config["seeds"]},
        },
        sort_keys=True,
    )


rule aggregate:
    input:
        all_metrics(),
    output:
        report(
            f"{R}/summary/runs.csv",
            caption="../../report/runs.rst",
            category="Data",
            labels={"file": "runs.csv"},
        ),
    params:
        listing=f"{R}/summary/.metrics_list",
    log:
        f"{R}/logs/aggregate.log",
    conda:
        "../../envs/cpu.yaml"
    run:
        Path(params.listing).parent.mkdir(parents=True, exist_ok=True)
        Path(params.listing).write_text("\n".join(input) + "\n")
        shell("{PY} -m cmkd aggregate --metrics-list {params.listing} --out {output} > {log} 2>&1")


rule tables:
    input:
        runs=f"{R}/summary/runs.csv",
        published=config["published_tables"],
    output:
        [
            report(
                f"{R}/summary/tables/{n}.html",
                caption="../../report/table.rst",
                category="Tables",
                labels={"table": n},
            )
            for n in table_names()
        ],
        [f"{R}/summary/tables/{n}.{ext}" for n in table_names() for ext in ("csv", "md", "tex")],
        summary=f"{R}/summary/tables/summary.csv",
    params:
        spec=tables_spec(),
        outdir=f"{R}/summary/tables",
    log:
        f"{R}/logs/tables.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "{PY} -m cmkd tables --runs {input.runs} --spec {params.spec:q} --out-dir {params.outdir} > {log} 2>&1"
