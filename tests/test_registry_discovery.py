"""The method registry is read from the method modules themselves: each declares its entries as a
literal (``REGISTER``) that the package reads with ``ast`` (no import, no torch). The registry it
builds equals the snapshot taken of the hand-written table it replaced
(``tests/snapshots/method_registry.json``): names, modules, roles, defaults, ranges and choices."""
from __future__ import annotations

import dataclasses
import json

from conftest import ROOT

from cmkd.methods import REGISTRY
from cmkd.params import Param

SNAPSHOT = ROOT / "tests" / "snapshots" / "method_registry.json"


def registry_snapshot(registry) -> dict:
    """A JSON-able picture of a registry: per name its module, roles, flags, description and every
    field of every Param (types kept: JSON tells 0 from 0.0)."""
    out = {}
    for name, info in registry.items():
        assert isinstance(info.roles, tuple), name
        params = {}
        for p, decl in info.params.items():
            assert isinstance(decl, Param), (name, p)
            assert isinstance(decl.choices, tuple), (name, p)
            params[p] = {f.name: (list(v) if isinstance(v := getattr(decl, f.name), tuple) else v)
                         for f in dataclasses.fields(Param)}
        out[name] = {"module": info.module, "roles": list(info.roles), "variadic_roles": info.variadic_roles,
                     "trivial": info.trivial, "description": info.description, "params": params}
    return out


def test_registry_equals_its_snapshot():
    want = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(registry_snapshot(REGISTRY)))
    assert sorted(got) == sorted(want)
    for name in want:
        # compared as JSON text, so that an int where a float was (or the reverse) shows
        assert json.dumps(got[name], sort_keys=True) == json.dumps(want[name], sort_keys=True), name
