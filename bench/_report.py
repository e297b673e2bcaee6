"""Shared output for benchmarks: a plain table, or the same rows as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys


def machine() -> dict:
    return {"cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "cpu_model": _cpu_model()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def emit(title: str, rows: list[dict], as_json: bool, extra: dict | None = None) -> None:
    """Print ``rows`` (dicts with the same keys) as a table, or everything as JSON."""
    if as_json:
        json.dump({"benchmark": title, "machine": machine(), "rows": rows} | (extra or {}),
                  sys.stdout, indent=2)
        print()
        return
    print(f"== {title}  ({machine()['cpu_model']}, {os.cpu_count()} cpus)")
    if not rows:
        return
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    for key, value in (extra or {}).items():
        print(f"{key}: {value}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)
