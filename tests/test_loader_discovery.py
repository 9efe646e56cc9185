"""The data-set loader tables are read from the loader modules themselves: each declares what it
is (name, prepare function, family, nominal size, modalities it never recorded, raw-data check)
as a literal (``LOADER``) that :mod:`cmkd.data` reads with ``ast`` (no import). The tables the
command line, the config check, the resource estimate and the raw-data check read equal the
snapshot taken of the hand-written tables they replaced (``tests/snapshots/loader_tables.json``)."""
from __future__ import annotations

import json

from conftest import ROOT

SNAPSHOT = ROOT / "tests" / "snapshots" / "loader_tables.json"


def loader_tables() -> dict:
    """A JSON-able picture of every table a loader is listed in."""
    import importlib

    from cmkd.config import SEED_FAMILY_LOADERS
    from cmkd.data import LOADERS
    from cmkd.data.rawcheck import INSPECTORS
    from cmkd.resources import NOMINAL_SEGMENTS

    not_recorded = {}
    for name, target in LOADERS.items():
        nr = getattr(importlib.import_module(target.split(":")[0]), "NOT_RECORDED", {}) or {}
        if nr:
            not_recorded[name] = dict(nr)
    return {"loaders": dict(LOADERS), "seed_family": sorted(SEED_FAMILY_LOADERS),
            "nominal_segments": NOMINAL_SEGMENTS, "inspectors": sorted(INSPECTORS), "not_recorded": not_recorded}


def test_loader_tables_equal_their_snapshot():
    assert json.loads(json.dumps(loader_tables())) == json.loads(SNAPSHOT.read_text())
