"""Order management in numba: the order state machine, fills, positions and PnL.

State lives in the OMS segment (``shm_layouts.oms``): ``words`` (control), ``orders``
(ORDER rows, slot = cl_ord_id & mask) and ``positions`` (POSITION rows per instrument).
Inputs are accepted intents (``accept_*``, after risk) and parsed FIX application messages
(``apply_report``, the codec's field vector). Each input is also appended to the journal
by the caller, and replaying the journal through these same functions rebuilds the state.

Races handled (each has a test):
- fill after cancel sent: the order stays PENDING_CANCEL with ``prev_status`` updated, or
  becomes FILLED if nothing is left; the late cancel reject then changes nothing;
- cancel/replace reject: ``prev_status`` is restored;
- unsolicited cancel/expiry: any live order goes terminal and releases its open quantity;
- duplicate fills (PossDup resend after a status reconcile): a fill is applied only if it
  raises our cumulative quantity to the report's CumQty, so it can never count twice
  (counted, and reported as a status, not a fill);
- overfills (CumQty beyond the order, or a fill on an order already done): the venue's
  fill is booked as it says (its position is the real one), counted, and trading stops
  until the gateway has reconciled with the venue (``W_RECONCILE_WANTED``).
"""

from __future__ import annotations

from numba import njit

from pipeline.fix import codec as C
from pipeline.transport.atomics import load_relaxed, store_relaxed
from shm_layouts.oms import (
    ORDER_SLOTS,
    W_DUPLICATE_FILLS,
    W_FILLS,
    W_OPEN_ORDERS,
    W_OVERFILLS,
    W_READY,
    W_RECONCILE_MISMATCH,
    W_RECONCILE_PENDING,
    W_RECONCILE_WANTED,
    W_REJECTS,
    W_UNKNOWN_REPORTS,
)
from shm_layouts.records import ExecType, OrdStatus, ReplaceMode, Side

MASK = ORDER_SLOTS - 1

# OrdStatus and ExecType as int constants for jitted code (the names, never the numbers)
PENDING_NEW, NEW = int(OrdStatus.PENDING_NEW), int(OrdStatus.NEW)
PARTIALLY_FILLED, FILLED = int(OrdStatus.PARTIALLY_FILLED), int(OrdStatus.FILLED)
PENDING_CANCEL, PENDING_REPLACE = int(OrdStatus.PENDING_CANCEL), int(OrdStatus.PENDING_REPLACE)
CANCELED, REPLACED = int(OrdStatus.CANCELED), int(OrdStatus.REPLACED)
REJECTED, EXPIRED = int(OrdStatus.REJECTED), int(OrdStatus.EXPIRED)
X_NEW, X_PARTIAL, X_FILL = int(ExecType.NEW), int(ExecType.PARTIAL_FILL), int(ExecType.FILL)
X_CANCELED, X_REPLACED = int(ExecType.CANCELED), int(ExecType.REPLACED)
X_REJECTED, X_EXPIRED = int(ExecType.REJECTED), int(ExecType.EXPIRED)
X_STATUS, X_CANCEL_REJECTED = int(ExecType.ORDER_STATUS), int(ExecType.CANCEL_REJECTED)
FREE = 0  # the status of a slot no order ever took (not an OrdStatus)
BID = int(Side.BID)
# FIX 4.4 wire chars: OrdStatus (39) and ExecType (150)
FIX_NEW, FIX_PARTIAL, FIX_FILLED, FIX_CANCELED = ord("0"), ord("1"), ord("2"), ord("4")
FIX_REPLACED, FIX_PENDING_CANCEL, FIX_REJECTED = ord("5"), ord("6"), ord("8")
FIX_PENDING_NEW, FIX_EXPIRED, FIX_PENDING_REPLACE = ord("A"), ord("C"), ord("E")
FIX_TRADE, FIX_ORDER_STATUS = ord("F"), ord("I")
MASS_CANCEL_REJECTED = ord("0")  # MassCancelResponse (531) CANCEL_REQUEST_REJECTED
NO_REPLACE = int(ReplaceMode.NONE)
STOP_ON_FAILURE = int(ReplaceMode.STOP_ON_FAILURE)


@njit(cache=True, _nrt=False)
def is_live(status):
    return status != FREE and status < CANCELED and status != FILLED


@njit(cache=True, _nrt=False)
def find(orders, cl_ord_id):
    """Slot of order ``cl_ord_id`` or -1."""
    if cl_ord_id <= 0:
        return -1
    slot = cl_ord_id & MASK
    return slot if orders[slot]["cl_ord_id"] == cl_ord_id else -1


