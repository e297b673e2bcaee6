"""The pipeline library.

Numba caches compiled functions per source file, but a cached caller embeds its callees'
code and is not recompiled when only a callee's file changes: after an update a stale
caller would run old machine code. So the cache lives in a directory named after a digest
of the code the jitted modules can reach: every project module that uses numba, and
everything those import (transitively), as syntax trees without docstrings. A change
there starts a fresh cache; an edit elsewhere (a benchmark's table, a launcher, a
docstring anywhere) keeps it. An explicit ``NUMBA_CACHE_DIR`` wins.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_SOURCES = ("pipeline", "procs", "shm_layouts", "bench", "tuning")
STALE_CACHE_S = 86_400


def _module_path(name: str) -> Path | None:
    """The project file behind a dotted module name (None: not ours)."""
    if name.split(".")[0] not in _SOURCES:
        return None
    base = _ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported(tree: ast.Module, module: str) -> set[str]:
    """Dotted names a module imports (``from a import b`` yields ``a`` and ``a.b``)."""
    names: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    # a package's __init__ runs before any of its modules
    return names | {n.rsplit(".", i)[0] for n in list(names) for i in (1, 2) if "." in n}


def _without_docstrings(tree: ast.Module) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _summaries() -> dict[str, list]:
    """module -> [stamp, uses numba, imported project modules, digest of its code].

    Parsing every source costs ~0.7 s, too much for each process start, so summaries are
    kept in ``.cache/numba/sources.json`` keyed on each file's size and mtime; only a file
    that changed is parsed again.
    """
    memo_path = _ROOT / ".cache" / "numba" / "sources.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    out: dict[str, list] = {}
    for top in _SOURCES:
        for path in (_ROOT / top).rglob("*.py"):
            rel = path.relative_to(_ROOT).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            st = path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
            known = memo.get(name)
            if known is None or known[0] != stamp:
                source = path.read_bytes()
                tree = ast.parse(source)
                imports = sorted(n for n in _imported(tree, name) if _module_path(n))
                code = hashlib.sha256(_without_docstrings(tree).encode()).hexdigest()
                known = [stamp, b"numba" in source, imports, code]
            out[name] = known
    if out != memo:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out))
        os.replace(tmp, memo_path)  # atomic: concurrent starts never read half a file
    return out


def _sources_digest() -> str:
    """Digest of the jitted modules' import closure (see the module docstring)."""
    mods = _summaries()
    todo = [n for n, m in mods.items() if m[1]]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in mods:
            continue
        seen.add(name)
        todo.extend(mods[name][2])
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(f"{name}:{mods[name][3]}".encode())
    return h.hexdigest()[:16]


def _numba_cache_dir() -> None:
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    base = _ROOT / ".cache" / "numba"
    here = base / _sources_digest()
    if not here.is_dir() and base.is_dir():
        # caches of earlier sources are never valid again; one a process may still be
        # writing (numba fails when its cache directory vanishes) is left for a day
        for old in base.iterdir():
            if time.time() - old.stat().st_mtime > STALE_CACHE_S:
                shutil.rmtree(old, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = str(here)


_numba_cache_dir()
