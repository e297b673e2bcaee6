"""Names, not numbers, in the order path's jitted code: no enum-typed field or variable
is compared with or assigned an integer literal, risk returns RiskReason names, and no
jitted function takes more than 10 parameters (the named views of pipeline.orders.views).
A regression here is a number where an enum member belongs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted([*ROOT.glob("pipeline/orders/*.py"), *ROOT.glob("pipeline/fix/*.py")])
MODULES = [p for p in MODULES if p.name != "testing.py"]  # a test acceptor, not the path
# record fields and local names that hold ExecType, OrdStatus, OrderAction, Side,
# TimeInForce, OrderType, SyncState, ReportSource or RiskReason values
ENUM_FIELDS = {"action", "side", "tif", "ord_type", "status", "prev_status", "exec_type",
               "ord_status", "state", "source", "reject_reason"}
ENUM_NAMES = ENUM_FIELDS | {"otype", "et", "st", "reason", "verdict"}
MAX_PARAMS = 10


def _jitted(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and
            any("njit" in ast.unparse(d) for d in n.decorator_list)]


def _enum_typed(node: ast.expr) -> bool:
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value in ENUM_FIELDS
    if isinstance(node, ast.Attribute):
        return node.attr in ENUM_FIELDS
    return isinstance(node, ast.Name) and node.id in ENUM_NAMES


def _int_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def literal_enums(source: str) -> list[str]:
    """``file:line code`` of every enum-typed comparison or store with an int literal."""
    found = []
    for fn in _jitted(ast.parse(source)):
        for n in ast.walk(fn):
            if isinstance(n, ast.Compare):
                sides = [n.left, *n.comparators]
                if any(map(_enum_typed, sides)) and any(map(_int_literal, sides)):
                    found.append(f"{n.lineno} {ast.unparse(n)}")
            elif isinstance(n, ast.Assign) and _int_literal(n.value) and \
                    any(map(_enum_typed, n.targets)):
                found.append(f"{n.lineno} {ast.unparse(n)}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_integer_literal_where_an_enum_belongs(path):
    assert literal_enums(path.read_text()) == []


def test_the_scan_finds_the_forms_it_forbids():
    src = ("@njit\ndef f(r, action):\n    if action == 4:\n        r['exec_type'] = 6\n"
           "    return r['state'] == 2 or 2 == r.side\n")
    assert [x.split()[0] for x in literal_enums(src)] == ["3", "4", "5", "5"]


def test_risk_returns_names_not_numbers():
    tree = ast.parse((ROOT / "pipeline/orders/risk.py").read_text())
    bare = [f"{n.lineno} {ast.unparse(n)}" for fn in _jitted(tree) for n in ast.walk(fn)
            if isinstance(n, ast.Return) and n.value is not None and _int_literal(n.value)]
    assert bare == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_jitted_function_takes_more_than_ten_parameters(path):
    wide = [f"{fn.name}: {len(fn.args.args)}" for fn in _jitted(ast.parse(path.read_text()))
            if len(fn.args.args) > MAX_PARAMS]
    assert wide == []