@njit(cache=True, _nrt=False)
def find_report_order(orders, f):
    """The order a report is about: by ClOrdID, else by OrigClOrdID (cancel/replace acks
    and rejects carry the request's id in 11 and the order's in 41). When both name one
    of our orders (a Binance XCN: 11 its new order, 41 the one it cancels), a cancel,
    cancel reject or amend reject is about the 41 order while that one awaits it."""
    slot = find(orders, f[C.F_CL_ORD_ID])
    orig = find(orders, f[C.F_ORIG_CL_ORD_ID])
    if slot < 0:
        return orig
    if orig < 0 or orig == slot:
        return slot
    mt = f[C.F_MSG_TYPE]
    about_cancel = mt == C.MSG_CANCEL_REJECT or mt == C.MSG_AMEND_REJECT or (
        mt == C.MSG_EXEC_REPORT and f[C.F_EXEC_TYPE] == FIX_CANCELED)
    st = orders[orig]["status"]
    if about_cancel and (st == PENDING_CANCEL or st == PENDING_REPLACE):
        return orig
    return slot


@njit(cache=True, _nrt=False)
def slot_free(orders, cl_ord_id):
    """An id may take its slot unless a live order (or the same id) already holds it."""
    o = orders[cl_ord_id & MASK]
    return o["cl_ord_id"] != cl_ord_id and not is_live(o["status"])


@njit(cache=True, _nrt=False)
def _open_delta(positions, sid, side, delta):
    if side == BID:
        positions[sid]["open_buy"] += delta
    else:
        positions[sid]["open_sell"] += delta


@njit(cache=True, _nrt=False)
def _count_open(words, delta):
    store_relaxed(words, W_OPEN_ORDERS, load_relaxed(words, W_OPEN_ORDERS) + delta)


@njit(cache=True, _nrt=False)
def accept_new(words, orders, positions, r, strategy_id, now):
    """A new order sent: ``r`` is its intent (an ORDER_INTENT record)."""
    return accept_order(words, orders, positions, r, r["qty"], strategy_id, now)


@njit(cache=True, _nrt=False)
def accept_order(words, orders, positions, r, qty, strategy_id, now):
    """A new order of ``qty`` lots sent for intent ``r`` (a NEW, or an XCN's new leg)."""
    cl_ord_id = r["cl_ord_id"]
    sid = r["symbol_id"]
    slot = cl_ord_id & MASK
    o = orders[slot]
    o["cl_ord_id"] = cl_ord_id
    o["pending_id"] = 0
    o["venue_order_id"] = 0
    o["price"] = r["price"]
    o["qty"] = qty
    o["cum_qty"] = 0
    o["leaves_qty"] = qty
    o["pending_price"] = 0
    o["pending_qty"] = 0
    o["t_origin_ns"] = r["t_origin_ns"]
    o["t_sent_ns"] = now
    o["t_update_ns"] = now
    o["symbol_id"] = sid
    o["strategy_id"] = strategy_id
    o["status"] = PENDING_NEW
    o["prev_status"] = PENDING_NEW
    o["side"] = r["side"]
    o["tif"] = r["tif"]
    o["ord_type"] = r["ord_type"]
    o["replace_mode"] = NO_REPLACE
    o["replaces"] = 0
    _open_delta(positions, sid, r["side"], qty)
    _count_open(words, 1)
    return slot


@njit(cache=True, _nrt=False)
def accept_cancel(orders, slot, request_id, now):
    """Cancel or replace request sent for the order in ``slot``."""
    o = orders[slot]
    o["prev_status"] = o["status"]
    o["status"] = PENDING_CANCEL
    o["pending_id"] = request_id
    o["t_update_ns"] = now


@njit(cache=True, _nrt=False)
def accept_cancel_new(words, orders, positions, slot, r, qty, mode, now):
    """A Binance XCN sent: the order in ``slot`` awaits its cancel (``pending_id``: the new
    order, ``replace_mode``: what a failed cancel does to it) and the new order of ``qty``
    lots is a separate order from now on (new ClOrdID, new venue id, no queue priority)."""
    o = orders[slot]
    accept_cancel(orders, slot, r["cl_ord_id"], now)
    o["replace_mode"] = mode
    leg = accept_order(words, orders, positions, r, qty, o["strategy_id"], now)
    orders[leg]["replaces"] = o["cl_ord_id"]
    return leg


