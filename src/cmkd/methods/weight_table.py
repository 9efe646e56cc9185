"""The table of the KD baselines' weight presets in docs/kd_weights.md, generated from the presets.

The values live in one place: the ``presets`` of each baseline's ``REGISTER`` entry (selected by
its ``weights`` parameter, :func:`cmkd.methods.apply_preset`). docs/kd_weights.md holds their table
between ``<!-- generated:kd-weights -->`` and ``<!-- /generated:kd-weights -->``; the sources of the
values are written beside it, by hand. ``python -m cmkd list --sync docs/kd_weights.md`` rewrites the
block with the other generated blocks (:func:`cmkd.listing.sync_file`), ``--check`` (the test suite's
check) fails when it is stale. Torch-free.
"""
from __future__ import annotations

import re

from cmkd.errors import ConfigError
from cmkd.methods import REGISTRY

# the KD baselines whose presets the table lists, in table order (CMCRD inherits CRD's presets)
BASELINES = ("kd", "fitnets", "nst", "sp", "rkd", "pkt", "crd")
PRESETS = ("paper", "repdistiller", "previous")
BLOCK = re.compile(r"(<!-- generated:kd-weights[^>]*-->\n)(?P<body>.*?)(<!-- /generated:kd-weights -->)", re.S)


def _value(v) -> str:
    """A preset value as the table shows it: up to 6 significant digits (2/3 -> 0.666667)."""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def rows(registry=None) -> list[tuple[str, str, dict[str, object]]]:
    """``(method, parameter, {preset: value})`` for every parameter a preset of a baseline sets, in
    :data:`BASELINES` order, each method's parameters in the order its ``paper`` preset names them."""
    registry = REGISTRY if registry is None else registry
    out = []
    for m in BASELINES:
        presets = registry[m].presets
        if set(presets) != set(PRESETS):
            raise ConfigError(f"{m}: the presets {sorted(presets)} differ from {list(PRESETS)}")
        names = list(presets["paper"]) + [p for s in PRESETS for p in presets[s] if p not in presets["paper"]]
        for p in dict.fromkeys(names):
            out.append((m, p, {s: presets[s].get(p) for s in PRESETS}))
    return out


def render(registry=None) -> str:
    """The Markdown table of the presets (a missing value is shown as ``-``)."""
    lines = ["| method | parameter | " + " | ".join(f"`{s}`" for s in PRESETS) + " |",
             "|---|---|" + "---|" * len(PRESETS)]
    for m, p, vals in rows(registry):
        cells = " | ".join("-" if vals[s] is None else _value(vals[s]) for s in PRESETS)
        lines.append(f"| `{m}` | `{p}` | {cells} |")
    return "\n".join(lines) + "\n"


def fill(text: str, where: str = "docs/kd_weights.md", registry=None) -> str:
    """``text`` with its kd-weights block replaced by :func:`render`; ConfigError when it has none."""
    if not BLOCK.search(text):
        raise ConfigError(f"{where}: no <!-- generated:kd-weights --> ... <!-- /generated:kd-weights --> block")
    return BLOCK.sub(lambda m: m.group(1) + render(registry) + m.group(3), text, count=1)
