"""The one validation path of a configuration: JSON schema first, then the semantic checks.

The Snakefile (``workflow/rules/common.smk``), ``python -m cmkd check`` and ``cmkd cell`` call
:func:`validate_config`; an error is one :class:`ConfigError` whose first line names the config
key (and, where YAML gives it, the file and line of the offending key), one short line per schema
error, never the whole document. Torch-free: the paper grid's plan stays fast.
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from jsonschema import Draft202012Validator, validators
import yaml

from cmkd.config import check_config, check_prepared_validation, deep_merge, iter_cells, select_datasets
from cmkd.data import LOADER_INFO, split_kinds
from cmkd.errors import ConfigError
from cmkd.feasibility import check_feasibility, encoder_params, loader_params
from cmkd.metrics import METRICS
from cmkd.params import json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "config" / "schema.yaml"
#: at most this many schema errors are listed (the first names the culprit)
MAX_ERRORS = 8


def _yaml_error(path: str | Path, e: Exception) -> ConfigError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return ConfigError(f"{where}: YAML syntax error: {problem}")


def read_yaml(path: str | Path) -> tuple[dict, dict]:
    """``(data, lines)`` of one config file: ``lines`` maps a key path (tuple) to its line. A YAML
    syntax error names the file and line; a file that is not a mapping names the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{path}' not found")
    text = p.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise _yaml_error(path, e) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds a mapping of keys, got {type(data).__name__}")
    lines: dict[tuple, str] = {}

    def walk(n, trail):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = trail + (k.value,)
                lines[key] = f"{path}:{k.start_mark.line + 1}"
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                key = trail + (i,)
                lines[key] = f"{path}:{v.start_mark.line + 1}"
                walk(v, key)

    walk(node, ())
    return data, lines


def parse_config_items(items: Iterable[str] | None) -> dict:
    """``KEY=VALUE`` items of ``--config``, read by Snakemake's own parser (so ``cmkd cell`` and
    ``cmkd check`` see what the workflow sees: ``select_datasets=[deap]`` is a list, ``threads=4``
    an integer, ``allow_cpu_torch=True`` a boolean)."""
    items = list(items or [])
    try:
        from snakemake.cli import parse_config  # lazy: startup (0.7 s; every command line builds the list parser)

        return parse_config(items)
    except ValueError as e:
        raise ConfigError(f"--config {' '.join(items)}: {e}") from None


def load_config(configfiles: Iterable[str | Path] = (), base: str | Path | None = "config.yaml",
                items: Iterable[str] | None = None) -> tuple[dict, dict]:
    """``base`` and the overlays merged in order, as Snakemake merges ``--configfile`` overlays
    (mappings merged key by key, anything else replaced), then the ``--config`` ``items``; returns
    ``(config, lines)``."""

    cfg: dict = {}
    lines: dict = {}
    for f in ([base] if base else []) + list(configfiles):
        data, ln = read_yaml(f)
        cfg = deep_merge(cfg, data)
        lines.update(ln)
    return deep_merge(cfg, parse_config_items(items)), lines


def _path(parts: Iterable) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 5] + " ...>"


def generated_sections() -> dict[str, tuple[tuple, Any]]:
    """The sections of the schema that the catalogs declare: block name -> (key path in the
    schema, section). ``split``: :func:`cmkd.data.split_kinds.schema`; ``metric``: a table's metric,
    one of :data:`cmkd.metrics.METRICS`; ``loader-params`` / ``encoder-params``: each loader's and
    encoder's declared parameters (types, ranges, docs; unknown keys and defaults are the check's
    and the loader's or encoder's own). config/schema.yaml holds a copy of each between
    ``# BEGIN generated:NAME`` / ``# END generated:NAME`` marks (for tools that read the file alone,
    e.g. ``snakemake.utils.validate``), kept equal by :func:`sync_schema_file`."""

    def when(key: str, value: str, sub: str, decls: dict) -> dict:
        return {"if": {"properties": {key: {"const": value}}, "required": [key]},
                "then": {"properties": {sub: {"type": "object", "properties": {
                    k: json_schema(d, default=False) for k, d in decls.items()}}}}}

    loaders = [when("loader", n, "params", loader_params(n)) for n in LOADER_INFO]
    encoders = []
    for n, decls in encoder_params().items():
        w = when("name", n, "params", decls)
        encoders.append({"if": w["if"], "then": w["then"]["properties"]["params"]})
    return {
        "split": (("properties", "split"), split_kinds.schema()),
        "metric": (("properties", "tables", "items", "properties", "metric"),
                   {"type": "string", "enum": list(METRICS), "description": "a metric of cmkd.metrics.METRICS"}),
        "loader-params": (("properties", "datasets", "additionalProperties", "allOf"), loaders),
        "encoder-params": (("properties", "encoders", "additionalProperties", "allOf"), encoders),
    }


def _schema() -> dict:
    """config/schema.yaml with its generated sections replaced by what the catalogs declare now
    (:func:`generated_sections`), so a kind or parameter registered at run time is in the schema."""
    schema = copy.deepcopy(_schema_file())
    for path, section in generated_sections().values():
        node = schema
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = section
    return schema


@lru_cache(maxsize=1)
def _schema_file() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


_MARKS = re.compile(r"^(?P<indent>[ ]*)# BEGIN generated:(?P<name>[a-z-]+)(?P<note>[^\n]*)\n(?P<body>.*?)^(?P=indent)# END generated:(?P=name)\n",
                    re.S | re.M)


