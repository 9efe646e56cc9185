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

from cmkd.data import (LOADER_INFO, LOADERS, MODALITIES, family, split_kinds, labels as labels_mod, splits as splits_mod)
from cmkd.data.labels import check_tie
from cmkd.data.prepared import load_prepared
from cmkd.data.selection import check_fraction
from cmkd.errors import ConfigError, DataError
from cmkd.methods import REGISTRY, method_params

KNOWN_MODALITIES = MODALITIES  # the modality table: cmkd.data.MODALITY_KINDS
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


def evaluated_modalities(config: dict, method: str, track: str) -> list[str]:
    """The modalities the network a run evaluates reads: the method's ``modalities`` (what it
    trains on), unless its registered class declares ``evaluates: student`` (e.g. AMBOKD, which
    trains on face + EEG and is evaluated as its visual branch): then the track's student
    modalities. Figures group like networks by this (cmkd.workflow.figure_jobs.cd_group_methods)."""
    info = REGISTRY.get(config["methods"][method].get("class", ""))
    if info is not None and info.evaluates == "student":
        return sorted(config["tracks"][track]["student"])
    return sorted(_modalities(config, method, track, f"methods.{method}"))


def like_networks(config: dict, track: str, group: str, leave_out=()) -> list[str]:
    """The methods of ``track`` whose evaluated networks solve the same task from the same input:
    ``group`` ``students`` (they read the track's student modalities) or ``teachers`` (the teacher
    modalities), by :func:`evaluated_modalities`; in grid order, ``leave_out`` (e.g. leaky runs)
    left out. The rank figures compare these (cmkd.workflow.figure_jobs.cd_group_methods)."""
    if group not in ("students", "teachers"):
        raise ValueError(f"like_networks: group must be 'students' or 'teachers', got {group!r}")
    want = sorted(config["tracks"][track]["student" if group == "students" else "teacher"])
    out: list[str] = []
    for _ds, t, _dim, m in iter_cells(config):
        if t == track and m not in leave_out and m not in out and evaluated_modalities(config, m, t) == want:
            out.append(m)
    return out


def experiment_methods(config: dict, exp: dict, where: str = "experiments") -> list[str]:
    """An experiment's methods, with each name of ``method_groups`` replaced by its members
    (groups may name groups), in order, without repeats. A group is checked when an experiment
    uses it (a config trimmed to a few methods may keep groups it does not use)."""
    groups = config.get("method_groups") or {}
    out: list[str] = []

    def add(names, trail):
        for n in names:
            if n in groups:
                if n in trail:
                    raise ConfigError(f"method_groups.{n}: circular group {' -> '.join(trail + [n])}")
                add(groups[n], trail + [n])
            elif n not in config["methods"]:
                at = f"method_groups.{trail[-1]}" if trail else f"{where}.methods"
                raise ConfigError(f"{at}: unknown method '{n}' (known: {', '.join(config['methods'])}; "
                                  f"groups: {', '.join(groups) or 'none'})")
            elif n not in out:
                out.append(n)

    add(exp["methods"], [])
    return out


def trivial_method_names(config: dict) -> list[str]:
    """Methods of the config whose class is a trivial baseline (fitted on the training labels
    alone: no network, no GPU); unknown classes are check_config's business."""
    return [m for m, spec in config["methods"].items()
            if spec.get("class") in REGISTRY and REGISTRY[spec["class"]].trivial]


def table_datasets(config: dict, table: dict) -> set[str]:
    """The data sets a table reports: its ``datasets``, else those of the experiments on its track
    (every experiment's for a table without a track)."""
    if table.get("datasets"):
        return set(table["datasets"])
    return {e["dataset"] for e in config["experiments"] if "track" not in table or e["track"] == table["track"]}


def select_datasets(config: dict) -> dict:
    """The config restricted to ``select_datasets`` (a list of keys of ``datasets``; all when absent):
    only the selected data sets' experiments and the tables that report one of them, so a user
    licensed for one data set plans and runs its tables with only its raw root. Without a selection,
    the tables that report no data set of the grid are left out. The selection is kept in
    ``select_datasets``; applying it twice changes nothing."""
    sel = config.get("select_datasets")
    run = {e["dataset"] for e in config["experiments"]}
    if sel is None:
        keep = run  # every data set; a table reporting none of them (a paper-grid table in the default) stays out
    else:
        if not isinstance(sel, list) or not all(isinstance(d, str) for d in sel) or not sel:
            raise ConfigError(f"select_datasets: a non-empty list of keys of datasets, got {sel!r} "
                              f"(on the command line: --config 'select_datasets=[deap]')")
        for d in sel:
            if d not in config["datasets"]:
                raise ConfigError(f"select_datasets: unknown data set '{d}' (keys of datasets: {', '.join(config['datasets'])})")
        if not set(sel) & run:
            raise ConfigError(f"select_datasets: no experiment runs {sel} (experiments run: {', '.join(sorted(run))})")
        keep = set(sel)
    tables = [t for t in config.get("tables", []) or [] if table_datasets(config, t) & keep]
    experiments = [e for e in config["experiments"] if e["dataset"] in keep]
    if len(tables) == len(config.get("tables", []) or []) and len(experiments) == len(config["experiments"]):
        return config
    return {**config, "tables": tables, "experiments": experiments}


