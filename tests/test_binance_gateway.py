"""The gateway under binance-spot against a raw-socket peer (``binance_peer``) and a fake
signed REST API: XLR-sized rate limits, REST reconcile after every logon, an inbound gap
-> Logout, reconnect with a fresh CompID, reconcile, no fill booked twice; a clock skew
refuses the logon with a clear message; the maintenance News moves the order flow to a
second session without losing an order in flight on the first."""

from __future__ import annotations

import logging
import time

import pytest
from binance_peer import FakeRest, Peer

from pipeline.binance.keys import load_signer, write_key_pair
from pipeline.fix.binance_spot import BinanceSpot
from pipeline.fix.session import SessionConfig
from pipeline.instruments import SymbolTable
from pipeline.orders import oms, risk
from pipeline.orders.gateway import GatewayAgent, GatewayConfig
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.orders.testing import push_intent, read_execs
from shm_layouts import oms as L
from shm_layouts.records import ExecType, OrdStatus

pytestmark = pytest.mark.timeout(240)  # generous only for a cold numba cache

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"},
])
LIMITS = risk.RiskLimits(max_qty="0.01", max_notional="1000", max_position="0.02",
                         price_band_bps=100, max_orders_per_s=20, max_cancels_per_s=20,
                         max_open_orders=10, stale_md_ms=60_000)
MID = 6_000_000  # 60000.00