def render_generated(name: str, indent: str) -> str:
    """The YAML of one generated section as it stands between its marks in config/schema.yaml."""
    path, section = generated_sections()[name]
    text = yaml.safe_dump({path[-1]: section}, sort_keys=False, width=110, allow_unicode=True)
    return "".join(f"{indent}{ln}\n" for ln in text.splitlines())


def sync_schema_file(check: bool = False, path: Path = SCHEMA) -> list[str]:
    """Write the generated sections into config/schema.yaml between their marks (``check``: only
    compare); returns the names of the sections that differed (or whose marks are missing)."""
    text = path.read_text(encoding="utf-8")
    seen: list[str] = []
    stale: list[str] = []

    def fill(m: re.Match) -> str:
        seen.append(m.group("name"))
        body = render_generated(m.group("name"), m.group("indent"))
        if body != m.group("body"):
            stale.append(m.group("name"))
        return (f"{m.group('indent')}# BEGIN generated:{m.group('name')}{m.group('note')}\n{body}"
                f"{m.group('indent')}# END generated:{m.group('name')}\n")

    new = _MARKS.sub(fill, text)
    stale += [n for n in generated_sections() if n not in seen]
    if stale and not check:
        path.write_text(new, encoding="utf-8")
        _schema_file.cache_clear()
    return stale


def _messages(err) -> list[tuple[tuple, str]]:
    """``(key path, message)`` of one jsonschema error, without the instance's full dump."""
    path = tuple(err.absolute_path)
    v, inst, s = err.validator, err.instance, err.validator_value
    if v == "additionalProperties" and isinstance(inst, dict):
        known = sorted((err.schema.get("properties") or {}))
        extra = [k for k in inst if k not in known] if known else list(inst)
        return [(path + (k,), f"unknown key '{k}'" + (f" (known: {', '.join(known)})" if known else ""))
                for k in extra]
    if v == "required":
        missing = [k for k in s if k not in inst] if isinstance(inst, dict) else s
        return [(path + (k,), f"required key '{k}' is missing") for k in missing]
    if v == "type":
        return [(path, f"must be of type {s if isinstance(s, str) else ' or '.join(s)}, got {_short(inst)}")]
    if v == "enum":
        return [(path, f"must be one of {s}, got {_short(inst)}")]
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "minProperties",
             "pattern", "uniqueItems", "const"):
        what = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}.get(v)
        if what:
            return [(path, f"must be {what} {s}, got {_short(inst)}")]
        return [(path, f"{v} {s!r} not met by {_short(inst)}")]
    if v in ("oneOf", "anyOf") and err.context:
        best = min(err.context, key=lambda e: len(list(e.absolute_path)))
        return [(path, f"matches none of the accepted forms ({_messages(best)[0][1]})")]
    return [(path, err.message if len(err.message) < 200 else err.message[:195] + " ...")]


def validate_schema(config: dict, lines: dict | None = None) -> dict:
    """Validate against config/schema.yaml and fill its defaults in place (as Snakemake's
    ``validate(set_default=True)``). Errors: one :class:`ConfigError`, one line per error."""
    base = Draft202012Validator
    props = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from props(validator, properties, instance, schema)

    Validator = validators.extend(base, {"properties": set_defaults})
    errors = sorted(Validator(_schema()).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    msgs: list[str] = []
    lines = lines or {}
    for err in errors:
        for path, msg in _messages(err):
            at = next((lines[path[:i]] for i in range(len(path), 0, -1) if path[:i] in lines), None)
            line = f"{_path(path)}: {msg}"
            msgs.append(f"{at}: {line}" if at else line)
    msgs = list(dict.fromkeys(msgs))
    if msgs:
        more = f"\n  ... and {len(msgs) - MAX_ERRORS} more" if len(msgs) > MAX_ERRORS else ""
        raise ConfigError(msgs[0] + "".join(f"\n  {m}" for m in msgs[1:MAX_ERRORS]) + more)
    return config


def validate_config(config: dict, lines: dict | None = None, strict_tables: bool = False,
                    jobs_use_this_python: bool = True) -> list[str]:
    """Schema (with defaults filled in place), ``select_datasets`` (:func:`cmkd.config.select_datasets`,
    in place), then :func:`cmkd.config.check_config` (semantics, feasibility, environment). Returns the warnings; raises :class:`ConfigError` naming the key."""
    validate_schema(config, lines)
    config.update(select_datasets(config))  # only the selected data sets' experiments and tables
    return check_semantics(config, strict_tables=strict_tables, jobs_use_this_python=jobs_use_this_python)


def check_semantics(config: dict, strict_tables: bool = False, jobs_use_this_python: bool = True) -> list[str]:
    """Everything after the schema: the config's own semantics (:func:`cmkd.config.check_config`),
    then what a job would otherwise find out late (:func:`cmkd.feasibility.check_feasibility`:
    parameters, data shape, splits, device) and the prepared validation parts
    (:func:`cmkd.config.check_prepared_validation`). Returns the warnings."""
    warnings = check_config(config, strict_tables=strict_tables, jobs_use_this_python=jobs_use_this_python)
    check_feasibility(config, list(iter_cells(config)), check_env=jobs_use_this_python)
    check_prepared_validation(config)  # every validation part holds its training part's classes
    return warnings


def config_lines(files: Iterable[str | Path]) -> dict:
    """The key lines of config files Snakemake has already loaded (for the messages only: a file
    that cannot be read again gives no lines)."""
    lines: dict = {}
    for f in files:
        try:
            lines.update(read_yaml(f)[1])
        except (ConfigError, OSError):
            pass
    return lines
