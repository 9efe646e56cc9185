"""Mutation testing of the modules that carry the protocol's promises (``scripts/mutation.sh``).

Each mutant is one small change of one module (a comparison, an operator, a constant, a removed
``raise`` ...). The tests that concern the module run against it; a mutant they do not notice
(all pass) *survives* and shows a promise no test guards. The targets, their tests and the
survivors known to be harmless (each with its reason) are in ``scripts/mutation.yaml``.

The working tree is never modified: every mutant runs in its own copy of ``src/`` in a temporary
folder, put first on ``sys.path`` and ``PYTHONPATH``; an interrupted run leaves only that folder
behind (removed on exit). The runner imports the heavy libraries (torch, pandas, scipy, ...) once
and forks a child per mutant, which runs ``pytest -x``. A traced clean run of each target's tests
first records which test executes which line (and how long each takes); a mutant then runs only
the tests that executed its statement, fastest first (code that runs at import: all of them;
none: the mutant survives without a run). A child that runs longer than ``--timeout-factor``
times the clean run of its tests is killed, once more with a longer limit, and the mutant counts
as killed (a mutant that makes the code loop is caught). Outcomes:

- ``killed``: a test failed (pytest exit status 1);
- ``timeout``: killed after the time limit (counts as killed);
- ``error``: pytest could not run the tests (collection error, e.g. the mutated module does not
  import, exit status 2) or the child died of a signal; counts as killed, listed in the report;
- ``survived``: every test passed.

Operators (:data:`OPERATORS`): comparison boundaries and negations, arithmetic and bitwise
swaps, ``and``/``or``, removal of ``not``/unary minus/``~``, numeric and boolean constants,
``return x`` -> ``return None``, removal of ``raise`` and of call statements, and removal of a
copy (``copy.deepcopy``, ``.clone()``, ``.copy()``, ``.detach()``). Not mutated: docstrings and
other strings, f-strings, type annotations, decorators, ``assert`` statements, the arguments of a
``raise`` (error messages), calls of ``log``/``print``/``warnings.warn``, and keyword arguments
that change no result (:data:`INERT_KEYWORDS`).

Usage (from the repository root; ``bash scripts/mutation.sh`` sets up the environment)::

    python scripts/mutate.py [-j 2] [--only losses] [--list] [--max-per-module N --seed S]

Writes ``results/mutation/{report.md, mutants.csv, summary.json}`` and prints the summary and the
survivors. Exit status: 0 when every survivor is explained in the config, 1 when some are not,
2 when the clean run of a target's tests fails (nothing is mutated then).
"""
from __future__ import annotations

import argparse
import ast
import compileall
import csv
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "scripts" / "mutation.yaml"

#: Third-party modules imported once before forking (each child would otherwise import them again).
#: Not timm: it imports torchvision, which needs cmkd's shim (cmkd.models._torchvision_shim).
PRELOAD = ("numpy", "pandas", "scipy.stats", "torch", "statsmodels.stats.multitest",
           "statsmodels.stats.power", "scikit_posthocs", "matplotlib", "yaml", "pytest",
           "anyio.pytest_plugin", "platformdirs.pytest_plugin")  # the pytest plugins installed here

#: The operator families, for ``--list`` and the report.
OPERATORS = {
    "compare": "comparison boundary or negation: < <=, > >=, == !=, is / is not, in / not in",
    "arith": "arithmetic and bitwise swap: + -, * /, // -> /, ** -> *, & | (also in augmented assignments)",
    "bool": "and <-> or",
    "unary": "removal of not, unary minus or ~",
    "constant": "number n -> n + 1 (0 -> 1), True <-> False",
    "return": "return x -> return None",
    "raise": "raise ... -> pass",
    "call": "a call statement -> pass",
    "copy": "copy.deepcopy(x) / x.clone() / x.copy() / x.detach() -> x",
}

_COMPARE = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">", ast.Eq: "!=", ast.NotEq: "==",
            ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in"}
_BINOP = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*", ast.FloorDiv: "/", ast.Pow: "*",
          ast.BitAnd: "|", ast.BitOr: "&"}
