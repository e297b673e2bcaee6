"""binance-spot orders through the gateway's jitted flow (risk -> OMS -> encoder, and
venue report -> OMS -> exec ring), no socket: XCN in both modes with each leg succeeding
and failing, XAK keeping the venue order id, mass cancel q accepted and refused, and the
venue's ErrorCode (25016) in exec reports and the per-code reject counters."""

from __future__ import annotations

import numpy as np
import pytest
import simplefix

from pipeline.fix import binance_spot as B
from pipeline.fix import codec as C
from pipeline.fix.session import inbound
from pipeline.fix.store import INDEX_SLOTS, NEXT_OUT, SEQ_WORDS, StoreView
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.orders import flow, oms, risk, warm
from pipeline.orders import journal as J
from pipeline.orders import views as V
from pipeline.orders.testing import read_execs
from pipeline.transport.ring import Ring
from shm_layouts import oms as L
from shm_layouts.records import (
    EXEC_REPORT,
    ORDER_INTENT,
    ExecType,
    FixDialect,
    OrderAction,
    OrdStatus,
    ReplaceMode,
    TimeInForce,
)

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.001"},
    {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.001"},
])
LIMITS = risk.RiskLimits(max_qty="1", max_notional="100000", max_position="5",
                         price_band_bps=100, max_orders_per_s=50, max_cancels_per_s=50,
                         max_open_orders=10, stale_md_ms=1000)
MID = 5_000_000
NOW = 10**12


class Rig:
    def __init__(self, execs: Ring, journal: np.ndarray, mode: ReplaceMode):
        self.execs_ring = execs
        self.slot = execs.join("test")
        self.words = np.zeros(L.CONTROL_WORDS, np.int64)
        self.words[L.W_READY] = 1
        self.words[L.W_NEXT_CL_ORD_ID] = 9000
        self.orders = np.zeros(L.ORDER_SLOTS, L.ORDER)
        self.positions = np.zeros(L.MAX_INSTRUMENTS, L.POSITION)
        self.risk = LIMITS.view(TABLE)
        for sid in range(2):
            self.risk.marks[sid] = (MID - 1, MID + 1, NOW, 0)
        seqs = np.zeros(SEQ_WORDS, np.int64)
        seqs[NEXT_OUT] = 2
        self.oms = V.OmsView(self.words, self.orders, self.positions, journal,
                             np.zeros(J.RECORD_WORDS - 2, np.int64))
        self.out = V.out_path(1 << 16)
        warm.default_shape(self.out.shadow)
        self.fix = V.Fix(self.out, StoreView(seqs, np.zeros(1 << 20, np.uint8),
                                             np.zeros((INDEX_SLOTS, 3), np.int64)),
                         C.symbols(symbol_matrix(["BTCUSDT", "ETHUSDT"]), TABLE.table()),
                         inbound(4096), C.comp_id_block("hfABCDEF", "SPOT"),
                         B.dialect_record(FixDialect.BINANCE_SPOT, mode))
        self.execs = V.execs_view(execs.view())
        self.intent = np.zeros(1, ORDER_INTENT)
        self.seen: list = []

    def submit(self, **fields) -> list[dict[int, bytes]]:
        r = self.intent[0]
        self.intent[:] = 0
        base = dict(symbol_id=0, side=0, price=MID, qty=10, tif=int(TimeInForce.GTC),
                    ord_type=1)
        for k, v in (base | fields).items():
            r[k] = v
        reason = flow.handle_intent(r, self.oms, self.risk, self.fix, self.execs, NOW,
                                    1_718_000_000_000_000_000)
        assert reason == 0, L.RiskReason(reason)
        io = self.out.io[0]
        raw = bytes(self.out.wire[: io["end"]])
        io["end"] = io["norig"] = 0
        p = simplefix.FixParser()
        p.append_buffer(raw)
        msgs = []
        while (m := p.get_message()) is not None:
            msgs.append({int(t): v for t, v in m.pairs})
        return msgs

    def new(self, cl, **kw):
        (m,) = self.submit(action=int(OrderAction.NEW), cl_ord_id=cl, **kw)
        assert m[35] == b"D"
        self.report("8", cl=cl, exec_type="0", status="0", order_id=5000 + cl)

    def report(self, msg_type, cl=0, orig=0, exec_type="", status="", order_id=0, code=0,
               text=b"", cum=None, last_qty=0, mass=""):
        f = np.zeros(C.N_FIELDS, np.int64)
        f[C.F_MSG_TYPE] = C.msg_code(msg_type)
        f[C.F_CL_ORD_ID], f[C.F_ORIG_CL_ORD_ID], f[C.F_ORDER_ID] = cl, orig, order_id
        f[C.F_EXEC_TYPE] = ord(exec_type) if exec_type else 0
        f[C.F_ORD_STATUS] = ord(status) if status else 0
        f[C.F_ERROR_CODE] = code
        f[C.F_MASS_RESPONSE] = ord(mass) if mass else 0
        f[C.F_LAST_QTY], f[C.F_LAST_PX] = last_qty, MID
        if cum is not None:
            f[C.F_CUM_QTY] = cum
            f[C.F_MASK] |= C.M_CUM_QTY
        f[C.F_TEXT_AT] = -1
        buf = self.fix.inb.buf
        if text:
            buf[: len(text)] = np.frombuffer(text, np.uint8)
            f[C.F_TEXT_AT], f[C.F_TEXT_LEN] = 0, len(text)
        flow.on_report(f, self.oms, self.execs, self.out.io, NOW)
        flow.note_reject(self.out.io, f, buf)
        self.seen.extend(read_execs(self.execs_ring, self.slot))

    def status(self, cl) -> OrdStatus:
        return OrdStatus(self.orders[oms.find(self.orders, cl)]["status"])

    def execs_for(self, cl):
        return [(ExecType(e["exec_type"]), OrdStatus(e["ord_status"]), int(e["reject_reason"]))
                for e in self.seen if e["cl_ord_id"] == cl]


