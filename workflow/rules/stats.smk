# Paired tests per dataset x track x dimension cell (cmkd.analysis.stats): runs.csv (and, through its path
# column, each run's fold metrics and per-trial test predictions) -> stats.csv.
# References per track: config tracks.<track>.references (default [baseline]); the Nadeau-Bengio
# correction takes n_test/n_train from the splits that ran (each run's metrics.json); the config's test
# fraction is only the fallback for runs that recorded no split sizes.


rule stats:
    input:
        runs=f"{R}/summary/runs.csv",
    output:
        report(
            f"{R}/summary/stats.csv",
            caption="../../report/stats.rst",
            category="Statistical tests",
            subcategory="Paired tests",
            labels={"file": "stats.csv"},
        ),
    params:
        py=PY,
        references=json.dumps(
            {t: list(v.get("references") or ["baseline"]) for t, v in config["tracks"].items()},
            sort_keys=True,
        ),
        test_fraction=config["split"]["ratios"][2] / sum(config["split"]["ratios"]),
    log:
        f"{R}/logs/stats.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd stats --runs {input.runs:q} --out {output:q} --references {params.references:q} "
        "--test-fraction {params.test_fraction} > {log:q} 2>&1"
