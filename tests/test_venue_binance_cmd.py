"""``hft sim --dialect binance`` as a subprocess, configured as the README shows: an account
is an API key (from the environment) and a registered Ed25519 public key file."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from pipeline.binance.keys import load_signer, write_key_pair
from pipeline.venue.process import spawn, stop
from pipeline.venue.testing import TEST_API_KEY, BinanceFixClient

pytestmark = [pytest.mark.e2e]


@pytest.mark.timeout(60)
def test_hft_sim_dialect_binance_subprocess(tmp_path):
    private, public = write_key_pair(tmp_path / "keys")
    config = tmp_path / "sim.toml"
    config.write_text(f'''[sim]
[[sim.accounts]]
username = "trader"
api_key_env = "HFT_TEST_SIM_API_KEY"
ed25519_public_key = "{public}"
''')
    proc, ep = spawn(["--config", str(config), "--dialect", "binance", "--md-port", "0",
                      "--rest-port", "0", "--fix-port", "0", "--sbe-port", "0",
                      "--state-dir", str(tmp_path / "state"), "--rate", "100"],
                     {"HFT_TEST_SIM_API_KEY": TEST_API_KEY})
    try:
        assert ep["comp_id"] == "SPOT"
        with urllib.request.urlopen(f"{ep['rest']}/api/v3/exchangeInfo", timeout=10) as r:
            info = json.loads(r.read())
        assert {f["filterType"] for f in info["symbols"][0]["filters"]} >= {
            "PRICE_FILTER", "LOT_SIZE", "NOTIONAL", "PERCENT_PRICE_BY_SIDE", "MAX_NUM_ORDERS"}

        async def logon():
            c = await BinanceFixClient(ep["fix_port"], "CMD1", TEST_API_KEY,
                                       load_signer(private)).connect()
            reply = await c.logon()
            c.send("5", [])
            bye = await c.recv("5")
            await c.close()
            return reply, bye
        reply, bye = asyncio.run(asyncio.wait_for(logon(), 30))
        assert reply.msg_type == "A" and reply.get(49) == "SPOT"
        assert bye.get(58) == "Logout acknowledgment."
    finally:
        assert stop(proc) == 0
    err = proc.stderr.read()
    assert "FIX logon CMD1 (account trader" in err and TEST_API_KEY not in err
