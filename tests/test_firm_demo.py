"""Issue 17 end to end: ``hft firm --chaos``, as a user runs it. Two instances on this
machine: B's strategy trades from A's book ring bridged over Aeron through B's own gateway;
mid-run A's bridge sender is killed with SIGKILL (its supervisor restarts it) and
nats-server restarts; the firm-wide risk view shows both; the firm-wide kill switch stops
both gateways (each acknowledges); the drop-copy audit finds every order intent and
execution report of both instances exactly once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.timeout(900)
def test_two_instances_bridge_drop_copy_risk_view_and_firm_kill(tmp_path):
    out = tmp_path / "firm.json"
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", "firm", "--duration", "12",
                        "--chaos", "--keep", "--summary-json", str(out)],
                       capture_output=True, text=True, timeout=840)
    summary = json.loads(out.read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    failed = [f"{s['name']}: {s['detail']}" for s in summary["steps"] if not s["ok"]]
    assert p.returncode == 0 and not failed, (failed, p.stdout[-3000:], p.stderr[-3000:])
    for step in ("both instances trade", "kill -9 A's bridge sender", "restart nats-server",
                 "firm-wide risk view", "firm-wide kill switch", "both gateways stopped",
                 "drop copy audit"):
        assert steps[step]["ok"], step
    a, b = (summary["runs"][k] for k in ("A", "B"))
    # B had no market data of its own: every book update it traded on came over Aeron
    assert b["counters"].get("feed.messages", 0) == 0
    assert b["counters"]["strategy.book_updates"] > 0 and b["counters"]["gateway.orders.sent"] > 0
    assert a["counters"]["gateway.orders.sent"] > 0
    assert a["restarts"].get("bridge_send_book", 0) >= 1  # the kill -9, recovered
    names = set(summary["instances"].values())
    assert names <= {r["instance"] for r in summary["risk"]["instances"]}
