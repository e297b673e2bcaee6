"""The strategy and runtime layers stay named: short jitted signatures, no enum literals.

A source scan (no compile): it fails on the forms issue 12 removed, so a regression is
caught where it is written, not when two swapped integers finally send a wrong order.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("pipeline/strategy", "pipeline/runtime")
MAX_PARAMS = 10
# record fields that hold an enum value (shm_layouts.records)
ENUM_FIELDS = {"state", "kind", "exec_type", "action", "side", "tif", "ord_type", "source"}
# positions of enum-typed arguments: submit(sink, ACTION, ...), Order(.., SIDE, .., .., TIF)
ENUM_ARGS = {"submit": (1,), "Order": (1, 4)}


def _modules():
    for layer in LAYERS:
        for path in sorted((ROOT / layer).glob("*.py")):
            yield path, ast.parse(path.read_text())


def _jitted(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                "njit" in ast.unparse(d) for d in node.decorator_list):
            yield node


def _int_literal(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is int


def _enum_field(node) -> bool:
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and node.slice.value in ENUM_FIELDS)


def test_no_jitted_function_takes_more_than_ten_parameters():
    long = [f"{p.relative_to(ROOT)}:{f.lineno} {f.name} ({len(f.args.args)})"
            for p, tree in _modules() for f in _jitted(tree) if len(f.args.args) > MAX_PARAMS]
    assert not long


def test_enum_values_are_named_in_jitted_code():
    found = []
    for path, tree in _modules():
        for f in _jitted(tree):
            for node in ast.walk(f):
                if isinstance(node, ast.Compare):
                    sides = [node.left, *node.comparators]
                    if any(map(_enum_field, sides)) and any(map(_int_literal, sides)):
                        found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
                elif isinstance(node, ast.Assign) and any(map(_enum_field, node.targets)) \
                        and _int_literal(node.value):
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not found


def test_intents_name_their_action_side_and_time_in_force():
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ENUM_ARGS:
                for i in ENUM_ARGS[node.func.id]:
                    if i < len(node.args) and _int_literal(node.args[i]):
                        found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not found


def test_the_scan_sees_what_it_forbids():
    """The checks above would catch the old forms (they are not vacuous)."""
    tree = ast.parse("@njit\ndef f(a, b):\n    if a['action'] == 4:\n        a['side'] = 0\n"
                     "    submit(s, 1, Order(0, 1, 2, 3, 4), 5, 0, 0, 0)\n")
    f = next(_jitted(tree))
    compares = [n for n in ast.walk(f) if isinstance(n, ast.Compare)]
    assert _enum_field(compares[0].left) and _int_literal(compares[0].comparators[0])
    calls = [n for n in ast.walk(f) if isinstance(n, ast.Call)]
    assert all(_int_literal(c.args[1]) for c in calls)