def iter_cells(config: dict) -> Iterable[tuple[str, str, str, str]]:
    """Every (dataset, track, dimension, method) cell of the grid, with required runs added."""
    seen = set()
    for exp in config["experiments"]:
        for dim in exp["dimensions"]:
            stack = list(dict.fromkeys([*(config.get("trivial_methods") or []), *experiment_methods(config, exp)]))
            while stack:
                m = stack.pop(0)
                cell = (exp["dataset"], exp["track"], dim, m)
                if cell in seen:
                    continue
                seen.add(cell)
                yield cell
                stack.extend(config["methods"][m].get("requires", {}).values())


def _check_dataset_modalities(name: str, ds: dict) -> None:
    """A modality the data set never recorded (MAHNOB-HCI has no EOG) is an error saying why;
    the reasons live in the loader module's ``LOADER["not_recorded"]`` (read without importing it)."""
    not_recorded = LOADER_INFO[ds["loader"]].not_recorded
    params = ds.get("params") or {}
    for key, mods in (("modalities", ds.get("modalities")), ("params.modalities", params.get("modalities"))):
        for m in mods or []:
            if m in not_recorded:
                raise ConfigError(f"datasets.{name}.{key}: no modality '{m}': {not_recorded[m]}")


def check_config(config: dict, strict_tables: bool = False, jobs_use_this_python: bool = True) -> list[str]:
    """Semantic checks; raise :class:`ConfigError` naming the key. Returns warnings: table rows
    that no experiment runs (an error with ``strict_tables``, as CI checks the shipped configs).
    ``jobs_use_this_python``: the jobs run this interpreter (not a conda env of their own), so
    ``device: cuda`` is checked against this installation's torch build."""
    warnings: list[str] = []
    datasets, tracks, methods, dims = config["datasets"], config["tracks"], config["methods"], config["dimensions"]
    for name, ds in datasets.items():
        if ds["loader"] not in LOADERS:
            raise ConfigError(f"datasets.{name}.loader: unknown loader '{ds['loader']}' (known: {', '.join(LOADERS)})")
        for mod in ds["modalities"]:
            if mod not in KNOWN_MODALITIES:
                raise ConfigError(f"datasets.{name}.modalities: unknown modality '{mod}' (known: {', '.join(KNOWN_MODALITIES)})")
        _check_dataset_modalities(name, ds)
    for name, d in dims.items():
        if "tie" in d:
            check_tie(d["tie"], f"dimensions.{name}.tie")
            if d.get("task") != "classification" or d.get("n_classes", 2) != 2:
                raise ConfigError(f"dimensions.{name}.tie: applies to binary classification of ratings only "
                                  f"(task {d.get('task')!r})")
    for name, t in tracks.items():
        check_fraction((t.get("split") or {}).get("feedback_fraction"), f"tracks.{name}.split.feedback_fraction")
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
        method_params(cls, m.get("params"), f"{where}.params")  # unknown or ill-typed parameter
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
    for g in config.get("method_groups") or {}:
        if g in methods:
            raise ConfigError(f"method_groups.{g}: the name is also a method (methods.{g}); a group needs its own name")
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
        experiment_methods(config, exp, where)  # unknown method, unknown group member, circular group
        ds = datasets[exp["dataset"]]
        if ds["loader"] != "synthetic":
            root = ds.get("root")
            if not root:
                raise ConfigError(f"datasets.{exp['dataset']}.root: not set; give the folder of the raw '{ds['loader']}' files "
                                  f"(used by {where})")
            if not Path(root).is_dir():
                raise ConfigError(f"datasets.{exp['dataset']}.root: folder '{root}' does not exist")
            if not any(Path(root).iterdir()):
                raise ConfigError(f"datasets.{exp['dataset']}.root: folder '{root}' is empty "
                                  f"(no raw '{ds['loader']}' files; used by {where})")
        _check_protocol_split(config, exp, ds)
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
    check_visual_weights(config)
    cells = set(iter_cells(config))
    grid_datasets = {exp["dataset"] for exp in config["experiments"]}
    for t in config.get("tables", []) or []:
        t_ds = set(t.get("datasets") or grid_datasets)
        if not t_ds & grid_datasets:
            continue  # a table of data sets this grid does not run (its track may be the paper grid's): not planned
        if "track" in t and t["track"] not in tracks:
            raise ConfigError(f"tables.{t['name']}.track: unknown track '{t['track']}'")
        if t.get("reference") and "track" in t and \
                t["reference"] not in (tracks[t["track"]].get("references") or ["baseline"]):
            raise ConfigError(f"tables.{t['name']}.reference: '{t['reference']}' is not one of "
                              f"tracks.{t['track']}.references, so no test against it is run")
        if t.get("gains") and (t.get("rows") or "track" not in t):
            raise ConfigError(f"tables.{t['name']}.gains: a gains table has a track and no rows (its rows are the gains)")
        for key, g in (t.get("gains") or {}).items():
            for suffix in (t.get("variants") or {"": ""}).values():
                for m in [g["method"], *g["versus"]]:
                    if m + suffix not in methods:  # a variant's method a grid does not declare: no unit there
                        if not suffix:
                            raise ConfigError(f"tables.{t['name']}.gains.{key}: unknown method '{m}'")
        for m in t.get("optional_rows") or []:
            if m not in (t.get("rows") or {}):
                raise ConfigError(f"tables.{t['name']}.optional_rows: '{m}' is not one of the table's rows")
        for m in t.get("rows", {}) or {}:
            if m not in methods:
                raise ConfigError(f"tables.{t['name']}.rows: unknown method '{m}'")
            # every table cell maps to runs in the DAG (rows the table declares optional excepted)
            if m in (t.get("optional_rows") or []):
                continue
            if not any(c[3] == m and c[0] in t_ds and ("track" not in t or c[1] == t["track"]) for c in cells):
                msg = (f"tables.{t['name']}.rows: method '{m}' is not run on track "
                       f"'{t.get('track', 'any')}' by any experiment, so the table cell would stay empty")
                if strict_tables:
                    raise ConfigError(msg)
                warnings.append(msg)
    return warnings


