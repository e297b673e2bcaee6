"""Crash-only: kill -9 each pipeline process in turn while it trades; the supervisor
restarts it and the books, orders and positions stay consistent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from waiting import until

from pipeline.metrics.counters import Counters
from pipeline.transport.registry import Instance
from shm_layouts.counters import ProcessState

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

VICTIMS = ("feed_handler", "book_builder", "strategy", "oms_gateway")


def _processes(counters: Counters) -> dict[str, dict]:
    return {p["name"]: p for p in counters.processes()}




@pytest.mark.timeout(300)
def test_kill_each_process_in_turn(tmp_path):
    name = f"crash{os.getpid()}"
    summary_path = tmp_path / "summary.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--duration", "75", "--instance", name,
         "--summary-json", str(summary_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        counters = until(lambda: Counters.attach(Instance.attach(name), readonly=True), 90,
                          "the instance")
        until(lambda: all(_processes(counters).get(v, {}).get("state") == ProcessState.RUNNING
                           for v in VICTIMS), 120, "all four processes running")
        until(lambda: counters.values().get("gateway.orders.sent", 0) > 5, 60, "quotes")
        for victim in VICTIMS:
            old = _processes(counters)[victim]["pid"]
            sent = counters.values()["gateway.orders.sent"]
            os.kill(old, signal.SIGKILL)
            until(lambda v=victim, o=old: _processes(counters)[v]["pid"] != o and
                   _processes(counters)[v]["state"] == ProcessState.RUNNING, 60,
                   f"{victim} restarted")
            # trading resumes after the restart
            until(lambda s=sent: counters.values()["gateway.orders.sent"] > s + 2, 60,
                   f"orders flowing again after killing {victim}")
        out, _ = run.communicate(timeout=200)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            run.wait(60)
    assert run.returncode == 0, out[-4000:]
    s = json.loads(summary_path.read_text())
    assert s["restarts"] == {v: 1 for v in VICTIMS} | {
        k: 0 for k in s["restarts"] if k not in VICTIMS}
    assert not s["failed"]
    c = s["counters"]
    for sym, p in s["positions"].items():
        assert c[f"strategy.position.{sym}"] == p["position_lots"], (sym, out[-3000:])
        assert s["venue_positions"].get(sym, 0) == p["position_lots"], (sym, out[-3000:])
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"hft.{name}.")]
