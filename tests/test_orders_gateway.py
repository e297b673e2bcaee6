"""The gateway agent in-process: rings + risk + OMS + FIX over loopback to the venue's
acceptor (the test plays the strategy on the rings)."""

from __future__ import annotations

import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.fix.session import SessionConfig
from pipeline.instruments import SymbolTable
from pipeline.metrics.counters import Counters
from pipeline.orders import oms, risk
from pipeline.orders import views as V
from pipeline.orders.gateway import GatewayAgent, GatewayConfig, replay
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.orders.testing import push_intent, read_execs
from pipeline.tls.client import TlsSettings
from pipeline.venue.testing import VenueThread, quiet_venue
from shm_layouts import oms as L
from shm_layouts.histogram import H_COUNT, H_MAX

pytestmark = pytest.mark.timeout(240)  # generous only for a cold numba cache

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"},
    {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.0001"},
])
LIMITS = risk.RiskLimits(max_qty="0.01", max_notional="1000", max_position="0.02",
                         price_band_bps=100, max_orders_per_s=20, max_cancels_per_s=20,
                         max_open_orders=10, stale_md_ms=2000)
MID = 6_000_000  # 60000.00


class Harness:
    def __init__(self, instance, tmp_path, capacity: int = 1024,
                 counters: Counters | None = None, tls: bool = False, warm_ns: int = 0,
                 **gateway):
        """``tls``: the venue serves FIX over TLS and the gateway trusts its CA;
        ``warm_ns``: the gateway's warm pass period (0: off)."""
        self.acc = VenueThread(replace(quiet_venue(tmp_path, TABLE), tls=tls))
        if tls:
            gateway["tls"] = TlsSettings("localhost", self.acc.sim.tls.ca_file)
        self.orders, self.execs, self.state = create_order_path(instance, capacity)
        self.exec_slot = self.execs.join(EXECS_CONSUMER)
        cfg = GatewayConfig("127.0.0.1", self.acc.port,
                            SessionConfig("CLIENT", "VENUE", str(tmp_path / "fix")),
                            str(tmp_path / "oms.journal"), backoff_min_s=0.05, **gateway)
        self.gw = GatewayAgent(instance, cfg, TABLE, LIMITS, counters=counters,
                               warm_ns=warm_ns)
        self.execs_seen: list = []
        self.set_mid(0, MID)
        self.set_mid(1, 300_000)

    def set_mid(self, sid, mid, age_ns=0):
        self.gw.marks[sid] = (mid - 1, mid + 1, time.monotonic_ns() - age_ns, 0)

    def run_until(self, pred, timeout=5.0, read=True):
        deadline = time.monotonic() + timeout
        while True:
            self.gw.poll_once()
            self.gw.housekeeping(time.monotonic_ns())
            if read:
                self.execs_seen.extend(read_execs(self.execs, self.exec_slot))
            if pred():
                return
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.0005)

    def ready(self):
        self.run_until(lambda: self.state.ready(), timeout=120)  # first run: numba compiles
        self.gw.poll_once()  # and the jitted duty pass too, before any timed wait
        self.set_mid(0, MID)  # fresh market data after any compile pause
        self.set_mid(1, 300_000)

    def new(self, side=0, price=MID, qty=100, sid=0, cl=None):
        cl = cl or self.state.next_cl_ord_id()
        push_intent(self.orders, action=1, cl_ord_id=cl, symbol_id=sid, side=side,
                    price=price, qty=qty, tif=1, ord_type=1)
        return cl

    def exec_for(self, cl):
        return [e for e in self.execs_seen if e["cl_ord_id"] == cl]

    def received(self, t):
        return [m for m in self.acc.received if m.get(35) == t.encode()]

    def close(self):
        self.acc.stop()


@pytest.fixture
def h(instance, tmp_path):
    harness = Harness(instance, tmp_path)
    yield harness
    harness.close()


def test_order_to_fill_through_rings_and_fix(h):
    h.ready()
    cl = h.new(qty=150)
    h.run_until(lambda: len(h.exec_for(cl)) == 1)
    e = h.exec_for(cl)[0]
    assert (e["exec_type"], e["ord_status"], e["source"]) == (1, 2, 1)  # NEW, NEW, VENUE
    d = h.received("D")[0]
    assert int(d.get(11)) == cl and d.get(38) == b"0.0015" and d.get(44) == b"60000"
    h.acc.fill(str(cl), "0.0015", "60000.01")
    h.run_until(lambda: len(h.exec_for(cl)) == 2)
    f = h.exec_for(cl)[1]
    assert (f["exec_type"], f["ord_status"], f["last_qty"], f["last_px"]) == (3, 4, 150,
                                                                             6_000_001)
    assert h.state.positions[0]["position"] == 150
    assert h.gw.reports_via_python == 0  # both reports went socket -> OMS -> ring in numba
    assert h.gw.fast_rounds > 0
    assert h.gw.hist[H_COUNT] == 1  # tick-to-trade: t_origin -> bytes on the socket
    assert 0 < h.gw.hist[H_MAX] < 10**10


