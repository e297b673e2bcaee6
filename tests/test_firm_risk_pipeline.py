"""The firm-wide kill switch stops a real pipeline's gateway: ``hft run``, a risk link
beside it, ``hft risk kill`` acknowledged by the oms_gateway (and the strategy)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from waiting import until

from pipeline.firm.natsd import NatsServer
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.registry import Instance
from pipeline.transport.shared import atomic_load
from shm_layouts.counters import ProcessState
from shm_layouts.oms import W_OPEN_ORDERS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _risk(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "risk", *argv],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.timeout(400)
def test_firm_kill_stops_a_running_pipelines_gateway(tmp_path):
    name = f"frk{os.getpid()}"
    env = dict(os.environ, HFT_AUDIT_LOG=str(tmp_path / "audit.log"))
    with NatsServer(tmp_path / "nats") as server:
        run = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--duration",
                                "120", "--instance", name], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
        link = None
        try:
            inst = until(lambda: Instance.attach(name, readonly=True), 120, "the instance")
            counters = until(lambda: Counters.attach(inst, readonly=True), 60, "counters")
            until(lambda: sum(p["state"] == ProcessState.RUNNING
                              for p in counters.processes()) == 4, 180, "four processes")
            until(lambda: counters.values().get("gateway.orders.sent", 0) > 5, 90, "quoting")
            link = Child("risk_link", "procs.risk_link",
                         ["--instance", name, "--nats", server.url], env=env).start()
            wait_running(counters, [link], timeout=120)
            until(lambda: name in _risk("--nats", server.url, env=env).stdout, 60,
                  "the instance reporting")
            oms = OmsState.attach(inst, readonly=True)

            kill = _risk("kill", "--nats", server.url, "--timeout", "30", env=env)
            assert kill.returncode == 0, kill.stdout + kill.stderr
            assert "oms_gateway (done)" in kill.stdout
            until(lambda: atomic_load(oms.words, W_OPEN_ORDERS) == 0, 60, "all cancelled")
            time.sleep(1.0)  # let in-flight cancels settle
            sent = counters.values()["gateway.orders.sent"]
            time.sleep(3.0)
            assert counters.values()["gateway.orders.sent"] == sent, "orders sent under kill"

            off = _risk("kill", "--off", "--nats", server.url, "--timeout", "30", env=env)
            assert off.returncode == 0, off.stdout + off.stderr
            until(lambda: counters.values()["gateway.orders.sent"] > sent, 60, "quoting again")
        finally:
            if link is not None:
                assert stop([link])["risk_link"] == 0
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
            out, _ = run.communicate(timeout=120)
    assert run.returncode == 0, out[-3000:]