@pytest.fixture
def parts(instance, tmp_path):
    execs = Ring.create(instance, "execs", "exec_report", EXEC_REPORT, 1024)
    yield execs, J.open_journal(tmp_path / "oms.journal", 4096)
    execs.close()


def replace(rig, cl, orig, **kw):
    return rig.submit(action=int(OrderAction.REPLACE), cl_ord_id=cl, orig_cl_ord_id=orig,
                      **kw)


@pytest.mark.parametrize("mode", [ReplaceMode.STOP_ON_FAILURE, ReplaceMode.ALLOW_FAILURE])
def test_xcn_both_legs_succeed(parts, mode):
    rig = Rig(*parts, mode)
    rig.new(100)
    (m,) = replace(rig, 101, 100, price=MID - 1)
    assert m[35] == b"XCN" and m[25033] == str(int(mode)).encode()
    assert m[41] == b"100" and m[37] == b"5100" and m[11] == b"101" and m[38] == b"0.01"
    assert rig.status(100) == OrdStatus.PENDING_CANCEL and rig.status(101) == \
        OrdStatus.PENDING_NEW
    # the cancel leg's report names the XCN's ClOrdID in 11 and the old order in 41
    rig.report("8", cl=101, orig=100, exec_type="4", status="4", order_id=5100)
    rig.report("8", cl=101, exec_type="0", status="0", order_id=7777)
    assert rig.status(100) == OrdStatus.CANCELED and rig.status(101) == OrdStatus.NEW
    new = rig.orders[oms.find(rig.orders, 101)]
    assert new["venue_order_id"] == 7777 and new["price"] == MID - 1  # a new order
    assert rig.words[L.W_OPEN_ORDERS] == 1 and rig.positions[0]["open_buy"] == 10


