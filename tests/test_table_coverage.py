"""Every run of a grid is reported in a captioned table, and every caption speaks of its own rows.

The walk reads the configs alone (no data, no run): the cells of :func:`cmkd.config.iter_cells`
after :func:`cmkd.config.select_datasets` (the tables the workflow keeps), and the tables' tracks,
data sets, dimensions, metrics and rows. A run counts as reported by a table other than the
catch-all ``all_methods`` when the table has a caption, shows its track, data set and dimension
(with a metric of the dimension's task), and lists its method as a row, or a row that needs it
(``methods.<m>.requires``, followed to the end), or it is a trivial baseline of a table that shows
them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cmkd.analysis.averaged_gains import gain_methods
from cmkd.config import iter_cells, select_datasets, table_datasets
from cmkd.metrics import METRICS
from cmkd.validation import load_config

ROOT = Path(__file__).resolve().parents[1]
CATCH_ALL = "all_methods"
GRIDS = {"default": [], "paper": [str(ROOT / "config" / "paper.yaml")]}


def grid(name: str) -> dict:
    return select_datasets(load_config(GRIDS[name], base=str(ROOT / "config.yaml"))[0])


def _needs(config: dict, method: str) -> set[str]:
    """Every method ``method`` needs trained first, transitively."""
    out: set[str] = set()
    stack = list((config["methods"][method].get("requires") or {}).values())
    while stack:
        m = stack.pop()
        if m not in out:
            out.add(m)
            stack.extend((config["methods"][m].get("requires") or {}).values())
    return out


def table_cells(config: dict, table: dict, cells: set) -> set:
    """The runs of ``cells`` that ``table`` reports (rows, the runs they need, the trivial rows)."""
    if table["name"] == CATCH_ALL or not (table.get("caption") or "").strip() or "track" not in table:
        return set()
    task = METRICS[table.get("metric", "accuracy")].task
    trivial = set(config.get("trivial_methods") or []) if table.get("trivial", True) else set()
    out = set()
    datasets = table_datasets(config, table)
    for ds, tr, dim, m in cells:
        if tr != table["track"] or ds not in datasets:
            continue
        if table.get("dimensions") and dim not in table["dimensions"]:
            continue
        if config["dimensions"][dim].get("task", "classification") != task:
            continue
        shown = [r for r in table.get("rows") or {} if (ds, tr, dim, r) in cells]
        if m in trivial or m in shown or any(m in _needs(config, r) for r in shown):
            out.add((ds, tr, dim, m))
    return out


def unreported(config: dict) -> list[tuple]:
    cells = set(iter_cells(config))
    seen = set()
    for t in config.get("tables") or []:
        seen |= table_cells(config, t, cells)
    return sorted(cells - seen)


def _named(text: str, word: str) -> bool:
    """``word`` in ``text`` as a whole word, not as a paper's name in a citation ("CDGKD Table 3",
    "CDGKD eq. (9)", "CDGKD §4.3", "CDGKD's")."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])(?! Table| eq\.| §|'s)", text) is not None


def caption_strays(config: dict) -> list[str]:
    """Rows a table's title or caption names that the table does not show: method keys written as
    identifiers (with an underscore: ``cmcrd_nce``), and row labels that name one method only
    across the tables (``TAKD``, ``DGKD (2 TAs)``)."""
    methods = set(config["methods"])
    label_of: dict[str, set[str]] = {}
    for t in config.get("tables") or []:
        for m, lab in (t.get("labels") or {}).items():
            label_of.setdefault(str(lab), set()).add(m)
    unique = {lab: next(iter(ms)) for lab, ms in label_of.items() if len(ms) == 1}
    out = []
    for t in config.get("tables") or []:
        if t["name"] == CATCH_ALL:
            continue
        text = f"{t.get('title', '')} {t.get('caption', '')}"
        shown = set(t.get("rows") or {}) | set(t.get("optional_rows") or [])
        shown |= {m for m in gain_methods(t) if m in methods}   # a gains table averages these runs
        shown |= set().union(*(_needs(config, r) for r in shown if r in methods)) if shown else set()
        for m in sorted(methods - shown):
            if "_" in m and _named(text, m):
                out.append(f"{t['name']}: names method {m}, not a row")
        for lab, m in sorted(unique.items()):
            if m not in shown and _named(text, lab):
                out.append(f"{t['name']}: names '{lab}' ({m}), not a row")
    return out


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_every_run_is_in_a_captioned_table(name):
    missing = unreported(grid(name))
    assert not missing, f"{len(missing)} runs in no captioned table but {CATCH_ALL}: {missing[:40]}"


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_captions_name_only_their_rows(name):
    assert caption_strays(grid(name)) == []


def test_the_walk_sees_a_missing_row_and_a_stray_caption():
    cfg = grid("paper")
    arch = next(t for t in cfg["tables"] if t["name"] == "cmcrd_architectures")
    tabs = [t for t in cfg["tables"] if "cmcrd_deep" in (t.get("rows") or {})]   # and cmcrd_kd_deep
    assert arch in tabs and len(tabs) == 2
    saved = [dict(t["rows"]) for t in tabs]
    for t in tabs:
        t["rows"] = {m: k for m, k in t["rows"].items() if m != "cmcrd_deep"}
    assert ("seed_raw", "eye-to-eeg", "emotion3", "cmcrd_deep") in unreported(cfg)
    for t, rows in zip(tabs, saved):
        t["rows"] = rows
    arch["caption"] += " Beside cmcrd_nce."
    assert "cmcrd_architectures: names method cmcrd_nce, not a row" in caption_strays(cfg)
