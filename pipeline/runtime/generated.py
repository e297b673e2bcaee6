"""Template modules specialised by name, so numba caches what it never caches as closures.

A jitted function whose callees are chosen at run time (the fused loop over a process's
duty cycles, a strategy's cycle over its callbacks) is naturally a closure, and numba
never caches a closure: the fused pipeline paid a 10-25 s compile at every start. Passing
the callees as values instead does not help: a dispatcher value is lowered as a Python
object address (a "dynamic global"), which numba refuses to cache too.

So such a function lives in a *template module*: ordinary source whose callees are module
globals, imported by statements marked ``# bound``. ``specialize`` writes a copy of it
that imports the chosen callees in their place, and imports the copy: the callees are
compile-time constants found by name, and the copy is cached like any other module. Copies
live in the numba cache directory (so they go when the sources change, see
``pipeline/__init__``), are named after a digest of their text and are written only when
absent: the file stamp that numba's cache index checks never moves.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

PACKAGE = "hft_generated"
MARK = "# bound"


def import_path(fn: Callable) -> tuple[str, str]:
    """``(module, name)`` that imports ``fn`` again; TypeError when there is none (a closure,
    a function built at run time): only a callee found by name can be cached."""
    py = getattr(fn, "py_func", fn)
    module, name = getattr(py, "__module__", None), getattr(py, "__qualname__", "")
    found = None
    if module and "." not in name and "<" not in name:
        found = getattr(importlib.import_module(module), name, None)
    if found is not fn:
        raise TypeError(f"{name or fn!r} in {module}: a bound callee must be a module-level "
                        "jitted function (a closure cannot be cached)")
    return module, name


def specialize(template: ModuleType, bound: dict[str, Callable]) -> ModuleType:
    """A copy of ``template`` importing ``bound`` (global name -> callee) in place of its
    ``# bound`` imports; ``bound`` must name exactly the globals those import."""
    source = inspect.getsource(template)
    lines = source.splitlines(keepends=True)
    marked = [node for node in ast.parse(source).body
              if isinstance(node, ast.ImportFrom)
              and MARK in "".join(lines[node.lineno - 1:node.end_lineno])]
    names = {alias.asname or alias.name for node in marked for alias in node.names}
    if not marked or names != set(bound):
        raise ValueError(f"{template.__name__} binds {sorted(names)}, given {sorted(bound)}")
    for node in reversed(marked):  # the placeholders' imports go, the callees' come first
        del lines[node.lineno - 1:node.end_lineno]
    imports = [f"from {m} import {n} as {g}\n"
               for g, (m, n) in ((g, import_path(fn)) for g, fn in sorted(bound.items()))]
    lines[marked[0].lineno - 1:marked[0].lineno - 1] = imports
    stem = template.__name__.rsplit(".", 1)[-1]
    return _load(stem, "".join(lines))


def _load(stem: str, source: str) -> ModuleType:
    """The module ``source``, written to the cache directory once and imported from there."""
    name = f"{stem}_{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    qualified = f"{PACKAGE}.{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    path = _package_dir() / f"{name}.py"
    if not path.exists():
        # several processes may start at once: each writes its own file, the rename is atomic
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
        importlib.invalidate_caches()  # the import system caches directory listings
    return importlib.import_module(qualified)


def _package_dir() -> Path:
    root = Path(os.environ["NUMBA_CACHE_DIR"]) / "generated"  # set by pipeline/__init__
    package = root / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    init = package / "__init__.py"
    if not init.exists():
        init.write_text('"""Modules written by pipeline.runtime.generated.specialize."""\n')
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return package
