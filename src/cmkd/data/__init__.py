"""Data sets: raw files -> one prepared directory (one ``.npy`` per array + ``meta.json``).

The tables here are the single source that the command line (``cmkd prepare``, ``cmkd inspect``),
the config check, the resource estimate and the training loop read; the schema does not repeat
them. Torch-free (read when the workflow builds its DAG).

- :data:`LOADER_INFO`: data-set loader name (``datasets.<name>.loader``) -> :class:`LoaderInfo`,
  gathered from the ``LOADER`` literal each loader module of this package declares at top level
  (read with :mod:`ast`, without importing the module; :func:`cmkd.literals.module_literals`)::

      LOADER = {"name": "seed_v", "prepare": "prepare_seed_v", "title": "SEED-V", "family": "seed",
                "nominal_segments": {"default": 16 * 3 * 15 * 45}}

  Keys: ``name`` and ``prepare`` (a function of the module, ``prepare(root, out, params)``;
  ``synthetic``: ``(out, params, seed)``) are required; ``title`` (display name, default the
  name), ``family`` (``seed``: sessions, so the SEED-family protocol splits apply),
  ``nominal_segments`` (``{"default": n, "<modality>": n}``: the size before preparing, for the
  resource estimate), ``nominal_subjects`` (the number of subjects before preparing: the models
  a LOSO or per-subject run trains, for the resource estimate), ``not_recorded`` (``{modality: why}``: asking for it is a config error),
  ``inspect`` (the raw-data check: ``"module:function"``; ``"prepare"``, the default, runs the
  loader into a temporary folder; ``None``: none). Adding a data set is its loader module and its
  config entry.
- :data:`LOADERS`: loader name -> ``module:function`` of its prepare function (from the above).
- :data:`MODALITY_KINDS`: every modality a prepared directory may hold and its kind: ``signal``
  and ``features`` are standardised with training-part statistics, ``video`` frames are not
  (read from the modality catalog, :data:`cmkd.data.modalities.CATALOG`, which also declares each
  modality's array shape and resource facts).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from cmkd.data.modalities import CATALOG as MODALITY_CATALOG
from cmkd.errors import ConfigError, RegistryError
from cmkd.literals import check_keys, module_literals


@dataclass(frozen=True)
class LoaderInfo:
    name: str
    module: str
    prepare: str                  # the prepare function's name in ``module``
    title: str = ""               # display name in messages (default: the name)
    family: str | None = None     # "seed": sessions (SEED-family protocol splits)
    nominal_segments: dict = field(default_factory=dict)  # {"default": n, modality: n}
    nominal_subjects: int | None = None                   # subjects before preparing (models per run)
    not_recorded: dict = field(default_factory=dict)      # {modality: why it was never recorded}
    inspect: str | None = "prepare"  # raw-data check: "module:function", "prepare" or None

    @property
    def target(self) -> str:
        return f"{self.module}:{self.prepare}"


_LOADER_TYPES = {"name": str, "prepare": str, "title": str, "family": (str, type(None)), "nominal_segments": dict,
                 "nominal_subjects": int, "not_recorded": dict, "inspect": (str, type(None))}


def discover(dirs=None) -> dict[str, LoaderInfo]:
    """The loaders declared by the ``LOADER`` literals of the modules in ``dirs`` (default: this
    package's directories); a malformed one or a name declared twice raises
    :class:`RegistryError` naming the file."""
    out: dict[str, LoaderInfo] = {}
    where_of: dict[str, object] = {}
    for module, path, value in module_literals(__path__ if dirs is None else dirs, __name__, "LOADER"):
        where = f"{path}: LOADER"
        if not isinstance(value, dict):
            raise RegistryError(f"{where}: must be a dict, got {value!r}")
        check_keys(value, _LOADER_TYPES, where, required=("name", "prepare"))
        name = value["name"]
        if name in out:
            raise RegistryError(f"{where}: loader '{name}' is also declared in {where_of[name]} (a name is declared once)")
        out[name] = LoaderInfo(**{"title": name, **value}, module=module)
        where_of[name] = path
    return out


LOADER_INFO: dict[str, LoaderInfo] = discover()
LOADERS: dict[str, str] = {name: info.target for name, info in LOADER_INFO.items()}

MODALITY_KINDS: dict[str, str] = {name: m.kind for name, m in MODALITY_CATALOG.items()}
MODALITIES: tuple[str, ...] = tuple(MODALITY_CATALOG)
#: modalities standardised (per channel / feature) with statistics of the training part
CONTINUOUS: tuple[str, ...] = tuple(name for name, m in MODALITY_CATALOG.items() if m.continuous)


def family(name: str) -> tuple[str, ...]:
    """The loaders of family ``name`` (``seed``: the SEED-family data sets, with sessions)."""
    return tuple(n for n, info in LOADER_INFO.items() if info.family == name)


def loader(name: str):
    """The prepare function of loader ``name`` (imported on use)."""
    if name not in LOADERS:
        raise ConfigError(f"unknown data set loader '{name}' (known: {', '.join(LOADERS)})")
    mod, fn = LOADERS[name].split(":")
    return getattr(importlib.import_module(mod), fn)
