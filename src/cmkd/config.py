"""Config semantics beyond the JSON schema, and resolution of one run's specification.

The workflow calls :func:`check_config` right after ``validate(config, schema)``: every error
names the config key at fault and stops Snakemake before any job runs. :func:`run_spec` turns the
config and one cell (dataset, track, dimension, method, seed) into the self-contained JSON spec a
training job receives; its hash is the run's config hash in the provenance.

Nothing here imports torch: the DAG of the paper grid must build fast.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from cmkd.errors import ConfigError
from cmkd.methods import REGISTRY

KNOWN_MODALITIES = ("eeg", "eog", "face", "eye", "eeg_de")
TASKS = ("classification", "regression")


def deep_merge(base: dict, override: dict | None) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def spec_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _modalities(config: dict, method: str, track: str, where: str) -> list[str]:
    m = config["methods"][method]
    sel = m.get("modalities", "student")
    tr = config["tracks"][track]
    if sel in ("teacher", "student"):
        return list(tr[sel])
    if isinstance(sel, list):
        return list(sel)
    raise ConfigError(f"{where}.modalities: must be 'teacher', 'student' or a list of modalities, got {sel!r}")


def iter_cells(config: dict) -> Iterable[tuple[str, str, str, str]]:
    """Every (dataset, track, dimension, method) cell of the grid, with required runs added."""
    seen = set()
    for exp in config["experiments"]:
        for dim in exp["dimensions"]:
            stack = list(dict.fromkeys([*(config.get("trivial_methods") or []), *exp["methods"]]))
            while stack:
                m = stack.pop(0)
                cell = (exp["dataset"], exp["track"], dim, m)
                if cell in seen:
                    continue
                seen.add(cell)
                yield cell
                stack.extend(config["methods"][m].get("requires", {}).values())


def check_config(config: dict, strict_tables: bool = False) -> list[str]:
    """Semantic checks; raise :class:`ConfigError` naming the key. Returns warnings: table rows
    that no experiment runs (an error with ``strict_tables``, as CI checks the shipped configs)."""
    warnings: list[str] = []
    datasets, tracks, methods, dims = config["datasets"], config["tracks"], config["methods"], config["dimensions"]
    for name, t in tracks.items():
        for side in ("teacher", "student"):
            for mod in t[side]:
                if mod not in KNOWN_MODALITIES:
                    raise ConfigError(f"tracks.{name}.{side}: unknown modality '{mod}' (known: {', '.join(KNOWN_MODALITIES)})")
    for name, m in methods.items():
        where = f"methods.{name}"
        cls = m["class"]
        if cls not in REGISTRY:
            raise ConfigError(f"{where}.class: unknown method class '{cls}' (registered: {', '.join(sorted(REGISTRY))})")
        info = REGISTRY[cls]
        req = m.get("requires", {}) or {}
        for role, target in req.items():
            if target not in methods:
                raise ConfigError(f"{where}.requires.{role}: unknown method '{target}'")
            if not info.variadic_roles and role not in info.roles:
                raise ConfigError(f"{where}.requires.{role}: method class '{cls}' takes no role '{role}' (roles: {list(info.roles)})")
        if not info.variadic_roles:
            for role in info.roles:
                if role not in req:
                    raise ConfigError(f"{where}.requires: method class '{cls}' needs a '{role}' checkpoint")
        # cycles
        path, node = [name], name
        stack = [(name, [name])]
        while stack:
            node, path = stack.pop()
            for target in (methods[node].get("requires", {}) or {}).values():
                if target in path:
                    raise ConfigError(f"{where}.requires: circular dependency {' -> '.join(path + [target])}")
                stack.append((target, path + [target]))
        sel = m.get("modalities", "student")
        if not (sel in ("teacher", "student") or isinstance(sel, list)):
            raise ConfigError(f"{where}.modalities: must be 'teacher', 'student' or a list, got {sel!r}")
        for mod, enc in (m.get("encoders") or {}).items():
            if mod not in KNOWN_MODALITIES:
                raise ConfigError(f"{where}.encoders.{mod}: unknown modality")
    for i, m in enumerate(config.get("trivial_methods") or []):
        if m not in methods:
            raise ConfigError(f"trivial_methods[{i}]: unknown method '{m}' (known: {', '.join(methods)})")
        if not REGISTRY[methods[m]["class"]].trivial:
            raise ConfigError(f"trivial_methods[{i}]: method '{m}' has class '{methods[m]['class']}', not a trivial "
                              f"class ({', '.join(sorted(k for k, v in REGISTRY.items() if v.trivial))})")
    for name, m in methods.items():
        for role, target in (m.get("requires") or {}).items():
            if REGISTRY[methods[target]["class"]].trivial:
                raise ConfigError(f"methods.{name}.requires.{role}: '{target}' is a trivial baseline (no network to distil from)")
    for i, exp in enumerate(config["experiments"]):
        where = f"experiments[{i}]"
        if exp["dataset"] not in datasets:
            raise ConfigError(f"{where}.dataset: unknown dataset '{exp['dataset']}' (known: {', '.join(datasets)})")
        if exp["track"] not in tracks:
            raise ConfigError(f"{where}.track: unknown track '{exp['track']}' (known: {', '.join(tracks)})")
        for d in exp["dimensions"]:
            if d not in dims:
                raise ConfigError(f"{where}.dimensions: unknown dimension '{d}' (known: {', '.join(dims)})")
        for m in exp["methods"]:
            if m not in methods:
                raise ConfigError(f"{where}.methods: unknown method '{m}' (known: {', '.join(methods)})")
        ds = datasets[exp["dataset"]]
        if ds["loader"] != "synthetic":
            root = ds.get("root")
            if not root:
                raise ConfigError(f"datasets.{exp['dataset']}.root: not set; give the folder of the raw '{ds['loader']}' files "
                                  f"(used by {where})")
            if not Path(root).is_dir():
                raise ConfigError(f"datasets.{exp['dataset']}.root: folder '{root}' does not exist")
        have = set(ds["modalities"])
        tr = tracks[exp["track"]]
        for mod in set(tr["teacher"]) | set(tr["student"]):
            if mod not in have:
                raise ConfigError(
                    f"{where}.track: track '{exp['track']}' needs modality '{mod}', which dataset "
                    f"'{exp['dataset']}' does not provide (datasets.{exp['dataset']}.modalities: {sorted(have)})")
    for ds, tr, dim, m in iter_cells(config):
        for mod in _modalities(config, m, tr, f"methods.{m}"):
            if mod not in set(datasets[ds]["modalities"]):
                raise ConfigError(f"methods.{m}.modalities: '{mod}' is not provided by dataset '{ds}'")
            if mod not in config["encoders"] and mod not in (config["methods"][m].get("encoders") or {}):
                raise ConfigError(f"encoders.{mod}: no encoder configured for modality '{mod}' (needed by method '{m}')")
    cells = set(iter_cells(config))
    for t in config.get("tables", []) or []:
        if "track" in t and t["track"] not in tracks:
            raise ConfigError(f"tables.{t['name']}.track: unknown track '{t['track']}'")
        for m in t.get("rows", {}) or {}:
            if m not in methods:
                raise ConfigError(f"tables.{t['name']}.rows: unknown method '{m}'")
            # every table cell maps to runs in the DAG
            if not any(c[3] == m and ("track" not in t or c[1] == t["track"]) for c in cells):
                msg = (f"tables.{t['name']}.rows: method '{m}' is not run on track "
                       f"'{t.get('track', 'any')}' by any experiment, so the table cell would stay empty")
                if strict_tables:
                    raise ConfigError(msg)
                warnings.append(msg)
    return warnings


def prepared_dir(config: dict, dataset: str) -> str:
    return f"{config['results']}/prepared/{dataset}"


def run_dir(config: dict, dataset: str, track: str, dimension: str, method: str, seed: int | str) -> str:
    return f"{config['results']}/{dataset}/{track}/{dimension}/{method}/seed{seed}"


def _encoder(base: dict, override: dict | None) -> dict:
    """A method's encoder override: merged into the base when it keeps the encoder, replaces it
    when it names another encoder (whose keys differ)."""
    if override and override.get("name", base.get("name")) != base.get("name"):
        return copy.deepcopy(override)
    return deep_merge(base, override)


def run_spec(config: dict, dataset: str, track: str, dimension: str, method: str, seed: int) -> dict:
    """The complete, self-contained specification of one training run."""
    m = config["methods"][method]
    where = f"methods.{method}"
    modalities = _modalities(config, method, track, where)
    encoders = {mod: _encoder(config["encoders"].get(mod, {}), (m.get("encoders") or {}).get(mod)) for mod in modalities}
    training = deep_merge(config["training"], m.get("training"))
    split = deep_merge(config["split"], m.get("split"))
    dim = dict(config["dimensions"][dimension])
    requires = {
        role: {"method": target, "dir": run_dir(config, dataset, track, dimension, target, seed)}
        for role, target in (m.get("requires") or {}).items()
    }
    spec = {
        "dataset": dataset,
        "track": track,
        "dimension": dimension,
        "dimension_spec": dim,
        "method": method,
        "class": m["class"],
        "params": copy.deepcopy(m.get("params", {}) or {}),
        "modalities": modalities,
        "encoders": encoders,
        "head": deep_merge(config["head"], m.get("head")),
        "architecture": m.get("architecture"),
        "model": copy.deepcopy(m.get("model") or {}),
        "training": training,
        "split": split,
        "requires": requires,
        "seed": int(seed),
        "threads": int(config["threads"]),
        "device": config.get("device", "auto"),
        "on_failure": config.get("on_failure", "record"),
        "prepared": prepared_dir(config, dataset),
        "synthetic": bool(config["datasets"][dataset].get("synthetic", False)),
    }
    spec["config_hash"] = spec_hash({k: v for k, v in spec.items() if k not in ("prepared",)})
    return spec