_BOOL = {ast.And: "or", ast.Or: "and"}
#: The source token of each ast operator (to check that the token found in the source is the one).
_TOKEN = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
          ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-",
          ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|",
          ast.And: "and", ast.Or: "or"}
_OP_RE = re.compile(rb"is\s+not|not\s+in|\*\*=|//=|[-+*/%&|^@]=|<=|>=|==|!=|\*\*|//|<<|>>|and\b|or\b|is\b|in\b"
                    rb"|[-+*/%&|^@<>]")
#: Calls whose statements are messages, never mutated nor removed.
QUIET_CALLS = {"log", "print", "warn"}
#: Keyword arguments whose value changes no result (a copy instead of a view, a transfer mode).
INERT_KEYWORDS = {"copy", "non_blocking", "allow_pickle", "set_to_none"}
#: Methods whose removal (``x.m()`` -> ``x``) drops a copy or a detach.
COPY_METHODS = {"clone", "copy", "detach"}


@dataclasses.dataclass(frozen=True)
class Mutant:
    path: str          # relative to the repository root
    start: int         # byte offsets of the replaced text in the source
    end: int
    replacement: str
    operator: str      # a key of OPERATORS
    original: str      # the replaced text
    scope: str         # qualified name of the enclosing function or class, "<module>" outside
    line: int
    occurrence: int = 1  # among mutants of the same scope, operator, change and line text
    #: lines of the enclosing statement (its header for a compound one) when the mutated code runs
    #: only when its function is called; None for code that runs at import (module level, class
    #: bodies, default values), which every test of the target depends on
    lines: tuple[int, int] | None = None

    def apply(self, source: bytes) -> bytes:
        return source[:self.start] + self.replacement.encode() + source[self.end:]

    @property
    def change(self) -> str:
        orig = " ".join(self.original.split())
        if len(orig) > 60:
            orig = orig[:57] + "..."
        return f"`{orig}` -> `{self.replacement}`"

    def line_text(self, source: bytes) -> str:
        return source.decode().splitlines()[self.line - 1].strip()

    def mutated_line(self, source: bytes) -> str:
        return self.apply(source).decode().splitlines()[self.line - 1].strip()

    def key(self, source: bytes) -> str:
        """Stable across edits elsewhere in the file: path, scope, change and the line's text."""
        k = f"{self.path}::{self.scope}::{self.change}::{self.line_text(source)}"
        return k if self.occurrence == 1 else f"{k} #{self.occurrence}"


# ----------------------------------------------------------------------------------- generation
def _selected(name: str, only: tuple[str, ...], skip: tuple[str, ...]) -> bool:
    within = lambda names: any(name == n or name.startswith(n + ".") for n in names)
    return (not only or within(only)) and not within(skip)


def _is_quiet_call(call: ast.Call) -> bool:
    f = call.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
    return name in QUIET_CALLS


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


