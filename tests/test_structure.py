"""The shape of the code base (issue "the house"): no import cycles between modules of ``cmkd``, no
module over :data:`MAX_LINES` lines, no two modules with the same file name (``__init__.py`` and
``base.py`` apart), every import inside a function says why it is not at the top of its module
(``# lazy: <reason>``, :data:`LAZY_REASONS`), and the workflow's rule files keep no Python logic of
their own beyond one-line calls into :mod:`cmkd.workflow`."""
from __future__ import annotations

import ast
import fnmatch
import re
from collections import Counter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "cmkd"
MAX_LINES = 600
SHARED_NAMES = {"__init__.py", "base.py", "__main__.py"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Every ``cmkd`` module -> the ``cmkd`` modules it imports, at module level or inside a function
    (an import inside a function is still a dependency: a cycle through it is a cycle)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, node, path.name == "__init__.py")
                if base is None:
                    continue
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t.startswith("cmkd") and t != mod and not mod.startswith(t + "."):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # a package's __init__ importing its own submodules is not a cycle (the edge runs one way)
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_over_the_line_limit():
    long = {str(p.relative_to(SRC)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_no_two_modules_share_a_file_name():
    names = Counter(p.name for p in PKG.rglob("*.py") if p.name not in SHARED_NAMES)
    assert {n: c for n, c in names.items() if c > 1} == {}


#: why an import may sit inside a function (``# lazy: <reason> [(details)]`` on its line):
#: ``torch``, the module is imported on a torch-free path (the Snakefile, ``snakemake -n``, ``cmkd check``,
#: ``cmkd list``: tests/test_torch_free.py); ``optional``, an optional or heavy third-party dependency that
#: only some commands need; ``cycle``, a module-level import would close an import cycle; ``startup``, the
#: CLI builds its parser from the module or imports a subcommand's module in its command function, so that
#: ``--help`` and a job's start stay fast; ``plugin``, a loader module is imported only where it is used (the package
#: tables read the loaders' declarations with ast: tests/test_loader_discovery.py)
LAZY_REASONS = {"torch", "optional", "cycle", "startup", "plugin"}
LAZY_TAG = re.compile(r"#\s*lazy:\s*([A-Za-z_]+)")
#: files other changes are editing at the moment, relative to src/ (fnmatch patterns): their imports inside
#: functions are tagged once those changes are merged, and the entry goes
PENDING: set[str] = set()


def untagged_function_imports(src: Path = SRC, pending: set[str] = frozenset()) -> list[str]:
    """``path:line: statement`` of every import inside a function or method of the package under ``src``
    whose lines carry no ``# lazy: <reason>`` tag with a reason of :data:`LAZY_REASONS` (files matching
    a ``pending`` pattern are not read)."""
    out = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if any(fnmatch.fnmatch(rel, p) for p in pending):
            continue
        text = path.read_text()
        lines = text.splitlines()
        seen, found = set(), []
        for fn in ast.walk(ast.parse(text, str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in seen:
                    continue
                seen.add(node.lineno)
                span = lines[node.lineno - 1: node.end_lineno]
                reasons = {m.group(1) for ln in span if (m := LAZY_TAG.search(ln))}
                if not reasons & LAZY_REASONS:
                    found.append((node.lineno, f"{rel}:{node.lineno}: {span[0].strip()}"))
        out += [line for _, line in sorted(found)]
    return out


def test_every_import_inside_a_function_says_why():
    bad = untagged_function_imports(SRC, PENDING)
    assert bad == [], ("imports inside functions without a '# lazy: <reason>' tag (reasons: "
                       f"{', '.join(sorted(LAZY_REASONS))}); move them to the top of the module or tag them:\n"
                       + "\n".join(bad))


def test_the_lazy_import_check_finds_untagged_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "skipped").mkdir(parents=True)
    (pkg / "mod.py").write_text(
        "import os\n"                                              # module level: no tag needed
        "def f():\n"
        "    import json\n"                                        # untagged
        "    import torch  # lazy: torch (the planner imports this module)\n"
        "    import yaml  # lazy: because\n"                       # not a reason
        "    from a import (b,\n"
        "                   c)  # lazy: optional\n"                # a tag on any line of the statement
        "    def g():\n"
        "        from pkg import mod\n"                            # nested function, reported once
        "    return json\n"
        "class C:\n"
        "    def m(self):\n"
        "        import numpy  # lazy\n")                          # no reason
    (pkg / "skipped" / "x.py").write_text("def f():\n    import json\n")
    assert untagged_function_imports(tmp_path, {"pkg/skipped/*"}) == [
        "pkg/mod.py:3: import json", "pkg/mod.py:5: import yaml  # lazy: because",
        "pkg/mod.py:9: from pkg import mod", "pkg/mod.py:13: import numpy  # lazy"]
    assert len(untagged_function_imports(tmp_path)) == 5