def test_risk_denial_goes_to_exec_ring_never_to_wire(h):
    h.ready()
    cases = [dict(qty=2000), dict(price=MID * 2), dict(price=0), dict(sid=5)]
    cls = [h.new(**c) for c in cases]
    h.run_until(lambda: all(h.exec_for(c) for c in cls))
    reasons = [int(h.exec_for(c)[0]["reject_reason"]) for c in cls]
    assert reasons == [L.RiskReason.MAX_QTY, L.RiskReason.PRICE_BAND, L.RiskReason.BAD_ORDER,
                       L.RiskReason.UNKNOWN_SYMBOL]
    assert all(h.exec_for(c)[0]["source"] == 2 for c in cls)
    assert h.received("D") == []


def test_duplicate_id_and_position_limit(h):
    h.ready()
    a = h.new(qty=1000)
    h.new(qty=1000, cl=a)  # same id again
    b = h.new(qty=1000)
    c = h.new(qty=1)  # would exceed max position 0.02 counting open orders
    h.run_until(lambda: h.exec_for(c) and len(h.exec_for(a)) >= 2 and h.exec_for(b))
    assert int(h.exec_for(a)[1 if h.exec_for(a)[0]["source"] == 1 else 0]["reject_reason"]) \
        == L.RiskReason.DUPLICATE_ID
    assert int(h.exec_for(c)[0]["reject_reason"]) == L.RiskReason.MAX_POSITION
    assert len(h.received("D")) == 2


def test_kill_switch_blocks_and_cancels_everything(h):
    h.ready()
    a, b = h.new(), h.new(side=1, price=MID + 1)  # not crossing: the venue would match
    h.run_until(lambda: h.exec_for(a) and h.exec_for(b))
    h.state.set_kill(True)
    c = h.new()
    h.run_until(lambda: h.exec_for(c) and h.gw.open_orders() == 0)
    assert int(h.exec_for(c)[0]["reject_reason"]) == L.RiskReason.KILL_SWITCH
    assert {int(m.get(41)) for m in h.received("F")} == {a, b}


def test_stale_market_data_cancels_and_blocks(h):
    h.ready()
    a = h.new()
    e = h.new(sid=1, price=300_000)
    h.run_until(lambda: h.exec_for(a) and h.exec_for(e))
    h.set_mid(0, MID, age_ns=3 * 10**9)
    h.run_until(lambda: h.received("F"))
    h.run_until(lambda: h.state.orders[oms.find(h.state.orders, a)]["status"] == oms.CANCELED)
    assert [int(m.get(41)) for m in h.received("F")] == [a]  # ETH untouched
    b = h.new()
    h.run_until(lambda: h.exec_for(b))
    assert int(h.exec_for(b)[0]["reject_reason"]) == L.RiskReason.STALE_MARKET_DATA


def test_cancel_replace_intents(h):
    h.ready()
    a = h.new(qty=100)
    h.run_until(lambda: h.exec_for(a))
    r = h.state.next_cl_ord_id()
    push_intent(h.orders, action=3, cl_ord_id=r, orig_cl_ord_id=a, symbol_id=0, side=0,
                price=MID + 100, qty=200, tif=1, ord_type=1)
    h.run_until(lambda: h.exec_for(r))
    assert h.exec_for(r)[0]["exec_type"] == 5  # REPLACED
    c = h.state.next_cl_ord_id()
    push_intent(h.orders, action=2, cl_ord_id=c, orig_cl_ord_id=r, symbol_id=0, side=0)
    h.run_until(lambda: h.exec_for(c))
    assert h.exec_for(c)[0]["exec_type"] == 4 and h.gw.open_orders() == 0
    c2 = h.state.next_cl_ord_id()  # cancel of a dead order: denied by risk
    push_intent(h.orders, action=2, cl_ord_id=c2, orig_cl_ord_id=r, symbol_id=0, side=0)
    h.run_until(lambda: h.exec_for(c2))
    assert int(h.exec_for(c2)[0]["reject_reason"]) == L.RiskReason.UNKNOWN_ORDER


def test_reconnect_reconciles_before_accepting(h):
    h.ready()
    a = h.new()
    h.run_until(lambda: h.exec_for(a))
    h.acc.drop()
    h.run_until(lambda: not h.state.ready())
    b = h.new()  # while down: denied, never queued
    h.run_until(lambda: h.exec_for(b))
    assert int(h.exec_for(b)[0]["reject_reason"]) == L.RiskReason.NOT_READY
    h.acc.fill(str(a), "0.0005", "60000")  # happens at the venue while we are away
    h.ready()
    assert [int(m.get(11)) for m in h.received("H")] == [a]
    assert h.state.orders[oms.find(h.state.orders, a)]["cum_qty"] == 50
    assert h.state.positions[0]["position"] == 50


