"""Checks before the DAG of what a job would otherwise find out late (cmkd.config.check_config
calls :func:`check_feasibility`): encoder and architecture names and parameters, data-set
parameters, every split's ratios and its feasibility on the data's shape, classes per dimension
after thresholding, the device against the installed torch build (empty or missing raw
roots: cmkd.config.check_config).

Declarations are read where they are defined: the encoders' ``ENCODER_PARAMS`` (Param literals) and the architectures'
``ARCHITECTURES`` from the model modules' source (with :mod:`ast`, so planning imports no torch),
the loaders' ``PARAMS`` from their (torch-free) modules, the split kinds from
:mod:`cmkd.data.split_kinds`; the schema and the listing (:mod:`cmkd.listing`) read the same. The data's shape
comes from the synthetic generator's parameters (its ratings are drawn without the signals) or
from a real data set's prepared ``meta.json`` and arrays when present. Every error is a
:class:`ConfigError` naming the config key.
"""
from __future__ import annotations

import ast
import importlib
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cmkd.config import _encoder, _modalities, effective_run_config, prepared_dir
from cmkd.data import LOADER_INFO, labels as labels_mod, split_kinds, splits as splits_mod
from cmkd.data.labels import DIMENSIONS, EMOTION
from cmkd.devices import torch_build
from cmkd.errors import CmkdError, ConfigError
from cmkd.params import Param, defaults_of, param_from_literal

MODELS = Path(__file__).resolve().parent / "models"


# ------------------------------------------------------------------------------ declarations
def _top_assign(tree: ast.Module, name: str):
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return node.value
    return None


def _dict_keys(node, trees: list[ast.Module]) -> dict[str, Any]:
    """String keys of a dict display (``**NAME`` splats resolved in ``trees``); a value that is a
    dict display gives its keys, any other value ``None``."""
    out: dict[str, Any] = {}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: None for kw in node.keywords if kw.arg}
    if not isinstance(node, ast.Dict):
        return out
    for k, v in zip(node.keys, node.values):
        if k is None:  # **splat
            name = v.id if isinstance(v, ast.Name) else v.attr if isinstance(v, ast.Attribute) else None
            for t in trees:
                src = _top_assign(t, name) if name else None
                if src is not None:
                    out.update(_dict_keys(src, trees))
                    break
        elif isinstance(k, ast.Constant) and isinstance(k.value, str):
            out[k.value] = _dict_keys(v, trees) if isinstance(v, ast.Dict) else None
    return out


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _model_modules() -> list[Path]:
    """cmkd.models.registry and the modules its ``EXTRA_MODULES`` lists (read, not imported)."""
    reg = MODELS / "registry.py"
    node = _top_assign(_tree(reg), "EXTRA_MODULES")
    names = [e.value for e in getattr(node, "elts", []) if isinstance(e, ast.Constant)]
    return [reg] + [MODELS / f"{n.rsplit('.', 1)[-1]}.py" for n in names]


def _value(node, tree: ast.Module, path: Path):
    """The value of a declaration's expression: literals, dict displays with ``**NAME`` splats,
    and names bound at the module's top level or imported from another ``cmkd`` module (read
    with :mod:`ast`, nothing imported)."""
    if isinstance(node, ast.Dict):
        out: dict = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                out.update(_value(v, tree, path))
            else:
                out[ast.literal_eval(k)] = _value(v, tree, path)
        return out
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e, tree, path) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "tuple") \
            and len(node.args) == 1:
        return list(_value(node.args[0], tree, path))
    if isinstance(node, ast.Name):
        src = _top_assign(tree, node.id)
        if src is not None:
            return _value(src, tree, path)
        for imp in tree.body:
            if isinstance(imp, ast.ImportFrom) and imp.module and imp.module.startswith("cmkd.") \
                    and any((a.asname or a.name) == node.id for a in imp.names):
                name = next(a.name for a in imp.names if (a.asname or a.name) == node.id)
                other = MODELS.parent / (imp.module.split(".", 1)[1].replace(".", "/") + ".py")
                return _value(ast.Name(id=name), _tree(other), other)
        raise ValueError(f"{path}: name {node.id!r} is not bound at top level")
    return ast.literal_eval(node)


@lru_cache(maxsize=1)
def _encoder_decls() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in _model_modules():
        tree = _tree(path)
        node = _top_assign(tree, "ENCODER_PARAMS")
        if node is not None:  # Param literals
            for name, decl in _value(node, tree, path).items():
                out[name] = {k: param_from_literal(v, f"{path.name}: ENCODER_PARAMS.{name}.{k}") for k, v in decl.items()}
    return out


