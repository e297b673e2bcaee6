"""``hft sim`` as a subprocess: endpoints on stdout, serves, stops cleanly on signals."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from pipeline.venue import admin
from pipeline.venue.process import spawn, stop
from pipeline.venue.testing import FixClient

pytestmark = [pytest.mark.e2e]


def start(tmp_path, *extra: str):
    return spawn(["--md-port", "0", "--rest-port", "0", "--fix-port", "0", "--state-dir",
                  str(tmp_path / "fix"), "--rate", "500", *extra],
                 {"HFT_SIM_PASSWORD": "pw-from-env", admin.TOKEN_ENV: "tok-from-env"})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_hft_sim_subprocess(tmp_path, sig):
    proc, ep = start(tmp_path, "--symbols", "BTCUSDT", "--fault", "snapshot_delay_ms=1")
    try:
        assert ep["symbols"] == ["BTCUSDT"] and ep["fix_port"] > 0
        with urllib.request.urlopen(f"{ep['rest']}/api/v3/depth?symbol=BTCUSDT&limit=5",
                                    timeout=10) as r:
            snap = json.loads(r.read())
        assert len(snap["bids"]) == 5 and snap["lastUpdateId"] > 0
        # the /admin API: the token from $HFT_SIM_ADMIN_TOKEN, printed in the line; no
        # (or a wrong) token is refused
        assert ep["admin_token"] == "tok-from-env"
        assert admin.call(ep["rest"], "/admin/faults", "tok-from-env")["snapshot_delay_ms"] == 1
        for token in ("", "nope"):
            with pytest.raises(urllib.error.HTTPError) as e:
                admin.call(ep["rest"], "/admin/flow", token, {"paused": True})
            assert e.value.code == 401
        assert admin.call(ep["rest"], "/admin/stats", "tok-from-env")["rest_unauthorized"] == 2
        with connect(f"{ep['ws']}/ws/btcusdt@depth@100ms", open_timeout=10) as ws:
            event = json.loads(ws.recv(timeout=10))
            assert event["e"] == "depthUpdate" and event["s"] == "BTCUSDT"
        # the default account "trader" takes its password from HFT_SIM_PASSWORD
        async def fix_logon():
            c = await FixClient(ep["fix_port"], "SUBPROC", ep["comp_id"]).connect()
            reply = await c.logon("trader", "pw-from-env")
            await c.close()
            return reply.msg_type
        assert asyncio.run(asyncio.wait_for(fix_logon(), 20)) == "A"
    finally:
        code = stop(proc, sig)
    err = proc.stderr.read()
    assert code == 0, err
    assert "venue simulator up" in err and "tok-from-env" not in err  # never logged
    assert (tmp_path / "fix").is_dir()


@pytest.mark.timeout(30)
def test_hft_sim_rejects_bad_configuration(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sim]\nnosuch = 1\n")
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "sim", "--config", str(bad)],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "unknown keys" in out.stderr
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "sim", "--md-port", "0",
                          "--fault", "nosuch=1"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "unknown fault" in out.stderr
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "sim", "--md-port", "0",
                          "--fault", "md_drop=lots"], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 2 and "bad value 'lots'" in out.stderr  # text, not a number


@pytest.mark.timeout(60)
def test_hft_sim_text_fault_from_the_command_line(tmp_path):
    proc, ep = start(tmp_path, "--symbols", "BTCUSDT", "--fault", "fix_refuse_logon=closed")
    try:
        async def fix_logon():
            c = await FixClient(ep["fix_port"], "SUBPROC", ep["comp_id"]).connect()
            c.send("A", [(98, 0), (108, 30), (553, "trader"), (554, "pw-from-env")])
            reply = await c.recv("5")
            await c.close()
            return reply.get(58)
        assert asyncio.run(asyncio.wait_for(fix_logon(), 20)) == "closed"
    finally:
        assert stop(proc, signal.SIGTERM) == 0
