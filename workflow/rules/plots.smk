# Figures of the report (cmkd.analysis.figures, `python -m cmkd plots ...`), each as PNG (in the report) and SVG (beside it):
# feature maps (t-SNE and UMAP, one job per cell: it starts as soon as that cell's runs are done,
# beside the training jobs of other cells; UMAP's numba code, ~25 CPU-s to compile, is compiled by the
# first job into results/.cache/numba and loaded from there by the others),
# learning curves per cell, published vs reproduced, critical difference diagrams per track and
# metric, and one bar plot per results table.

FIG = wf_fig.figure_dir(config)
# which figures can be drawn is decided from the config (cmkd.workflow.figure_jobs, cmkd.analysis.figure_plan):
# a rank figure needs two networks of its group on a dimension of its metric's task (RMSE only for tracks
# with a regression dimension), a per-subject gain figure the track's no-KD reference and another network,
# a feature map a network on the config's split; a figure with nothing to draw is not planned. Methods
# on another protocol, and the trivial baselines, are left out of the figures that cannot show them
# (cmkd.workflow.figure_jobs.EXCLUDED). The figures planned: cmkd.workflow.figure_jobs.plot_targets.
PLOT_KINDS = wf_fig.FEATURE_KINDS
# methods in the order the experiments list them (teacher, no-KD student, distilled students ...)
PLOT_ORDER = wf_fig.method_order_json(GRID)


rule feature_maps:
    input:
        metrics=lambda w: wf_tgt.cell_run_files(GRID, w, "metrics.json", wf_fig.excluded(GRID, "feature_maps")),
        features=lambda w: wf_tgt.cell_run_files(GRID, w, "features.npz", wf_fig.excluded(GRID, "feature_maps")),
    output:
        [
            report(
                f"{FIG}/{{dataset}}/{{track}}/{{dimension}}/features_{k}.png",
                caption="../../report/features.rst",
                category="Feature maps",
                subcategory="{track}",
                labels={
                    "dataset": "{dataset}",
                    "dimension": "{dimension}",
                    "projection": {"tsne": "t-SNE", "umap": "UMAP"}[k],
                },
            )
            for k in PLOT_KINDS
        ],
        [f"{FIG}/{{dataset}}/{{track}}/{{dimension}}/features_{k}.svg" for k in PLOT_KINDS],
    params:
        py=PY,
        out_dir=lambda w, output: str(Path(output[0]).parents[3]),
        kinds=" ".join(PLOT_KINDS),
        order=PLOT_ORDER,
        # umap's compiled numba code, shared by the cells' jobs: compiled by the first, loaded by the others
        numba_cache=f"{R}/.cache/numba",
        class_names=wf_fig.class_names_json(config),
    log:
        f"{R}/logs/plots/features/{{dataset}}/{{track}}/{{dimension}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd plots features --metrics {input.metrics:q} --out-dir {params.out_dir:q} --kinds {params.kinds} "
        "--numba-cache {params.numba_cache:q} "
        "--order {params.order:q} --class-names {params.class_names:q} > {log:q} 2>&1"


rule learning_curves:
    input:
        lambda w: wf_tgt.cell_run_files(GRID, w, "history.csv", wf_fig.excluded(GRID, "learning_curves")),
    output:
        png=report(
            f"{FIG}/{{dataset}}/{{track}}/{{dimension}}/curves.png",
            caption="../../report/curves.rst",
            category="Learning curves",
            subcategory="{track}",
            labels={"dataset": "{dataset}", "dimension": "{dimension}"},
        ),
        svg=f"{FIG}/{{dataset}}/{{track}}/{{dimension}}/curves.svg",
    params:
        py=PY,
        order=PLOT_ORDER,
        title=lambda w: f"{w.dataset} / {w.track} / {w.dimension}",
    log:
        f"{R}/logs/plots/curves/{{dataset}}/{{track}}/{{dimension}}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd plots curves {input:q} --out-png {output.png:q} --out-svg {output.svg:q} "
        "--order {params.order:q} --title {params.title:q} > {log:q} 2>&1"


