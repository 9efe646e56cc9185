"""Figures of the report, one module per kind of figure; each figure is drawn on a
:class:`matplotlib.figure.Figure` with the Agg canvas (no display, no pyplot state shared between
figures) and written as PNG and SVG, each atomically, with fixed metadata so that the same inputs
give the same files (:mod:`.style`).

:mod:`.maps`
    t-SNE or UMAP maps of the test-set embeddings of every method of one cell (:func:`.maps.feature_maps`).
:mod:`.curves`
    learning curves: every training loss term, the validation loss and metrics per epoch
    (:func:`.curves.learning_curves`).
:mod:`.published`
    published vs reproduced, every table cell with a published number (:func:`.published.published_vs_reproduced`).
:mod:`.ranks`
    critical difference diagram (Friedman + Nemenyi over cells), or per-block intervals below
    :data:`cmkd.analysis.stats.MIN_CD_BLOCKS` blocks (:func:`.ranks.cd_diagram`, :mod:`.intervals`).
:mod:`.bars`
    one bar per row of a results table: mean, 95 % CI, seeds, published value, chance level
    (:func:`.bars.table_bars`).
:mod:`.gains`
    per-subject gain of every method over the track's no-KD reference (:func:`.gains.gains_figure`).

:mod:`.readers` reads the CSV inputs (run table, tables, histories) with one error per bad file.
The command line is ``python -m cmkd plots {features,curves,scatter,cd,bars,gains} ...``
(:mod:`cmkd.cli`). The package itself imports nothing heavy: the CLI reads :data:`PROJECTIONS`
and :data:`MAX_POINTS` for its options without importing matplotlib.
"""

#: projections :func:`cmkd.analysis.figures.maps.feature_maps` draws
PROJECTIONS = ("tsne", "umap")
#: at most this many test points per feature-map panel (a fixed random subset beyond it); keeps
#: t-SNE and UMAP fast on the paper grid (DEAP test parts have ~2,000 segments)
MAX_POINTS = 3000
