"""Analysis of finished runs: runs.csv and the tables (:mod:`cmkd.analysis.tables`), paired
statistics (:mod:`cmkd.analysis.stats`) and figures (:mod:`cmkd.analysis.figures`, one module per
kind of figure)."""