def encoder_params() -> dict[str, dict[str, Any]]:
    """Encoder name -> ``{key: Param}``: ``ENCODER_PARAMS`` of cmkd.models.registry and the modules its
    ``EXTRA_MODULES`` lists, read with :mod:`ast` (planning imports no torch)."""
    return {k: dict(v) for k, v in _encoder_decls().items()}


def encoder_keys() -> dict[str, set[str]]:
    """Encoder name -> its config keys."""
    return {name: set(decl) for name, decl in encoder_params().items()}


@lru_cache(maxsize=1)
def architectures() -> tuple[str, ...]:
    """Every registered whole architecture (``ARCHITECTURES`` of the model modules)."""
    names: list[str] = []
    for path in _model_modules():
        node = _top_assign(_tree(path), "ARCHITECTURES")
        names += list(_dict_keys(node, [_tree(path)]))
    return tuple(sorted(set(names)))


# ------------------------------------------------------------------------------ environment
def check_device(config: dict) -> None:
    if config.get("device", "auto") != "cuda":
        return
    b = torch_build()  # cmkd.devices: read from the installed files, torch not imported
    if not b["installed"]:
        raise ConfigError("device: 'cuda' asked for, but torch is not installed")
    if b["kind"] == "cpu":
        raise ConfigError(f"device: 'cuda' asked for, but the installed torch is a CPU-only build ({b['version']}); "
                          "set device: auto or cpu, or install a CUDA build of torch")


# ------------------------------------------------------------------------------ parameters
def check_encoders(config: dict, cells) -> None:

    known = encoder_params()
    seen = set()
    items = [(f"encoders.{mod}", enc) for mod, enc in (config.get("encoders") or {}).items()]
    for _ds, tr, _dim, m in cells:
        meth = config["methods"][m]
        if meth.get("architecture"):
            arch = meth["architecture"]
            if arch not in architectures():
                raise ConfigError(f"methods.{m}.architecture: unknown architecture '{arch}' "
                                  f"(known: {', '.join(architectures())})")
            continue
        for mod in _modalities(config, m, tr, f"methods.{m}"):
            override = (meth.get("encoders") or {}).get(mod)
            if override:
                items.append((f"methods.{m}.encoders.{mod}", _encoder(config["encoders"].get(mod, {}), override)))
    for key, enc in items:
        if key in seen:
            continue
        seen.add(key)
        if not isinstance(enc, dict):
            raise ConfigError(f"{key}: must be a mapping of encoder settings, got {enc!r}")
        name = enc.get("name")
        if name not in known:
            raise ConfigError(f"{key}.name: unknown encoder {name!r} (known: {', '.join(sorted(known))})")
        for k, v in enc.items():
            if k != "name" and k not in known[name]:
                raise ConfigError(f"{key}.{k}: unknown key for encoder '{name}' (known: {', '.join(sorted(known[name]))})")
            if isinstance(known[name].get(k), Param):
                known[name][k].check(v, f"{key}.{k}")


def loader_params(loader: str) -> dict[str, Any]:
    """``{name: Param}`` a loader declares (its module's ``PARAMS``; loader modules are torch-free)."""
    return dict(getattr(importlib.import_module(LOADER_INFO[loader].module), "PARAMS", None) or {})


def check_dataset_params(name: str, ds: dict) -> dict | None:
    """Unknown or ill-typed loader parameters, by the loader's declarations (:func:`loader_params`);
    the synthetic generator checks its own in full (``merge_params``), whose merged params are returned."""
    params = ds.get("params") or {}
    where = f"datasets.{name}.params"
    if ds["loader"] == "synthetic":
        return importlib.import_module(LOADER_INFO["synthetic"].module).merge_params(params, where)
    declared = loader_params(ds["loader"])
    if not declared:  # a loader that declares no parameters checks them when it runs
        return None
    for k, v in params.items():
        if k not in declared:
            raise ConfigError(f"{where}.{k}: unknown parameter of loader '{ds['loader']}' "
                              f"(known: {', '.join(sorted(declared))})")
        declared[k].check(v, f"{where}.{k}")
    return None


@lru_cache(maxsize=1)
def frame_sizes() -> dict[str, tuple[int, int]]:
    """``FRAME_SIZES`` of cmkd.models.visual_sizes (read with :mod:`ast`: no torch)."""
    path = MODELS / "visual_sizes.py"
    return {k: (int(v[0]), int(v[1])) for k, v in _value(_top_assign(_tree(path), "FRAME_SIZES"), _tree(path), path).items()}


