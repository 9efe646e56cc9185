# cmkd-bench: cross-modal knowledge distillation for emotion recognition.
# Default: the embedded synthetic grid (config.yaml). Paper grid: --configfile config/paper.yaml.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/plots.smk"


localrules:
    all,
    aggregate,
    tables,
    stats,
    claims,
    feature_maps,
    learning_curves,
    published_vs_reproduced,
    cd_diagram,
    table_bars,
    subject_gains,


rule all:
    input:
        wf_tgt.default_targets(GRID, TUNING),
    default_target: True
