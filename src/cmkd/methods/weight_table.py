"""The table of the KD baselines' weight presets in docs/kd_weights.md, generated from the presets.

The values live in one place: the ``presets`` of each baseline's ``REGISTER`` entry (selected by
its ``weights`` parameter, :func:`cmkd.methods.apply_preset`). docs/kd_weights.md holds their table
between ``<!-- generated:kd-weights -->`` and ``<!-- /generated:kd-weights -->``; the sources of the
values are written beside it, by hand. ``python -m cmkd.methods.weight_table --sync docs/kd_weights.md``
rewrites the block, ``--check`` (the test suite's check) fails when it is stale. Torch-free.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

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


def sync_file(path: str | Path, check: bool = False, registry=None) -> bool:
    """Fill ``path``'s kd-weights block (``check``: only compare); True when it already held the table."""
    p = Path(path)
    old = p.read_text(encoding="utf-8")
    new = fill(old, str(p), registry)
    if new != old and not check:
        p.write_text(new, encoding="utf-8")
    return new == old


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cmkd.methods.weight_table", description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="docs/kd_weights.md")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when the block is stale")
    ap.add_argument("--sync", action="store_true", help="rewrite the block (the default)")
    a = ap.parse_args(argv)
    same = sync_file(a.path, check=a.check)
    if a.check and not same:
        print(f"{a.path}: the kd-weights table is stale: run python -m cmkd.methods.weight_table --sync {a.path}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