@njit(cache=True, _nrt=False)
def _leg_refused(orders, leg):
    """An XCN's new order rejected while the order it replaces still awaits its cancel:
    the venue refused the request before either leg (filters, order count), so that
    order was not canceled (a done cancel is reported before the new order's result)."""
    slot = find(orders, leg["replaces"])
    if slot >= 0 and orders[slot]["status"] == PENDING_CANCEL and \
            orders[slot]["pending_id"] == leg["cl_ord_id"]:
        o = orders[slot]
        o["status"] = o["prev_status"]
        o["pending_id"] = 0
        o["replace_mode"] = NO_REPLACE


@njit(cache=True, _nrt=False)
def _cancel_failed(words, orders, positions, o):
    """A cancel/replace/amend refused: the order goes back to what it was; the new order
    of an XCN in STOP_ON_FAILURE mode was not attempted, so it is rejected here. Returns
    that new order's slot (-1 if none was abandoned)."""
    new_id = o["pending_id"]
    mode = o["replace_mode"]
    o["status"] = o["prev_status"]
    o["pending_id"] = 0
    o["replace_mode"] = NO_REPLACE
    leg = find(orders, new_id) if mode == STOP_ON_FAILURE else -1
    if leg >= 0 and orders[leg]["status"] == PENDING_NEW:
        store_relaxed(words, W_REJECTS, load_relaxed(words, W_REJECTS) + 1)
        _go_terminal(words, positions, orders[leg], REJECTED)
        return leg
    return -1


@njit(cache=True, _nrt=False)
def abandoned_leg(orders, f):
    """The XCN new order a cancel reject ``f`` will reject (STOP_ON_FAILURE), else -1."""
    mt = f[C.F_MSG_TYPE]
    if mt != C.MSG_CANCEL_REJECT:
        return -1
    slot = find_report_order(orders, f)
    if slot < 0 or orders[slot]["replace_mode"] != STOP_ON_FAILURE or \
            orders[slot]["status"] != PENDING_CANCEL:
        return -1
    leg = find(orders, orders[slot]["pending_id"])
    return leg if leg >= 0 and orders[leg]["status"] == PENDING_NEW else -1


@njit(cache=True, _nrt=False)
def mass_cancel_report(orders, f, now):
    """OrderMassCancelReport (35=r): when refused, every order it was canceling goes back
    to what it was (its ExecutionReports say what was canceled when accepted)."""
    if f[C.F_MASS_RESPONSE] != MASS_CANCEL_REJECTED:
        return 0
    n = 0
    rid = f[C.F_CL_ORD_ID]
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if o["status"] == PENDING_CANCEL and o["pending_id"] == rid and rid != 0:
            o["status"] = o["prev_status"]
            o["pending_id"] = 0
            o["t_update_ns"] = now
            n += 1
    return n


@njit(cache=True, _nrt=False)
def accept_replace(orders, slot, request_id, price, qty, now):
    o = orders[slot]
    o["prev_status"] = o["status"]
    o["status"] = PENDING_REPLACE
    o["pending_id"] = request_id
    o["pending_price"] = price
    o["pending_qty"] = qty
    o["t_update_ns"] = now