rule published_vs_reproduced:
    input:
        [f"{R}/summary/tables/{n}.csv" for n in wf_tab.table_names(config)],
    output:
        png=report(
            f"{FIG}/published_vs_reproduced.png",
            caption="../../report/published_vs_reproduced.rst",
            category="Published vs reproduced",
            labels={"figure": "scatter of every cell with a published number"},
        ),
        svg=f"{FIG}/published_vs_reproduced.svg",
    params:
        py=PY,
    log:
        f"{R}/logs/plots/published_vs_reproduced.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd plots scatter {input:q} --out-png {output.png:q} --out-svg {output.svg:q} > {log:q} 2>&1"


rule cd_diagram:
    input:
        runs=f"{R}/summary/runs.csv",
    output:
        png=report(
            f"{FIG}/cd/{{track}}/{{group}}/{{metric}}.png",
            caption="../../report/cd.rst",
            category="Statistical tests",
            subcategory="Critical difference",
            labels={"track": "{track}", "networks": "{group}", "metric": "{metric}"},
        ),
        svg=f"{FIG}/cd/{{track}}/{{group}}/{{metric}}.svg",
        json=f"{FIG}/cd/{{track}}/{{group}}/{{metric}}.json",
    wildcard_constraints:
        metric="accuracy|f1|rmse",
        group="students|teachers",
    params:
        py=PY,
        exclude=json.dumps(wf_fig.excluded(GRID, "cd")),
        methods=lambda w: json.dumps(wf_fig.cd_group_methods(GRID, w.track, w.group)),
    log:
        f"{R}/logs/plots/cd/{{track}}/{{group}}/{{metric}}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd plots cd --runs {input.runs:q} --track {wildcards.track:q} --metric {wildcards.metric} "
        "--exclude {params.exclude:q} --methods {params.methods:q} --group {wildcards.group} --out-png {output.png:q} --out-svg {output.svg:q} --out-json {output.json:q} "
        "> {log:q} 2>&1"


rule table_bars:
    input:
        table=f"{R}/summary/tables/{{table}}.csv",
        runs=f"{R}/summary/runs.csv",
    output:
        png=report(
            f"{FIG}/tables/{{table}}.png",
            caption="../../report/bars.rst",
            category="Tables",
            subcategory="Bar plots",
            labels={"table": "{table}"},
        ),
        svg=f"{FIG}/tables/{{table}}.svg",
    wildcard_constraints:
        table=r"[A-Za-z0-9_\-]+",
    params:
        py=PY,
        track=lambda w: wf_tab.table_bar_track(config, w.table),
        title=lambda w: wf_tab.table_title(config, w.table),
    log:
        f"{R}/logs/plots/bars/{{table}}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd plots bars --table {input.table:q} --runs {input.runs:q} --track={params.track:q} "
        "--title {params.title:q} --out-png {output.png:q} --out-svg {output.svg:q} > {log:q} 2>&1"


rule subject_gains:
    input:
        subjects=f"{R}/summary/subjects.csv",
    output:
        png=report(
            f"{FIG}/gains/{{track}}.png",
            caption="../../report/gains.rst",
            category="Per-subject gains",
            labels={"track": "{track}"},
        ),
        svg=f"{FIG}/gains/{{track}}.svg",
    params:
        py=PY,
        # the track's no-KD reference: its first reference method of class baseline
        reference=lambda w: wf_fig.gains_reference(GRID, w.track),
        exclude=json.dumps(wf_fig.excluded(GRID, "gains")),
        order=PLOT_ORDER,
    log:
        f"{R}/logs/plots/gains/{{track}}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        conda_env("cpu")
    shell:
        "{params.py:q} -m cmkd plots gains --subjects {input.subjects:q} --reference {params.reference} "
        "--track={wildcards.track:q} --exclude {params.exclude:q} --order {params.order:q} "
        "--out-png {output.png:q} --out-svg {output.svg:q} > {log:q} 2>&1"
