"""Where the frozen face features of an encoder's settings live, known before any job runs
(torch-free: the workflow plans the extraction jobs from it; :mod:`cmkd.run.frame_features`
reads and writes the same folders).

``<results>/frame_features/<dataset>/<settings_key>/`` (:func:`cache_folder`) holds ``face.npy`` and ``meta.json``, where
``settings_key`` is the first 16 hex digits of the sha256 over the cache format and what the config
decides: ``arch``, ``img_size`` (as configured: null means the frames' own size), ``pretrained``
and ``pretrained_path``, with the timm encoder's declared defaults filled in. What the config does
not decide - the prepared data's content hash and the sha256 of the backbone's weights (a hub
download, a file's content) - is written inside ``meta.json`` by the extraction and checked by
every training job that reads the folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

from cmkd.feasibility import configured_settings

#: the cache format (the layout of face.npy and meta.json)
FORMAT_VERSION = 2
FACE = "face"


def is_frozen(enc: Mapping | None) -> bool:
    return isinstance(enc, Mapping) and enc.get("name") == "timm" and enc.get("frozen") is True


def settings_key(enc: Mapping) -> str:
    """The cache folder's name for a frozen encoder's settings (16 hex digits)."""
    body = {"format": FORMAT_VERSION, **configured_settings(enc)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(prepared: str | os.PathLike) -> Path:
    """``<results>/frame_features/<dataset>`` for the prepared folder ``<results>/prepared/<dataset>``
    (beside it, not inside: the prepared folder is a workflow output that must not change)."""
    p = Path(prepared)
    return p.parent.parent / "frame_features" / p.name


def cache_folder(prepared: str | os.PathLike, enc: Mapping) -> Path:
    """The cache folder of a frozen encoder's settings for the prepared folder ``prepared``."""
    return cache_root(prepared) / settings_key(enc)
