"""``python -m cmkd list [methods|encoders|loaders|splits|metrics]``: what can be configured, from the catalogs.

Every section is generated from the declarations the config check reads (so it cannot drift):
methods from their ``REGISTER`` entries (:data:`cmkd.methods.REGISTRY`, the description names the
paper), encoders from ``ENCODER_PARAMS`` (:func:`cmkd.feasibility.encoder_params`), loaders from
their ``PARAMS`` (:func:`cmkd.feasibility.loader_params`), split kinds from
:mod:`cmkd.data.split_kinds`, metrics from :data:`cmkd.metrics.METRICS`. The output is Markdown;
README.md's configuration section holds it between ``<!-- catalog:list -->`` marks, and
``--check README.md`` (the test suite's check) fails when they differ. Torch-free.

The grid a config runs is generated the same way: a ``<!-- catalog:grid FILE ... -->`` block (FILE:
the overlays merged over ``config.yaml``, as ``--configfile`` merges them; none: the default) gets
the data sets and the experiments of that config (:func:`render_grid`), so docs/paper_grid.md and
docs/seed_family.md cannot drift from config/paper.yaml; ``--sync``/``--check`` fill or compare
every block of a file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from cmkd.config import experiment_methods
from cmkd.data import LOADER_INFO
from cmkd.errors import ConfigError
from cmkd.metrics import METRICS, PRIMARY
from cmkd.params import describe

SECTIONS = ("methods", "encoders", "loaders", "splits", "metrics")
BLOCK = re.compile(r"(<!-- catalog:list[^>]*-->\n)(?P<body>.*?)(<!-- /catalog:list -->)", re.S)
GRID_BLOCK = re.compile(r"(<!-- catalog:grid(?P<files>[^>]*?)-->\n)(?P<body>.*?)(<!-- /catalog:grid -->)", re.S)


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


# ----------------------------------------------------------------------------- the grid of a config
def _split_words(split: Mapping[str, Any]) -> str:
    kind = split.get("kind", "trial")
    if kind in ("trial", "subject", "leaky"):
        return f"{kind} {':'.join(f'{float(r) * 10:g}' for r in split.get('ratios', (0.8, 0.1, 0.1)))}"
    if kind == "kfold":
        return f"kfold {split.get('n_folds', 5)} ({split.get('folds_by', 'pooled')})"
    extra = ", ".join(f"{k} {split[k]}" for k in ("train_trials", "test_session") if k in split)
    models = {"per_subject": "; one model per subject", "pooled": "; one pooled model"}.get(split.get("models"), "")
    return kind + (f" ({extra})" if extra else "") + models


def grid_datasets(config: Mapping[str, Any]) -> list[dict]:
    """The data sets the experiments of ``config`` run, in the order of ``datasets``: name, loader,
    modalities and the split they run under (their own ``split`` over the top-level one)."""
    run = {e["dataset"] for e in config["experiments"]}
    out = []
    for name, ds in config["datasets"].items():
        if name in run:
            split = {**(config.get("split") or {}), **(ds.get("split") or {})}
            out.append({"dataset": name, "loader": ds["loader"], "modalities": list(ds.get("modalities") or []),
                        "split": _split_words(split)})
    return out


def grid_experiments(config: Mapping[str, Any]) -> list[dict]:
    """The experiments of ``config``: data set, track, its teacher and student modalities,
    dimensions, the methods as configured (group names kept) and how many methods they expand to."""
    out = []
    for exp in config["experiments"]:
        tr = config["tracks"][exp["track"]]
        out.append({"dataset": exp["dataset"], "track": exp["track"], "teacher": list(tr["teacher"]),
                    "student": list(tr["student"]), "dimensions": list(exp["dimensions"]),
                    "methods": list(exp["methods"]), "n_methods": len(experiment_methods(dict(config), exp))})
    return out


def restrict(config: Mapping[str, Any], family: str | None) -> dict:
    """``config`` with only the experiments on data sets whose loader is of ``family`` (all: None)."""
    if family is None:
        return dict(config)
    exps = [e for e in config["experiments"] if LOADER_INFO[config["datasets"][e["dataset"]]["loader"]].family == family]
    return {**config, "experiments": exps}


def render_grid(config: Mapping[str, Any]) -> str:
    """Markdown: the data sets, the experiments (tracks) and the method groups of ``config``."""
    groups = config.get("method_groups") or {}
    used = [g for g in dict.fromkeys(m for e in config["experiments"] for m in e["methods"]) if g in groups]
    out = ["| data set | loader | modalities | split |", "|---|---|---|---|"]
    for d in grid_datasets(config):
        out.append(f"| `{d['dataset']}` | `{d['loader']}` | {', '.join(d['modalities'])} | {d['split']} |")
    out += ["", "| experiment | data set | track | teacher -> student | dimensions | methods |", "|---|---|---|---|---|---|"]
    for i, e in enumerate(grid_experiments(config), 1):
        methods = ", ".join(f"`{m}`" + (" (group)" if m in groups else "") for m in e["methods"])
        out.append(f"| {i} | `{e['dataset']}` | `{e['track']}` | {' + '.join(e['teacher'])} -> {' + '.join(e['student'])} "
                   f"| {', '.join(e['dimensions'])} | {methods}: {e['n_methods']} methods |")
    if used:
        out += ["", "| method group | methods |", "|---|---|"]
        for g in used:
            out.append(f"| `{g}` | {', '.join(experiment_methods(dict(config), {'methods': [g]}))} |")
    return "\n".join(out) + "\n"


def block_config(words: str, root: str | Path) -> dict:
    """The config a grid block names: ``config.yaml`` of ``root`` with the overlays of ``words``
    (space-separated paths relative to ``root``) merged over it; ``family=NAME`` keeps the
    experiments on data sets of that loader family."""
    root = Path(root)
    files = [w for w in words.split() if "=" not in w]
    opts = dict(w.split("=", 1) for w in words.split() if "=" in w)
    if set(opts) - {"family"}:
        raise ConfigError(f"catalog:grid block: unknown option(s) {sorted(set(opts) - {'family'})} (family=NAME)")
    from cmkd.validation import load_config  # lazy: startup (jsonschema; the command line imports SECTIONS)

    cfg = load_config([str(root / f) for f in files], base=str(root / "config.yaml"))[0]
    return restrict(cfg, opts.get("family"))


def fill_grid(text: str, root: str | Path) -> str:
    """``text`` with every ``<!-- catalog:grid FILES [family=NAME] -->`` block filled from its config."""
    return GRID_BLOCK.sub(lambda m: m.group(1) + render_grid(block_config(m.group("files"), root)) + m.group(4), text)


def sync_file(path: str | Path, check: bool = False, root: str | Path | None = None) -> bool:
    """Fill ``path``'s listing, grid and KD-weights blocks (``check``: only compare); True when it
    already held them. A file with none of them is a :class:`ConfigError`; grid blocks read their configs under
    ``root`` (default: the working folder)."""
    from cmkd.methods import weight_table  # lazy: startup

    p = Path(path)
    old = p.read_text(encoding="utf-8")
    other = GRID_BLOCK.search(old) or weight_table.BLOCK.search(old)
    new = old if other and not BLOCK.search(old) else fill(old, str(p))
    new = fill_grid(new, Path.cwd() if root is None else root)
    if weight_table.BLOCK.search(new):
        new = weight_table.fill(new, str(p))
    if new != old and not check:
        p.write_text(new, encoding="utf-8")
    return new == old
