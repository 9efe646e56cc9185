"""``python -m cmkd list [methods|encoders|loaders|splits|metrics]``: what can be configured, from the catalogs.

Every section is generated from the declarations the config check reads (so it cannot drift):
methods from their ``REGISTER`` entries (:data:`cmkd.methods.REGISTRY`, the description names the
paper), encoders from ``ENCODER_PARAMS`` (:func:`cmkd.feasibility.encoder_params`), loaders from
their ``PARAMS`` (:func:`cmkd.feasibility.loader_params`), split kinds from
:mod:`cmkd.data.split_kinds`, metrics from :data:`cmkd.metrics.METRICS`. The output is Markdown;
README.md's configuration section holds it between ``<!-- catalog:list -->`` marks, and
``--check README.md`` (the test suite's check) fails when they differ. Torch-free.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from cmkd.errors import ConfigError
from cmkd.metrics import METRICS, PRIMARY
from cmkd.params import describe

SECTIONS = ("methods", "encoders", "loaders", "splits", "metrics")
BLOCK = re.compile(r"(<!-- catalog:list[^>]*-->\n)(?P<body>.*?)(<!-- /catalog:list -->)", re.S)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _param_table(params: Mapping[str, Any]) -> list[str]:
    if not params:
        return ["", "No parameters."]
    out = ["", "| parameter | type | default | meaning |", "|---|---|---|---|"]
    for name, decl in params.items():
        t, default, doc = describe(decl)
        out.append(f"| `{name}` | {_cell(t)} | `{_cell(default)}` | {_cell(doc)} |")
    return out


def _methods() -> list[str]:
    from cmkd.methods import REGISTRY  # lazy: startup (the CLI imports this module to build its parser)

    out = ["### Methods (`methods.<key>.class`, `params`)"]
    for name in sorted(REGISTRY):
        info = REGISTRY[name]
        facts = []
        if info.roles or info.variadic_roles:
            facts.append("requires: " + (", ".join(info.roles) + (" and more" if info.variadic_roles else "")
                                         if info.roles else "any roles"))
        if info.trivial:
            facts.append("trivial baseline")
        if info.presets:
            facts.append("presets of `weights`: " + ", ".join(sorted(info.presets)))
        out += ["", f"#### `{name}`", "", _cell(info.description or "(no description)")
                + (f" ({'; '.join(facts)})" if facts else "")]
        out += _param_table(info.params)
    return out


def _encoders() -> list[str]:
    from cmkd.feasibility import encoder_params  # lazy: startup (the CLI imports this module to build its parser)

    out = ["### Encoders (`encoders.<modality>.name` and its keys)"]
    for name, params in sorted(encoder_params().items()):
        out += ["", f"#### `{name}`"] + _param_table(params)
    return out


def _loaders() -> list[str]:
    from cmkd.data import LOADER_INFO  # lazy: startup (the CLI imports this module to build its parser)
    from cmkd.feasibility import loader_params  # lazy: startup (the CLI imports this module to build its parser)

    out = ["### Loaders (`datasets.<name>.loader`, `params`)"]
    for name, info in sorted(LOADER_INFO.items()):
        fam = f" (family {info.family})" if info.family else ""
        out += ["", f"#### `{name}`", "", f"{info.title}{fam}; module `{info.module}`"]
        out += _param_table(loader_params(name))
    return out


def _splits() -> list[str]:
    from cmkd.data import split_kinds  # lazy: startup (the CLI imports this module to build its parser)

    out = ["### Split kinds (`split.kind`)", "",
           "Parameters of every kind: " + ", ".join(f"`{k}`" for k in split_kinds.COMMON) + "."]
    out += _param_table(split_kinds.COMMON)
    for k in split_kinds.SPLIT_KINDS.values():
        facts = [f"family {k.family}", "several folds per seed" if k.folds else "one split per seed"]
        if k.loader_family:
            facts.append(f"needs a {k.loader_family} family data set")
        out += ["", f"#### `{k.name}`", "", f"{_cell(k.doc)} ({'; '.join(facts)})"
                + (f". From: {k.paper}" if k.paper else "")]
        out += _param_table(k.params)
    return out


def _metrics() -> list[str]:
    out = ["### Metrics (`tables[].metric`)", "", "| metric | task | better | unit | decimals | headline | label |",
           "|---|---|---|---|---|---|---|"]
    for m in METRICS.values():
        primary = " (primary)" if PRIMARY.get(m.task) == m.name else ""
        out.append(f"| `{m.name}` | {m.task}{primary} | {'higher' if m.higher_is_better else 'lower'} | "
                   f"{m.unit or '-'} | {m.decimals} | {'yes' if m.headline else 'no'} | {_cell(m.label)} |")
    return out


RENDER = {"methods": _methods, "encoders": _encoders, "loaders": _loaders, "splits": _splits, "metrics": _metrics}


def render(sections: Iterable[str] = SECTIONS) -> str:
    """The Markdown listing of ``sections`` (each one of :data:`SECTIONS`)."""
    parts = []
    for s in sections:
        if s not in RENDER:
            raise ConfigError(f"list: unknown section {s!r} (choose from {', '.join(SECTIONS)})")
        parts.append("\n".join(RENDER[s]()))
    return "\n\n".join(parts) + "\n"


def fill(text: str, where: str = "README.md") -> str:
    """``text`` with the body between ``<!-- catalog:list -->`` and ``<!-- /catalog:list -->`` replaced
    by the full listing; :class:`ConfigError` when the marks are missing."""
    if not BLOCK.search(text):
        raise ConfigError(f"{where}: no <!-- catalog:list --> ... <!-- /catalog:list --> block")
    return BLOCK.sub(lambda m: m.group(1) + render() + m.group(3), text, count=1)


def sync_file(path: str | Path, check: bool = False) -> bool:
    """Fill ``path``'s listing block (``check``: only compare); True when it already held the listing."""
    p = Path(path)
    old = p.read_text(encoding="utf-8")
    new = fill(old, str(p))
    if new != old and not check:
        p.write_text(new, encoding="utf-8")
    return new == old