class _Finder:
    def __init__(self, source: str, path: str, only=(), skip=()):
        self.src = source.encode()
        self.path = path
        self.only, self.skip = tuple(only), tuple(skip)
        self.line_start = [0]
        for ln in self.src.splitlines(keepends=True):
            self.line_start.append(self.line_start[-1] + len(ln))
        self.found: list[Mutant] = []
        self.lines: tuple[int, int] | None = None  # see Mutant.lines

    # positions ------------------------------------------------------------------------------
    def _off(self, lineno: int, col: int) -> int:
        return self.line_start[lineno - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self._off(node.lineno, node.col_offset), self._off(node.end_lineno, node.end_col_offset)

    def _line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.line_start) - 1
        while lo < hi - 1:
            mid = (lo + hi) // 2
            if self.line_start[mid] <= offset:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def _op_token(self, lo: int, hi: int, op: ast.AST, aug: bool = False) -> tuple[int, int] | None:
        """(start, end) of ``op``'s token in the source between two operands."""
        i, s = lo, self.src
        while i < hi:
            c = s[i:i + 1]
            if c in (b" ", b"\t", b"\n", b"\r", b"(", b")", b"\\"):
                i += 1
            elif c == b"#":
                while i < hi and s[i:i + 1] != b"\n":
                    i += 1
            else:
                break
        m = _OP_RE.match(s, i, hi)
        if not m:
            return None
        want = _TOKEN[type(op)] + ("=" if aug else "")
        if " ".join(m.group().decode().split()) != want:
            return None
        return m.start(), m.end()

    # emitting -------------------------------------------------------------------------------
    def add(self, start: int, end: int, replacement: str, operator: str, scope: str) -> None:
        original = self.src[start:end].decode()
        self.found.append(Mutant(self.path, start, end, replacement, operator, original, scope, self._line_of(start),
                                 lines=self.lines))

    def mutate(self, node: ast.AST, scope: str) -> None:
        if isinstance(node, ast.Compare):
            for i, (op, right) in enumerate(zip(node.ops, node.comparators)):
                left = node.left if i == 0 else node.comparators[i - 1]
                tok = self._op_token(self.span(left)[1], self.span(right)[0], op)
                if tok and type(op) in _COMPARE:
                    self.add(*tok, _COMPARE[type(op)], "compare", scope)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
            if not (_is_str(node.left) or _is_str(node.right)):
                tok = self._op_token(self.span(node.left)[1], self.span(node.right)[0], node.op)
                if tok:
                    self.add(*tok, _BINOP[type(node.op)], "arith", scope)
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP:
            tok = self._op_token(self.span(node.target)[1], self.span(node.value)[0], node.op, aug=True)
            if tok:
                self.add(*tok, _BINOP[type(node.op)] + "=", "arith", scope)
        elif isinstance(node, ast.BoolOp):
            for left, right in zip(node.values, node.values[1:]):
                tok = self._op_token(self.span(left)[1], self.span(right)[0], node.op)
                if tok:
                    self.add(*tok, _BOOL[type(node.op)], "bool", scope)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.Invert)):
            start = self.span(node)[0]
            width = 3 if isinstance(node.op, ast.Not) else 1
            self.add(start, start + width, "", "unary", scope)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float)):
            v = node.value
            if isinstance(v, bool):
                new = repr(not v)
            elif isinstance(v, int):
                new = repr(v + 1)
            else:
                new = repr(1.0 if v == 0 else v + 1.0)
            self.add(*self.span(node), new, "constant", scope)
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                self.add(*self.span(node.value), "None", "return", scope)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            self.add(*self.span(node), "pass", "call", scope)
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "deepcopy" and isinstance(f.value, ast.Name)
                    and f.value.id == "copy" and len(node.args) == 1 and not node.keywords):
                inner = self.span(node.args[0])
            elif isinstance(f, ast.Attribute) and f.attr in COPY_METHODS and not node.args and not node.keywords:
                inner = self.span(f.value)
            else:
                return
            self.add(*self.span(node), "(" + self.src[inner[0]:inner[1]].decode() + ")", "copy", scope)

    # traversal ------------------------------------------------------------------------------
    @staticmethod
    def _header(node: ast.AST) -> tuple[int, int]:
        """The lines of a statement, or of a compound statement's header (up to its body)."""
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            return node.lineno, max(node.lineno, body[0].lineno - 1)
        return node.lineno, node.end_lineno

    def visit(self, node: ast.AST, scope: str, active: bool) -> None:
        outer = self.lines
        if outer is not None and isinstance(node, (ast.stmt, ast.excepthandler)):
            self.lines = self._header(node)
        try:
            self._visit(node, scope, active)
        finally:
            self.lines = outer

    def _visit(self, node: ast.AST, scope: str, active: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name if scope == "<module>" else f"{scope}.{node.name}"
            act = _selected(name, self.only, self.skip)
            if not isinstance(node, ast.ClassDef):
                for d in [*node.args.defaults, *[k for k in node.args.kw_defaults if k is not None]]:
                    self.visit(d, name, act)
                self.lines = self._header(node)  # from here on: code that runs when the function is called
            for child in node.body:
                self.visit(child, name, act)
            return  # decorators, bases and annotations are not mutated
        if isinstance(node, (ast.JoinedStr, ast.Assert)):
            return
        if isinstance(node, ast.Raise):
            if active:
                self.add(*self.span(node), "pass", "raise", scope)
            return  # the exception's arguments are its message
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and _is_quiet_call(node.value):
            return
        if isinstance(node, ast.Expr) and _is_str(node.value):
            return  # a docstring
        if isinstance(node, ast.keyword) and node.arg in INERT_KEYWORDS:
            return
        if active:
            self.mutate(node, scope)
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            for child in (value if isinstance(value, list) else [value]):
                if isinstance(child, ast.AST):
                    self.visit(child, scope, active)


def find_mutants(source: str, path: str = "<source>", only=(), skip=()) -> list[Mutant]:
    """The mutants of one module's ``source``, in source order.

    ``only``: qualified names (``"Class"``, ``"Class.method"``, ``"function"``) that restrict the
    mutants to those functions and classes (module-level code is then left alone); ``skip``:
    qualified names left out. A change whose result does not parse, or parses to the same tree,
    is dropped.
    """
    tree = ast.parse(source)
    finder = _Finder(source, path, only, skip)
    top_active = not finder.only
    for stmt in tree.body:
        finder.visit(stmt, "<module>", top_active)
    # each mutant is checked within its top-level statement (which parses on its own): much faster
    # than parsing the whole module once per mutant
    tops = []
    for stmt in tree.body:
        first = min([stmt, *getattr(stmt, "decorator_list", [])], key=lambda n: (n.lineno, n.col_offset))
        start, end = finder._off(first.lineno, first.col_offset), finder.span(stmt)[1]
        tops.append((start, end, ast.dump(ast.parse(finder.src[start:end]))))
    kept, seen = [], Counter()
    for m in sorted(finder.found, key=lambda m: (m.start, m.end, m.replacement)):
        start, end, base = next(t for t in tops if t[0] <= m.start and m.end <= t[1])
        piece = finder.src[start:m.start] + m.replacement.encode() + finder.src[m.end:end]
        try:
            new = ast.parse(piece)
        except SyntaxError:
            continue
        if ast.dump(new) == base:
            continue
        ident = (m.scope, m.change, m.line_text(finder.src))
        seen[ident] += 1
        kept.append(dataclasses.replace(m, occurrence=seen[ident]))
    return kept


# ----------------------------------------------------------------------------------- running
@dataclasses.dataclass
class Target:
    path: str
    tests: list[str]
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    baseline_s: float = float("nan")


@dataclasses.dataclass
class Job:
    name: str
    target: Target
    workdir: Path
    mutant: Mutant | None = None
    source: bytes = b""
    tests: list[str] = dataclasses.field(default_factory=list)  # default: the target's tests
    limit: float = 600.0  # seconds before the child is killed
    status: str = ""
    rc: int | None = None
    seconds: float = float("nan")
    log_tail: str = ""
    covered: bool = True  # False: no test of the target runs the mutated line (not run, survived)
    coverage: dict = dataclasses.field(default_factory=dict)  # clean run: {"lines": ..., "durations": ...}


class Tracer:
    """A pytest plugin: which lines of ``files`` each test executes (``lines[line] = [test ids]``)
    and how long each test takes, setup and teardown included (``durations[test id]``).

    In-process only: a test that runs the code in a subprocess does not count."""

    def __init__(self, files):
        self.files = {str(f) for f in files}
        self.lines: dict[int, list[str]] = {}
        self.durations: dict[str, float] = {}
        self._hits: set[int] = set()

    def _local(self, frame, event, arg):
        if event == "line":
            self._hits.add(frame.f_lineno)
        return self._local

    def _global(self, frame, event, arg):
        return self._local if frame.f_code.co_filename in self.files else None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        import threading

        self._hits = set()
        t0 = time.perf_counter()
        sys.settrace(self._global)
        threading.settrace(self._global)
        try:
            yield
        finally:
            sys.settrace(None)
            threading.settrace(None)
        self.durations[item.nodeid] = time.perf_counter() - t0
        for line in self._hits:
            self.lines.setdefault(line, []).append(item.nodeid)


def load_config(path: Path = CONFIG) -> tuple[list[Target], dict[str, str]]:
    import yaml

    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    targets = [Target(path=t["path"], tests=list(t["tests"]), only=tuple(t.get("only") or ()),
                      skip=tuple(t.get("skip") or ())) for t in cfg["targets"]]
    explained = {}
    for e in cfg.get("harmless") or []:  # {key, reason} or {keys: [...], reason}: one reason for several
        for k in ([e["key"]] if "key" in e else e["keys"]):
            explained[k] = " ".join(str(e["reason"]).split())
    return targets, explained


def select_tests(m: Mutant, target: Target, coverage: dict, factor: float = 3.0,
                 min_timeout: float = 10.0) -> tuple[list[str], float]:
    """The tests a mutant runs, fastest first, and its time limit in seconds.

    Code that runs at import (``m.lines is None``): all of the target's tests. Code in a function
    body: the tests that ran one of its statement's lines in the clean run (none: the mutant
    cannot be caught, ``[]``). The limit is ``factor`` times the clean run's time for those tests
    (with the run's fixed start-up cost), at least ``min_timeout``.
    """
    durations = coverage.get("durations", {})
    order = {t: i for i, t in enumerate(durations)}
    if m.lines is None:
        tests = list(target.tests)
        need = target.baseline_s
    else:
        ids = {t for line in range(m.lines[0], m.lines[1] + 1) for t in coverage.get("lines", {}).get(line, [])}
        tests = sorted(ids, key=lambda t: (durations.get(t, 0.0), order.get(t, 0)))
        startup = max(0.0, target.baseline_s - sum(durations.values()))
        need = startup + sum(durations.get(t, 0.0) for t in tests)
    limit = max(factor * need, min_timeout) if need == need else 600.0  # NaN: no clean run
    return tests, limit


def _pytest_args(tests: list[str], basetemp: Path) -> list[str]:
    # no:unraisableexception: its two full garbage collections at exit cost more than most tests
    return ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception", "--no-header", "--basetemp", str(basetemp),
            "-o", "addopts=", "-W", "ignore", *tests]


