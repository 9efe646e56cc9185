# Paired tests per dataset x track x dimension cell (cmkd.analysis.stats): runs.csv (and, through its path
# column, each run's fold metrics and per-trial test predictions) -> stats.csv.
# References per track: config tracks.<track>.references (default [baseline]); the Nadeau-Bengio
# correction takes n_test/n_train from the splits that ran (each run's metrics.json); the test share of the
# grid's effective single splits (cmkd.workflow.summary.test_fraction) is only the fallback for runs that
# recorded no split sizes.


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
        references=wf_sum.references_json(config),
        test_fraction=wf_sum.test_fraction(GRID),
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


# The seed papers' claims (config/claims.yaml; published effects from published_tables.yaml), each checked on
# the data sets that ran with the method-level effect and CI, TOST against a published effect, and a verdict
# (cmkd.analysis.claims).
rule claims:
    input:
        runs=f"{R}/summary/runs.csv",
        claims=CLAIMS,
        published=PUBLISHED,
    output:
        report(
            f"{R}/summary/claims.csv",
            caption="../../report/claims.rst",
            category="Claims",
            labels={"file": "claims.csv"},
        ),
    params:
        py=PY,
        datasets=wf_sum.claims_datasets_json(config),
    log:
        f"{R}/logs/claims.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd claims --runs {input.runs:q} --claims {input.claims:q} --published {input.published:q} "
        "--datasets {params.datasets:q} --out {output:q} > {log:q} 2>&1"