def test_xcn_stop_on_failure_cancel_refused_new_order_not_attempted(parts):
    rig = Rig(*parts, ReplaceMode.STOP_ON_FAILURE)
    rig.new(100)
    replace(rig, 101, 100, price=MID - 1)
    rig.report("9", cl=101, orig=100, code=-2011, text=b"Unknown order sent.")
    assert rig.status(100) == OrdStatus.NEW and rig.status(101) == OrdStatus.REJECTED
    assert (ExecType.CANCEL_REJECTED, OrdStatus.NEW, 2011) in rig.execs_for(101)
    assert (ExecType.REJECTED, OrdStatus.REJECTED, 2011) in rig.execs_for(101)
    io = rig.out.io[0]
    assert bytes(io["reject_text"][: io["reject_text_len"]]) == b"Unknown order sent."
    rejects = int(rig.words[L.W_REJECTS])
    rig.report("8", cl=101, exec_type="8", status="8", code=-2021)  # if the venue says so too
    assert rig.words[L.W_REJECTS] == rejects and rig.status(101) == OrdStatus.REJECTED
    assert rig.words[L.W_OPEN_ORDERS] == 1 and rig.positions[0]["open_buy"] == 10
    assert dict(zip(io["reject_codes"][:2], io["reject_counts"][:2], strict=True)) == \
        {-2011: 1, -2021: 1}
    assert V.venue_rejects_by_code(rig.out.io) == {"orders.venue_rejects.2011": 1,
                                                   "orders.venue_rejects.2021": 1}


def test_xcn_allow_failure_cancel_refused_new_order_placed(parts):
    rig = Rig(*parts, ReplaceMode.ALLOW_FAILURE)
    rig.new(100)
    replace(rig, 101, 100, price=MID - 1)
    rig.report("9", cl=101, orig=100, code=-2011)
    assert rig.status(100) == OrdStatus.NEW and rig.status(101) == OrdStatus.PENDING_NEW
    rig.report("8", cl=101, exec_type="0", status="0", order_id=7777)
    assert rig.status(101) == OrdStatus.NEW and rig.words[L.W_OPEN_ORDERS] == 2
    assert rig.positions[0]["open_buy"] == 20


@pytest.mark.parametrize("mode", [ReplaceMode.STOP_ON_FAILURE, ReplaceMode.ALLOW_FAILURE])
def test_xcn_cancel_done_new_order_rejected(parts, mode):
    rig = Rig(*parts, mode)
    rig.new(100)
    replace(rig, 101, 100, price=MID - 1)
    rig.report("8", cl=101, orig=100, exec_type="4", status="4")
    rig.report("8", cl=101, exec_type="8", status="8", code=-2010,
               text=b"Order would immediately match and take.")
    assert rig.status(100) == OrdStatus.CANCELED and rig.status(101) == OrdStatus.REJECTED
    assert (ExecType.REJECTED, OrdStatus.REJECTED, 2010) in rig.execs_for(101)
    assert rig.words[L.W_OPEN_ORDERS] == 0 and rig.positions[0]["open_buy"] == 0


def test_xcn_after_a_partial_fill_places_the_rest(parts):
    rig = Rig(*parts, ReplaceMode.STOP_ON_FAILURE)
    rig.new(100)
    rig.report("8", cl=100, exec_type="F", status="1", cum=4, last_qty=4)
    (m,) = replace(rig, 101, 100, price=MID - 1)
    assert m[38] == b"0.006"  # the intent's total 10 minus the 4 filled


