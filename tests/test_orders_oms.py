"""OMS state machine, fills, positions and PnL, including the real-world races."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.fix import codec as C
from pipeline.orders import oms
from pipeline.orders.oms import (
    CANCELED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    PENDING_CANCEL,
    PENDING_NEW,
    PENDING_REPLACE,
    REJECTED,
    REPLACED,
)
from shm_layouts.oms import (
    CONTROL_WORDS,
    ORDER,
    ORDER_SLOTS,
    POSITION,
    W_DUPLICATE_FILLS,
    W_OPEN_ORDERS,
    W_OVERFILLS,
    W_READY,
    W_RECONCILE_WANTED,
)
from shm_layouts.records import ORDER_INTENT, OrderType, TimeInForce


class Book:
    def __init__(self):
        self.words = np.zeros(CONTROL_WORDS, np.int64)
        self.orders = np.zeros(ORDER_SLOTS, ORDER)
        self.pos = np.zeros(4, POSITION)

    def new(self, cl, side=0, price=100, qty=10, sid=0):
        r = np.zeros(1, ORDER_INTENT)[0]
        r["cl_ord_id"], r["symbol_id"], r["side"], r["price"], r["qty"] = cl, sid, side, price, qty
        r["tif"], r["ord_type"], r["t_origin_ns"] = TimeInForce.GTC, OrderType.LIMIT, 1
        return oms.accept_new(self.words, self.orders, self.pos, r, 7, 1)

    def o(self, cl):
        return self.orders[oms.find(self.orders, cl)]

    def report(self, cl, exec_type, status="0", orig=0, last_qty=0, last_px=0, cum=None,
               msg=C.MSG_EXEC_REPORT, **extra):
        f = np.zeros(C.N_FIELDS, np.int64)
        f[C.F_MSG_TYPE] = msg
        f[C.F_CL_ORD_ID] = cl
        f[C.F_ORIG_CL_ORD_ID] = orig
        f[C.F_EXEC_TYPE] = ord(exec_type) if exec_type else 0
        f[C.F_ORD_STATUS] = ord(status)
        f[C.F_LAST_QTY] = last_qty
        f[C.F_LAST_PX] = last_px
        f[C.F_ORDER_ID] = 555
        if cum is not None:
            f[C.F_CUM_QTY] = cum
            f[C.F_MASK] |= C.M_CUM_QTY
        for k, v in extra.items():
            f[getattr(C, "F_" + k.upper())] = v
            f[C.F_MASK] |= getattr(C, "M_" + k.upper(), 0)
        return oms.apply_report(self.words, self.orders, self.pos, f, 2)

    @property
    def open(self):
        return int(self.words[W_OPEN_ORDERS])


def test_new_ack_partial_fill_fill():
    b = Book()
    b.new(1, qty=10)
    assert b.o(1)["status"] == PENDING_NEW and b.open == 1 and b.pos[0]["open_buy"] == 10
    assert b.report(1, "0")[1] == oms.X_NEW and b.o(1)["status"] == NEW
    assert b.o(1)["venue_order_id"] == 555
    assert b.report(1, "F", "1", last_qty=4, last_px=100, cum=4)[1] == oms.X_PARTIAL
    assert b.o(1)["status"] == PARTIALLY_FILLED and b.o(1)["leaves_qty"] == 6
    assert b.pos[0]["position"] == 4 and b.pos[0]["open_buy"] == 6
    assert b.report(1, "F", "2", last_qty=6, last_px=101, cum=10)[1] == oms.X_FILL
    assert b.o(1)["status"] == FILLED and b.open == 0 and b.pos[0]["open_buy"] == 0
    assert b.pos[0]["position"] == 10 and b.pos[0]["open_cost"] == 4 * 100 + 6 * 101


def test_duplicate_fill_is_not_counted_twice():
    b = Book()
    b.new(1)
    b.report(1, "F", "1", last_qty=4, last_px=100, cum=4)
    b.report(1, "F", "1", last_qty=4, last_px=100, cum=4, poss_dup=1)  # PossDup resend
    assert b.pos[0]["position"] == 4 and b.o(1)["cum_qty"] == 4


def test_cancel_then_canceled():
    b = Book()
    b.new(1)
    b.report(1, "0")
    oms.accept_cancel(b.orders, oms.find(b.orders, 1), 2, 3)
    assert b.o(1)["status"] == PENDING_CANCEL and b.o(1)["prev_status"] == NEW
    b.report(2, "4", "4", orig=1)
    assert b.o(1)["status"] == CANCELED and b.open == 0 and b.pos[0]["open_buy"] == 0


def test_fill_after_cancel_sent_partial_then_cancel_reject_restores():
    b = Book()
    b.new(1, qty=10)
    b.report(1, "0")
    oms.accept_cancel(b.orders, oms.find(b.orders, 1), 2, 3)
    b.report(1, "F", "1", last_qty=3, last_px=100, cum=3)  # fill races our cancel
    o = b.o(1)
    assert o["status"] == PENDING_CANCEL and o["prev_status"] == PARTIALLY_FILLED
    assert o["leaves_qty"] == 7 and b.pos[0]["position"] == 3
    assert b.report(2, "", msg=C.MSG_CANCEL_REJECT, orig=1)[1] == oms.X_CANCEL_REJECTED
    assert b.o(1)["status"] == PARTIALLY_FILLED and b.o(1)["pending_id"] == 0 and b.open == 1


def test_full_fill_after_cancel_sent_then_late_cancel_reject():
    b = Book()
    b.new(1, qty=10)
    b.report(1, "0")
    oms.accept_cancel(b.orders, oms.find(b.orders, 1), 2, 3)
    b.report(1, "F", "2", last_qty=10, last_px=100, cum=10)
    assert b.o(1)["status"] == FILLED and b.open == 0
    b.report(2, "", msg=C.MSG_CANCEL_REJECT, orig=1)  # "too late to cancel"
    assert b.o(1)["status"] == FILLED and b.open == 0 and b.pos[0]["position"] == 10


def test_unsolicited_cancel():
    b = Book()
    b.new(1)
    b.report(1, "0")
    b.report(1, "4", "4")
    assert b.o(1)["status"] == CANCELED and b.open == 0 and b.pos[0]["open_buy"] == 0


def test_reject_and_unknown_report():
    b = Book()
    b.new(1)
    assert b.report(1, "8", "8")[1] == oms.X_REJECTED
    assert b.o(1)["status"] == REJECTED and b.open == 0
    assert b.report(999, "0")[0] == -1


def test_replace_moves_order_to_new_id_and_reject_restores():
    b = Book()
    b.new(1, qty=10, price=100)
    b.report(1, "0")
    oms.accept_replace(b.orders, oms.find(b.orders, 1), 2, 105, 12, 3)
    assert b.o(1)["status"] == PENDING_REPLACE
    b.report(2, "", msg=C.MSG_CANCEL_REJECT, orig=1)
    assert b.o(1)["status"] == NEW
    oms.accept_replace(b.orders, oms.find(b.orders, 1), 3, 105, 12, 3)
    b.report(1, "F", "1", last_qty=2, last_px=100, cum=2)
    slot, et = b.report(3, "5", "1", orig=1, price=105, order_qty=12, cum=2)
    assert et == oms.X_REPLACED and b.o(1)["status"] == REPLACED
    n = b.o(3)
    assert (n["price"], n["qty"], n["cum_qty"], n["leaves_qty"]) == (105, 12, 2, 10)
    assert n["status"] == PARTIALLY_FILLED and b.open == 1 and b.pos[0]["open_buy"] == 10


def test_status_reconcile_adopts_venue_view():
    b = Book()
    b.new(1, qty=10)
    b.new(2, qty=5)
    b.new(3, qty=5)
    b.report(1, "I", "1", cum=4, last_px=99)  # filled while we were down
    assert b.o(1)["cum_qty"] == 4 and b.o(1)["status"] == PARTIALLY_FILLED
    b.report(2, "I", "4", cum=0)  # canceled while we were down
    b.report(3, "I", "8")  # the venue never got it
    assert b.o(2)["status"] == CANCELED and b.o(3)["status"] == REJECTED
    assert b.open == 1 and b.pos[0]["position"] == 4 and b.pos[0]["open_buy"] == 6


@pytest.mark.parametrize("fills,position,cost,realised", [
    ([(0, 10, 100), (1, 4, 110)], 6, 600, 40),  # long, partly closed at a profit
    ([(1, 10, 100), (0, 10, 90)], 0, 0, 100),  # short, covered at a profit
    ([(0, 5, 100), (1, 8, 90)], -3, -270, -50),  # flip from long to short
    ([(0, 3, 100), (0, 3, 102), (1, 6, 101)], 0, 0, 0),
])
def test_position_and_realised_pnl(fills, position, cost, realised):
    pos = np.zeros(1, POSITION)
    for side, qty, px in fills:
        oms.apply_fill(pos, 0, side, qty, px)
    assert (pos[0]["position"], pos[0]["open_cost"], pos[0]["realised"]) == (
        position, cost, realised)
    assert oms.unrealised(pos, 0, 110) == position * 110 - cost


def test_overfill_is_booked_as_the_venue_says_and_stops_trading():
    """Issue 18: CumQty beyond the order is the venue's real position: booked in full,
    counted, and trading stops (W_READY 0) until the gateway has reconciled."""
    b = Book()
    b.words[W_READY] = 1
    b.new(1, qty=10)
    assert b.report(1, "F", "2", last_qty=15, last_px=100, cum=15)[1] == oms.X_FILL
    assert b.pos[0]["position"] == 15 and b.o(1)["cum_qty"] == 15 and b.o(1)["status"] == FILLED
    assert b.pos[0]["open_buy"] == 0 and b.open == 0
    assert (b.words[W_OVERFILLS], b.words[W_RECONCILE_WANTED], b.words[W_READY]) == (1, 1, 0)


def test_fill_on_a_canceled_order_is_booked_not_dropped():
    b = Book()
    b.new(1, qty=10)
    b.report(1, "4", "4")
    assert b.o(1)["status"] == CANCELED
    b.report(1, "F", "4", last_qty=3, last_px=100, cum=3)  # the venue filled it before
    assert b.pos[0]["position"] == 3 and b.words[W_OVERFILLS] == 1
    assert b.o(1)["status"] == CANCELED and b.open == 0 and b.pos[0]["open_buy"] == 0


def test_repeated_fill_is_a_status_not_a_fill():
    b = Book()
    b.new(1, qty=10)
    b.report(1, "F", "1", last_qty=4, last_px=100, cum=4)
    assert b.report(1, "F", "1", last_qty=4, last_px=100, cum=4)[1] == oms.X_STATUS
    assert b.pos[0]["position"] == 4 and b.words[W_DUPLICATE_FILLS] == 1
