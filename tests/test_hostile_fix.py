"""The gateway against a hostile venue (issue 18): a raw-socket acceptor of the test's own
sends what a careless or broken venue would; each scenario asserts the session's answer
(Reject 35=3 with its reason, or Logout), the counters, the exec ring and the OMS."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from hostile_acceptor import HostileAcceptor, encode

from pipeline.fix.session import SessionConfig
from pipeline.fix.session import utc_timestamp as ts
from pipeline.instruments import SymbolTable
from pipeline.orders import flow, oms, risk
from pipeline.orders.gateway import GatewayAgent, GatewayConfig
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.orders.testing import GatewayDriver, push_intent
from shm_layouts import oms as L
from shm_layouts.histogram import H_COUNT, H_MIN
from shm_layouts.records import ExecType, OrderAction, OrdStatus, ReportSource

pytestmark = pytest.mark.timeout(300)  # generous only for a cold numba cache

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"}])
LIMITS = risk.RiskLimits(max_qty="0.01", max_notional="1000", max_position="0.05",
                         price_band_bps=100, max_orders_per_s=100, max_cancels_per_s=100,
                         max_open_orders=20, stale_md_ms=600_000)
MID = 6_000_000  # 60000.00


class Venue:
    """The gateway in the test's thread, connected to a ``HostileAcceptor``."""

    def __init__(self, instance, tmp_path):
        self.acc = HostileAcceptor()
        self.orders, self.execs, self.state = create_order_path(instance, 1024)
        cfg = GatewayConfig("127.0.0.1", self.acc.port,
                            SessionConfig("CLIENT", "VENUE", str(tmp_path / "fix")),
                            str(tmp_path / "oms.journal"), backoff_min_s=0.05)
        self.gw = GatewayAgent(instance, cfg, TABLE, LIMITS)
        self.d = GatewayDriver(self.gw, self.execs, self.execs.join(EXECS_CONSUMER))

    def until(self, pred, timeout: float = 30.0) -> None:
        self.d.until(pred, timeout)

    def ready(self) -> None:
        self.gw.marks[0] = (MID - 1, MID + 1, time.monotonic_ns(), 0)
        self.until(lambda: self.state.ready() and self.gw.wire.active, timeout=240)
        self.gw.marks[0] = (MID - 1, MID + 1, time.monotonic_ns(), 0)

    def new(self, qty: int = 100, ack: bool = True) -> int:
        cl = self.state.next_cl_ord_id()
        push_intent(self.orders, action=OrderAction.NEW, cl_ord_id=cl, symbol_id=0, side=0,
                    price=MID, qty=qty, tif=1, ord_type=1)
        if ack:
            self.until(lambda: self.execs_for(cl))
        return cl

    def execs_for(self, cl: int) -> list:
        return self.d.execs_for(cl)

    def order(self, cl: int):
        return self.state.orders[oms.find(self.state.orders, cl)]

    @property
    def position(self) -> int:
        return int(self.state.positions[0]["position"])

    def count(self, name: str) -> int:
        return self.gw._counter_values()[name]

    def rejects(self) -> list[tuple[int, int | None, int, str]]:
        """Our session Rejects: (RefSeqNum, RefTagID, SessionRejectReason, Text)."""
        return [(int(m.get(45)), int(m.get(371)) if m.get(371) else None, int(m.get(373)),
                 m.get(58).decode()) for m in self.acc.of_type("3")]

    def reject_of(self, seq: int) -> tuple[int | None, int]:
        self.until(lambda: any(r[0] == seq for r in self.rejects()))
        (r,) = [r for r in self.rejects() if r[0] == seq]
        return r[1], r[2]

    def status_requests(self, cl: int) -> int:
        return sum(int(m.get(11)) == cl for m in self.acc.of_type("H"))

    def close(self) -> None:
        self.gw.on_close()
        self.acc.close()


@pytest.fixture
def v(instance, tmp_path):
    venue = Venue(instance, tmp_path)
    yield venue
    venue.close()