def _child(job: Job, base_src: Path, root: Path) -> None:
    """In the forked child: build the mutant's ``src`` copy, run pytest from ``root``, exit with
    pytest's status (97 when the package would not be imported from the copy)."""
    rc = 3
    try:
        os.setpgid(0, 0)
        job.workdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(job.workdir / "pytest.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        src = job.workdir / "src"
        shutil.copytree(base_src, src, copy_function=shutil.copy2)
        if job.mutant is not None:
            rel = Path(job.mutant.path).relative_to("src")
            (src / rel).write_bytes(job.mutant.apply(job.source))
            for pyc in (src / rel).parent.glob(f"__pycache__/{rel.stem}.*.pyc"):
                pyc.unlink()
        sys.path[:0] = [str(src), str(root)]  # root: as ``python -m pytest`` from the root (``import tests.x``)
        os.environ["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
        os.chdir(root)
        import importlib

        import pytest

        package = importlib.import_module(Path(job.target.path).parts[1])
        if not Path(package.__file__).resolve().is_relative_to(src.resolve()):
            print(f"isolation error: {package.__name__} imported from {package.__file__}, not {src}")
            rc = 97
            return
        tests = job.tests or job.target.tests
        if job.mutant is None:  # the clean run: which test runs which line
            rel = Path(job.target.path).relative_to("src")
            tracer = Tracer({src / rel, (src / rel).resolve()})
            rc = int(pytest.main(_pytest_args(tests, job.workdir / "tmp"), plugins=[tracer]))
            (job.workdir / "coverage.json").write_text(json.dumps({"lines": tracer.lines,
                                                                   "durations": tracer.durations}))
        else:
            rc = int(pytest.main(_pytest_args(tests, job.workdir / "tmp")))
    except BaseException as e:  # noqa: BLE001 - the child must always exit here
        print(f"runner error in child: {e!r}")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_jobs(jobs: list[Job], base_src: Path, n_jobs: int, progress=None, root: Path = ROOT) -> None:
    """Run ``jobs`` in forked children, ``n_jobs`` at a time (pytest from ``root`` against a copy
    of ``base_src``); fill in each job's status, rc and seconds. A child running longer than its
    job's ``limit`` is killed (status ``timeout``)."""
    queue = deque(jobs)
    running: dict[int, tuple[Job, float]] = {}
    try:
        while queue or running:
            while queue and len(running) < n_jobs:
                job = queue.popleft()
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(job, base_src, root)
                try:
                    os.setpgid(pid, pid)
                except (ProcessLookupError, PermissionError):
                    pass
                running[pid] = (job, time.monotonic())
            pid, status = os.waitpid(-1, os.WNOHANG)
            now = time.monotonic()
            if pid == 0:
                for p, (job, t0) in list(running.items()):
                    if now - t0 > job.limit:
                        _kill_group(p)
                        os.waitpid(p, 0)
                        del running[p]
                        job.status, job.rc, job.seconds = "timeout", None, now - t0
                        _finish(job, progress)
                time.sleep(0.02)
                continue
            if pid not in running:
                continue
            job, t0 = running.pop(pid)
            _kill_group(pid)  # anything the tests left running
            job.seconds = now - t0
            if os.WIFEXITED(status):
                job.rc = os.WEXITSTATUS(status)
                job.status = {0: "survived", 1: "killed"}.get(job.rc, "error")
            else:
                job.rc = -os.WTERMSIG(status)
                job.status = "error"
            _finish(job, progress)
    finally:
        for p in list(running):
            _kill_group(p)
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass


def _finish(job: Job, progress) -> None:
    log = job.workdir / "pytest.log"
    if job.status in ("error", "timeout") or job.mutant is None:
        job.log_tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    cov = job.workdir / "coverage.json"
    if job.mutant is None and cov.exists():
        c = json.loads(cov.read_text())
        job.coverage = {"lines": {int(k): v for k, v in c["lines"].items()}, "durations": c["durations"]}
    shutil.rmtree(job.workdir, ignore_errors=True)
    if progress:
        progress(job)


def _preload() -> None:
    import gc
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    gc.freeze()  # the preloaded objects: never collected again, so a child's collections stay cheap


# ----------------------------------------------------------------------------------- report
def _git_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_report(out: Path, targets: list[Target], jobs: list[Job], explained: dict[str, str],
                 wall_s: float, args) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for j in jobs:
        m = j.mutant
        rows.append({"id": j.name, "path": m.path, "line": m.line, "scope": m.scope, "operator": m.operator,
                     "change": m.change, "original_line": m.line_text(j.source),
                     "mutated_line": m.mutated_line(j.source), "status": j.status, "covered": j.covered,
                     "tests": len(j.tests), "rc": j.rc, "seconds": round(j.seconds, 2), "key": m.key(j.source),
                     "harmless": explained.get(m.key(j.source), "") if j.status == "survived" else ""})
    with open(out / "mutants.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["id"])
        w.writeheader()
        w.writerows(rows)
    per = {}
    for t in targets:
        c = Counter(r["status"] for r in rows if r["path"] == t.path)
        n = sum(c.values())
        per[t.path] = {"mutants": n, "killed": c["killed"], "timeout": c["timeout"], "error": c["error"],
                       "survived": c["survived"],
                       "not_run": sum(1 for r in rows if r["path"] == t.path and not r["covered"]),
                       "explained": sum(1 for r in rows if r["path"] == t.path and r["status"] == "survived"
                                        and r["harmless"]),
                       "score": round(100.0 * (n - c["survived"]) / n, 1) if n else None,
                       "baseline_s": round(t.baseline_s, 2), "tests": t.tests,
                       **({"only": list(t.only)} if t.only else {}), **({"skip": list(t.skip)} if t.skip else {})}
    tot = Counter(r["status"] for r in rows)
    survivors = [r for r in rows if r["status"] == "survived"]
    unexplained = [r for r in survivors if not r["harmless"]]
    paths = {t.path for t in targets}  # with --only: the explanations of the targets run
    stale = sorted(k for k in set(explained) - {r["key"] for r in survivors} if k.split("::")[0] in paths)
    summary = {"mutants": len(rows), "killed": tot["killed"], "timeout": tot["timeout"], "error": tot["error"],
               "survived": tot["survived"], "not_run": sum(1 for r in rows if not r["covered"]),
               "explained": len(survivors) - len(unexplained),
               "unexplained": len(unexplained), "wall_s": round(wall_s, 1), "jobs": args.jobs,
               "timeout_factor": args.timeout_factor, "sampled": args.max_per_module,
               "seed": args.seed, "git": _git_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "modules": per, "stale_explanations": stale}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    md = ["# Mutation testing", "",
          f"{summary['date']}, {summary['git']}: {len(rows)} mutants in {wall_s / 60:.1f} min "
          f"({args.jobs} jobs). Killed {tot['killed']}, timeout {tot['timeout']}, error {tot['error']}, "
          f"survived {tot['survived']} ({summary['not_run']} on lines no test runs; "
          f"{summary['explained']} explained as harmless, "
          f"{len(unexplained)} unexplained)." + (f" Sampled: at most {args.max_per_module} mutants per module "
                                                 f"(seed {args.seed})." if args.max_per_module else ""), "",
          "| module | mutants | killed | timeout | error | survived | of these not run | explained | score % "
          "| clean run s |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, s in per.items():
        md.append(f"| `{p}`{' (' + ', '.join(s.get('only', [])) + ')' if s.get('only') else ''} | {s['mutants']} "
                  f"| {s['killed']} | {s['timeout']} | {s['error']} | {s['survived']} | {s['not_run']} "
                  f"| {s['explained']} "
                  f"| {s['score']} | {s['baseline_s']} |")
    md += ["", "## Survivors", ""]
    if not survivors:
        md.append("None.")
    for r in survivors:
        md += [f"- `{r['path']}:{r['line']}` ({r['scope']}, {r['operator']}) {r['change']}"
               + ("" if r["covered"] else " (no test runs this line)"),
               f"  - original: `{r['original_line']}`", f"  - mutated:  `{r['mutated_line']}`",
               f"  - {'harmless: ' + r['harmless'] if r['harmless'] else '**UNEXPLAINED**'}"]
    errors = [j for j in jobs if j.status in ("error", "timeout")]
    if errors:
        md += ["", "## Errors and timeouts (counted as killed)", ""]
        for j in errors:
            m = j.mutant
            md.append(f"- `{m.path}:{m.line}` {m.change}: {j.status} (rc {j.rc}, {j.seconds:.1f} s)")
    if stale:
        md += ["", "## Explanations that matched no survivor (remove them from the config)", ""]
        md += [f"- `{k}`" for k in stale]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return summary


# ----------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("--only", action="append", default=[],
                    help="run only the targets whose path contains this text (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout-factor", type=float, default=3.0,
                    help="a mutant's tests may run this many times the clean run (default 3)")
    ap.add_argument("--min-timeout", type=float, default=10.0, help="but at least this many seconds (default 10)")
    ap.add_argument("--max-per-module", type=int, default=0,
                    help="sample at most this many mutants per module (deterministic with --seed; default: all)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "mutation")
    args = ap.parse_args(argv)

    targets, explained = load_config(args.config)
    if args.only:
        targets = [t for t in targets if any(o in t.path for o in args.only)]
        if not targets:
            ap.error(f"--only {args.only}: no target matches")
    sources, mutants = {}, {}
    for t in targets:
        sources[t.path] = (ROOT / t.path).read_bytes()
        ms = find_mutants(sources[t.path].decode(), t.path, t.only, t.skip)
        if args.max_per_module and len(ms) > args.max_per_module:
            ms = sorted(random.Random(f"{args.seed}:{t.path}").sample(ms, args.max_per_module), key=lambda m: m.start)
        mutants[t.path] = ms
    if args.list:
        for t in targets:
            for m in mutants[t.path]:
                print(f"{m.path}:{m.line}\t{m.scope}\t{m.operator}\t{m.change}")
        print("; ".join(f"{t.path}: {len(mutants[t.path])}" for t in targets)
              + f"; total {sum(len(v) for v in mutants.values())}")
        return 0

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    t_start = time.monotonic()
    _preload()
    tmp = Path(tempfile.mkdtemp(prefix="cmkd-mutation-"))
    old_int = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        base_src = tmp / "base" / "src"
        shutil.copytree(ROOT / "src", base_src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        compileall.compile_dir(str(base_src), quiet=2)

        # the clean run of each target's tests: times the limit, and must pass
        base_jobs = [Job(f"clean:{t.path}", t, tmp / f"clean{i}") for i, t in enumerate(targets)]
        print(f"clean run of the tests of {len(targets)} target(s) ...", flush=True)
        run_jobs(base_jobs, base_src, args.jobs)
        failed = [j for j in base_jobs if j.status != "survived"]
        for j in base_jobs:
            j.target.baseline_s = j.seconds
            print(f"  {j.target.path}: {j.seconds:.1f} s, {j.status if j.status != 'survived' else 'pass'}")
        if failed:
            for j in failed:
                print(f"\nclean run FAILED for {j.target.path} (rc {j.rc}): {' '.join(j.target.tests)}\n"
                      f"{j.log_tail}")
            print("mutation run aborted: the tests must pass on the unmutated code first")
            return 2

        jobs = []
        for i, t in enumerate(targets):
            cov = next(j.coverage for j in base_jobs if j.target is t)
            for k, m in enumerate(mutants[t.path]):
                job = Job(f"{Path(t.path).stem}:{k}", t, tmp / f"m{i}_{k}", mutant=m, source=sources[t.path])
                job.tests, job.limit = select_tests(m, t, cov, args.timeout_factor, args.min_timeout)
                if not job.tests:
                    job.status, job.covered = "survived", False  # no test runs the line: nothing to run
                jobs.append(job)
        todo = [j for j in jobs if j.covered]
        print(f"{len(jobs)} mutants ({len(jobs) - len(todo)} on lines no test runs): "
              + ", ".join(f"{t.path} {len(mutants[t.path])}" for t in targets), flush=True)
        done = Counter()
        t_mut = time.monotonic()

        def progress(job: Job) -> None:
            done[job.status] += 1
            n = sum(done.values())
            if job.status == "survived" or n % 25 == 0 or n == len(todo):
                el = time.monotonic() - t_mut
                line = f"[{n}/{len(todo)} {el / 60:.1f} min, eta {el / n * (len(todo) - n) / 60:.1f} min]"
                if job.status == "survived":
                    m = job.mutant
                    line += f" survived: {m.path}:{m.line} {m.change}"
                print(line, flush=True)

        run_jobs(todo, base_src, args.jobs, progress)
        # a timeout may be a slow moment of a shared machine: once more, with the target's whole limit
        again = [j for j in todo if j.status == "timeout"]
        for j in again:
            j.limit = max(args.timeout_factor * j.target.baseline_s, 2 * j.limit)
        if again:
            print(f"{len(again)} timeout(s): run again with a longer limit", flush=True)
            done.clear()
            run_jobs(again, base_src, args.jobs)
        wall = time.monotonic() - t_start
        summary = write_report(args.out, targets, jobs, explained, wall, args)
    except KeyboardInterrupt:
        print("interrupted: the working tree was not modified", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old_int)
        shutil.rmtree(tmp, ignore_errors=True)

    print("\n" + (args.out / "report.md").read_text(encoding="utf-8"))
    print(f"written: {args.out}/report.md, mutants.csv, summary.json")
    return 1 if summary["unexplained"] else 0


if __name__ == "__main__":
    sys.exit(main())
