"""Audit log: one JSON line per operator command, appended (never rewritten).

Where: ``--audit-log`` if given, else ``$HFT_AUDIT_LOG``, else ``[ops] audit_log`` of the
config, else ``var/audit.log`` under the repository. Each line is written with a single
``write`` on an ``O_APPEND`` descriptor, so concurrent ``hft ctl`` runs never interleave.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path

from pipeline.config import ROOT

DEFAULT_AUDIT_LOG = ROOT / "var" / "audit.log"


def audit_path(explicit: str | None = None, config: dict | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("HFT_AUDIT_LOG"):
        return Path(os.environ["HFT_AUDIT_LOG"])
    configured = (config or {}).get("ops", {}).get("audit_log")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else ROOT / path
    return DEFAULT_AUDIT_LOG


def append(path: Path, record: dict) -> dict:
    """Append ``record`` stamped with UTC time, user and pid; returns the full line."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) +
            f".{time.time_ns() % 1_000_000_000 // 1_000_000:03d}Z",
            "user": _user(), "pid": os.getpid()} | record
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line, sort_keys=False) + "\n").encode())
    finally:
        os.close(fd)
    return line


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