def test_malformed_admin_messages_are_answered_never_raise(v):
    """Item 1: each malformed admin message gets the answer FIX gives it; nothing raises
    out of the session, and the session goes on (or logs out and comes back)."""
    v.ready()
    a = v.acc
    # no MsgType: garbled (no Reject, the seq is not consumed; a resend recovers it)
    a.send_fields([(49, "VENUE"), (56, "CLIENT"), (34, a.next_out), (52, ts(time.time_ns()))])
    a.next_out += 1
    a.send("0", [])
    v.until(lambda: v.gw.session.next_in == a.next_out and v.count("fix.bad.no_msg_type"))
    assert v.count("fix.garbled") >= 1 and v.rejects() == []
    assert v.gw.session.counters.resend_requests_sent == 1
    # required fields missing or malformed: Reject with RefTagID and reason, seq consumed
    cases = [("1", [], 112, 1),  # TestRequest without TestReqID
             ("2", [], 7, 1),  # ResendRequest without BeginSeqNo/EndSeqNo
             ("2", [(7, "x"), (16, 0)], 7, 6),
             ("2", [(7, 5), (16, 3)], 16, 5),  # EndSeqNo before BeginSeqNo
             ("0", [("junk", None)], None, 0)]  # a field without '='
    for msg_type, body, tag, reason in cases:
        seq = a.send(msg_type, body)
        assert v.reject_of(seq) == (tag, reason), (msg_type, body)
    # SequenceReset-Reset without NewSeqNo, or with 36=abc: Reject, NEXT_IN unchanged
    for body, reason, seq in (([], 1, a.next_out + 50), ([(36, "abc")], 6, a.next_out + 51)):
        a.send("4", body, seq=seq)  # a Reset's MsgSeqNum is not checked
        assert v.reject_of(seq) == (36, reason)
    assert v.gw.session.next_in == a.next_out and v.gw.wire.active
    # MsgSeqNum missing/empty/not a number: Logout (it breaks sequencing), then a new logon
    for bad in (None, "", "abc"):
        logons = a.logons + 1
        a.send("0", [], header={34: bad})
        v.until(lambda n=logons: a.logons == n and v.state.ready() and v.gw.wire.active)
    logouts = [m.get(58) for m in a.of_type("5")]
    assert logouts == [b"MsgSeqNum(34) missing or invalid"] * 3
    assert v.count("fix.bad.bad_seq_num") == 3 and v.count("fix.fatal") == 3
    assert v.count("fix.rejects_sent") == 7 and v.count("fix.bad.bad_admin") == 6
    assert v.count("fix.bad.bad_tag") == 1
    assert v.count("fix.bad.internal") == 0


@pytest.mark.parametrize("fields, tag, reason", [
    (dict(t31="60000.001"), 31, 5),  # LastPx off the tick grid
    (dict(t60="20260101-25:00:00"), 60, 6),  # a bad TransactTime
    (dict(t55="XRPUSDT"), 55, 5),  # an unknown symbol
])
def test_unusable_fill_is_rejected_trading_stops_and_reconcile_books_it(v, fields, tag,
                                                                       reason):
    """Item 2: an in-sequence fill with one unusable field is rejected (35=3), never
    silently dropped: trading stops, the order's status is asked for, and the venue's
    answer books the fill."""
    v.ready()
    cl = v.new(qty=100)
    seq = v.acc.fill(cl, "0.0005", "60000", "0.0005", **fields)
    assert v.reject_of(seq) == (tag, reason)
    v.until(lambda: v.status_requests(cl) == 1 and v.state.ready())
    assert v.position == 50 and v.order(cl)["cum_qty"] == 50
    assert v.state.positions[0]["open_cost"] == 50 * MID  # at the order's limit price
    e = v.execs_for(cl)[-1]
    assert (e["exec_type"], e["cum_qty"], e["last_qty"], e["position"]) == (
        ExecType.PARTIAL_FILL, 50, 50, 50)  # to the strategy the reconcile's booking is a fill
    assert v.count("fix.bad_reports") == 1 and v.count("oms.reconcile_mismatch") == 1


