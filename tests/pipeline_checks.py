"""What a finished ``hft run`` must show, whatever the core layout (shared by the e2e tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil


def run_pipeline(name: str, summary_path: Path, seconds: int, *extra: str,
                 outputs: list | None = None) -> dict:
    """``hft run`` for ``seconds``; asserts it exited 0 and printed its summary
    (``outputs``: gets its stdout and stderr, e.g. to check what was logged)."""
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--duration", str(seconds),
         "--instance", name, "--summary-json", str(summary_path), *extra],
        capture_output=True, text=True, timeout=seconds + 200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    if outputs is not None:
        outputs += [out.stdout, out.stderr]
    assert "== summary" in out.stdout and "tick-to-trade" in out.stdout
    assert "\ndenied: " in out.stdout  # risk denials, by reason
    return json.loads(summary_path.read_text())


def assert_traded_and_clean(s: dict, name: str) -> None:
    """Books synced, quotes and fills, consistent inventory, clean shutdown."""
    c = s["counters"]
    assert c["feed.snapshots"] >= 2 and c["feed.applied"] > 0  # both books synced
    assert c["strategy.book_updates"] > 0
    assert c["strategy.intents"] > 0 and c["gateway.orders.sent"] > 0  # quotes placed
    fills = sum(p["fills"] for p in s["positions"].values())
    assert fills > 0, "no fills in the simulated flow"
    for sym, p in s["positions"].items():  # strategy, OMS and venue agree on inventory
        assert c[f"strategy.position.{sym}"] == p["position_lots"], sym
        assert s["venue_positions"].get(sym, 0) == p["position_lots"], sym
    assert s["latency_ns"]["tick-to-trade (frame receipt -> order bytes on the socket)"]["count"]
    assert not s["failed"] and not any(s["restarts"].values())
    # clean shutdown: every process gone, every segment removed
    assert not [p for p in s["processes"] if psutil.pid_exists(p["pid"])
                and psutil.Process(p["pid"]).status() != psutil.STATUS_ZOMBIE]
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"hft.{name}.")]