def test_xak_amends_down_keeping_the_venue_order(parts):
    rig = Rig(*parts, ReplaceMode.STOP_ON_FAILURE)
    rig.new(100)
    (m,) = replace(rig, 102, 100, qty=6)
    assert m[35] == b"XAK" and m[38] == b"0.006" and m[41] == b"100" and m[37] == b"5100"
    assert rig.status(100) == OrdStatus.PENDING_REPLACE
    rig.report("XAR", cl=102, orig=100, code=-2038,
               text=b"The requested action would change no state; rejecting.")
    assert rig.status(100) == OrdStatus.NEW
    replace(rig, 103, 100, qty=6)
    rig.report("8", cl=103, orig=100, exec_type="5", status="0", order_id=5100)
    assert rig.status(100) == OrdStatus.REPLACED and rig.status(103) == OrdStatus.NEW
    o = rig.orders[oms.find(rig.orders, 103)]
    assert o["venue_order_id"] == 5100 and o["qty"] == 6 and o["leaves_qty"] == 6
    assert rig.positions[0]["open_buy"] == 6 and rig.words[L.W_OPEN_ORDERS] == 1
    # later reports may name the first ClOrdID in 41: they are about the live order
    rig.report("8", cl=103, orig=100, exec_type="F", status="1", cum=2, last_qty=2)
    assert rig.orders[oms.find(rig.orders, 103)]["cum_qty"] == 2
    assert rig.positions[0]["position"] == 2 and rig.status(100) == OrdStatus.REPLACED
    # a quantity increase or a price change is not an amend
    (m,) = replace(rig, 104, 103, qty=8)
    assert m[35] == b"XCN"


def test_mass_cancel_one_q_per_symbol_refused_then_accepted(parts):
    rig = Rig(*parts, ReplaceMode.STOP_ON_FAILURE)
    for cl, sid in ((100, 0), (101, 0), (102, 1)):
        rig.new(cl, symbol_id=sid)
    msgs = rig.submit(action=int(OrderAction.CANCEL_ALL), cl_ord_id=200, symbol_id=-1)
    assert [(m[35], m[55], m[530]) for m in msgs] == [(b"q", b"BTCUSDT", b"1"),
                                                      (b"q", b"ETHUSDT", b"1")]
    q_btc = int(msgs[0][11])
    assert {rig.status(c) for c in (100, 101, 102)} == {OrdStatus.PENDING_CANCEL}
    rig.report("r", cl=q_btc, mass="0", code=-1020)
    assert rig.status(100) == rig.status(101) == OrdStatus.NEW
    assert rig.status(102) == OrdStatus.PENDING_CANCEL  # its own q is still out
    msgs = rig.submit(action=int(OrderAction.CANCEL_ALL), cl_ord_id=201, symbol_id=0)
    assert len(msgs) == 1 and msgs[0][55] == b"BTCUSDT"
    rig.report("r", cl=int(msgs[0][11]), mass="1")
    for cl in (100, 101):
        rig.report("8", cl=cl, exec_type="4", status="4")
    assert rig.status(100) == rig.status(101) == OrdStatus.CANCELED
    assert rig.words[L.W_UNKNOWN_REPORTS] == 0


@pytest.mark.parametrize("mode", [ReplaceMode.STOP_ON_FAILURE, ReplaceMode.ALLOW_FAILURE])
def test_xcn_refused_before_either_leg_keeps_the_old_order(parts, mode):
    """Filters fail before the cancel: only the new order's REJECTED comes back."""
    rig = Rig(*parts, mode)
    rig.new(100)
    replace(rig, 101, 100, price=MID - 1)
    rig.report("8", cl=101, exec_type="8", status="8", code=-1013)
    assert rig.status(101) == OrdStatus.REJECTED and rig.status(100) == OrdStatus.NEW
    assert (ExecType.REJECTED, OrdStatus.REJECTED, 1013) in rig.execs_for(101)
    assert rig.words[L.W_OPEN_ORDERS] == 1 and rig.positions[0]["open_buy"] == 10
    (m,) = rig.submit(action=int(OrderAction.CANCEL), cl_ord_id=102, orig_cl_ord_id=100)
    assert m[35] == b"F" and m[41] == b"100"  # cancelable again
