"""Pre-trade risk: rate windows, and the property that no sequence of intents (with venue
events in between) ever puts a breaching order on the wire."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
import simplefix
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.fix import codec as C
from pipeline.fix.session import inbound
from pipeline.fix.store import INDEX_SLOTS, NEXT_OUT, SEQ_WORDS, StoreView
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.orders import flow, oms, risk, warm
from pipeline.orders import journal as J
from pipeline.orders import views as V
from pipeline.transport.ring import Ring
from shm_layouts import oms as L
from shm_layouts.records import EXEC_REPORT, ORDER_INTENT

TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.001"}])
INST = TABLE[0]
LIMITS = risk.RiskLimits(max_qty="0.05", max_notional="4000", max_position="0.08",
                         price_band_bps=50, max_orders_per_s=5, max_cancels_per_s=4,
                         max_open_orders=3, stale_md_ms=1000)
# two limit sets so that no limit is always masked by another in the generated ranges:
# loose notional (the qty cap binds) / tight notional and rate
LIMIT_SETS = [LIMITS, risk.RiskLimits(max_qty="0.05", max_notional="2200",
                                      max_position="0.08", price_band_bps=50,
                                      max_orders_per_s=3, max_cancels_per_s=4,
                                      max_open_orders=2, stale_md_ms=1000)]
MID = 5_000_000  # 50000.00
MS = 1_000_000


class Rig:
    """handle_intent with real arrays and a real exec ring, no socket: the wire buffer is
    inspected after every intent."""

    def __init__(self, execs: Ring, journal: np.ndarray, limits: risk.RiskLimits = LIMITS):
        self.words = np.zeros(L.CONTROL_WORDS, np.int64)
        self.words[L.W_READY] = 1
        self.orders = np.zeros(L.ORDER_SLOTS, L.ORDER)
        self.positions = np.zeros(L.MAX_INSTRUMENTS, L.POSITION)
        self.risk = limits.view(TABLE)
        self.limits, self.g, self.marks, self.rates = self.risk[:4]
        self.seqs = np.zeros(SEQ_WORDS, np.int64)
        self.seqs[NEXT_OUT] = 1
        self.jdata = np.zeros(1 << 20, np.uint8)
        self.jindex = np.zeros((INDEX_SLOTS, 3), np.int64)
        self.j = journal
        self.j[0, 0] = 0
        self.oms = V.OmsView(self.words, self.orders, self.positions, journal,
                             np.zeros(J.RECORD_WORDS - 2, np.int64))
        self.out = V.out_path(1 << 16)
        warm.default_shape(self.out.shadow)
        self.wire, self.wio, self.torig, self.scratch = self.out[:4]
        self.fix = V.Fix(self.out, StoreView(self.seqs, self.jdata, self.jindex),
                         C.symbols(symbol_matrix(["BTCUSDT"]), TABLE.table()), inbound(16),
                         C.comp_id_block("C", "V"))
        self.execs = V.execs_view(execs.view())  # no gating consumer: never full
        self.intent = np.zeros(1, ORDER_INTENT)

    def submit(self, now, **fields) -> tuple[int, list]:
        r = self.intent[0]
        self.intent[:] = 0
        for k, v in fields.items():
            r[k] = v
        reason = flow.handle_intent(r, self.oms, self.risk, self.fix, self.execs, now, 10**18)
        io = self.wio[0]
        raw = bytes(self.wire[: io["end"]])
        io["end"] = io["norig"] = 0
        p = simplefix.FixParser()
        p.append_buffer(raw)
        msgs = []
        while (m := p.get_message()) is not None:
            msgs.append(m)
        return reason, msgs

    def venue(self, cl, exec_type, status, last_qty=0, cum=None, px=MID, orig=0):
        f = np.zeros(C.N_FIELDS, np.int64)
        f[C.F_MSG_TYPE] = C.MSG_EXEC_REPORT
        f[C.F_CL_ORD_ID] = cl
        f[C.F_ORIG_CL_ORD_ID] = orig
        f[C.F_EXEC_TYPE] = ord(exec_type)
        f[C.F_ORD_STATUS] = ord(status)
        f[C.F_LAST_QTY] = last_qty
        f[C.F_LAST_PX] = px
        if cum is not None:
            f[C.F_CUM_QTY] = cum
            f[C.F_MASK] |= C.M_CUM_QTY
        oms.apply_report(self.words, self.orders, self.positions, f, 0)


@pytest.fixture
def parts(instance, tmp_path):
    execs = Ring.create(instance, "execs", "exec_report", EXEC_REPORT, 1024)
    yield execs, J.open_journal(tmp_path / "oms.journal", 4096)
    execs.close()


@pytest.fixture
def rig(parts):
    return Rig(*parts)


def test_order_rate_is_a_sliding_one_second_window(rig):
    rig.marks[0] = (MID - 1, MID + 1, 1, 0)
    t = 10**12
    rig.marks[0, risk.M_TIME] = t
    results = []
    for i in range(8):
        now = t + i * 100 * MS  # 10 per second offered, 5 allowed
        rig.marks[0, risk.M_TIME] = now
        reason, _ = rig.submit(now, action=1, cl_ord_id=100 + i, symbol_id=0, side=i % 2,
                               price=MID, qty=1, tif=1, ord_type=1)
        results.append(reason)
        # keep open orders below the cap: the venue cancels each at once
        if reason == 0:
            rig.venue(100 + i, "4", "4")
    assert results[:5] == [0] * 5 and results[5:] == [L.RiskReason.ORDER_RATE] * 3
    rig.marks[0, risk.M_TIME] = t + 1001 * MS
    assert rig.submit(t + 1001 * MS, action=1, cl_ord_id=200, symbol_id=0, side=0,
                      price=MID, qty=1, tif=1, ord_type=1)[0] == 0


def test_kill_switch_still_lets_cancels_through(rig):
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    assert rig.submit(now, action=1, cl_ord_id=5, symbol_id=0, side=0, price=MID, qty=1,
                      tif=1, ord_type=1)[0] == 0
    rig.words[L.W_KILL] = 1
    assert rig.submit(now, action=1, cl_ord_id=6, symbol_id=0, side=0, price=MID, qty=1,
                      tif=1, ord_type=1)[0] == L.RiskReason.KILL_SWITCH
    reason, msgs = rig.submit(now, action=2, cl_ord_id=7, orig_cl_ord_id=5, symbol_id=0)
    assert reason == 0 and msgs[0].get(35) == b"F"


qtys = st.one_of(st.sampled_from([1, 5, 25, 40, 50, 51, 70]), st.integers(1, 70))
offsets = st.one_of(st.sampled_from([0, 24_000, -25_000, 25_001, -26_000]),
                    st.integers(-40_000, 40_000))  # the band is +-25,000 ticks
ops = st.one_of(
    st.tuples(st.just("new"), st.integers(0, 1), offsets, qtys, st.booleans()),
    st.tuples(st.just("new"), st.integers(0, 1), offsets, qtys, st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("replace"), st.integers(0, 20), offsets, qtys),
    st.tuples(st.just("fill"), st.integers(0, 20), qtys),
    st.tuples(st.just("venue_cancel"), st.integers(0, 20)),
    st.tuples(st.just("mid"), st.integers(-3000, 3000)),
    st.tuples(st.just("wait"), st.sampled_from([0, 50, 300, 999, 1001, 1500])),
    st.tuples(st.just("kill"), st.booleans()),
    st.tuples(st.just("dup"), st.integers(0, 20)),
)


@pytest.mark.parametrize("limit_set", [0, 1])
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.lists(ops, min_size=3, max_size=80))
@example(seq=[("new", 0, 0, 1, False), ("new", 1, 0, 1, False), ("new", 0, 0, 1, False),
              ("cancel", 0), ("new", 1, 0, 1, False), ("cancel", 1), ("new", 0, 0, 1, False),
              ("cancel", 2), ("new", 1, 0, 1, False), ("cancel", 3), ("new", 0, 0, 1, False)])

def test_no_breaching_order_ever_reaches_the_wire(parts, limit_set, seq):
    LIMITS = LIMIT_SETS[limit_set]  # noqa: N806
    rig = Rig(*parts, LIMITS)
    max_qty = INST.lots(LIMITS.max_qty)
    max_pos = INST.lots(LIMITS.max_position)
    now = 10**12
    mid = MID
    md_time = now
    kill = False
    # independent model, built only from what went on the wire and what the venue did
    live: dict[int, list] = {}  # cl -> [side, qty, cum]
    position = 0
    wire_times: list[int] = []
    seen_ids: set[int] = set()
    ids = iter(range(1, 10**6))
    cls: list[int] = []

    def open_qty(side):
        return sum(q - c for s, q, c in live.values() if s == side)

    for op in seq:
        kind = op[0]
        if kind == "mid":
            mid = max(1000, mid + op[1])
            md_time = now
        elif kind == "wait":
            now += op[1] * MS
        elif kind == "kill":
            kill = op[1]
            rig.words[L.W_KILL] = int(kill)
        elif kind in ("fill", "venue_cancel") and cls:
            cl = cls[op[1] % len(cls)]
            if cl in live:
                s, q, c = live[cl]
                if kind == "fill":
                    n = min(op[2], q - c)
                    live[cl][2] += n
                    position += n if s == 0 else -n
                    rig.venue(cl, "F", "2" if c + n == q else "1", n, c + n)
                    if c + n == q:
                        del live[cl]
                else:
                    del live[cl]
                    rig.venue(cl, "4", "4")
        rig.marks[0] = (mid - 1, mid + 1, md_time, 0)
        if kind in ("new", "dup"):
            if kind == "dup" and cls:
                cl = cls[op[1] % len(cls)]
                side, off, qty, market = 0, 0, 1, False
            else:
                cl = next(ids)
                _, side, off, qty, market = op if kind == "new" else (0, 0, 0, 1, False)
            _, msgs = rig.submit(now, action=1, cl_ord_id=cl, symbol_id=0, side=side,
                                 price=mid + off, qty=qty, tif=1, ord_type=2 if market else 1)
        elif kind == "cancel" and cls:
            orig = cls[op[1] % len(cls)]
            _, msgs = rig.submit(now, action=2, cl_ord_id=next(ids), orig_cl_ord_id=orig,
                                 symbol_id=0)
        elif kind == "replace" and cls:
            orig = cls[op[1] % len(cls)]
            side = live[orig][0] if orig in live else 0
            _, msgs = rig.submit(now, action=3, cl_ord_id=next(ids), orig_cl_ord_id=orig,
                                 symbol_id=0, side=side, price=mid + op[2], qty=op[3],
                                 tif=1, ord_type=1)
        else:
            continue
        for m in msgs:
            t = m.get(35)
            cl = int(m.get(11))
            assert cl not in seen_ids, "duplicate ClOrdID on the wire"
            seen_ids.add(cl)
            if t == b"F":
                continue  # a cancel never adds risk
            assert not kill, "order sent with the kill switch on"
            assert now - md_time <= LIMITS.stale_md_ms * MS, "order on stale market data"
            side = 0 if m.get(54) == b"1" else 1
            qty = INST.lots(m.get(38).decode())
            assert qty <= max_qty
            px = INST.ticks(m.get(44).decode()) if m.get(44) else (mid + 1 if side == 0
                                                                   else mid - 1)
            notional = Decimal(m.get(44).decode() if m.get(44) else INST.price_str(px)) * \
                Decimal(m.get(38).decode())
            assert notional <= Decimal(LIMITS.max_notional)
            if m.get(44):
                assert abs(px - mid) * 10000 <= LIMITS.price_band_bps * mid
            wire_times.append(now)
            assert sum(1 for w in wire_times if w > now - 10**9) <= LIMITS.max_orders_per_s
            if t == b"D":
                assert len(live) + 1 <= LIMITS.max_open_orders
                worst = position + open_qty(0) + qty if side == 0 else \
                    -(position - open_qty(1) - qty)
                assert worst <= max_pos, "position limit breached counting open orders"
                live[cl] = [side, qty, 0]
                cls.append(cl)
            else:  # G: the order continues under the new id with the new quantity
                orig = int(m.get(41))
                s, _q, c = live.pop(orig)
                new_leaves = qty - c
                worst = position + open_qty(0) + new_leaves if side == 0 else \
                    -(position - open_qty(1) - new_leaves)
                assert worst <= max_pos
                # the venue confirms the replace at once in this model
                live[cl] = [s, qty, c]
                cls.append(cl)
                f = np.zeros(C.N_FIELDS, np.int64)
                f[C.F_MSG_TYPE] = C.MSG_EXEC_REPORT
                f[C.F_CL_ORD_ID], f[C.F_ORIG_CL_ORD_ID] = cl, orig
                f[C.F_EXEC_TYPE], f[C.F_ORD_STATUS] = ord("5"), ord("0")
                oms.apply_report(rig.words, rig.orders, rig.positions, f, 0)
        # cancels are acknowledged by the venue at once in this model
        for m in msgs:
            if m.get(35) == b"F":
                orig = int(m.get(41))
                live.pop(orig, None)
                rig.venue(int(m.get(11)), "4", "4", orig=orig)


def test_cancel_rate_and_cancel_checks(rig):
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    for cl in (1, 2, 3):
        assert rig.submit(now, action=1, cl_ord_id=cl, symbol_id=0, side=0, price=MID, qty=1,
                          tif=1, ord_type=1)[0] == 0
    reasons = []
    for i in range(6):  # 4 cancels/s allowed; each cancel is rejected by the venue at once
        reason, _ = rig.submit(now + i, action=2, cl_ord_id=10 + i, orig_cl_ord_id=1 + i % 3,
                               symbol_id=0)
        reasons.append(reason)
        f = np.zeros(C.N_FIELDS, np.int64)
        f[C.F_MSG_TYPE], f[C.F_CL_ORD_ID], f[C.F_ORIG_CL_ORD_ID] = C.MSG_CANCEL_REJECT, \
            10 + i, 1 + i % 3
        oms.apply_report(rig.words, rig.orders, rig.positions, f, 0)
    assert reasons == [0, 0, 0, 0, L.RiskReason.CANCEL_RATE, L.RiskReason.CANCEL_RATE]
    # a second cancel while the first is in flight, and a cancel of an unknown order
    later = now + 2 * 10**9
    assert rig.submit(later, action=2, cl_ord_id=20, orig_cl_ord_id=1, symbol_id=0)[0] == 0
    assert rig.submit(later, action=2, cl_ord_id=21, orig_cl_ord_id=1, symbol_id=0)[0] == \
        L.RiskReason.ORDER_NOT_CANCELABLE
    assert rig.submit(later, action=2, cl_ord_id=22, orig_cl_ord_id=999, symbol_id=0)[0] == \
        L.RiskReason.UNKNOWN_ORDER


# ---------------------------------------------------------------- denials counted by reason
R = L.RiskReason


def _new(rig, now, cl, **over):
    fields = dict(action=1, cl_ord_id=cl, symbol_id=0, side=0, price=MID, qty=1, tif=1,
                  ord_type=1) | over
    return rig.submit(now, **fields)[0]


def _live(rig, now, cl=5):
    assert _new(rig, now, cl) == 0  # a resting order to cancel or collide with


def _rate_spent(note, n):
    def setup(rig, now):
        for _ in range(n):
            note(rig.rates, rig.g, now)
    return setup


def _filters(**fields):
    """Set-up: the venue's rules (``risk.FILTER`` fields) on instrument 0."""
    def setup(rig, now):
        for k, v in fields.items():
            rig.risk.filters[0][k] = v
    return setup


