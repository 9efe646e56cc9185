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
trivial baseline: fitted on the training labels alone), ``extends`` (parameter groups of
:mod:`cmkd.methods.params_common`, or other methods' names, whose parameters come first) and
``params``: ``{name: {"default": ..., "kind": ..., "lo": ..., "hi": ..., "lo_open": ...,
"hi_open": ..., "choices": [...], "nullable": ..., "doc": ...}}``, the fields of
:class:`cmkd.params.Param` (``kind`` ``number`` unless given); ``search`` (the method's tuning
search space: ``{param: {"lo": ..., "hi": ..., "log": ...}}`` or a key of
``params_common.SEARCH_RANGES``; the learning rate is searched for every method alike, see
:mod:`cmkd.tuning` and docs/tuning.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from cmkd.errors import RegistryError
from cmkd.literals import check_keys, module_literals
from cmkd.params import Param, param_from_literal, resolve


@dataclass(frozen=True)
class MethodInfo:
    module: str
    roles: tuple = ()            # checkpoint roles the method requires (config key ``requires``)
    variadic_roles: bool = False  # True: any number of roles (e.g. densely guided: teacher, ta1, ta2 ...)
    description: str = ""
    params: dict = field(default_factory=dict)  # {name: Param}: accepted parameters and their defaults
    trivial: bool = False         # a trivial baseline: fitted on the training labels alone, no network
    search: dict = field(default_factory=dict)  # {name: {"lo", "hi", "log"}}: the tuning search space (cmkd.tuning)


_ENTRY_TYPES = {"roles": list, "variadic_roles": bool, "description": str, "trivial": bool, "extends": list, "params": dict,
                "search": dict}


def _search_space(entry_search: dict, params: dict, where: str) -> dict:
    """A method's search space from its ``search`` entry: ``{param: {"lo", "hi", "log"}}`` or
    ``{param: "<key of params_common.SEARCH_RANGES>"}``. Only numeric parameters of the method may
    be searched, inside their declared range; ``lr`` is not named (every method searches it, with
    the shared range ``SEARCH_RANGES["lr"]``)."""
    from cmkd.methods.params_common import SEARCH_RANGES

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
    from cmkd.methods.params_common import GROUPS

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

    return {name: MethodInfo(module, tuple(entry.get("roles", ())), entry.get("variadic_roles", False),
                             entry.get("description", ""), params_of(name), entry.get("trivial", False),
                             _search_space(entry.get("search", {}), params_of(name), f"{path}: REGISTER['{name}']"))
            for name, (module, path, entry) in raw.items()}


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
    return resolve(params, REGISTRY[name].params, where)


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