def frame_size_problem(arch: str, side: int) -> str | None:
    """Why timm architecture ``arch`` cannot take ``side`` px square frames, or None (also for an
    architecture not in :func:`frame_sizes`: the job checks it when it builds the encoder)."""
    if arch not in frame_sizes():
        return None
    smallest, multiple = frame_sizes()[arch]
    if side < smallest:
        return f"timm model '{arch}' takes frames of at least {smallest} px, got {side} px"
    if (side - smallest) % multiple:
        return f"timm model '{arch}' takes frame sides of {smallest} + a multiple of {multiple} px, got {side} px"
    return None


def face_size(config: dict, name: str, synth_params: dict | None) -> tuple[int, str] | None:
    """The side of a data set's face frames and the key (or file) it comes from: the synthetic
    generator's ``face_size``; a prepared ``meta.json``'s face array; else the loader's
    ``face_size`` parameter (set or declared default). None when the data set has none."""
    ds = config["datasets"][name]
    where = f"datasets.{name}.params.face_size"
    if synth_params is not None:
        return int(synth_params["face_size"]), where
    meta = Path(prepared_dir(config, name)) / "meta.json"
    if meta.is_file():
        try:
            face = (json.loads(meta.read_text(encoding="utf-8")).get("arrays") or {}).get("face")
            if face:
                return int(face["shape"][-1]), f"{meta} (face array)"
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass  # a damaged prepared folder is the prepare job's to report
    params = ds.get("params") or {}
    if "face_size" in params:  # checked against the loader's declaration, if any, by check_dataset_params
        v = params["face_size"]
        return (v, where) if isinstance(v, int) and not isinstance(v, bool) else None
    decl = loader_params(ds["loader"]).get("face_size")
    return (int(decl.default), f"{where} (default)") if isinstance(decl, Param) else None


def face_encoder(config: dict, method: str, track: str) -> tuple[str, dict] | None:
    """``(config key, settings)`` of the face encoder a method's network reads on a track (its
    override merged over ``encoders.face``), or None when the method reads no face."""
    if "face" not in _modalities(config, method, track, f"methods.{method}"):
        return None
    override = (config["methods"][method].get("encoders") or {}).get("face")
    enc = _encoder(config["encoders"].get("face", {}), override) if override else config["encoders"].get("face", {})
    return (f"methods.{method}.encoders.face" if override else "encoders.face"), enc


def _frozen(enc: dict) -> bool:
    return isinstance(enc, dict) and enc.get("name") == "timm" and enc.get("frozen") is True


def configured_settings(enc: Mapping) -> dict:
    """The extraction keys of a timm encoder's settings (``arch``, ``img_size``, ``pretrained``,
    ``pretrained_path``: what decides its frozen features, cmkd.frame_keys), its declared defaults
    filled in, so that an encoder that spells out a default equals one that leaves it out."""
    c = {**defaults_of(encoder_params()["timm"]), **{k: v for k, v in enc.items() if k != "name"}}
    img = c["img_size"]
    return {"arch": str(c["arch"]),
            "img_size": None if img is None else [int(v) for v in img] if isinstance(img, (list, tuple)) else [int(img)] * 2,
            "pretrained": bool(c["pretrained"]),
            "pretrained_path": None if c["pretrained_path"] is None else os.fspath(c["pretrained_path"])}


def _frozen_settings(enc: dict) -> dict:
    """What decides a face network's frozen features: ``frozen`` and :func:`configured_settings`."""
    return {"frozen": _frozen(enc), **configured_settings(enc)}


def check_frozen_faces(config: dict, cells) -> None:
    """Frozen face features (``encoders.face.frozen: true``, cmkd.run.frame_features): a frozen
    encoder takes no ``hint_stage`` (its hint is its head's per-frame map), and a run's face
    networks read the face one way: a method and each run it requires (teacher, assistants) that
    read the face are all frozen with the same extraction settings, or all fine-tuned."""
    done = set()
    for _ds, tr, _dim, m in cells:
        own = face_encoder(config, m, tr)
        if own is not None and _frozen(own[1]) and own[1].get("hint_stage") is not None:
            raise ConfigError(f"{own[0]}.hint_stage: {own[1]['hint_stage']!r} names a backbone stage, but {own[0]}.frozen "
                              f"is true (method '{m}'): the backbone's maps are cached constants, the hint of a frozen "
                              "encoder is its head's per-frame map; set hint_stage: null")
        for role, target in (config["methods"][m].get("requires") or {}).items():
            other = face_encoder(config, target, tr)
            if own is None or other is None or (m, target, tr) in done:
                continue
            done.add((m, target, tr))
            if not (_frozen(own[1]) or _frozen(other[1])):
                continue
            mine, theirs = _frozen_settings(own[1]), _frozen_settings(other[1])
            if mine != theirs:
                diff = [k for k in mine if mine[k] != theirs[k]]
                raise ConfigError(f"{own[0]}.{diff[0]}: method '{m}' reads the face with {mine[diff[0]]!r}, its {role} "
                                  f"'{target}' ({other[0]}) with {theirs[diff[0]]!r}; with frozen face features every "
                                  "network of a run reads the same cached features (the same frozen, arch, img_size "
                                  "and weights) or none does")