class Harness:
    def __init__(self, instance, tmp_path, limits=LIMITS):
        self.peer = Peer()
        self.rest = FakeRest()
        self.orders, self.execs, self.state = create_order_path(instance, 1024)
        self.exec_slot = self.execs.join(EXECS_CONSUMER)
        private, _ = write_key_pair(tmp_path / "keys")
        self.dialect = BinanceSpot(api_key="K" * 64, signer=load_signer(private),
                                   comp_id_prefix="hf")
        cfg = GatewayConfig("127.0.0.1", self.peer.port,
                            SessionConfig("hf", "SPOT", str(tmp_path / "fix"), heartbeat_s=30),
                            str(tmp_path / "oms.journal"), backoff_min_s=0.05,
                            backoff_max_s=0.2, dialect=self.dialect)
        self.gw = GatewayAgent(instance, cfg, TABLE, limits, rest=self.rest)
        self.seen: list = []

    def until(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            self.gw.marks[0] = (MID - 1, MID + 1, time.monotonic_ns(), 0)
            self.gw.poll_once()
            self.gw.housekeeping(time.monotonic_ns())
            self.peer.poll()
            self.seen.extend(read_execs(self.execs, self.exec_slot))
            time.sleep(0.0005)

    def ready(self):
        self.until(lambda: self.state.ready(), timeout=120)  # first run: numba compiles
        self.gw.poll_once()

    def new(self, price=MID, qty=100):
        cl = self.state.next_cl_ord_id()
        push_intent(self.orders, action=1, cl_ord_id=cl, symbol_id=0, side=0, price=price,
                    qty=qty, tif=1, ord_type=1)
        return cl

    def order(self, cl):
        return self.gw.oms.orders[oms.find(self.gw.oms.orders, cl)]

    def execs_for(self, cl, exec_type):
        return [e for e in self.seen if e["cl_ord_id"] == cl and e["exec_type"] == exec_type]


@pytest.fixture
def h(instance, tmp_path):
    harness = Harness(instance, tmp_path)
    yield harness
    harness.gw.wire.close(time.monotonic_ns())
    harness.peer.close()


def sent(conn, msg_type, cl):
    return [m for m in conn.got(msg_type) if m[11] == str(cl).encode()]


def test_gap_logs_out_reconnects_reconciles_and_books_no_fill_twice(h):
    h.ready()
    (c1,) = h.peer.logged_on()
    assert c1.got("XLQ") and h.rest.calls[:1] == ["time"]  # clock measured before logon
    h.until(lambda: h.gw.venue_limits)  # the XLR answer
    g = h.gw.risk.g
    assert g[risk.G_ORDERS_PER_S] == 10  # XLR: 100 orders per 10 s (under [risk]'s 20)
    assert g[risk.G_CANCELS_PER_S] == 20  # 10000 messages per 10 s leave [risk]'s 20
    cl = h.new()
    h.until(lambda: sent(c1, "D", cl))
    h.peer.report(c1, cl, 77, "0", "0", "0.001", "60000", "0")
    h.peer.report(c1, cl, 77, "F", "1", "0.001", "60000", "0.0004", "0.0004")
    h.until(lambda: h.order(cl)["cum_qty"] == 40)
    # the venue's next report (cum 0.0006) is lost: the one after it leaves a gap
    h.peer.report(c1, cl, 77, "F", "1", "0.001", "60000", "0.0007", "0.0001",
                  seq=c1.next_out + 1)
    h.rest.put(cl, 77, "PARTIALLY_FILLED", "0.001", "0.0007", "60000")
    h.until(lambda: c1.closed)
    (logout,) = c1.got("5")
    assert b"gap" in logout[58]
    h.until(lambda: h.state.ready())
    (c2,) = h.peer.logged_on()
    (logon,) = c2.got("A")
    assert c2.sender != c1.sender and logon[34] == b"1" and logon[141] == b"Y"
    assert not any(c.got("2") or c.got("4") for c in h.peer.conns)  # no resend, ever
    assert "openOrders BTCUSDT" in h.rest.calls
    o = h.order(cl)
    assert o["cum_qty"] == 70 and o["status"] == OrdStatus.PARTIALLY_FILLED
    assert h.gw.oms.positions[0]["position"] == 70
    # the rest fills on the new session: booked once
    h.peer.report(c2, cl, 77, "F", "2", "0.001", "60000", "0.001", "0.0003")
    h.until(lambda: h.order(cl)["status"] == OrdStatus.FILLED)
    assert h.gw.oms.positions[0]["position"] == 100
    assert h.gw.oms.positions[0]["fills"] == 3  # 0.0004, the reconciled 0.0003, 0.0003


def test_an_order_the_venue_no_longer_lists_takes_its_final_state(h):
    h.ready()
    (c1,) = h.peer.logged_on()
    filled, never = h.new(), h.new(price=MID - 100)
    h.until(lambda: sent(c1, "D", filled) and sent(c1, "D", never))
    h.peer.report(c1, filled, 5, "0", "0", "0.001", "60000", "0")
    h.rest.put(filled, 5, "FILLED", "0.001", "0.001", "60000")  # filled while we were away
    h.until(lambda: h.order(filled)["status"] == OrdStatus.NEW)
    c1.sock.close()  # the venue drops the connection
    c1.closed = True
    h.until(lambda: len(h.peer.logged_on()) == 1 and h.state.ready())
    assert h.order(filled)["status"] == OrdStatus.FILLED
    assert h.gw.oms.positions[0]["position"] == 100
    assert h.order(never)["status"] == OrdStatus.REJECTED  # -2013: it never got there
    assert h.gw.open_orders() == 0


def test_clock_skew_refuses_the_logon_with_a_clear_message(h, caplog):
    caplog.set_level(logging.ERROR, "pipeline.fix.session")
    h.rest.lead_ms = 10_000  # the venue's clock is 10 s ahead: our SendingTime is too old
    h.until(lambda: h.gw.wire.connects >= 2, timeout=120)
    assert not any(c.got("A") for c in h.peer.conns)
    assert "clock skew" in caplog.text and "behind" in caplog.text
    assert not h.state.ready()
    h.rest.lead_ms = 0
    h.ready()
    assert len(h.peer.logged_on()) == 1


def test_maintenance_moves_the_flow_to_a_second_session_no_order_lost(h):
    h.ready()
    (c1,) = h.peer.logged_on()
    a = h.new()
    h.until(lambda: sent(c1, "D", a))  # in flight on the first session: not acked yet
    h.peer.send(c1, "B", [(148, "You'll be disconnected in 30 seconds. Please reconnect.")])
    h.until(lambda: h.gw.switchovers == 1)
    (c2,) = [c for c in h.peer.logged_on() if c is not c1]
    assert c2.sender != c1.sender and h.state.ready()
    b = h.new(price=MID - 100)
    h.until(lambda: sent(c2, "D", b))
    assert not sent(c1, "D", b) and not c1.got("5")  # a is still unanswered on c1
    # ResponseMode EVERYTHING: every session gets every successful report
    for c in (c1, c2):
        h.peer.report(c, a, 1, "0", "0", "0.001", "60000", "0")
        h.peer.report(c, b, 2, "0", "0", "0.001", "59999", "0")
    h.until(lambda: c1.closed)
    (logout,) = c1.got("5")
    assert logout[58] == b"maintenance: moved to a new session"
    h.until(lambda: h.gw._draining is None and h.order(b)["status"] == OrdStatus.NEW)
    assert h.order(a)["status"] == OrdStatus.NEW
    assert len(h.execs_for(a, ExecType.NEW)) == 1 and len(h.execs_for(b, ExecType.NEW)) == 1
    h.peer.report(c2, a, 1, "F", "2", "0.001", "60000", "0.001", "0.001")
    h.until(lambda: h.order(a)["status"] == OrdStatus.FILLED)
    assert h.gw.oms.positions[0]["position"] == 100 and h.gw.open_orders() == 1
    assert h.state.ready() and h.gw.oms.words[L.W_UNKNOWN_REPORTS] == 0


def test_a_session_reject_of_an_order_rejects_it_with_the_venue_code(h):
    h.ready()
    (c1,) = h.peer.logged_on()
    cl = h.new()
    h.until(lambda: sent(c1, "D", cl))
    (d,) = sent(c1, "D", cl)
    h.peer.send(c1, "3", [(45, d[34].decode()), (58, "Mandatory parameter 'price' was not "
                                                    "sent."), (372, "D"), (373, 1),
                          (25016, -1102)])
    h.until(lambda: h.order(cl)["status"] == OrdStatus.REJECTED)
    (rej,) = h.execs_for(cl, ExecType.REJECTED)
    assert rej["reject_reason"] == 1102 and h.gw.open_orders() == 0
    assert h.gw._counter_values()["orders.venue_rejects.1102"] == 1


def test_an_unusable_fill_is_rejected_and_reconciled_from_rest_not_by_35h(h):
    """The hostile-venue rules under binance-spot: a fill that cannot be booked exactly
    (LastQty off the lot grid) is Rejected (35=3 naming tag 32) and never booked from the
    report; trading stops and the reconcile it asks for is the REST one (Binance has no
    35=H), which books the venue's CumQty once; trading resumes."""
    h.ready()
    (c1,) = h.peer.logged_on()
    cl = h.new()
    h.until(lambda: sent(c1, "D", cl))
    h.peer.report(c1, cl, 9, "0", "0", "0.001", "60000", "0")
    h.until(lambda: h.order(cl)["status"] == OrdStatus.NEW)
    before = len(h.rest.calls)
    h.rest.put(cl, 9, "PARTIALLY_FILLED", "0.001", "0.0004", "60000")
    h.peer.report(c1, cl, 9, "F", "1", "0.001", "60000", "0.0004", "0.000405")
    h.until(lambda: c1.got("3"))
    (rej,) = c1.got("3")
    assert rej[371] == b"32" and rej[45] == b"4"  # the report (after Logon, XLR, the ack)
    h.until(lambda: h.order(cl)["cum_qty"] == 40 and h.state.ready())
    c = h.gw._counter_values()
    assert c["fix.bad_reports"] == 1 and c["fix.bad.off_grid"] == 1
    assert c["fix.reconciles_asked"] == 1
    assert "openOrders BTCUSDT" in h.rest.calls[before:]
    assert not c1.got("H")
    assert h.gw.oms.positions[0]["position"] == 40 and h.gw.oms.positions[0]["fills"] == 1
    (fill,) = h.execs_for(cl, ExecType.PARTIAL_FILL)  # the reconcile's fill, to the strategy
    assert fill["last_qty"] == 40


def test_max_position_starts_from_the_base_asset_held_at_the_venue(instance, tmp_path):
    """MAX_POSITION 0.002 BTC; the account holds 0.0015 BTC (free + locked) before this run
    bought any: after the logon's REST reconcile only 0.0005 more may be bought."""
    import dataclasses
    import json

    from binance_venue import BTC, exchange_info

    rules = tmp_path / "exchangeInfo.json"
    capped = {**BTC, "filters": [*BTC["filters"],
                                 {"filterType": "MAX_POSITION", "maxPosition": "0.00200000"}]}
    rules.write_text(json.dumps(exchange_info([capped])))
    h = Harness(instance, tmp_path, dataclasses.replace(LIMITS, exchange_rules=str(rules)))
    try:
        h.rest.balances = [{"asset": "BTC", "free": "0.00100000", "locked": "0.00050000"},
                           {"asset": "USDT", "free": "100.00000000", "locked": "0.00000000"}]
        h.ready()
        assert "account" in h.rest.calls
        f = h.gw.risk.filters[0]
        assert f["max_position"] == 200 and f["holding_offset"] == 150
        (c,) = h.peer.logged_on()
        over, room = h.new(qty=60), h.new(qty=50)
        h.until(lambda: h.execs_for(over, ExecType.REJECTED) and sent(c, "D", room))
        (rej,) = h.execs_for(over, ExecType.REJECTED)
        assert int(rej["reject_reason"]) == L.RiskReason.VENUE_MAX_POSITION
        assert not sent(c, "D", over)
        # the balances cannot be read on the next reconcile: the last holdings stay, counted
        h.rest.balances = None
        h.gw._set_holdings()
        assert h.gw.holding_failures == 1 and f["holding_offset"] == 150
        assert h.gw._counter_values()["reconcile.balance_failures"] == 1
    finally:
        h.gw.wire.close(time.monotonic_ns())
        h.peer.close()
