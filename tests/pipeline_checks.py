"""What a finished ``hft run`` must show, whatever the core layout (shared by the e2e tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import psutil
from waiting import until

from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.transport.registry import Instance
from pipeline.transport.shared import atomic_load
from shm_layouts.counters import ProcessState
from shm_layouts.oms import W_OPEN_ORDERS


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


class Quoting(NamedTuple):
    run: subprocess.Popen
    instance: Instance
    counters: Counters


@contextlib.contextmanager
def quoting_pipeline(name: str, env: dict, *extra: str, processes: int = 4,
                     seconds: int = 120) -> Iterator[Quoting]:
    """``hft run`` in the background until its ``processes`` run and the gateway has sent
    orders; on the way out it is interrupted (SIGINT) and must exit 0."""
    run = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--duration",
                            str(seconds), "--instance", name, *extra], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)
    try:
        inst = until(lambda: Instance.attach(name, readonly=True), 120, "the instance")
        counters = until(lambda: Counters.attach(inst, readonly=True), 60, "counters")
        until(lambda: sum(p["state"] == ProcessState.RUNNING
                          for p in counters.processes()) >= processes, 180,
              f"{processes} processes")
        until(lambda: counters.values().get("gateway.orders.sent", 0) > 5, 90, "quoting")
        yield Quoting(run, inst, counters)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=120)
    assert run.returncode == 0, out[-3000:]


def assert_kill_holds_then_releases(q: Quoting, on: Callable[[], subprocess.CompletedProcess],
                                    off: Callable[[], subprocess.CompletedProcess]) -> str:
    """``on()`` engages a kill switch (acknowledged): every order is cancelled and none is
    sent while it holds; ``off()`` releases it and quoting resumes. Returns on's output."""
    oms = OmsState.attach(q.instance, readonly=True)
    done = on()
    assert done.returncode == 0, done.stdout + done.stderr  # acknowledged by every handler
    until(lambda: atomic_load(oms.words, W_OPEN_ORDERS) == 0, 60, "everything cancelled")
    time.sleep(1.0)  # let in-flight cancels settle
    sent = q.counters.values()["gateway.orders.sent"]
    time.sleep(3.0)
    assert q.counters.values()["gateway.orders.sent"] == sent, "orders sent under kill"
    assert atomic_load(oms.words, W_OPEN_ORDERS) == 0
    released = off()
    assert released.returncode == 0, released.stdout + released.stderr
    until(lambda: q.counters.values()["gateway.orders.sent"] > sent, 60, "quoting again")
    return done.stdout


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
