"""Lookups of the config's tables (names, tracks, titles) for the rules."""
from __future__ import annotations


def table_names(config: dict) -> list[str]:
    """The configured tables' names, in the config's order."""
    return [t["name"] for t in config.get("tables", [])]


def bar_tables(config: dict) -> list[str]:
    """The tables with a bar plot: every table but a gains table (its rows are averaged differences,
    not a metric of runs: cmkd.analysis.averaged_gains)."""
    return [t["name"] for t in config.get("tables", []) if not t.get("gains")]


def table_entry(config: dict, name: str) -> dict | None:
    """The config entry of table ``name`` (None when there is none)."""
    return next((t for t in config.get("tables", []) if t["name"] == name), None)


def table_track(config: dict, name: str) -> str:
    """The report subcategory of a table: its track, or "all tracks"."""
    return table_entry(config, name).get("track") or "all tracks"


def table_bar_track(config: dict, name: str) -> str:
    """The track a table's bar plot draws ("" for a table over every track, or no such table)."""
    return (table_entry(config, name) or {}).get("track", "")


def table_title(config: dict, name: str) -> str:
    """A table's title (its name when it has none)."""
    return (table_entry(config, name) or {}).get("title", name)