def test_gap_fill_over_a_fill_reconciles_at_once(v):
    """Item 3: the venue answers our ResendRequest with a GapFill over the seq that was a
    fill: the gateway reconciles at once, and the fill is booked."""
    v.ready()
    cl = v.new(qty=100)
    v.acc.fill(cl, "0.0004", "60000", "0.0004", lose=True)  # never reaches us
    v.acc.send("0", [])  # the gap shows
    v.until(lambda: v.status_requests(cl) == 1 and v.position == 40 and v.state.ready())
    assert v.acc.of_type("2") and v.count("fix.gap_fills_received") == 1
    assert v.count("fix.reconciles_asked") == 1 and v.order(cl)["cum_qty"] == 40
    e = v.execs_for(cl)[-1]
    assert (e["exec_type"], e["last_qty"], e["position"]) == (ExecType.PARTIAL_FILL, 40, 40)


def test_session_and_business_rejects_of_our_orders(v):
    """Item 4: a session Reject (35=3) or BusinessMessageReject (35=j) of our
    NewOrderSingle rejects the order (no longer open, off the risk limits) and the strategy
    gets the report; of our cancel, the order goes back to what it was."""
    v.ready()
    a = v.acc
    a.handlers[b"D"] = lambda acc, m, seq: acc.send(
        "3", [(45, seq), (371, 44), (373, 5), (58, "price out of band")])
    r1 = v.new()
    a.handlers[b"D"] = lambda acc, m, seq: acc.send(
        "j", [(45, seq), (372, "D"), (379, m.get(11).decode()), (380, 4), (58, "closed")])
    r2 = v.new()
    for cl in (r1, r2):
        (e,) = v.execs_for(cl)
        assert (e["exec_type"], e["ord_status"], e["source"]) == (
            ExecType.REJECTED, OrdStatus.REJECTED, ReportSource.VENUE)
        assert v.order(cl)["status"] == oms.REJECTED
    assert v.gw.open_orders() == 0 and v.state.positions[0]["open_buy"] == 0
    del a.handlers[b"D"]
    c = v.new()
    a.handlers[b"F"] = lambda acc, m, seq: acc.send(
        "3", [(45, seq), (373, 99), (58, "throttled")])
    rid = v.state.next_cl_ord_id()
    push_intent(v.orders, action=OrderAction.CANCEL, cl_ord_id=rid, orig_cl_ord_id=c,
                symbol_id=0, side=0)
    v.until(lambda: v.execs_for(rid))
    assert v.execs_for(rid)[0]["exec_type"] == ExecType.CANCEL_REJECTED
    assert v.order(c)["status"] == oms.NEW and v.gw.open_orders() == 1
    assert v.count("fix.order_rejects") == 3 and v.count("fix.rejects") == 2


def test_fills_that_cannot_be_booked_exactly_are_not_booked_silently(v):
    """Item 5: a repeated fill without CumQty, a fill without LastPx or with a negative one
    are rejected and reconciled (booked once, at a real price); an overfill is booked as
    the venue says, counted, and trading stops until reconciled."""
    v.ready()
    a = v.acc
    cl = v.new(qty=100)
    a.orders[cl].cum, a.orders[cl].status = "0.0005", b"1"
    seqs = [a.report(cl, "F", "1", t31="60000", t32="0.0005") for _ in range(2)]  # no 14
    for seq in seqs:
        assert v.reject_of(seq) == (14, 1)
    v.until(lambda: v.status_requests(cl) >= 1 and v.state.ready() and v.position == 50)
    assert v.order(cl)["cum_qty"] == 50  # once, not twice
    for fields, tag, reason in ((dict(t31=None), 31, 1), (dict(t31="-60000"), 31, 5),
                                (dict(t31="0"), 31, 5), (dict(t32="0"), 32, 5)):
        seq = a.fill(cl, "0.0001", "60000", "0.0005", **fields)  # the venue's cum stays
        assert v.reject_of(seq) == (tag, reason)
    v.until(lambda: v.state.ready())
    assert v.position == 50 and v.state.positions[0]["open_cost"] == 50 * MID
    assert v.count("fix.bad_reports") == 6
    over = v.new(qty=100)
    a.fill(over, "0.0015", "60000.01", "0.0015", status="2")  # 150 of 100
    v.until(lambda: len(v.execs_for(over)) == 2 and v.state.ready())
    e = v.execs_for(over)[1]
    assert (e["exec_type"], e["last_qty"], e["cum_qty"], e["position"]) == (
        ExecType.FILL, 150, 150, 200)
    assert v.position == 200 and v.order(over)["status"] == oms.FILLED
    assert v.count("oms.overfills") == 1 and v.count("oms.reconciles_wanted") == 1
    assert v.state.positions[0]["open_buy"] == 50  # the first order's rest, nothing else
    a.fill(over, "0.0015", "60000.01", "0.0015", status="2")  # the same fill again
    v.until(lambda: len(v.execs_for(over)) == 3)
    e = v.execs_for(over)[2]
    assert (e["exec_type"], e["last_qty"], e["position"]) == (ExecType.ORDER_STATUS, 0, 200)
    assert v.position == 200 and v.count("oms.duplicate_fills") == 1


