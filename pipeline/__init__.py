"""The pipeline library.

Numba caches compiled functions per source file, but a cached caller embeds its callees'
code and is not recompiled when only a callee's file changes: after an update a stale
caller would run old machine code. So the cache lives in a directory named after a hash
of every source file of the project (set here, before numba is first imported; an
explicit ``NUMBA_CACHE_DIR`` wins), and any change to any source starts a fresh cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_SOURCES = ("pipeline", "procs", "shm_layouts", "bench", "tuning")
STALE_CACHE_S = 86_400


def _sources_digest() -> str:
    h = hashlib.sha256()
    for top in _SOURCES:
        for path in sorted((_ROOT / top).rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode())
            h.update(path.read_bytes())
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
