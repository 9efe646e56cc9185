"""Distillation methods, registered by name.

Each method module declares its registry entries at top level as a literal, beside its classes::

    REGISTER = {
        "pkt": {"roles": ["teacher"], "description": "Passalis & Tefas 2018 probabilistic KT",
                "extends": ["relational"],
                "params": {"beta": {"default": 30000.0, "lo": 0.0}}},
    }
    METHODS = {"pkt": PKT}

This package reads every ``REGISTER`` with :mod:`ast` (:func:`cmkd.literals.module_literals`), without
importing the module: the table is read by the workflow when it builds the DAG, so it must not
import torch. An entry names the checkpoint roles the method needs trained first (a teacher,
guides ...) and the parameters it accepts (name, kind, default, allowed values):
:func:`cmkd.config.check_config` checks ``methods.<key>.params`` against them before any job runs,
and :class:`cmkd.methods.base.Method` resolves its parameters from them (the single source of the
defaults). Adding a method is one file in this package plus its entry in the config's ``methods``
(see docs/contracts.md).

Entry keys: ``roles`` (list of checkpoint roles, config key ``requires``), ``variadic_roles`` (any
number of roles, e.g. densely guided: teacher, ta1, ta2 ...), ``description``, ``trivial`` (a
trivial baseline: fitted on the training labels alone), ``evaluates`` (``"student"``: the network
the method evaluates and saves reads only the track's student modalities, whatever modalities it
trains on, e.g. AMBOKD's visual branch; figures group the method by what it reads,
:func:`cmkd.config.evaluated_modalities`), ``extends`` (parameter groups of
:mod:`cmkd.methods.params_common`, or other methods' names, whose parameters come first) and
``params``: ``{name: {"default": ..., "kind": ..., "lo": ..., "hi": ..., "lo_open": ...,
"hi_open": ..., "choices": [...], "nullable": ..., "doc": ...}}``, the fields of
:class:`cmkd.params.Param` (``kind`` ``number`` unless given), and ``presets``: named sets of
parameter values selected by the method's ``weights`` parameter (``{"paper": {"beta": 25.0},
"repdistiller": {"beta": 50.0}}``; every choice of ``weights`` has one, every preset is one of its
choices, every key a parameter of the entry). A preset fills the parameters the config does not
set; a value the config sets wins (:func:`apply_preset`). Presets are inherited through ``extends``
like parameters. ``search`` (the method's tuning search space: ``{param: {"lo": ..., "hi": ..., "log": ...}}``
or a key of ``params_common.SEARCH_RANGES``; the learning rate is searched for every method
alike, see :mod:`cmkd.tuning` and docs/tuning.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from cmkd.errors import RegistryError
from cmkd.literals import check_keys, module_literals
from cmkd.methods.params_common import GROUPS, SEARCH_RANGES
from cmkd.params import Param, param_from_literal, resolve


@dataclass(frozen=True)
class MethodInfo:
    module: str
    roles: tuple = ()            # checkpoint roles the method requires (config key ``requires``)
    variadic_roles: bool = False  # True: any number of roles (e.g. densely guided: teacher, ta1, ta2 ...)
    description: str = ""
    params: dict = field(default_factory=dict)  # {name: Param}: accepted parameters and their defaults
    trivial: bool = False         # a trivial baseline: fitted on the training labels alone, no network
    evaluates: str = ""           # "student": the evaluated network reads the track's student modalities only
    presets: dict = field(default_factory=dict)  # {preset: {param: value}}, selected by the ``weights`` parameter
    search: dict = field(default_factory=dict)  # {name: {"lo", "hi", "log"}}: the tuning search space (cmkd.tuning)


_ENTRY_TYPES = {"roles": list, "variadic_roles": bool, "description": str, "trivial": bool, "extends": list, "params": dict,
                "evaluates": str, "presets": dict, "search": dict}
EVALUATES = ("student",)  # the values of an entry's ``evaluates``


def _search_space(entry_search: dict, params: dict, where: str) -> dict:
    """A method's search space from its ``search`` entry: ``{param: {"lo", "hi", "log"}}`` or
    ``{param: "<key of params_common.SEARCH_RANGES>"}``. Only numeric parameters of the method may
    be searched, inside their declared range; ``lr`` is not named (every method searches it, with
    the shared range ``SEARCH_RANGES["lr"]``)."""
    out = {}
    for p, rng in entry_search.items():
        w = f"{where}.search.{p}"
        if p == "lr":
            raise RegistryError(f"{w}: the learning rate is searched for every method with the shared range "
                                f"(cmkd/methods/params_common.py SEARCH_RANGES['lr']); a method does not name it")
        if p not in params:
            raise RegistryError(f"{w}: not a parameter of the method (parameters: {', '.join(sorted(params)) or 'none'})")
        if isinstance(rng, str):
            if rng not in SEARCH_RANGES:
                raise RegistryError(f"{w}: unknown shared range '{rng}' (params_common.SEARCH_RANGES: {', '.join(SEARCH_RANGES)})")
            rng = SEARCH_RANGES[rng]
        if not isinstance(rng, dict) or set(rng) - {"lo", "hi", "log"} or not {"lo", "hi"} <= set(rng):
            raise RegistryError(f"{w}: a range is {{'lo': ..., 'hi': ..., 'log': ...}} or a key of SEARCH_RANGES, got {rng!r}")
        decl = params[p]
        lo, hi, log = float(rng["lo"]), float(rng["hi"]), bool(rng.get("log", False))
        if decl.kind != "number":
            raise RegistryError(f"{w}: only 'number' parameters are searched ('{p}' is {decl.kind})")
        if not lo < hi or (log and lo <= 0):
            raise RegistryError(f"{w}: needs lo < hi (and lo > 0 on a log scale), got {rng!r}")
        for v in (lo, hi):
            try:
                decl.check(v, w)
            except Exception as e:
                raise RegistryError(f"{w}: the range leaves the parameter's declared bounds ({e})") from None
        out[p] = {"lo": lo, "hi": hi, "log": log}
    return out


def _group_params() -> dict[str, dict[str, Param]]:
    return {g: {p: param_from_literal(d, f"cmkd/methods/params_common.py: GROUPS['{g}'].{p}") for p, d in decls.items()}
            for g, decls in GROUPS.items()}


def discover(dirs=None) -> dict[str, MethodInfo]:
    """The registry declared by the ``REGISTER`` literals of the method modules in ``dirs`` (default:
    this package's directories, ``__path__``), read without importing them. A malformed entry, a
    name registered twice, or an unknown parameter group raises :class:`RegistryError` naming the file."""
    groups = _group_params()
    raw: dict[str, tuple[str, object, dict]] = {}  # name -> (module, path, entry)
    for module, path, value in module_literals(__path__ if dirs is None else dirs, __name__, "REGISTER"):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
            raise RegistryError(f"{path}: REGISTER must map method names to dicts")
        for name, entry in value.items():
            where = f"{path}: REGISTER['{name}']"
            if name in raw:
                raise RegistryError(f"{where}: the name is also registered in {raw[name][1]} (a name is registered once)")
            if name in groups:
                raise RegistryError(f"{where}: the name is a parameter group of cmkd/methods/params_common.py")
            check_keys(entry, _ENTRY_TYPES, where)
            if entry.get("evaluates", "student") not in EVALUATES:
                raise RegistryError(f"{where}.evaluates: one of {list(EVALUATES)}, got {entry['evaluates']!r}")
            raw[name] = (module, path, entry)

    params: dict[str, dict[str, Param]] = {}

    def params_of(name: str, chain: tuple = ()) -> dict[str, Param]:
        if name in params:
            return params[name]
        _, path, entry = raw[name]
        where = f"{path}: REGISTER['{name}']"
        if name in chain:
            raise RegistryError(f"{where}.extends: circular {' -> '.join(chain + (name,))}")
        out: dict[str, Param] = {}
        for g in entry.get("extends", []):  # groups first, in order; the entry's own parameters last
            if g in groups:
                out.update(groups[g])
            elif g in raw:
                out.update(params_of(g, chain + (name,)))
            else:
                raise RegistryError(f"{where}.extends: unknown parameter group '{g}' (groups of "
                                    f"cmkd/methods/params_common.py: {', '.join(sorted(groups))}; or a method's name)")
        out.update({p: param_from_literal(d, f"{where}.params.{p}") for p, d in entry.get("params", {}).items()})
        params[name] = out
        return out

    def presets_of(name: str) -> dict:
        _, path, entry = raw[name]
        out: dict = {}
        for g in entry.get("extends", []):
            if g in raw:
                out.update(presets_of(g))
        out.update(entry.get("presets", {}))
        return out

    infos = {}
    for name, (module, path, entry) in raw.items():
        declared, presets = params_of(name), presets_of(name)
        _check_presets(presets, declared, f"{path}: REGISTER['{name}']")
        infos[name] = MethodInfo(module, tuple(entry.get("roles", ())), entry.get("variadic_roles", False),
                                 entry.get("description", ""), declared, entry.get("trivial", False),
                                 entry.get("evaluates", ""), presets,
                                 _search_space(entry.get("search", {}), declared, f"{path}: REGISTER['{name}']"))
    return infos


def _check_presets(presets: dict, params: dict[str, Param], where: str) -> None:
    """The presets of an entry match its ``weights`` parameter: one preset per choice, and each
    preset sets declared parameters to values they accept; else RegistryError naming ``where``."""
    if not presets and "weights" not in params:
        return
    w = params.get("weights")
    if w is None or w.kind != "choice":
        raise RegistryError(f"{where}.presets: presets are selected by a 'weights' choice parameter, which the entry lacks")
    if set(w.choices) != set(presets):
        raise RegistryError(f"{where}.presets: the presets {sorted(presets)} differ from the choices of "
                            f"params.weights {sorted(w.choices)}")
    for k, v in presets.get(w.default, {}).items():  # the default preset is the declared defaults
        if k in params and params[k].default != v:
            raise RegistryError(f"{where}.presets.{w.default}.{k}: {v!r} differs from the declared default "
                                f"{params[k].default!r} (the default preset is what the defaults resolve to)")
    for preset, values in presets.items():
        if not isinstance(values, dict):
            raise RegistryError(f"{where}.presets.{preset}: must map parameter names to values")
        for k, v in values.items():
            if k not in params or k == "weights":
                raise RegistryError(f"{where}.presets.{preset}.{k}: not a parameter of the entry")
            try:
                params[k].check(v, f"{where}.presets.{preset}.{k}")
            except Exception as e:  # a ConfigError from the value check, reported as a registry error
                raise RegistryError(str(e)) from None


def apply_preset(name: str, params: dict | None) -> dict | None:
    """``params`` with the values of the preset its ``weights`` selects (the registry default when
    unset) filled in for every parameter the config does not set (an explicit value wins). Methods
    without presets, and an unknown ``weights`` (rejected by :func:`cmkd.params.resolve`), are
    returned unchanged."""
    info = REGISTRY.get(name)
    if info is None or not info.presets or (params is not None and not isinstance(params, dict)):
        return params
    params = dict(params or {})
    chosen = params.get("weights", info.params["weights"].default)
    if chosen not in info.presets:
        return params
    return {**info.presets[chosen], **params}


REGISTRY: dict[str, MethodInfo] = discover()

def method_class(name: str):
    """Import and return the class registered as ``name``."""
    info = REGISTRY[name]
    mod = importlib.import_module(info.module)
    cls = getattr(mod, "METHODS", {}).get(name)
    if cls is None:
        raise KeyError(f"module {info.module} defines no method '{name}' in its METHODS table")
    return cls


def method_params(name: str, params: dict | None, where: str) -> dict:
    """The parameters of a method of registered class ``name``: the registry's defaults updated
    with ``params``; an unknown or ill-typed one raises ConfigError naming ``{where}.<p>``
    (``where`` is the config key, e.g. ``methods.kd.params``)."""
    return resolve(apply_preset(name, params), REGISTRY[name].params, where)


def registered_name(cls) -> str | None:
    """The registry name of a method class (or of its nearest registered base class); None if
    neither it nor a base is registered."""
    for c in cls.__mro__:
        for name, info in REGISTRY.items():
            if info.module == c.__module__:
                mod = importlib.import_module(info.module)
                if getattr(mod, "METHODS", {}).get(name) is c:
                    return name
    return None
