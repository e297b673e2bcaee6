"""Issue 14 end to end: the whole pipeline against ``hft sim --dialect binance`` over TLS
(``hft run --sim-dialect binance``): a key pair made for the run, the Binance preflight
(clock, exchange rules, account) against the simulator, the gateway's binance-spot FIX
dialect (Ed25519 Logon, reconcile through signed REST, XLR-sized limits), quotes, fills,
and strategy, OMS and venue agreeing on every position; the simulator refused nothing."""

from __future__ import annotations

import os

import pytest
from pipeline_checks import assert_traded_and_clean, run_pipeline

from pipeline.launch.launcher import RUN_DIR

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.timeout(600)
def test_full_pipeline_against_the_binance_strict_simulator_over_tls(tmp_path):
    name = f"bn{os.getpid()}"
    logs: list[str] = []
    # the venue's MAX_POSITION with BTC already held: risk must start from that holding
    extra = tmp_path / "venue.toml"
    extra.write_text('[sim.balances]\nBTC = "0.02"\n'
                     '[sim.filters.BTCUSDT]\nmax_position = "0.03"\n')
    s = run_pipeline(name, tmp_path / "summary.json", 40, "--sim-dialect", "binance",
                     "--config", str(extra), outputs=logs)
    assert_traded_and_clean(s, name)
    c = s["counters"]
    assert c["gateway.tls.handshakes"] >= 1 and c["gateway.tls.handshake_failures"] == 0
    v = s["venue_stats"]
    assert v["fix_logons"] >= 1 and v["rest_signed_ok"] >= 2  # preflight + reconcile
    assert v["rest_exchange_info"] >= 1
    # nothing the venue had to refuse on its rules: risk enforced the exchange filters and
    # the order rate before the wire (a LIMIT_MAKER that meets a moving market is refused
    # as on Binance: "Order would immediately match and take.", -2010)
    refused = {k: n for k, n in v.items() if n and (
        k.startswith(("binance_logons_refused", "binance_bad", "binance_unsupported",
                      "binance_filter", "binance_order_rate", "binance_message_limit",
                      "rest_signed_refused"))
        or k in ("fix_garbled_in", "fix_errors", "rest_errors"))}
    assert not refused, refused
    assert not c.get("gateway.orders.venue_rejects.1013") and \
        not c.get("gateway.orders.venue_rejects.1015")
    assert v.get("binance_orders", 0) > 0
    assert "\nvenue refusals: " in logs[0]  # the printed summary names what it refused
    text = "\n".join(logs)
    assert "FIX logon HFT" in text and "(account trader" in text
    assert "BTCUSDT: 2000 lots of BTC held at the venue (MAX_POSITION 3000)" in text
    assert "PRIVATE KEY" not in text
    keys = RUN_DIR / name / "keys"
    assert keys.is_dir() and not list(keys.glob("*.pem"))  # the run's key pair is gone