def check_prepared_validation(config: dict) -> None:
    """At plan time, where a data set's prepared ``meta.json`` exists: every run's split (each seed,
    each distinct split of the grid's cells, each classification dimension) has a validation part
    holding every class of its training part (:func:`cmkd.data.splits.check_val_classes`; a
    DataError naming the data set, subject and class). A data set not prepared yet is checked by
    its jobs at start, before any epoch. Torch-free: the index and label arrays only."""
    todo: dict = {}
    for ds, tr, dim, m in iter_cells(config):
        if not (Path(prepared_dir(config, ds)) / "meta.json").is_file():
            continue
        d = config["dimensions"][dim]
        if d.get("task", "classification") != "classification":
            continue
        split = effective_run_config(config, ds, tr, dim, m)["split"]
        key = (ds, dim, json.dumps(split, sort_keys=True))
        todo.setdefault(key, (d, split))
    preps: dict = {}
    for (ds, dim, _), (d, split) in todo.items():
        if ds not in preps:
            preps[ds] = load_prepared(prepared_dir(config, ds))
        prep = preps[ds]
        target = d.get("target", dim)
        y = labels_mod.targets(prep, target, "classification", float(d.get("threshold", 5.0)), tie=d.get("tie", "low"))
        names = (prep.meta.get("labels") or {}).get("names") if target == labels_mod.EMOTION else None
        for seed in config.get("seeds") or [0]:
            for f, sp in enumerate(splits_mod.run_splits(prep, int(seed), split, y, "classification")):
                fold = f if split_kinds.fold_run(split) else None
                try:
                    splits_mod.check_val_classes(sp, y, prep["subject"], prep["trial"], ds,
                                                 splits_mod.per_subject_validation(split), names=names, fold=fold)
                except DataError as e:
                    raise DataError(f"{e} (seed {seed}, dimension {dim}; found at plan time in "
                                    f"{prepared_dir(config, ds)}/meta.json's data)") from None