# reason -> (limit set, set-up on a ready rig with fresh marks, the denied intent's fields)
DENIALS = {
    R.KILL_SWITCH: (0, lambda rig, now: rig.words.__setitem__(L.W_KILL, 1), {}),
    R.NOT_READY: (0, lambda rig, now: rig.words.__setitem__(L.W_READY, 0), {}),
    R.UNKNOWN_SYMBOL: (0, None, {"symbol_id": 5}),
    R.BAD_ORDER: (0, None, {"qty": 0}),
    R.MAX_QTY: (0, None, {"qty": 51}),
    R.MAX_NOTIONAL: (1, None, {"qty": 45}),  # 45 * 50000.00 > 2200
    R.MAX_POSITION: (0, lambda rig, now: rig.positions[0].__setitem__("position", 60),
                     {"qty": 30}),
    R.PRICE_BAND: (0, None, {"price": MID + 30_000}),
    R.ORDER_RATE: (0, _rate_spent(risk.note_order, 5), {}),
    R.CANCEL_RATE: (0, lambda rig, now: (_live(rig, now), _rate_spent(risk.note_cancel, 4)(
        rig, now)), {"action": 2, "orig_cl_ord_id": 5}),
    R.MAX_OPEN_ORDERS: (0, lambda rig, now: rig.words.__setitem__(L.W_OPEN_ORDERS, 3), {}),
    R.DUPLICATE_ID: (0, _live, {"cl_ord_id": 5}),
    R.STALE_MARKET_DATA: (0, lambda rig, now: rig.marks.__setitem__((0, risk.M_TIME),
                                                                    now - 2_000 * MS), {}),
    R.UNKNOWN_ORDER: (0, None, {"action": 2, "orig_cl_ord_id": 999}),
    R.TABLE_FULL: (0, _live, {"cl_ord_id": 5 + L.ORDER_SLOTS}),
    R.NO_MARKET_DATA: (0, lambda rig, now: rig.marks.__setitem__(0, 0), {}),
    R.ORDER_NOT_CANCELABLE: (0, lambda rig, now: (_live(rig, now), rig.submit(
        now, action=2, cl_ord_id=6, orig_cl_ord_id=5, symbol_id=0)),
        {"action": 2, "orig_cl_ord_id": 5}),
    # the venue's exchange rules (price MID = 5000000 ticks, qty 1 lot, a BUY)
    R.PRICE_TICK: (0, _filters(price_step=7), {}),  # 5000000 % 7 != 0
    R.PRICE_RANGE: (0, _filters(min_price=MID + 1), {}),
    R.LOT_STEP: (0, _filters(qty_step=2), {}),
    R.MIN_QTY: (0, _filters(min_qty=2), {}),
    R.LOT_MAX_QTY: (0, _filters(max_qty=1), {"qty": 2}),
    R.MIN_NOTIONAL: (0, _filters(min_notional=MID + 1), {}),
    R.NOTIONAL_MAX: (0, _filters(max_notional=2 * MID - 1), {"qty": 2}),
    R.PERCENT_PRICE: (0, _filters(bid_up_ppm=999_999), {}),
    R.MAX_NUM_ORDERS: (0, lambda rig, now: (_filters(max_num_orders=2)(rig, now),
                                            rig.words.__setitem__(L.W_OPEN_ORDERS, 2)), {}),
    R.VENUE_MAX_POSITION: (0, _filters(max_position=10, holding_offset=10), {}),
}


