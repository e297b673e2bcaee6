"""The whole pipeline against the simulator, as a user runs it (``hft run``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest


@pytest.mark.timeout(240)
def test_full_pipeline_quotes_fills_and_shuts_down_clean(tmp_path):
    name = f"e2e{os.getpid()}"
    summary_path = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--duration", "20", "--instance", name,
         "--summary-json", str(summary_path)],
        capture_output=True, text=True, timeout=220)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    s = json.loads(summary_path.read_text())
    c = s["counters"]
    assert c["feed.snapshots"] >= 2 and c["feed.applied"] > 0  # both books synced
    assert c["strategy.book_updates"] > 0
    assert c["strategy.intents"] > 0 and c["gateway.orders.sent"] > 0  # quotes placed
    fills = sum(p["fills"] for p in s["positions"].values())
    assert fills > 0, "no fills in 20 s of simulated flow"
    for sym, p in s["positions"].items():  # strategy, OMS and venue agree on inventory
        assert c[f"strategy.position.{sym}"] == p["position_lots"], sym
        assert s["venue_positions"].get(sym, 0) == p["position_lots"], sym
    assert s["latency_ns"]["tick-to-trade (frame receipt -> order bytes on the socket)"]["count"]
    assert not s["failed"] and not any(s["restarts"].values())
    # clean shutdown: every process gone, every segment removed
    assert not [p for p in s["processes"] if psutil.pid_exists(p["pid"])
                and psutil.Process(p["pid"]).status() != psutil.STATUS_ZOMBIE]
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"hft.{name}.")]
    assert "== summary" in out.stdout and "tick-to-trade" in out.stdout
    # risk denials, broken down by reason (each reason is its own gateway counter)
    assert sum(s["denied"]["by_reason"].values()) == s["denied"]["total"]
    assert "\ndenied: " in out.stdout