def test_out_of_range_quantities_are_rejected(v):
    """Item 6: a quantity beyond int64 (or negative) never reaches the OMS as a wrapped
    value: rejected with its tag."""
    v.ready()
    cl = v.new(qty=100)
    for fields, tag, reason in ((dict(t38="99999999999999"), 38, 5),
                                (dict(t14="576460752303423489"), 14, 5),
                                (dict(t151="-0.001"), 151, 5),
                                (dict(t44="."), 44, 6), (dict(t44="-."), 44, 5)):
        seq = v.acc.report(cl, "0", "0", t14=fields.pop("t14", "0"), **fields)
        assert v.reject_of(seq) == (tag, reason), fields
    v.until(lambda: v.state.ready())
    o = v.order(cl)
    assert (o["qty"], o["leaves_qty"], o["cum_qty"], o["status"]) == (100, 100, 0, oms.NEW)
    assert v.count("fix.bad.out_of_range") == 4 and v.count("fix.bad.bad_number") == 1
    assert {(e["exec_type"], e["last_qty"]) for e in v.execs_for(cl)} == {
        (ExecType.NEW, 0), (ExecType.ORDER_STATUS, 0)}  # only the reconcile's answers


def test_tag_aliasing_is_rejected(v):
    """Item 7: a tag number beyond 2**64 or with a leading zero, a repeated tag, a NUL in a
    value: rejected, never read as the tag they alias. Wrong CompIDs: Reject and Logout."""
    v.ready()
    cl = v.new(qty=100)
    for extra, fields, tag, reason in (
            ([("18446744073709551627", "5")], {}, None, 0),
            ([("011", "5")], {}, None, 0),
            ([(55, "BTCUSDT")], {}, 55, 13),
            ([], dict(t55=b"BTCUSDT\x00"), 55, 6),
            ([(38, "0.002")], {}, 38, 13)):
        seq = v.acc.report(cl, "0", "0", extra=extra, t14="0", **fields)
        assert v.reject_of(seq) == (tag, reason), extra
    v.until(lambda: v.state.ready())
    assert v.order(cl)["qty"] == 100 and v.order(cl)["status"] == oms.NEW
    assert {(e["exec_type"], e["last_qty"]) for e in v.execs_for(cl)} == {
        (ExecType.NEW, 0), (ExecType.ORDER_STATUS, 0)}
    for header in ({49: "EVIL"}, {56: "SOMEONE"}):
        logons = v.acc.logons + 1
        seq = v.acc.send("0", [], header=header)
        assert v.reject_of(seq) == (49, 9)
        v.until(lambda n=logons: v.acc.logons == n and v.state.ready())
    assert [m.get(58) for m in v.acc.of_type("5")] == [b"CompID problem"] * 2
    assert v.count("fix.bad.comp_id") == 2 and v.count("fix.bad.bad_tag") == 2
    assert v.count("fix.bad.repeated_tag") == 2 and v.count("fix.bad.bad_char") == 1


