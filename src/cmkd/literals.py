"""Registration literals: what a module of a package declares about itself, read without importing it.

A method module (``cmkd.methods``) or a loader module (``cmkd.data``) declares its registry entries
at top level as a literal (``REGISTER = {...}``, ``LOADER = {...}``: dicts, lists, tuples, strings,
numbers, booleans, ``None``, and products, sums and differences of numbers such as ``32 * 40 * 15``). The package reads them with :mod:`ast` (no import, so no torch), when
the workflow builds its DAG. Adding a module is then all it takes to register it.
"""
from __future__ import annotations

import ast
import re
import tokenize
from pathlib import Path
from typing import Any, Iterable, Mapping

from cmkd.errors import RegistryError


def module_literals(dirs: Iterable[str | Path], package: str, name: str) -> list[tuple[str, Path, Any]]:
    """``(module, path, value)`` for every module ``<dir>/<stem>.py`` of ``package`` (the package's
    ``__path__``; ``__init__.py`` excluded) that assigns ``name`` at top level, the value read by
    :func:`ast.literal_eval`; sorted by module name. A value that is not a literal, or a second
    top-level assignment of ``name``, raises :class:`RegistryError` naming the file."""
    assign = re.compile(rf"^{re.escape(name)}\s*(:[^=\n]*)?=(?!=)", re.MULTILINE)
    out = []
    for d in dirs:
        for path in sorted(Path(d).glob("*.py")):
            if path.name == "__init__.py":
                continue
            text = path.read_text(encoding="utf-8")
            found = list(assign.finditer(text))
            if not found:
                continue
            lineno = text.count("\n", 0, found[0].start()) + 1
            if len(found) > 1:
                raise RegistryError(f"{path}:{lineno}: {name} is assigned {len(found)} times at top level (once, please)")
            out.append((f"{package}.{path.stem}", path, _literal(text[found[0].start():], name, f"{path}:{lineno}")))
    return sorted(out, key=lambda t: t[0])


def check_keys(entry: Mapping, types: Mapping[str, type | tuple], where: str, required: Iterable[str] = ()) -> None:
    """Every key of a declared ``entry`` is one of ``types`` with a value of that type, and the
    ``required`` keys are there; else :class:`RegistryError` naming ``where`` (the file and entry)."""
    for k, v in entry.items():
        if k not in types:
            raise RegistryError(f"{where}: unknown key '{k}' (accepted: {', '.join(types)})")
        if not isinstance(v, types[k]):
            kinds = types[k] if isinstance(types[k], tuple) else (types[k],)
            raise RegistryError(f"{where}.{k}: must be a {' or '.join(t.__name__ for t in kinds)}, got {v!r}")
    for k in required:
        if k not in entry:
            raise RegistryError(f"{where}: '{k}' is required")


def _literal(text: str, name: str, where: str) -> Any:
    """The value of the assignment statement at the start of ``text`` (only that statement is
    tokenised and parsed, not the whole module)."""
    lines = text.splitlines(keepends=True)
    end = len(lines)
    try:
        for tok in tokenize.generate_tokens(iter(lines).__next__):
            if tok.type == tokenize.NEWLINE:  # the end of the logical line: the statement
                end = tok.end[0]
                break
        node = ast.parse("".join(lines[:end])).body[0]
    except (SyntaxError, tokenize.TokenError) as e:
        raise RegistryError(f"{where}: {name} is not a valid statement: {e}") from None
    try:
        return ast.literal_eval(_Arithmetic().visit(node.value))
    except ValueError as e:
        raise RegistryError(f"{where}: {name} must be a literal (dicts, lists, strings, numbers and their products, "
                            f"True/False/None; no names or calls): {e}") from None


class _Arithmetic(ast.NodeTransformer):
    """Folds ``*``, ``+`` and ``-`` of two numbers into one number (``32 * 40 * 15``), so that a size
    can be written as the product it is; anything else is left for :func:`ast.literal_eval` to judge."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        ops = {ast.Mult: lambda a, b: a * b, ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b}
        num = (int, float)
        if type(node.op) in ops and all(isinstance(x, ast.Constant) and isinstance(x.value, num)
                                        and not isinstance(x.value, bool) for x in (node.left, node.right)):
            return ast.copy_location(ast.Constant(ops[type(node.op)](node.left.value, node.right.value)), node)
        return node
