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

from cmkd.feasibility import encoder_params
from cmkd.params import defaults_of

#: the cache format (the layout of face.npy and meta.json)
FORMAT_VERSION = 2
FACE = "face"
#: the encoder keys that decide the features (the head's own keys do not)
EXTRACTION_KEYS = ("arch", "img_size", "pretrained", "pretrained_path")


def is_frozen(enc: Mapping | None) -> bool:
    return isinstance(enc, Mapping) and enc.get("name") == "timm" and enc.get("frozen") is True


def configured_settings(enc: Mapping) -> dict:
    """The extraction keys of a timm encoder's settings, its declared defaults filled in
    (``ENCODER_PARAMS`` read without importing the model code)."""
    c = {**defaults_of(encoder_params()["timm"]), **{k: v for k, v in enc.items() if k != "name"}}
    img = c["img_size"]
    return {"arch": str(c["arch"]),
            "img_size": None if img is None else [int(v) for v in img] if isinstance(img, (list, tuple)) else [int(img)] * 2,
            "pretrained": bool(c["pretrained"]),
            "pretrained_path": None if c["pretrained_path"] is None else os.fspath(c["pretrained_path"])}


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
