"""``hft ctl`` steering a real pipeline started with ``hft run``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pipeline_checks import assert_kill_holds_then_releases, quoting_pipeline
from waiting import until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _ctl(name: str, *words: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "ctl", name, *words,
                           "--timeout", "10"], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.timeout(240)
def test_kill_switch_pause_and_resync_on_a_running_pipeline(tmp_path):
    name = f"ctl{os.getpid()}"
    env = dict(os.environ, HFT_AUDIT_LOG=str(tmp_path / "audit.log"))
    with quoting_pipeline(name, env, seconds=60) as q:
        assert_kill_holds_then_releases(q, lambda: _ctl(name, "kill", "on", env=env),
                                        lambda: _ctl(name, "kill", "off", env=env))
        snapshots = q.counters.values()["feed.snapshots"]
        resync = _ctl(name, "resync", "BTCUSDT", env=env)
        assert resync.returncode == 0, resync.stdout + resync.stderr
        until(lambda: q.counters.values()["feed.snapshots"] > snapshots, 30, "a re-snapshot")

        assert _ctl(name, "pause", env=env).returncode == 0
        assert _ctl(name, "resume", env=env).returncode == 0
        audit = (tmp_path / "audit.log").read_text()
        assert audit.count('"acknowledged"') >= 5
