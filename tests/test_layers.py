"""Layers point down: a module of ``pipeline/`` imports only from its own layer or below.

The order, bottom to top (one line per layer; imports inside a layer are free, e.g.
counters uses histogram; fix and marketdata share one as neither uses the other):

    base        pipeline.config, pipeline.config_check, pipeline.instruments, pipeline.units
    transport   pipeline.transport
    metrics     pipeline.metrics (counters, histograms)
    runtime     pipeline.runtime
    control     pipeline.control
    fix, md     pipeline.fix | pipeline.marketdata | pipeline.tls | pipeline.binance
    orders      pipeline.orders
    bridge      pipeline.bridge (rings over Aeron: uses the md and order-path segment names)
    strategy    pipeline.strategy
    probe       pipeline.probe
    venue       pipeline.venue
    firm        pipeline.firm (NATS: drop copy, audit, risk view, firm-wide kill)
    launch      pipeline.launch
    replay      pipeline.replay
    monitor     pipeline.monitor (the monitor: top, sections, discover, prometheus)
    commands    pipeline.commands
    cli         pipeline.cli

A module belongs to the longest prefix listed (so ``pipeline.metrics.counters`` is metrics,
``pipeline.monitor.sections`` is monitor). Every import counts, also one inside a function:
a lazy import is still a dependency. Change ``LAYERS`` and this docstring together.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from jitscan import assert_none

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"

LAYERS: list[tuple[str, ...]] = [
    ("pipeline.config", "pipeline.config_check", "pipeline.instruments", "pipeline.units"),
    ("pipeline.transport",),
    ("pipeline.metrics",),
    ("pipeline.runtime",),
    ("pipeline.control",),
    ("pipeline.fix", "pipeline.marketdata", "pipeline.tls", "pipeline.binance"),
    ("pipeline.orders",),
    ("pipeline.bridge",),
    ("pipeline.strategy",),
    ("pipeline.probe",),
    ("pipeline.venue",),
    ("pipeline.firm",),
    ("pipeline.launch",),
    ("pipeline.replay",),
    ("pipeline.monitor",),
    ("pipeline.commands",),
    ("pipeline.cli",),
]
# "pipeline" itself (pipeline/__init__.py: the numba cache set-up) is imported by everything
UNLAYERED = ("pipeline",)


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, the prefix that placed it), by longest matching prefix."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                    best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def imported(path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every pipeline module ``tree`` imports, relative ones resolved;
    ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((node.lineno, sub if _is_module(sub) else base))
    return [(line, m) for line, m in dict.fromkeys(out)
            if m == "pipeline" or m.startswith("pipeline.")]


def upward_imports(root: Path = PIPELINE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path)
        own = layer_of(module)
        if own is None:
            if module not in UNLAYERED:
                bad.append(f"{path.relative_to(ROOT)}: module {module} is in no layer")
            continue
        for line, target in imported(path, ast.parse(path.read_text(), str(path))):
            theirs = layer_of(target)
            if theirs is None:
                if target not in UNLAYERED:
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {target} is in no layer")
                continue
            if theirs[0] > own[0]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module} ({own[1]}) imports "
                           f"{target} ({theirs[1]}), a higher layer")
    return bad


def test_every_import_in_pipeline_points_down():
    assert_none(upward_imports(), "imports that point up")


def test_the_scan_catches_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a transport module importing the strategy is flagged,
    and so is a lazy one inside a function."""
    fake = tmp_path / "pipeline" / "transport"
    fake.mkdir(parents=True)
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("from pipeline.strategy import market_maker\n"
                                 "def f():\n    from ..commands import cleanup\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = upward_imports(tmp_path / "pipeline")
    assert len(bad) == 2 and "pipeline.strategy" in bad[0] and "pipeline.commands" in bad[1]
