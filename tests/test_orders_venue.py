"""The gateway against the venue simulator's FIX 4.4 acceptor (``hft sim`` subprocess)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from pipeline.fix.session import SessionConfig
from pipeline.instruments import SymbolTable
from pipeline.orders import oms
from pipeline.orders.gateway import GatewayAgent, GatewayConfig
from pipeline.orders.risk import RiskLimits
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.orders.testing import GatewayDriver, push_intent
from pipeline.venue.process import spawn, stop
from shm_layouts import oms as L

pytestmark = [pytest.mark.timeout(240), pytest.mark.e2e]  # generous only for a cold numba cache
TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.00001"}])
PASSWORD = "pw-for-the-gateway-test"


@pytest.fixture
def sim(tmp_path):
    proc, ep = spawn(["--md-port", "0", "--rest-port", "0", "--fix-port", "0", "--state-dir",
                      str(tmp_path / "simfix"), "--rate", "200", "--symbols", "BTCUSDT"],
                     {"HFT_SIM_PASSWORD": PASSWORD})
    yield ep
    stop(proc)


def test_gateway_trades_against_the_venue_simulator(sim, instance, tmp_path):
    orders, execs, state = create_order_path(instance, 1024)
    slot = execs.join(EXECS_CONSUMER)
    cfg = GatewayConfig("127.0.0.1", sim["fix_port"],
                        SessionConfig("HFT", "SIMVENUE", str(tmp_path / "fix"),
                                      username="trader", password=PASSWORD),
                        str(tmp_path / "oms.journal"), backoff_min_s=0.05)
    gw = GatewayAgent(instance, cfg, TABLE, RiskLimits(max_qty="0.01", max_notional="1000",
                                                       max_position="0.05",
                                                       price_band_bps=200))

    def marks():
        with urllib.request.urlopen(f"{sim['rest']}/api/v3/depth?symbol=BTCUSDT&limit=5",
                                    timeout=10) as r:
            snap = json.loads(r.read())
        inst = TABLE[0]
        bid, ask = inst.ticks(snap["bids"][0][0]), inst.ticks(snap["asks"][0][0])
        gw.marks[0] = (bid, ask, time.monotonic_ns(), 0)
        return bid, ask

    drv = GatewayDriver(gw, execs, slot)
    until, execs_for = drv.until, drv.execs_for

    until(state.ready, 120)
    gw.poll_once()  # compiles the jitted duty pass (cold numba cache) before timed waits
    bid, ask = marks()
    rest = state.next_cl_ord_id()  # a resting buy well below the touch
    push_intent(orders, action=1, cl_ord_id=rest, symbol_id=0, side=0, price=bid - 500,
                qty=100, tif=1, ord_type=1)
    until(lambda: execs_for(rest))
    assert (execs_for(rest)[0]["source"], execs_for(rest)[0]["exec_type"]) == (1, 1)
    # reconnect: the open order is reconciled with an OrderStatusRequest before trading
    logons = state.words[L.W_LOGONS]
    gw.wire._close(time.monotonic_ns(), "test: drop the link")
    until(lambda: state.ready() and state.words[L.W_LOGONS] > logons)
    assert state.orders[oms.find(state.orders, rest)]["status"] == oms.NEW
    cancel = state.next_cl_ord_id()
    marks()
    push_intent(orders, action=2, cl_ord_id=cancel, orig_cl_ord_id=rest, symbol_id=0, side=0)
    until(lambda: execs_for(cancel))
    assert execs_for(cancel)[0]["exec_type"] == 4 and gw.open_orders() == 0
    # a marketable IOC buy: filled by the simulator's book
    bid, ask = marks()
    take = state.next_cl_ord_id()
    push_intent(orders, action=1, cl_ord_id=take, symbol_id=0, side=0, price=ask + 100,
                qty=10, tif=2, ord_type=1)
    until(lambda: any(e["exec_type"] in (3, 7) for e in execs_for(take)))
    assert state.positions[0]["position"] == state.orders[oms.find(state.orders, take)][
        "cum_qty"] > 0
    gw.on_close()
    assert gw.wire.sock is None and state.words[L.W_UNKNOWN_REPORTS] == 0  # no unknown reports
