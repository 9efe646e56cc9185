"""Data sets: raw files -> one prepared directory (one ``.npy`` per array + ``meta.json``).

The two tables here are the single source that the command line (``cmkd prepare``), the config
check and the training loop read; the schema does not repeat them. Torch-free (read when the
workflow builds its DAG).

- :data:`LOADERS`: data-set loader name (``datasets.<name>.loader``) -> ``module:function``
  preparing it as ``function(root, out, params)`` (``synthetic``: ``(out, params, seed)``).
  Adding a data set is its loader module plus one line here and its config entry.
- :data:`MODALITY_KINDS`: every modality a prepared directory may hold and its kind: ``signal``
  and ``features`` are standardised with training-part statistics, ``video`` frames are not.
"""
from __future__ import annotations

import importlib

LOADERS: dict[str, str] = {
    "synthetic": "cmkd.data.synthetic:write_synthetic",
    "deap": "cmkd.data.deap:prepare_deap",
    "mahnob_hci": "cmkd.data.mahnob:prepare_mahnob",
    "seed_iv": "cmkd.data.seed_iv:prepare_seed_iv",
    "seed": "cmkd.data.seed:prepare_seed",
    "seed_v": "cmkd.data.seed_v:prepare_seed_v",
}

MODALITY_KINDS: dict[str, str] = {"eeg": "signal", "eog": "signal", "face": "video", "eye": "features", "eeg_de": "features"}
MODALITIES: tuple[str, ...] = tuple(MODALITY_KINDS)
#: modalities standardised (per channel / feature) with statistics of the training part
CONTINUOUS: tuple[str, ...] = tuple(m for m, k in MODALITY_KINDS.items() if k != "video")


def loader(name: str):
    """The prepare function of loader ``name`` (imported on use)."""
    from cmkd.errors import ConfigError

    if name not in LOADERS:
        raise ConfigError(f"unknown data set loader '{name}' (known: {', '.join(LOADERS)})")
    mod, fn = LOADERS[name].split(":")
    return getattr(importlib.import_module(mod), fn)