def check_face_sizes(config: dict, cells, sizes: dict) -> None:
    """A face size (or ``img_size``) the configured timm architecture cannot take, by the
    torch-free table ``FRAME_SIZES`` of cmkd.models.visual_sizes (:func:`frame_sizes`; an
    architecture not in it is checked by the job when it builds the encoder)."""
    done = set()
    for ds, tr, _dim, m in cells:
        if sizes.get(ds) is None or config["methods"][m].get("architecture"):
            continue
        if "face" not in _modalities(config, m, tr, f"methods.{m}"):
            continue
        override = (config["methods"][m].get("encoders") or {}).get("face")
        enc = _encoder(config["encoders"].get("face", {}), override) if override else config["encoders"].get("face", {})
        key = f"methods.{m}.encoders.face" if override else "encoders.face"
        if not isinstance(enc, dict) or enc.get("name") != "timm" or (ds, key) in done:
            continue
        done.add((ds, key))
        arch = enc.get("arch", encoder_params()["timm"]["arch"].default)
        img = enc.get("img_size")
        if img is None:
            side, src = sizes[ds]
            sides = [side]
        else:
            sides = list(img) if isinstance(img, (list, tuple)) else [img]
            src = f"{key}.img_size"
        for side in sides:
            problem = frame_size_problem(arch, int(side)) if isinstance(side, int) else None
            if problem:
                hint = ("set a larger img_size (frames are resized to it)" if img is not None else
                        f"use a larger face size or set {key}.img_size (frames are resized to it)")
                raise ConfigError(f"{src}: {side} px faces of data set '{ds}' do not fit {key}.arch "
                                  f"'{arch}': {problem}; {hint}")


# ------------------------------------------------------------------------------ data shape
def data_shape(config: dict, name: str, synth_params: dict | None) -> dict | None:
    """Per-segment ``subject``, ``trial`` and rating arrays of a data set: from the synthetic
    generator (its parameters), else from the prepared folder when it is there; None when
    neither tells (a real data set not yet prepared: the job checks at its start)."""

    ds = config["datasets"][name]
    prep = Path(prepared_dir(config, name))
    meta = prep / "meta.json"
    if synth_params is None and meta.is_file():  # the generator is exact; a prepared folder may be stale
        try:
            m = json.loads(meta.read_text(encoding="utf-8"))
            arrays = m.get("arrays") or {}
            out = {k: np.load(prep / f"{k}.npy", mmap_mode="r") for k in arrays
                   if k in ("subject", "trial", "session", "label", "valence", "arousal", "dominance", "liking")}
            if "subject" in out and "trial" in out:
                out["source"] = str(meta)
                return out
        except (OSError, ValueError):
            return None  # a damaged prepared folder is the prepare job's to report
    if synth_params is None:
        return None

    # merge_params refused zero segments per trial; the ratings are drawn without the signals
    from cmkd.data.synthetic import _plan  # lazy: plugin

    small = _plan(ds.get("params") or {}, int(ds.get("seed", 0)), f"datasets.{name}.params")["small"]
    return {**{k: small[k] for k in ("subject", "trial", "valence", "arousal", "dominance", "liking")},
            "source": f"datasets.{name}.params (synthetic generator)"}


def _labels(shape: dict, dim_name: str, dim: dict, where: str):
    if dim.get("task") != "classification":
        return None
    target = dim.get("target", dim_name)
    name = "label" if target == labels_mod.EMOTION else target
    if name not in shape:
        return None
    try:
        return labels_mod.targets(shape, target, "classification", float(dim.get("threshold", 5.0)), dim.get("tie", "low"))
    except CmkdError as e:
        raise ConfigError(f"{where}: {e}") from None