def check_visual_weights(config: dict) -> None:
    """Every timm (visual) encoder a run on a real data set builds must load weights
    (``pretrained: true`` or ``pretrained_path``, a file that exists) or say
    ``allow_random_init: true``: the paper's visual features come from ImageNet-pretrained PVT
    (CDGKD §4.3 and its authors' code), so a randomly initialised PVT is a different experiment.
    Synthetic data sets need no weights. ConfigError names the key."""
    seen = set()
    for ds, tr, _dim, m in iter_cells(config):
        for mod in _modalities(config, m, tr, f"methods.{m}"):
            override = (config["methods"][m].get("encoders") or {}).get(mod)
            enc = _encoder(config["encoders"].get(mod, {}), override)
            if enc.get("name") != "timm":
                continue
            key = f"methods.{m}.encoders.{mod}" if override else f"encoders.{mod}"
            path = enc.get("pretrained_path")
            if path and not Path(str(path)).is_file():
                raise ConfigError(f"{key}.pretrained_path: no such weights file: {path!r}")
            if config["datasets"][ds].get("synthetic", False) or (key, ds) in seen:
                continue
            seen.add((key, ds))
            if not (path or enc.get("pretrained") is True or enc.get("allow_random_init") is True):
                raise ConfigError(
                    f"{key}: the visual encoder '{enc.get('arch')}' would be randomly initialised on data set '{ds}' "
                    f"(method '{m}'); set {key}.pretrained: true (timm's ImageNet weights) or {key}.pretrained_path "
                    f"(a local weights file), or {key}.allow_random_init: true to train it from scratch on purpose")
#: loaders with sessions (their LOADER declares "family": "seed"): the SEED-family protocol splits apply
SEED_FAMILY_LOADERS = family("seed")
#: the keys a split section accepts (every declared parameter of a split kind: cmkd.data.split_kinds)
SPLIT_KEYS = split_kinds.split_keys()


def _check_protocol_split(config: dict, exp: dict, ds: dict) -> None:
    """A data set's own split section (known keys and kinds, checked values), and for every run of
    the experiment the needs of its split kind (:mod:`cmkd.data.split_kinds`): a kind of a loader
    family (the SEED-family protocols) needs a data set of that family, and a parameter without a
    default (``chronological``'s ``train_trials``) must be given."""
    split_kinds.check_section(ds.get("split"), f"datasets.{exp['dataset']}.split")
    split_kinds.check_section(config["tracks"][exp["track"]].get("split"), f"tracks.{exp['track']}.split")
    for m in experiment_methods(config, exp):
        split_kinds.check_section(config["methods"][m].get("split"), f"methods.{m}.split")
        sp = effective_run_config(config, exp["dataset"], exp["track"], None, m)["split"]
        kind = split_kinds.get(sp["kind"], "split.kind")
        where = next((w for w, part in ((f"methods.{m}.split", config["methods"][m].get("split")),
                                        (f"tracks.{exp['track']}.split", config["tracks"][exp["track"]].get("split")),
                                        (f"datasets.{exp['dataset']}.split", ds.get("split")))
                      if (part or {}).get("kind") == kind.name), "split")
        if kind.loader_family and ds["loader"] not in family(kind.loader_family):
            raise ConfigError(f"{where}.kind: '{kind.name}' is a {kind.loader_family.upper()}-family protocol; "
                              f"dataset '{exp['dataset']}' (loader {ds['loader']}) has no sessions")
        for p, decl in kind.params.items():
            if decl.default is None and not decl.nullable and sp.get(p) is None:
                raise ConfigError(f"{where}.{p}: required by split.kind '{kind.name}' ({decl.doc})")
        if sp.get("models", "pooled") != "pooled" and "models" not in kind.params:
            # a models key merged from another section than the kind's (e.g. the top-level split):
            # the split would silently train one pooled model
            src = next((w for w, part in ((f"methods.{m}.split", config["methods"][m].get("split")),
                                          (f"tracks.{exp['track']}.split", config["tracks"][exp["track"]].get("split")),
                                          (f"datasets.{exp['dataset']}.split", ds.get("split")),
                                          ("split", config.get("split")))
                        if "models" in (part or {})), "split")
            raise ConfigError(f"{src}.models: {sp['models']!r} for method '{m}' on {exp['dataset']} / {exp['track']}, "
                              f"whose split kind '{kind.name}' trains no per-subject models (only "
                              f"{', '.join(k for k in split_kinds.SPLIT_KINDS if 'models' in split_kinds.get(k).params)})")


def prepared_dir(config: dict, dataset: str) -> str:
    return f"{config['results']}/prepared/{dataset}"


