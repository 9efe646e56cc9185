"""The mutation runner (scripts/mutate.py): the mutants it makes, how it classifies them, and that
its configuration (scripts/mutation.yaml) names modules, functions and tests that exist. The
mutation run itself is not run here (bash scripts/mutation.sh, 8 to 25 minutes on 2 cores)."""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("cmkd_mutate", ROOT / "scripts" / "mutate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


SNIPPET = textwrap.dedent('''\
    """Module docstring: 1 < 2 is not mutated."""
    import copy
    from functools import lru_cache

    LIMIT = 3


    @lru_cache(maxsize=1)
    def f(a: int, b: float = 2.5) -> float:
        """Docstring."""
        if a < b and not a == 0:
            raise ValueError(f"bad {a + 1}")
        log(f"a is {a - 1}")
        x = -a + b * 2
        x += 1
        y = copy.deepcopy(x)
        return y


    def g(t):
        t.update()
        return t.detach()
    ''')


def _changes(mutants):
    return sorted((m.operator, m.change) for m in mutants)


def test_mutants_of_a_snippet(mutate):
    ms = mutate.find_mutants(SNIPPET, "pkg/mod.py")
    assert _changes(ms) == sorted([
        ("constant", "`3` -> `4`"),                 # LIMIT
        ("constant", "`2.5` -> `3.5`"),             # the default of b (not the annotation, not the decorator)
        ("compare", "`<` -> `<=`"),
        ("bool", "`and` -> `or`"),
        ("unary", "`not` -> ``"),
        ("compare", "`==` -> `!=`"),
        ("constant", "`0` -> `1`"),
        ("raise", "`raise ValueError(f\"bad {a + 1}\")` -> `pass`"),  # its message is not mutated
        ("unary", "`-` -> ``"),
        ("arith", "`+` -> `-`"),
        ("arith", "`*` -> `/`"),
        ("constant", "`2` -> `3`"),
        ("arith", "`+=` -> `-=`"),
        ("constant", "`1` -> `2`"),
        ("copy", "`copy.deepcopy(x)` -> `(x)`"),
        ("return", "`y` -> `None`"),
        ("call", "`t.update()` -> `pass`"),         # the log(...) call is left alone
        ("return", "`t.detach()` -> `None`"),
        ("copy", "`t.detach()` -> `(t)`"),
    ])
    src = SNIPPET.encode()
    by_change = {m.change: m for m in ms}
    m = by_change["`<` -> `<=`"]
    assert m.scope == "f" and m.line == 11 and m.lines == (11, 11)
    assert m.mutated_line(src) == "if a <= b and not a == 0:"
    assert by_change["`3` -> `4`"].lines is None and by_change["`2.5` -> `3.5`"].lines is None  # run at import
    assert by_change["`t.update()` -> `pass`"].scope == "g"
    for m in ms:  # every mutant parses, and only its own span changed
        new = m.apply(src)
        ast.parse(new)
        assert new[:m.start] == src[:m.start] and new[m.start + len(m.replacement.encode()):] == src[m.end:]


def test_only_and_skip_select_functions(mutate):
    only_g = mutate.find_mutants(SNIPPET, only=("g",))
    assert {m.scope for m in only_g} == {"g"} and len(only_g) == 3
    assert {m.scope for m in mutate.find_mutants(SNIPPET, skip=("f",))} == {"<module>", "g"}
    src = "class A:\n    def m(self):\n        return 1\n    def n(self):\n        return 2\n"
    assert {m.scope for m in mutate.find_mutants(src, only=("A.n",))} == {"A.n"}
    assert {m.scope for m in mutate.find_mutants(src, only=("A",))} == {"A.m", "A.n"}


def test_operator_token_found_across_lines_and_parentheses(mutate):
    src = "def h(a, b):\n    return ((a)\n            # a comment with < and +\n            >= (b - 1))\n"
    ms = {m.change: m for m in mutate.find_mutants(src)}
    assert ms["`>=` -> `>`"].line == 4 and ms["`>=` -> `>`"].lines == (2, 4)
    assert ms["`-` -> `+`"].mutated_line(src.encode()) == ">= (b + 1))"
    assert "`is` -> `is not`" in {m.change for m in mutate.find_mutants("def k(x):\n    return x is None\n")}


def test_keys_are_stable_and_tell_repeated_changes_apart(mutate):
    src = "def p(x):\n    return x * 2 + x * 2\n"
    ms = [m for m in mutate.find_mutants(src, "m.py") if m.change == "`2` -> `3`"]
    keys = [m.key(src.encode()) for m in ms]
    assert keys == ["m.py::p::`2` -> `3`::return x * 2 + x * 2", "m.py::p::`2` -> `3`::return x * 2 + x * 2 #2"]
    moved = "\n\n" + src  # lines added above: the same keys
    assert [m.key(moved.encode()) for m in mutate.find_mutants(moved, "m.py") if m.change == "`2` -> `3`"] == keys


CALC = textwrap.dedent('''\
    def clamp(x, lo, hi):
        if x < lo:
            return lo
        if x > hi:
            return hi
        return x


    def count(n):
        i = 0
        while i < n:
            i += 1
        return i


    def unused(x):
        return x + 1
    ''')

CALC_TEST = textwrap.dedent('''\
    from tinypkg.calc import clamp, count


    def test_clamp():
        assert clamp(-1, 0, 3) == 0 and clamp(5, 0, 3) == 3 and clamp(2, 0, 3) == 2


    def test_count():
        assert count(3) == 3
    ''')


def test_runner_classifies_killed_survived_timeout_and_not_run(mutate, tmp_path):
    root = tmp_path / "proj"
    (root / "src" / "tinypkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "tinypkg" / "__init__.py").write_text("")
    (root / "src" / "tinypkg" / "calc.py").write_text(CALC)
    (root / "tests" / "test_calc.py").write_text(CALC_TEST)
    target = mutate.Target(path="src/tinypkg/calc.py", tests=["tests/test_calc.py"])
    clean = mutate.Job("clean", target, tmp_path / "clean")
    mutate.run_jobs([clean], root / "src", 1, root=root)
    assert clean.status == "survived"  # the unmutated code passes
    cov = clean.coverage
    assert cov["lines"][2] == ["tests/test_calc.py::test_clamp"] and 17 not in cov["lines"]
    assert set(cov["durations"]) == {"tests/test_calc.py::test_clamp", "tests/test_calc.py::test_count"}
    target.baseline_s = clean.seconds

    source = CALC.encode()
    ms = {(m.line, m.change): m for m in mutate.find_mutants(CALC, target.path)}
    picks = {
        (2, "`<` -> `<=`"): "survived",     # x == lo is not tested
        (3, "`lo` -> `None`"): "killed",
        (12, "`+=` -> `-=`"): "timeout",    # count() never ends
        (17, "`+` -> `-`"): "survived",     # no test runs unused(): not run at all
    }
    jobs = []
    for i, key in enumerate(picks):
        job = mutate.Job(f"m{i}", target, tmp_path / f"m{i}", mutant=ms[key], source=source)
        job.tests, job.limit = mutate.select_tests(ms[key], target, cov, min_timeout=3.0)
        if not job.tests:
            job.status, job.covered = "survived", False
        jobs.append(job)
    assert jobs[0].tests == ["tests/test_calc.py::test_clamp"] and jobs[2].tests == ["tests/test_calc.py::test_count"]
    assert jobs[3].tests == [] and jobs[2].limit == pytest.approx(3.0, abs=1.5)
    mutate.run_jobs([j for j in jobs if j.covered], root / "src", 2, root=root)
    assert [j.status for j in jobs] == list(picks.values())
    assert not (root / "src" / "tinypkg" / "__pycache__").exists()  # the tree itself is never touched
    assert (root / "src" / "tinypkg" / "calc.py").read_text() == CALC

    class Args:
        jobs, timeout_factor, max_per_module, seed = 2, 3.0, 0, 0

    survivor = jobs[0].mutant.key(source)
    summary = mutate.write_report(tmp_path / "out", [target], jobs, {survivor: "ties are not a case here"}, 1.0, Args)
    assert (summary["mutants"], summary["killed"], summary["timeout"], summary["survived"]) == (4, 1, 1, 2)
    assert summary["not_run"] == 1 and summary["explained"] == 1 and summary["unexplained"] == 1
    report = (tmp_path / "out" / "report.md").read_text()
    assert "harmless: ties are not a case here" in report and "**UNEXPLAINED**" in report
    assert "`return x - 1` (no test runs this line)" not in report and "(no test runs this line)" in report


def _qualnames(source: str) -> set[str]:
    names = set()

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + child.name)
                walk(child, prefix + child.name + ".")

    walk(ast.parse(source), "")
    return names


def test_config_names_existing_modules_functions_and_tests(mutate):
    """Explanations whose mutant no longer exists are listed by the mutation run's report (an
    edit of the line changes the key), not checked here: the suite does not depend on them."""
    targets, explained = mutate.load_config()
    assert {t.path for t in targets} >= {"src/cmkd/losses/response.py", "src/cmkd/data/splits.py", "src/cmkd/data/labels.py",
                                         "src/cmkd/analysis/stats/paired.py", "src/cmkd/train.py"}
    assert explained and all(reason for reason in explained.values())
    for t in targets:
        source = (ROOT / t.path).read_text()
        assert mutate.find_mutants(source, t.path, t.only, t.skip), f"{t.path}: no mutants"
        for name in (*t.only, *t.skip):
            assert name in _qualnames(source), f"{t.path}: no function or class {name}"
        for test in t.tests:
            file, _, func = test.partition("::")
            assert (ROOT / file).exists(), test
            if func:
                assert re.search(rf"^def {re.escape(func)}\(", (ROOT / file).read_text(), re.M), test
