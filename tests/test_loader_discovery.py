"""The data-set loader tables are read from the loader modules themselves: each declares what it
is (name, prepare function, family, nominal size, modalities it never recorded, raw-data check)
as a literal (``LOADER``) that :mod:`cmkd.data` reads with ``ast`` (no import). The tables the
command line, the config check, the resource estimate and the raw-data check read equal the
snapshot taken of the hand-written tables they replaced (``tests/snapshots/loader_tables.json``)."""
from __future__ import annotations

import json

import pytest
from conftest import ROOT, fresh_python

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


def test_loader_tables_keep_their_snapshot():
    """Every entry of the snapshot is still in its table, unchanged. A new loader file adds entries
    and needs no change here (adding a data set is its loader file plus its config entry)."""
    got = json.loads(json.dumps(loader_tables()))
    want = json.loads(SNAPSHOT.read_text())
    assert sorted(got) == sorted(want)
    for table, entries in want.items():
        if isinstance(entries, dict):
            for name, value in entries.items():
                assert got[table].get(name) == value, (table, name)
        else:
            assert not set(entries) - set(got[table]), (table, sorted(set(entries) - set(got[table])))


def test_the_tables_import_no_loader_module():
    code = ("import sys; import cmkd.config, cmkd.resources, cmkd.data.rawcheck; from cmkd.data import LOADER_INFO; "
            "print(sorted(n for n, i in LOADER_INFO.items() if i.module in sys.modules))")
    assert fresh_python(code) == "[]"


@pytest.mark.parametrize("files, expected", [
    ({"a.py": "NAME = 'a'\nLOADER = {'name': NAME, 'prepare': 'f'}\n"}, r"a\.py:2: LOADER must be a literal"),
    ({"a.py": "LOADER = {'name': 'a', 'prepare': 'f'}\n", "b.py": "LOADER = {'name': 'a', 'prepare': 'g'}\n"},
     r"b\.py: LOADER: loader 'a' is also declared in .*a\.py"),
    ({"a.py": "LOADER = {'name': 'a'}\n"}, r"a\.py: LOADER: 'prepare' is required"),
    ({"a.py": "LOADER = {'name': 'a', 'prepare': 'f', 'familly': 'seed'}\n"}, r"a\.py: LOADER: unknown key 'familly'"),
    ({"a.py": "LOADER = {'name': 'a', 'prepare': 'f', 'nominal_segments': 10}\n"},
     r"a\.py: LOADER\.nominal_segments: must be a dict, got 10"),
], ids=["not-literal", "duplicate", "required", "unknown-key", "type"])
def test_loader_declaration_errors_name_the_file(tmp_path, files, expected):
    from cmkd.data import discover
    from cmkd.errors import RegistryError

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(RegistryError, match=expected):
        discover([tmp_path])


def test_a_loader_module_alone_is_declared(tmp_path):
    from cmkd.data import discover

    (tmp_path / "toy.py").write_text("import numpy\n\nLOADER = {'name': 'toy', 'prepare': 'prepare_toy', "
                                     "'nominal_segments': {'default': 2 * 3 * 4}}\n")
    info = discover([tmp_path])["toy"]
    assert info.target.endswith(".toy:prepare_toy") and info.nominal_segments == {"default": 24}
    assert info.title == "toy" and info.family is None and info.inspect == "prepare"