def check_dimensions(config: dict) -> None:
    """A rating dimension is binary (``n_classes`` 2 or absent); its target is a known array."""
    for name, d in config["dimensions"].items():
        target = d.get("target", name)
        if target not in DIMENSIONS and target != EMOTION:
            raise ConfigError(f"dimensions.{name}{'.target' if 'target' in d else ''}: unknown rating '{target}' "
                              f"(known: {', '.join(DIMENSIONS)}, {EMOTION})")
        if target in DIMENSIONS and d.get("task") == "classification" and d.get("n_classes", 2) != 2:
            raise ConfigError(f"dimensions.{name}.n_classes: rating '{target}' split at a threshold has 2 classes "
                              f"(low, high), got {d['n_classes']}")


def check_splits_on_data(config: dict, cells, shapes: dict) -> None:
    """Every split a cell gets, made on the data's shape (seed of the first run): ratios,
    folds vs trials, subjects for LOSO, a training part with a single class."""
    for where, part in [*((f"tracks.{t}.split", v.get("split")) for t, v in config["tracks"].items()),
                        *((f"methods.{k}.split", v.get("split")) for k, v in config["methods"].items())]:
        split_kinds.check_section(part, where)  # known keys and kinds, declared value checks
    done = set()
    seed = int(config["seeds"][0])
    for ds, tr, dim, m in cells:
        shape = shapes.get(ds)
        sp = effective_run_config(config, ds, tr, dim, m)["split_settings"]  # the kind's declared defaults filled in
        kind = sp["kind"]
        info = split_kinds.SPLIT_KINDS[kind]
        src = next((k for k, part in ((f"methods.{m}.split", config["methods"][m].get("split")),
                                     (f"tracks.{tr}.split", config["tracks"][tr].get("split")),
                                     (f"datasets.{ds}.split", config["datasets"][ds].get("split")))
                    if part and any(x in part for x in ("kind", "ratios", "n_folds", "folds_by"))), "split")
        if "ratios" in sp and not info.folds:
            try:
                splits_mod._check_ratios(sp["ratios"])
            except ConfigError as e:
                raise ConfigError(f"{src}.ratios: {str(e).split(': ', 1)[-1]}") from None
        if shape is None or info.make:  # a kind of its own implementation (the protocols) is checked by its job
            continue
        key = (ds, dim, json.dumps(sp, sort_keys=True, default=str))
        if key in done:
            continue
        done.add(key)
        y = _labels(shape, dim, config["dimensions"][dim], f"dimensions.{dim}")
        where = f"{src} on data set '{ds}' ({shape['source']})"
        if y is not None and np.unique(y).size < 2:
            d = config["dimensions"][dim]
            raise ConfigError(f"dimensions.{dim}.threshold: {d.get('threshold', 5.0)} puts every rating of data set "
                              f"'{ds}' in one class ({shape['source']}); no classifier can be trained or tested")
        stratify = y if sp["stratify"] else None
        subject, trial = np.asarray(shape["subject"]), np.asarray(shape["trial"])
        try:
            if info.folds:
                if kind == "loso" and np.unique(subject).size < 2:
                    raise ConfigError(f"kind 'loso' needs at least 2 subjects; the data have {np.unique(subject).size}")
                n_trials = np.unique(np.stack([subject, trial], 1), axis=0).shape[0]
                if kind == "kfold" and sp["folds_by"] != "segment" and int(sp["n_folds"]) > n_trials:
                    raise ConfigError(f"n_folds {sp['n_folds']} is more than the {n_trials} trials")
                parts = splits_mod.run_splits({"subject": subject, "trial": trial}, seed, sp, stratify,
                                              "classification" if stratify is not None else "regression")
            else:
                parts = [splits_mod.make_split(subject, trial, seed, kind=kind, ratios=tuple(sp["ratios"]),
                                               stratify=stratify, protocol=sp)]
        except CmkdError as e:
            raise ConfigError(f"{where}: infeasible split for method '{m}': {e}") from None
        if y is not None:
            for i, p in enumerate(parts):
                if np.unique(y[p["train"]]).size < 2:
                    raise ConfigError(f"{where}: the training part{f' of fold {i}' if len(parts) > 1 else ''} of method "
                                      f"'{m}' (dimension '{dim}') holds a single class")


def check_feasibility(config: dict, cells, check_env: bool = True) -> None:
    if check_env:  # jobs in conda envs of their own (--sdm conda) bring their own torch build
        check_device(config)
    check_dimensions(config)
    check_encoders(config, cells)
    check_frozen_faces(config, cells)
    used = {c[0] for c in cells}
    shapes, faces = {}, {}
    for name, ds in config["datasets"].items():
        synth = check_dataset_params(name, ds)
        if name in used:
            faces[name] = face_size(config, name, synth)
            shapes[name] = data_shape(config, name, synth)
    check_face_sizes(config, cells, faces)
    check_splits_on_data(config, cells, shapes)
