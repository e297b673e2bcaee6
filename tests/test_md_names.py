"""Names, not numbers, in the jitted market-data and replay code: no jitted function takes
more than 10 arguments (bundle them in named views), and no enum-valued field (side, kind,
state, action, tif, exec_type, ord_status) is compared with or set to an integer literal
(use the shm_layouts enums' constants)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted([*(ROOT / "pipeline" / "marketdata").rglob("*.py"),
                  ROOT / "pipeline" / "venue" / "paper.py", ROOT / "pipeline" / "units.py",
                  ROOT / "pipeline" / "launch" / "replay.py"])
ENUM_FIELDS = {"side", "kind", "state", "action", "tif", "exec_type", "ord_status"}
MAX_ARGS = 10


def _jitted(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                "njit" in ast.unparse(d) for d in node.decorator_list):
            yield node


def _field(node: ast.AST) -> str | None:
    """The enum-valued field an expression names (``side``, ``r.kind``, ``r["state"]``)."""
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        name = node.slice.value
    else:
        return None
    return name if name in ENUM_FIELDS else None


def _int_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _literal_enums(fn: ast.FunctionDef) -> list[str]:
    found = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Compare) and all(isinstance(op, (ast.Eq, ast.NotEq))
                                                 for op in node.ops):  # not sign checks
            sides = [node.left, *node.comparators]
            if any(_field(a) for a in sides) and any(_int_literal(a) for a in sides):
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Assign) and _int_literal(node.value):
            found += [ast.unparse(node) for t in node.targets if _field(t)]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_jitted_code_takes_named_views_and_enum_names(path):
    tree = ast.parse(path.read_text())
    wide = [f"{f.name}: {len(f.args.args)}" for f in _jitted(tree)
            if len(f.args.args) > MAX_ARGS]
    assert not wide, f"jitted functions with more than {MAX_ARGS} arguments: {wide}"
    literals = [s for f in _jitted(tree) for s in _literal_enums(f)]
    assert not literals, f"integer literals for enum values: {literals}"


def test_the_scan_sees_a_literal_enum():
    fn = ast.parse("@njit\ndef f(r, side):\n    r.kind = 4\n    return side == 0\n").body[0]
    assert _literal_enums(fn) == ["r.kind = 4", "side == 0"]