#: the folder of one run; the rules use it with wildcards (``run_dir(config, "{dataset}", ...)``)
RUN_DIR = "{results}/{dataset}/{track}/{dimension}/{method}/seed{seed}"


def run_dir(config: dict, dataset: str, track: str, dimension: str, method: str, seed: int | str) -> str:
    return RUN_DIR.format(results=config["results"], dataset=dataset, track=track, dimension=dimension,
                          method=method, seed=seed)


def _encoder(base: dict, override: dict | None) -> dict:
    """A method's encoder override: merged into the base when it keeps the encoder, replaces it
    when it names another encoder (whose keys differ)."""
    if override and override.get("name", base.get("name")) != base.get("name"):
        return copy.deepcopy(override)
    return deep_merge(base, override)


#: the values a run takes for the optional ``training`` keys it leaves out (the schema declares these
#: keys without defaults, so that a config's hash covers only what it sets; ``stream_threshold_mb``:
#: :data:`cmkd.data.stream.DEFAULT_STREAM_THRESHOLD_MB`)
TRAINING_DEFAULTS = {"optimizer": "adam", "weight_decay": 0.0, "eval_batch_size": 256, "select_on": "accuracy",
                     "autocast": "off", "teacher_cache_mb": 1024}


def training_settings(training: dict) -> dict:
    """A run's ``training`` section (as configured, the method's merged over the config's) with
    :data:`TRAINING_DEFAULTS` filled in for the keys it leaves out."""
    return {**copy.deepcopy(TRAINING_DEFAULTS), **training}


def context_split(config: dict, dataset: str, track: str) -> dict:
    """The split settings of a (data set, track) before any method's own: track > data set > global
    (merged key by key), as configured; the reference a method's split is compared with."""
    return deep_merge(deep_merge(config["split"], config["datasets"][dataset].get("split")),
                      config["tracks"][track].get("split"))


def cell_split(config: dict, dataset: str, track: str, method: str) -> dict:
    """The split settings a run gets: method > track > data set > global (merged key by key), as
    configured (the kind's declared defaults are filled where the split is made:
    :func:`cmkd.data.split_kinds.settings`)."""
    return deep_merge(context_split(config, dataset, track), config["methods"][method].get("split"))


def effective_run_config(config: dict, dataset: str, track: str, dimension: str | None, method: str,
                         seed: int | None = None) -> dict:
    """The one merge of a run's settings, read by the run spec, the check and ``cell``:

    - ``split``: the split section as configured (:func:`cell_split`; the run's config hash covers it);
    - ``split_settings``: the same with its kind's declared defaults (:func:`cmkd.data.split_kinds.settings`);
    - ``training``: ``training`` with the method's ``training`` merged over it (the run's config hash
      covers it); ``training_settings``: the same with :data:`TRAINING_DEFAULTS` filled in;
    - ``params``: the method's ``params`` as configured; ``method_params``: with its class's declared
      defaults and presets (:func:`cmkd.methods.method_params`; a ConfigError names the key);
    - ``dimension``: the dimension's settings (None without a dimension); ``seed``: the seed (None
      without one).
    """
    m = config["methods"][method]
    split = cell_split(config, dataset, track, method)
    training = deep_merge(config["training"], m.get("training"))
    return {
        "split": split,
        "split_settings": split_kinds.settings(split),
        "training": training,
        "training_settings": training_settings(training),
        "params": copy.deepcopy(m.get("params", {}) or {}),
        "method_params": method_params(m["class"], m.get("params"), f"methods.{method}.params"),
        "dimension": None if dimension is None else dict(config["dimensions"][dimension]),
        "seed": None if seed is None else int(seed),
    }


def run_spec(config: dict, dataset: str, track: str, dimension: str, method: str, seed: int) -> dict:
    """The complete, self-contained specification of one training run."""
    m = config["methods"][method]
    where = f"methods.{method}"
    modalities = _modalities(config, method, track, where)
    encoders = {mod: _encoder(config["encoders"].get(mod, {}), (m.get("encoders") or {}).get(mod)) for mod in modalities}
    eff = effective_run_config(config, dataset, track, dimension, method, seed)
    training, split, dim = eff["training"], eff["split"], eff["dimension"]
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
        "params": eff["params"],
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
    if m.get("tuning"):  # a tuned twin (cmkd.tuning.expand): its study's result, read by the final run
        spec["tuning"] = {**m["tuning"], "study": f"{run_dir(config, dataset, track, dimension, method, seed)}/study.json"}
    spec["config_hash"] = spec_hash({k: v for k, v in spec.items() if k not in ("prepared",)})
    return spec
