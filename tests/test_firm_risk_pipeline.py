"""The firm-wide kill switch stops a real pipeline's gateway: ``hft run --nats`` (the
launcher starts the risk link and the drop copy beside the pipeline), ``hft risk kill``
acknowledged by the oms_gateway, ``hft risk kill --off`` lets it quote again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pipeline_checks import assert_kill_holds_then_releases, quoting_pipeline
from waiting import until

from pipeline.firm.natsd import NatsServer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _risk(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "risk", *argv],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.timeout(400)
def test_firm_kill_stops_a_running_pipelines_gateway(tmp_path):
    name = f"frk{os.getpid()}"
    env = dict(os.environ, HFT_AUDIT_LOG=str(tmp_path / "audit.log"))
    with NatsServer(tmp_path / "nats") as server, \
            quoting_pipeline(name, env, "--nats", server.url, processes=6) as q:
        names = {p["name"] for p in q.counters.processes()}
        assert {"dropcopy", "risk_link"} <= names  # started by hft run --nats
        until(lambda: name in _risk("--nats", server.url, env=env).stdout, 60,
              "the instance reporting")
        kill = assert_kill_holds_then_releases(
            q, lambda: _risk("kill", "--nats", server.url, "--timeout", "30", env=env),
            lambda: _risk("kill", "--off", "--nats", server.url, "--timeout", "30", env=env))
        assert "oms_gateway (done)" in kill
