"""Parameter declarations and the one resolution helper: merge defaults, reject unknown keys,
check each value, every error naming the config key at fault.

Torch-free: the config check (before the DAG) and the methods, loaders and models (inside a job)
resolve their parameters with the same :func:`resolve`, so a bad value is reported in the same
words before any job runs and inside one.

A declaration is a plain ``{name: default}`` mapping (unknown keys rejected, values not checked)
or a ``{name: Param(...)}`` mapping (values checked too); both may be mixed.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Mapping

from cmkd.errors import ConfigError, RegistryError

KINDS = ("number", "int", "bool", "str", "choice", "any")


@dataclass(frozen=True)
class Param:
    """One declared parameter: its default, its kind and the values it accepts.

    ``kind``: ``number`` (finite int or float, not bool), ``int``, ``bool``, ``str`` (non-empty),
    ``choice`` (one of ``choices``), ``any`` (not checked). ``lo``/``hi`` bound numbers
    (``lo_open``/``hi_open``: strict); ``nullable``: ``null`` is accepted too.
    """

    default: Any
    kind: str = "number"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    nullable: bool = False
    doc: str = ""

    def check(self, value: Any, key: str) -> Any:
        """``value`` if it is acceptable, else :class:`ConfigError` naming ``key``."""
        if value is None and self.nullable:
            return None
        if self.kind == "number":
            return number(value, key, self.lo, self.hi, self.lo_open, self.hi_open)
        if self.kind == "int":
            return integer(value, key, self.lo, self.hi)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: must be true or false, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key}: must be a non-empty string, got {value!r}")
            return value
        if self.kind == "choice":
            return choice(value, key, self.choices)
        return value


PARAM_FIELDS = ("default", "kind", "lo", "hi", "lo_open", "hi_open", "choices", "nullable", "doc")


def param_from_literal(decl: Mapping[str, Any], where: str) -> Param:
    """A :class:`Param` from its literal form ``{"default": ..., "kind": ..., "lo": ..., ...}`` (the
    fields of Param, ``default`` required, ``kind`` ``number`` unless given, ``choices`` a list);
    a malformed one raises :class:`cmkd.errors.RegistryError` naming ``where``."""
    if not isinstance(decl, Mapping) or "default" not in decl:
        raise RegistryError(f"{where}: a parameter is a dict with at least a 'default', got {decl!r}")
    unknown = sorted(set(decl) - set(PARAM_FIELDS))
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {unknown} (accepted: {', '.join(PARAM_FIELDS)})")
    kind = decl.get("kind", "number")
    if kind not in KINDS:
        raise RegistryError(f"{where}.kind: must be one of {list(KINDS)}, got {kind!r}")
    if kind == "choice" and not decl.get("choices"):
        raise RegistryError(f"{where}.choices: a choice parameter lists its choices")
    return Param(**{**decl, "kind": kind, "choices": tuple(decl.get("choices", ()))})


def default_of(decl: Any) -> Any:
    return decl.default if isinstance(decl, Param) else decl


def defaults_of(spec: Mapping[str, Any]) -> dict:
    """``{name: default}`` of a declaration (a copy: mutable defaults are not shared)."""
    return {k: copy.deepcopy(default_of(v)) for k, v in spec.items()}


def resolve(params: Mapping[str, Any] | None, spec: Mapping[str, Any], where: str) -> dict:
    """``spec``'s defaults updated with ``params``.

    An unknown key raises :class:`ConfigError` naming ``{where}.{key}`` and the accepted names; a
    value that a :class:`Param` declaration rejects raises one naming ``{where}.{key}``.
    """
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"{where}: must be a mapping of parameter names to values, got {params!r}")
    params = dict(params or {})
    for key in params:
        if key not in spec:
            raise ConfigError(f"{where}.{key}: unknown key (accepted: {', '.join(sorted(spec)) or 'none'})")
    out = defaults_of(spec)
    out.update(params)
    for key, decl in spec.items():
        if isinstance(decl, Param) and key in params:
            out[key] = decl.check(out[key], f"{where}.{key}")
    return out


# ----------------------------------------------------------------------------- value checks
def number(value, key: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False, convert: bool = True):
    """A finite number within ``[lo, hi]`` (open ends with ``lo_open``/``hi_open``), else
    :class:`ConfigError` naming ``key``; returned as float unless ``convert`` is false."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    v = float(value)
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ConfigError(f"{key}: must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ConfigError(f"{key}: must be {'<' if hi_open else '<='} {hi}, got {value!r}")
    return v if convert else value


def integer(value, key: str, lo: float | None = None, hi: float | None = None) -> int:
    """An integer (not bool) within ``[lo, hi]``, else :class:`ConfigError` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo) \
            or (hi is not None and value > hi):
        rng = f" >= {lo:g}" if lo is not None and hi is None else (f" in [{lo:g}, {hi:g}]" if lo is not None else "")
        raise ConfigError(f"{key}: must be an integer{rng}, got {value!r}")
    return int(value)


def choice(value, key: str, options):
    """``value`` if it is one of ``options``, else :class:`ConfigError` naming ``key``."""
    if value not in options:
        raise ConfigError(f"{key}: must be one of {list(options)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------- JSON schema
def json_schema(decl: Any, default: bool = True) -> dict:
    """The JSON schema of one declared parameter (a :class:`Param`, or a plain default: not
    checked, so any value): type, bounds, choices, ``null`` where nullable, its doc as the
    description and (``default``) its default."""
    if not isinstance(decl, Param):
        return {"default": copy.deepcopy(decl)} if default else {}
    types = {"number": "number", "int": "integer", "bool": "boolean", "str": "string"}
    s: dict = {}
    if decl.kind in types:
        s["type"] = [types[decl.kind], "null"] if decl.nullable else types[decl.kind]
    if decl.kind == "str":
        s["minLength"] = 1
    if decl.kind == "choice":
        s["enum"] = list(decl.choices) + ([None] if decl.nullable else [])
    if decl.kind in ("number", "int"):
        if decl.lo is not None:
            s["exclusiveMinimum" if decl.lo_open else "minimum"] = decl.lo
        if decl.hi is not None:
            s["exclusiveMaximum" if decl.hi_open else "maximum"] = decl.hi
    if decl.doc:
        s["description"] = decl.doc
    if default:
        s["default"] = copy.deepcopy(decl.default)
    return s


def describe(decl: Any) -> tuple[str, str, str]:
    """``(type, default, doc)`` of one declared parameter, as the listing prints them."""
    if not isinstance(decl, Param):
        return type(decl).__name__ if decl is not None else "any", repr(decl), ""
    t = decl.kind
    if decl.kind == "choice":
        t = "one of " + "|".join(str(c) for c in decl.choices)
    elif decl.kind in ("number", "int") and (decl.lo is not None or decl.hi is not None):
        lo = "" if decl.lo is None else f"{'(' if decl.lo_open else '['}{decl.lo:g}"
        hi = "" if decl.hi is None else f"{decl.hi:g}{')' if decl.hi_open else ']'}"
        t += f" {lo or '(-inf'}, {hi or 'inf)'}"
    if decl.nullable:
        t += " or null"
    return t, repr(decl.default), decl.doc


def params_from_literals(decls: Mapping[str, Mapping[str, Any]], where: str) -> dict[str, Param]:
    """``{name: Param}`` from ``{name: literal}`` (:func:`param_from_literal`; the form methods'
    ``REGISTER`` entries, loaders and encoders declare their parameters in)."""
    return {k: param_from_literal(v, f"{where}.{k}") for k, v in decls.items()}
