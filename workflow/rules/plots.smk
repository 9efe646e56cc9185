# Figures of the report (cmkd.analysis.figures, `python -m cmkd plots ...`), each as PNG (in the report) and SVG (beside it):
# feature maps (t-SNE and UMAP, one job per cell: it starts as soon as that cell's runs are done,
# beside the training jobs of other cells; UMAP's numba code, ~25 CPU-s to compile, is compiled by the
# first job into results/.cache/numba and loaded from there by the others),
# learning curves per cell, published vs reproduced, critical difference diagrams per track and
# metric, and one bar plot per results table.

FIG = f"{R}/summary/figures"
# every dataset x track x dimension cell of the grid
PLOT_CELLS = sorted({c[:3] for c in CELLS})
# methods in the order the experiments list them (teacher, no-KD student, distilled students ...)
PLOT_ORDER = json.dumps(list(dict.fromkeys(c[3] for c in CELLS)))
# methods trained on another split than the config's (the leaky segment-level split of the leakage
# table, the k-fold/LOSO runs of the protocols table): left out of feature maps and rankings, which
# compare networks evaluated under one protocol only
PLOT_LEAKY = sorted(
    m for m, v in config["methods"].items() if protocol_of(v.get("split")) != protocol_of(None)
)
# trivial baselines (no network, no epoch): no feature map, no learning curve
PLOT_TRIVIAL = sorted(config.get("trivial_methods") or [])
PLOT_KINDS = ["tsne", "umap"]
# which figures can be drawn is decided here, from the config (cmkd.analysis.figure_plan): a rank figure needs
# two networks of its group on a dimension of its metric's task (RMSE only for tracks with a regression
# dimension), a per-subject gain figure the track's no-KD reference and another network, a feature map a network
# on the config's split; a figure with nothing to draw is not planned
from cmkd.analysis import figure_plan as _fp  # noqa: E402

PLOT_CD = _fp.cd_figures(config, CELLS, PLOT_LEAKY)
PLOT_GAINS = _fp.gains_tracks(config, CELLS, PLOT_LEAKY + PLOT_TRIVIAL)
PLOT_FEATURE_CELLS = _fp.feature_cells(CELLS, PLOT_LEAKY + PLOT_TRIVIAL)
PLOT_CURVE_CELLS = _fp.feature_cells(CELLS, PLOT_TRIVIAL)
PLOT_TARGETS = (
    [f"{FIG}/{ds}/{tr}/{dim}/features_{k}.png" for ds, tr, dim in PLOT_FEATURE_CELLS for k in PLOT_KINDS]
    + [f"{FIG}/{ds}/{tr}/{dim}/curves.png" for ds, tr, dim in PLOT_CURVE_CELLS]
    + ([f"{FIG}/published_vs_reproduced.png"] if _fp.has_published_cells(config) else [])
    + [f"{FIG}/cd/{tr}/{g}/{m}.png" for tr, g, m in PLOT_CD]
    + [f"{FIG}/tables/{n}.png" for n in table_names()]
    + [f"{FIG}/gains/{tr}.png" for tr in PLOT_GAINS]
)


rule feature_maps:
    input:
        metrics=lambda w: cell_run_files(w, "metrics.json", exclude=PLOT_LEAKY + PLOT_TRIVIAL),
        features=lambda w: cell_run_files(w, "features.npz", exclude=PLOT_LEAKY + PLOT_TRIVIAL),
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
        class_names=json.dumps(
            {
                d: ["low", "high"]
                for d, v in config["dimensions"].items()
                if v.get("task", "classification") == "classification" and "threshold" in v
            }
        ),
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
        lambda w: cell_run_files(w, "history.csv", exclude=PLOT_TRIVIAL),
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
        [f"{R}/summary/tables/{n}.csv" for n in table_names()],
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
        exclude=json.dumps(PLOT_LEAKY),
        methods=lambda w: json.dumps(cd_group_methods(w.track, w.group)),
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
        track=lambda w: next((t.get("track", "") for t in config.get("tables", []) if t["name"] == w.table), ""),
        title=lambda w: next((t.get("title", w.table) for t in config.get("tables", []) if t["name"] == w.table), w.table),
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
        reference=lambda w: _fp.gains_reference(config, w.track),
        exclude=json.dumps(PLOT_LEAKY + PLOT_TRIVIAL),
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