def test_every_risk_reason_has_a_denial_scenario():
    # JOURNAL_FULL is decided before risk, in process_intents: see test_orders_gateway
    assert set(DENIALS) | {R.OK, R.JOURNAL_FULL} == set(R)


@pytest.mark.parametrize("reason", list(DENIALS), ids=lambda r: r.name.lower())
def test_each_denial_increments_exactly_its_reason_counter(parts, reason):
    limit_set, setup, fields = DENIALS[reason]
    rig = Rig(*parts, limits=LIMIT_SETS[limit_set])
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    if setup is not None:
        setup(rig, now)
    before = rig.wio.copy()
    assert _new(rig, now, 100, **fields) == reason
    assert rig.wio[0]["denied"] - before[0]["denied"] == 1
    by_reason = np.zeros(V.DENIAL_REASONS, np.int64)
    by_reason[reason] = 1
    assert list(rig.wio[0]["denied_by"] - before[0]["denied_by"]) == \
        list(by_reason)  # its own counter, no other
    counts = V.denials_by_reason(rig.wio)
    assert counts[f"orders.denied.{reason.name.lower()}"] == 1
    assert sum(counts.values()) == rig.wio[0]["denied"]


def test_denial_counter_names_cover_every_reason_in_lower_case():
    names = V.denials_by_reason(np.zeros(1, V.GATEWAY_IO))
    assert len(names) == len(R) - 1 and "orders.denied.ok" not in names
    assert {"orders.denied.order_rate", "orders.denied.not_ready",
            "orders.denied.journal_full"} <= set(names)
    assert all(n == n.lower() for n in names)
