"""The method registry is read from the method modules themselves: each declares its entries as a
literal (``REGISTER``) that the package reads with ``ast`` (no import, no torch). The registry it
builds equals the snapshot taken of the hand-written table it replaced
(``tests/snapshots/method_registry.json``): names, modules, roles, defaults, ranges and choices."""
from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import ROOT, fresh_python

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


def test_registry_keeps_its_snapshot():
    """Every entry of the snapshot is still registered, unchanged. A new method file adds entries
    and needs no change here (adding a method is its file plus its config entry)."""
    want = json.loads(SNAPSHOT.read_text())
    got = json.loads(json.dumps(registry_snapshot(REGISTRY)))
    assert not set(want) - set(got), f"methods lost from the registry: {sorted(set(want) - set(got))}"
    for name in want:
        # compared as JSON text, so that an int where a float was (or the reverse) shows
        assert json.dumps(got[name], sort_keys=True) == json.dumps(want[name], sort_keys=True), name


def test_discovery_reads_the_modules_without_importing_them():
    """The registry is read when the workflow builds its DAG: no method module (and no torch) is
    imported by it."""
    code = ("import sys; import cmkd.methods as m; assert m.REGISTRY; "
            "print(sorted(k for k in sys.modules if k.startswith(('torch', 'cmkd.methods.'))))")
    assert fresh_python(code) == "['cmkd.methods.params_common']"


# ----------------------------------------------------------------------------- errors name the file
def _discover(tmp_path, files: dict):
    from cmkd.methods import discover

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return discover([tmp_path])


def test_a_method_module_alone_is_registered(tmp_path):
    reg = _discover(tmp_path, {"toy.py": 'import torch\n\nREGISTER = {"toy": {"roles": ["teacher"], "extends": ["zoo"], '
                                         '"params": {"beta": {"default": 2.0, "lo": 0.0}}}}\n'})
    info = reg["toy"]
    assert info.module.endswith(".toy") and info.roles == ("teacher",) and not info.variadic_roles
    assert list(info.params) == ["gamma", "alpha", "temperature", "beta"]
    assert info.params["beta"] == Param(2.0, "number", lo=0.0)


@pytest.mark.parametrize("files, expected", [
    ({"a.py": "X = 1\nREGISTER = {'a': {'params': {'p': {'default': X}}}}\n"},
     r"a\.py:2: REGISTER must be a literal"),
    ({"a.py": "REGISTER = {'a': {}}\n", "b.py": "REGISTER = {'a': {}}\n"},
     r"b\.py: REGISTER\['a'\]: the name is also registered in .*a\.py"),
    ({"a.py": "REGISTER = {'a': {'extends': ['zooo']}}\n"},
     r"a\.py: REGISTER\['a'\]\.extends: unknown parameter group 'zooo' \(groups of cmkd/methods/params_common\.py: "),
    ({"a.py": "REGISTER = {'a': {'extends': ['b']}, 'b': {'extends': ['a']}}\n"},
     r"a\.py: REGISTER\['a'\]\.extends: circular a -> b -> a"),
    ({"a.py": "REGISTER = {'a': {'role': ['teacher']}}\n"}, r"a\.py: REGISTER\['a'\]: unknown key 'role'"),
    ({"a.py": "REGISTER = {'a': {'params': {'p': {'default': 1, 'kind': 'integer'}}}}\n"},
     r"a\.py: REGISTER\['a'\]\.params\.p\.kind: must be one of"),
    ({"a.py": "REGISTER = {'a': {'params': {'p': {'default': 1, 'low': 0}}}}\n"},
     r"a\.py: REGISTER\['a'\]\.params\.p: unknown field\(s\) \['low'\]"),
    ({"a.py": "REGISTER = {}\nREGISTER = {}\n"}, r"a\.py:1: REGISTER is assigned 2 times"),
    ({"a.py": "REGISTER = {'zoo': {}}\n"}, r"a\.py: REGISTER\['zoo'\]: the name is a parameter group"),
    ({"a.py": "REGISTER = {'a': {'params': {'b': {'default': 1.0}, 'weights': {'default': 'paper', 'kind': 'choice', 'choices': ['paper', 'other']}}, "
               "'presets': {'paper': {'b': 2.0}, 'other': {'b': 3.0}}}}\n"},
     r"a\.py: REGISTER\['a'\]\.presets\.paper\.b: 2\.0 differs from the declared default 1\.0"),
    ({"a.py": "REGISTER = {'a': {'params': {'b': {'default': 1.0}, 'weights': {'default': 'paper', 'kind': 'choice', 'choices': ['paper', 'other']}}, 'presets': {'paper': {'b': 1.0}}}}\n"},
     r"a\.py: REGISTER\['a'\]\.presets: the presets \['paper'\] differ from the choices"),
    ({"a.py": "REGISTER = {'a': {'params': {'b': {'default': 1.0}, 'weights': {'default': 'paper', 'kind': 'choice', 'choices': ['paper', 'other']}}, "
               "'presets': {'paper': {'b': 1.0}, 'other': {'c': 3.0}}}}\n"},
     r"a\.py: REGISTER\['a'\]\.presets\.other\.c: not a parameter"),
    ({"a.py": "REGISTER = {'a': {'params': {'b': {'default': 1.0, 'lo': 0.0}, 'weights': {'default': 'paper', 'kind': 'choice', 'choices': ['paper', 'other']}}, "
               "'presets': {'paper': {'b': 1.0}, 'other': {'b': -1.0}}}}\n"},
     r"a\.py: REGISTER\['a'\]\.presets\.other\.b: must be >= 0\.0"),
], ids=["not-literal", "duplicate", "unknown-group", "circular", "unknown-key", "kind", "param-field", "twice", "group-name",
        "preset-not-default", "preset-missing", "preset-unknown-param", "preset-bad-value"])
def test_registration_errors_name_the_file(tmp_path, files, expected):
    from cmkd.errors import RegistryError

    with pytest.raises(RegistryError, match=expected):
        _discover(tmp_path, files)