def test_order_lost_before_the_socket_is_rejected_by_reconcile_never_resent(h):
    h.ready()
    a = h.new()
    h.gw.process_intents(16)
    h.gw.wio[0]["end"] = h.gw.wio[0]["norig"] = 0  # "crash" before the send
    assert h.state.orders[oms.find(h.state.orders, a)]["status"] == oms.PENDING_NEW
    h.acc.drop()
    h.run_until(lambda: not h.state.ready())
    h.ready()  # the venue asks us to resend the lost seq: gap fill; H says unknown order
    h.run_until(lambda: h.exec_for(a))
    assert h.state.orders[oms.find(h.state.orders, a)]["status"] == oms.REJECTED
    assert h.received("D") == [] and h.gw.open_orders() == 0
    assert h.gw.session.counters.gap_fills_sent >= 1


def test_shutdown_cancels_all_and_logs_out(h):
    h.ready()
    a = h.new()
    h.run_until(lambda: h.exec_for(a))
    h.gw.on_close()
    assert h.gw.open_orders() == 0 and h.received("F") and h.received("5")


def test_journal_replay_rebuilds_state(h, instance_name):
    h.ready()
    a, b = h.new(qty=100), h.new(side=1, price=MID + 1, qty=50)  # not crossing
    h.run_until(lambda: h.exec_for(a) and h.exec_for(b))
    h.acc.fill(str(a), "0.0004", "60000")
    h.run_until(lambda: len(h.exec_for(a)) == 2)
    words = np.zeros(L.CONTROL_WORDS, np.int64)
    orders = np.zeros(L.ORDER_SLOTS, L.ORDER)
    positions = np.zeros(L.MAX_INSTRUMENTS, L.POSITION)
    replay(h.gw.journal, SimpleNamespace(words=words, orders=orders, positions=positions))
    live = h.state
    assert np.array_equal(positions, live.positions)
    assert words[L.W_OPEN_ORDERS] == live.words[L.W_OPEN_ORDERS] == 2
    for cl in (a, b):
        x, y = orders[oms.find(orders, cl)], live.orders[oms.find(live.orders, cl)]
        assert (x["status"], x["cum_qty"], x["leaves_qty"]) == (y["status"], y["cum_qty"],
                                                                y["leaves_qty"])


def test_client_order_ids_unique_across_restarts(h, instance):
    h.ready()
    a = h.new()
    h.run_until(lambda: h.exec_for(a))
    h.state.words[L.W_NEXT_CL_ORD_ID] = 1  # as if the OMS segment had been lost
    GatewayAgent(instance, h.gw.cfg, TABLE, LIMITS)  # a restart: ids from journal and clock
    assert h.state.next_cl_ord_id() > a
    assert h.state.next_cl_ord_id() > time.time_ns() // 1000 - 10**9


def test_slow_strategy_gets_backpressure_not_drops(instance, tmp_path):
    h = Harness(instance, tmp_path, capacity=8)
    try:
        h.ready()
        a = h.new(qty=1000)
        h.run_until(lambda: h.exec_for(a))
        for _ in range(20):
            h.acc.fill(str(a), "0.00001", "60000")
        # the strategy stops reading: 20 fills do not fit in an 8-slot exec ring
        h.run_until(lambda: h.gw.wio[0]["exec_blocked"] > 0, read=False)
        h.run_until(lambda: len(h.exec_for(a)) == 21)
        assert h.gw.wio[0]["ring_full"] == 0 and h.state.positions[0]["position"] == 20
    finally:
        h.close()


def test_full_journal_refuses_new_orders(instance, tmp_path):
    from pipeline.orders import journal as J
    h = Harness(instance, tmp_path, journal_records=J.RESERVE + 1)  # room for one intent
    try:
        h.ready()
        a, b = h.new(), h.new()
        h.run_until(lambda: h.exec_for(a) and h.exec_for(b))
        assert h.exec_for(a)[0]["source"] == 1  # a fits; its reports use the reserve
        assert int(h.exec_for(b)[0]["reject_reason"]) == L.RiskReason.JOURNAL_FULL
        assert len(h.received("D")) == 1
        assert h.gw.wio[0]["denied"] == 1  # refused before risk, counted like a denial
        assert V.denials_by_reason(h.gw.wio)["orders.denied.journal_full"] == 1
    finally:
        h.close()


def test_denials_are_published_per_reason_for_the_monitor(instance, tmp_path):
    counters = Counters.create(instance)
    h = Harness(instance, tmp_path, counters=counters)
    try:
        h.ready()
        cls = [h.new(qty=2000), h.new(qty=2000), h.new(price=MID * 2)]
        h.run_until(lambda: all(h.exec_for(c) for c in cls))
        h.gw.housekeeping(time.monotonic_ns())
        seen = Counters.attach(instance, readonly=True).values()
        denied = {k: v for k, v in seen.items() if k.startswith("gateway.orders.denied.")}
        assert len(denied) == len(L.RiskReason) - 1  # every reason has its counter
        assert {k: v for k, v in denied.items() if v} == {
            "gateway.orders.denied.max_qty": 2, "gateway.orders.denied.price_band": 1}
        assert seen["gateway.orders.denied"] == 3
    finally:
        h.close()