@njit(cache=True, _nrt=False)
def apply_fill(positions, sid, side, qty, px):
    """Position, cost basis and realised PnL (tick*lot units) after one fill."""
    p = positions[sid]
    q = qty if side == BID else -qty
    pos = p["position"]
    p["fills"] += 1
    p["volume"] += qty
    if pos != 0 and (pos > 0) != (q > 0):
        closing = min(abs(q), abs(pos))
        removed = p["open_cost"] * closing // abs(pos) if pos > 0 else \
            -((-p["open_cost"]) * closing // abs(pos))
        if pos > 0:
            p["realised"] += closing * px - removed
            p["position"] = pos - closing
        else:
            p["realised"] += -removed - closing * px
            p["position"] = pos + closing
        p["open_cost"] -= removed
        if p["position"] == 0:
            p["open_cost"] = 0
        rest = abs(q) - closing
        q = rest if q > 0 else -rest
    if q != 0:
        p["position"] += q
        p["open_cost"] += q * px


@njit(cache=True, _nrt=False)
def unrealised(positions, sid, mid_ticks):
    """Mark-to-mid PnL of the open position, tick*lot units."""
    p = positions[sid]
    return p["position"] * mid_ticks - p["open_cost"]


@njit(cache=True, _nrt=False)
def _go_terminal(words, positions, o, status):
    if is_live(o["status"]):
        _open_delta(positions, o["symbol_id"], o["side"], -o["leaves_qty"])
        _count_open(words, -1)
    o["status"] = status
    o["leaves_qty"] = 0
    o["pending_id"] = 0


@njit(cache=True, _nrt=False)
def _bump(words, w):
    store_relaxed(words, w, load_relaxed(words, w) + 1)


@njit(cache=True, _nrt=False)
def alert(words, w):
    """Count anomaly ``w`` and stop trading until the venue is reconciled."""
    _bump(words, w)
    _bump(words, W_RECONCILE_WANTED)
    store_relaxed(words, W_READY, 0)


@njit(cache=True, _nrt=False)
def _fill_to(words, positions, o, cum, px):
    """Apply the fill that takes the order's CumQty to ``cum`` (no-op if already there);
    returns the quantity booked. Beyond what the order has left it is still booked (the
    venue's position is the real one) and raised as an overfill."""
    qty = cum - o["cum_qty"]
    if qty <= 0:
        return 0
    live = is_live(o["status"])
    take = min(qty, o["leaves_qty"]) if live else 0
    if qty > take:
        alert(words, W_OVERFILLS)
    apply_fill(positions, o["symbol_id"], o["side"], qty, px)
    store_relaxed(words, W_FILLS, load_relaxed(words, W_FILLS) + 1)
    o["cum_qty"] += qty
    o["leaves_qty"] -= take
    _open_delta(positions, o["symbol_id"], o["side"], -take)
    if not live:
        return qty
    if o["leaves_qty"] == 0:
        _go_terminal(words, positions, o, FILLED)
    elif o["status"] == PENDING_CANCEL or o["status"] == PENDING_REPLACE:
        o["prev_status"] = PARTIALLY_FILLED
    else:
        o["status"] = PARTIALLY_FILLED
    return qty


@njit(cache=True, _nrt=False)
def venue_status(c):
    """FIX OrdStatus char -> OrdStatus."""
    if c == FIX_NEW:
        return NEW
    if c == FIX_PARTIAL:
        return PARTIALLY_FILLED
    if c == FIX_FILLED:
        return FILLED
    if c == FIX_CANCELED:
        return CANCELED
    if c == FIX_REPLACED:
        return REPLACED
    if c == FIX_PENDING_CANCEL:
        return PENDING_CANCEL
    if c == FIX_REJECTED:
        return REJECTED
    if c == FIX_PENDING_NEW:
        return PENDING_NEW
    if c == FIX_EXPIRED:
        return EXPIRED
    if c == FIX_PENDING_REPLACE:
        return PENDING_REPLACE
    return 0


@njit(cache=True, _nrt=False)
def _replaced(words, orders, positions, old_slot, f, now):
    """Replace confirmed: the order continues under the new ClOrdID."""
    old = orders[old_slot]
    new_id = f[C.F_CL_ORD_ID]
    if new_id == old["cl_ord_id"] or not slot_free(orders, new_id):
        return -1
    slot = new_id & MASK
    n = orders[slot]
    price = f[C.F_PRICE] if f[C.F_MASK] & C.M_PRICE else old["pending_price"]
    qty = f[C.F_ORDER_QTY] if f[C.F_MASK] & C.M_ORDER_QTY else old["pending_qty"]
    cum = old["cum_qty"]
    sid = old["symbol_id"]
    side = old["side"]
    n["cl_ord_id"] = new_id
    n["venue_order_id"] = old["venue_order_id"]
    n["symbol_id"] = sid
    n["strategy_id"] = old["strategy_id"]
    n["side"] = side
    n["tif"] = old["tif"]
    n["ord_type"] = old["ord_type"]
    n["t_origin_ns"] = old["t_origin_ns"]
    n["t_sent_ns"] = old["t_sent_ns"]
    n["t_update_ns"] = now
    n["price"] = price
    n["qty"] = qty
    n["cum_qty"] = cum
    n["leaves_qty"] = max(qty - cum, 0)
    n["pending_id"] = 0
    n["pending_price"] = 0
    n["pending_qty"] = 0
    n["replace_mode"] = NO_REPLACE
    n["replaces"] = 0
    n["status"] = PARTIALLY_FILLED if cum > 0 else NEW
    n["prev_status"] = n["status"]
    _go_terminal(words, positions, old, REPLACED)
    _open_delta(positions, sid, side, n["leaves_qty"])
    _count_open(words, 1)
    if n["leaves_qty"] == 0:
        _go_terminal(words, positions, n, FILLED)
    return slot


@njit(cache=True, _nrt=False)
def apply_report(words, orders, positions, f, now):
    """Apply one ExecutionReport / OrderCancelReject; returns (slot, ExecType) for the
    exec ring, slot -1 if the report is about an order we do not know (counted)."""
    mt = f[C.F_MSG_TYPE]
    if mt == C.MSG_MASS_CANCEL_REPORT:
        mass_cancel_report(orders, f, now)
        return -1, 0
    slot = find_report_order(orders, f)
    if slot < 0:
        store_relaxed(words, W_UNKNOWN_REPORTS, load_relaxed(words, W_UNKNOWN_REPORTS) + 1)
        return -1, 0
    o = orders[slot]
    o["t_update_ns"] = now
    if mt == C.MSG_CANCEL_REJECT or mt == C.MSG_AMEND_REJECT:
        if o["status"] == PENDING_CANCEL or o["status"] == PENDING_REPLACE:
            _cancel_failed(words, orders, positions, o)
        return slot, X_CANCEL_REJECTED
    if f[C.F_ORDER_ID] != 0:
        o["venue_order_id"] = f[C.F_ORDER_ID]
    et = f[C.F_EXEC_TYPE]
    if et == FIX_TRADE or et == FIX_PARTIAL or et == FIX_FILLED:  # or FIX 4.2 '1'/'2'
        # the codec refuses a fill without CumQty (it could not be told from a repeat);
        # a journal of older runs may still hold some
        cum = f[C.F_CUM_QTY] if f[C.F_MASK] & C.M_CUM_QTY else o["cum_qty"] + f[C.F_LAST_QTY]
        if _fill_to(words, positions, o, cum, f[C.F_LAST_PX]) == 0:
            _bump(words, W_DUPLICATE_FILLS)
            return slot, X_STATUS  # nothing new: not a fill for the strategy
        return slot, X_FILL if o["status"] == FILLED else X_PARTIAL
    if et == FIX_NEW:
        if o["status"] == PENDING_NEW:
            o["status"] = NEW
        elif o["prev_status"] == PENDING_NEW:
            o["prev_status"] = NEW
        return slot, X_NEW
    if et == FIX_CANCELED:  # solicited or not
        _go_terminal(words, positions, o, CANCELED)
        return slot, X_CANCELED
    if et == FIX_EXPIRED:
        _go_terminal(words, positions, o, EXPIRED)
        return slot, X_EXPIRED
    if et == FIX_REJECTED:
        if is_live(o["status"]):  # an XCN leg rejected with its cancel counts once
            store_relaxed(words, W_REJECTS, load_relaxed(words, W_REJECTS) + 1)
        _go_terminal(words, positions, o, REJECTED)
        if o["replaces"] != 0:
            _leg_refused(orders, o)
        return slot, X_REJECTED
    if et == FIX_REPLACED:
        new_slot = _replaced(words, orders, positions, slot, f, now)
        return (new_slot if new_slot >= 0 else slot), X_REPLACED
    if et == FIX_ORDER_STATUS:  # reconcile
        return slot, reconcile(words, positions, o, f)
    return slot, X_STATUS  # pending-new/-cancel/-replace acks change nothing


@njit(cache=True, _nrt=False)
def reconcile(words, positions, o, f):
    """Adopt the venue's view of one order (answer to our OrderStatusRequest)."""
    pending = load_relaxed(words, W_RECONCILE_PENDING)
    if pending > 0:
        store_relaxed(words, W_RECONCILE_PENDING, pending - 1)
    st = venue_status(f[C.F_ORD_STATUS])
    if f[C.F_MASK] & C.M_CUM_QTY and f[C.F_CUM_QTY] > o["cum_qty"]:
        store_relaxed(words, W_RECONCILE_MISMATCH, load_relaxed(words, W_RECONCILE_MISMATCH) + 1)
        px = f[C.F_LAST_PX] if f[C.F_MASK] & C.M_LAST_PX and f[C.F_LAST_PX] > 0 else o["price"]
        _fill_to(words, positions, o, f[C.F_CUM_QTY], px)
    if not is_live(o["status"]):
        return X_STATUS
    if st == CANCELED or st == EXPIRED or st == REJECTED or st == REPLACED:
        store_relaxed(words, W_RECONCILE_MISMATCH, load_relaxed(words, W_RECONCILE_MISMATCH) + 1)
        _go_terminal(words, positions, o, st if st != REPLACED else CANCELED)
    elif st == NEW or st == PARTIALLY_FILLED:
        if o["status"] == PENDING_NEW:
            o["status"] = st
        elif o["status"] == PENDING_CANCEL or o["status"] == PENDING_REPLACE:
            o["prev_status"] = st
    return X_STATUS
