"""No integer literal stands for an enum value in jitted code (issue 12, item 3).

ExecType, OrdStatus, Action, Side, TimeInForce, OrdType, RiskReason, SyncState, MdKind ...
live in ``shm_layouts/``; jitted code binds them to named module constants
(``REJECTED = int(ExecType.REJECTED)``) or uses the member. An AST scan of every jitted
function in ``pipeline/`` flags an integer literal that is

- compared with an enum-named value (``action == 4``, ``r["state"] != 2``, ``x.side == 1``),
- assigned to one (``rec["side"] = 1``, ``reason = 3``; also in a conditional expression),
- passed to a parameter named like one (``submit(..., 1, ...)`` where that parameter is
  ``side``; positional or keyword, the callee found by name among the jitted functions),
- returned by the risk checks (their result is a RiskReason, ``return 12``).

0 and -1 are literals too here (an enum field has a named "none" member when it needs one),
except as a bound in an ordering comparison (``kind < 0``: a parser's error sign,
``0 < reason < N``: a range check), which no enum member stands for.
``ALLOWED`` lists the few deliberate exceptions (file, function, enum name) with a reason.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict

from jitscan import PIPELINE, assert_none, jitted_functions, parameters, where

ENUM_NAMES = {"exec_type", "ord_status", "status", "action", "side", "tif", "time_in_force",
              "ord_type", "reason", "reject_reason", "state", "sync_state", "kind"}
# suffixes that still name an enum (``intent_side``); "state", "kind", "status" excluded:
# ``idle_state`` and ``sock_kind`` hold arrays and handles, not enum values
ENUM_SUFFIXES = tuple(f"_{n}" for n in ENUM_NAMES - {"state", "kind", "status"})
# functions whose int return value is a RiskReason
REASON_FUNCTIONS = {("pipeline/orders/risk.py", "check"),
                    ("pipeline/orders/risk.py", "_order_checks")}
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
# (file, function, enum name): why the literal is right there
ALLOWED: set[tuple[str, str, str]] = {
    # marketdata/wire/frames.next_frame's first result is a length-like code (0: the frame
    # is not complete yet, < 0: a protocol error), not an enum value
    ("pipeline/marketdata/feed.py", "feed_once", "status"),
}


def enum_name(node: ast.expr) -> str | None:
    """The enum name ``node`` reads or writes, if it is one: a name, an attribute or a
    string subscript (``r["state"]``, ``a[0]["side"]``)."""
    if isinstance(node, ast.Name):
        key = node.id
    elif isinstance(node, ast.Attribute):
        key = node.attr
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        key = node.slice.value
    else:
        return None
    key = key.lower()
    return key if key in ENUM_NAMES or key.endswith(ENUM_SUFFIXES) else None


def int_literal(node: ast.expr) -> int | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = int_literal(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def literals_in(node: ast.expr) -> list[int]:
    """Int literals ``node`` may evaluate to: itself, either branch of ``a if c else b``,
    or the members of a tuple/list/set (``action in (2, 4)``)."""
    if isinstance(node, ast.IfExp):
        return literals_in(node.body) + literals_in(node.orelse)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for e in node.elts for v in literals_in(e)]
    value = int_literal(node)
    return [] if value is None else [value]


def callee_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def scan(root=PIPELINE) -> list[str]:
    found = list(jitted_functions(root))
    signatures: dict[str, list[list[str]]] = defaultdict(list)
    for _path, _tree, fn in found:
        signatures[fn.name].append(parameters(fn))
    out = []

    def flag(path, fn, node, name, values, how):
        rel = str(path.relative_to(PIPELINE.parent))
        if (rel, fn.name, name) not in ALLOWED:
            out.append(f"{where(path, node)}: {fn.name}: {how} {name!r} = "
                       f"{', '.join(map(str, values))}")

    for path, _tree, fn in found:
        rel = str(path.relative_to(PIPELINE.parent))
        for node in ast.walk(fn):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                for op, a, b in zip(node.ops, sides[:-1], sides[1:], strict=True):
                    for named, other in ((a, b), (b, a)):
                        name, values = enum_name(named), literals_in(other)
                        if isinstance(op, ORDERING):
                            values = [v for v in values if v not in (0, -1)]
                        if name and values:
                            flag(path, fn, node, name, values, "compares")
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    name = enum_name(t)
                    if name and node.value is not None and literals_in(node.value):
                        flag(path, fn, node, name, literals_in(node.value), "assigns")
            elif isinstance(node, ast.Call):
                callee = callee_name(node)
                for params in signatures.get(callee or "", []):
                    for i, arg in enumerate(node.args):
                        if i < len(params) and params[i].lower() in ENUM_NAMES and \
                                literals_in(arg):
                            flag(path, fn, node, f"{callee}({params[i]})", literals_in(arg),
                                 "passes")
                    for kw in node.keywords:
                        if kw.arg and kw.arg.lower() in ENUM_NAMES and literals_in(kw.value):
                            flag(path, fn, node, f"{callee}({kw.arg})", literals_in(kw.value),
                                 "passes")
                    break  # one definition's parameter names are enough
            elif isinstance(node, ast.Return) and (rel, fn.name) in REASON_FUNCTIONS \
                    and node.value is not None and literals_in(node.value):
                flag(path, fn, node, "RiskReason", literals_in(node.value), "returns")
    return out


def test_no_integer_literal_stands_for_an_enum_in_jitted_code():
    assert_none(scan(), "literal enum values in jitted code (use the names from shm_layouts/)")


def test_the_scan_flags_the_known_shapes(tmp_path, monkeypatch):
    """Each rule can fail: the issue's own examples are flagged, named constants are not."""
    import jitscan
    pkg = tmp_path / "pipeline" / "orders"
    pkg.mkdir(parents=True)
    (pkg / "risk.py").write_text(
        "from numba import njit\n"
        "@njit\ndef publish_exec(execs, exec_type, ord_status, side):\n    return 0\n"
        "@njit\ndef check(action, r, rec):\n"
        "    if action == 4 or r['state'] == 2:\n        return 12\n"
        "    rec['side'] = 1\n"
        "    publish_exec(None, 6, ord_status=9, side=SIDE)\n"
        "    if action == CANCEL or action < 0:\n        return OK\n"
        "    return 0\n")
    monkeypatch.setattr(jitscan, "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PIPELINE", tmp_path / "pipeline")
    bad = scan(tmp_path / "pipeline")
    what = sorted(b.split(": ", 2)[2] for b in bad)
    assert what == sorted([
        "compares 'action' = 4", "compares 'state' = 2", "returns 'RiskReason' = 12",
        "assigns 'side' = 1", "passes 'publish_exec(exec_type)' = 6",
        "passes 'publish_exec(ord_status)' = 9", "returns 'RiskReason' = 0"]), bad