def test_ring_hops_are_stamped_after_the_read(v):
    """Item 9: the order-ring hop is measured from after the poll that saw the intent (a
    pass's start time may be before the strategy published it), and an exec report's
    t_recv is after the read of its bytes, not the pass's start."""
    v.ready()
    g = v.gw
    a = g.args
    push_intent(v.orders, action=OrderAction.NEW, cl_ord_id=v.state.next_cl_ord_id(),
                symbol_id=0, side=0, price=MID, qty=100, tif=1, ord_type=1)
    hop = a.hists.order_hop
    hop[:] = 0
    early = time.monotonic_ns() - 10**9  # a pass that began before the intent was published
    assert flow.process_intents(a.intents, a.oms, a.risk, a.fix, a.execs, hop, early,
                                time.time_ns(), 16) == 1
    assert hop[H_COUNT] == 1 and hop[H_MIN] >= 0
    g.wio[0]["end"] = g.wio[0]["norig"] = 0  # not sent: this test reads its own socket
    cl = v.new(qty=100)
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        s = g.session
        theirs.sendall(encode([(35, "8"), (49, "VENUE"), (56, "CLIENT"), (34, s.next_in),
                               (52, ts(time.time_ns())), (37, "V1"), (11, cl), (17, "X1"),
                               (150, "0"), (39, "0"), (55, "BTCUSDT"), (54, "1")]))
        v.acc.next_out += 1
        before = time.monotonic_ns()
        flow._inbound(ours.fileno(), 0, a.fix, a.oms, a.execs, early)
    finally:
        ours.close()
        theirs.close()
    v.d.until(lambda: len(v.execs_for(cl)) == 2)
    assert v.execs_for(cl)[1]["t_recv_ns"] >= before


def test_hostile_session_counters_are_published(v):
    """The bad cases have counters from the start (at 0), for the monitor and summary."""
    names = v.gw._counter_values()
    for name in ("fix.bad_reports", "fix.rejects_sent", "fix.fatal", "fix.garbled",
                 "fix.order_rejects", "fix.reconciles_asked", "fix.bad.comp_id",
                 "fix.bad.internal", "oms.unknown_reports", "oms.reconcile_mismatch",
                 "oms.overfills", "oms.duplicate_fills"):
        assert names[name] == 0, name
    assert np.all(v.state.words[[L.W_OVERFILLS, L.W_DUPLICATE_FILLS]] == 0)


# ------------------------------------------------ the session core alone (item 15, FIX)
def _session(tmp_path):
    from pipeline.fix.session import Session
    from pipeline.instruments import symbol_matrix
    s = Session(SessionConfig("CLIENT", "VENUE", str(tmp_path / "st")),
                symbol_matrix(["BTCUSDT"]), TABLE.table())
    s.on_connected(10**12)
    s.take_output()
    s.feed(_venue("A", 1, (98, 0), (108, 30)))
    s.process(10**12)
    return s


def _venue(msg_type: str, seq: int, *body) -> bytes:
    return encode([(35, msg_type), (49, "VENUE"), (56, "CLIENT"), (34, seq),
                   (52, ts(time.time_ns())), *body])


def _sent(s) -> list:
    import simplefix
    p = simplefix.FixParser()
    p.append_buffer(s.take_output())
    out = []
    while (m := p.get_message()) is not None:
        out.append(m)
    return out


def test_one_bad_checksum_is_one_garbled_message(tmp_path):
    s = _session(tmp_path)
    bad = bytearray(_venue("0", 2))
    bad[-2] = ord("0") + (bad[-2] - ord("0") + 1) % 10  # checksum off by one
    s.feed(bytes(bad))
    s.process(10**12)
    s.feed(bytes(bad) + bytes(bad))  # two more, back to back: two more
    s.process(10**12)
    s.feed(_venue("0", 2))
    s.process(10**12)
    assert s.counters.garbled == 3 and s.next_in == 3


def test_sequence_reset_to_a_lower_number_is_rejected(tmp_path):
    s = _session(tmp_path)
    s.feed(_venue("0", 2) + _venue("0", 3))
    s.process(10**12)
    s.feed(_venue("4", 9, (36, 2)))  # Reset (no GapFillFlag) back to 2
    s.process(10**12)
    (rej,) = _sent(s)
    assert (rej.get(35), rej.get(45), rej.get(371), rej.get(373)) == (b"3", b"9", b"36", b"5")
    assert s.next_in == 4 and s.counters.bad["seq_reset_lower"] == 1 and s.want_disconnect is None
