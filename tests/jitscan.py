"""Finding the jitted functions of ``pipeline/`` from source (for the guard tests): an AST
scan, so it needs no compilation and sees every function, called or not."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"
JIT_DECORATORS = {"njit", "jit"}


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def is_jitted(fn: ast.FunctionDef) -> bool:
    return any(_decorator_name(d) in JIT_DECORATORS for d in fn.decorator_list)


def jitted_functions(root: Path = PIPELINE) -> Iterator[tuple[Path, ast.Module,
                                                              ast.FunctionDef]]:
    """(file, its tree, function) for every ``@njit``/``@jit`` function under ``root``."""
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and is_jitted(node):
                yield path, tree, node


def parameters(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [f"*{a.vararg.arg}"] if a.vararg else []
    names += [f"**{a.kwarg.arg}"] if a.kwarg else []
    return names


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def assert_none(offenders: list[str], what: str) -> None:
    """Fail listing every offender (also printed: ``pytest -s`` or the captured output shows
    the whole list when the assertion message is cut)."""
    for line in offenders:
        print(line)
    assert not offenders, f"{len(offenders)} {what}:\n" + "\n".join(offenders)
