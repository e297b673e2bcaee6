"""``hft ctl`` steering a real pipeline started with ``hft run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from waiting import until

from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.transport.registry import Instance
from pipeline.transport.shared import atomic_load
from shm_layouts.counters import ProcessState
from shm_layouts.oms import W_OPEN_ORDERS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _ctl(name: str, *words: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "ctl", name, *words,
                           "--timeout", "10"], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.timeout(240)
def test_kill_switch_pause_and_resync_on_a_running_pipeline(tmp_path):
    name = f"ctl{os.getpid()}"
    env = dict(os.environ, HFT_AUDIT_LOG=str(tmp_path / "audit.log"))
    run = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--duration", "60",
                            "--instance", name], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)
    try:
        inst = until(lambda: Instance.attach(name, readonly=True), 90, "the instance")
        counters = until(lambda: Counters.attach(inst, readonly=True), 30, "counters")
        until(lambda: sum(p["state"] == ProcessState.RUNNING
                           for p in counters.processes()) == 4, 120, "four processes")
        until(lambda: counters.values().get("gateway.orders.sent", 0) > 5, 60, "quoting")
        oms = OmsState.attach(inst, readonly=True)

        on = _ctl(name, "kill", "on", env=env)
        assert on.returncode == 0, on.stdout + on.stderr  # acknowledged by every handler
        until(lambda: atomic_load(oms.words, W_OPEN_ORDERS) == 0, 30, "everything cancelled")
        time.sleep(1.0)  # let in-flight cancels settle
        sent = counters.values()["gateway.orders.sent"]
        time.sleep(3.0)
        assert counters.values()["gateway.orders.sent"] == sent, "orders sent under kill"
        assert atomic_load(oms.words, W_OPEN_ORDERS) == 0

        off = _ctl(name, "kill", "off", env=env)
        assert off.returncode == 0, off.stdout + off.stderr
        until(lambda: counters.values()["gateway.orders.sent"] > sent, 30, "quoting again")

        snapshots = counters.values()["feed.snapshots"]
        resync = _ctl(name, "resync", "BTCUSDT", env=env)
        assert resync.returncode == 0, resync.stdout + resync.stderr
        until(lambda: counters.values()["feed.snapshots"] > snapshots, 30, "a re-snapshot")

        assert _ctl(name, "pause", env=env).returncode == 0
        assert _ctl(name, "resume", env=env).returncode == 0
        audit = (tmp_path / "audit.log").read_text()
        assert audit.count('"acknowledged"') >= 5
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=120)
    assert run.returncode == 0, out[-3000:]
