"""The gateway's jitted per-message flow: intent -> risk -> OMS -> FIX bytes, and
decoded report -> OMS -> exec ring. No Python object per message.

Arguments are the named views of ``pipeline.orders.views`` (one per concern). Outbound
bytes are appended to ``fix.out.wire`` (cursor ``io.end``) and written to the socket by
the shell in one send per duty cycle; ``torig`` keeps each message's t_origin so
tick-to-trade is recorded when the bytes hit the socket.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.fix import binance_spot as B
from pipeline.fix import codec as C
from pipeline.fix.session import K_APP, K_GARBLED, K_NONE, K_OTHER, next_inbound
from pipeline.fix.sockio import EAGAIN
from pipeline.fix.store import journal_append, take_seq
from pipeline.metrics import histogram
from pipeline.metrics.histogram import record
from pipeline.orders import journal as J
from pipeline.orders import oms, risk
from pipeline.orders.views import DENIAL_REASONS
from pipeline.orders.warm import touch, warm
from pipeline.runtime import warming
from pipeline.runtime.clock import monotonic_ns, realtime_ns
from pipeline.tls.io import wire_recv, wire_send
from pipeline.transport.atomics import fetch_add, load_relaxed, store_relaxed
from pipeline.transport.ring import (
    cursor,
    observe,
    poll,
    publish,
    release,
    slowest_gating,
    try_claim,
)
from shm_layouts.oms import W_NEXT_CL_ORD_ID, W_RECONCILE_PENDING, W_STALE_CANCELS, RiskReason
from shm_layouts.records import (
    ExecType,
    FixDialect,
    OrderAction,
    OrdStatus,
    ReportSource,
    SyncState,
)
from shm_layouts.ring import CAPACITY, MASK, PUBLISHED

JOURNAL_FULL = int(RiskReason.JOURNAL_FULL)
OK = int(RiskReason.OK)
# why a jitted duty pass handed control back to Python (io.stop)
STOP_NONE, STOP_ADMIN, STOP_PARTIAL, STOP_CLOSED, STOP_ERROR = 0, 1, 2, 3, 4
MSG_ROOM = 512  # an encoded message is far smaller than this
SRC_VENUE, SRC_RISK = int(ReportSource.VENUE), int(ReportSource.RISK)
NEW, CANCEL = int(OrderAction.NEW), int(OrderAction.CANCEL)
CANCEL_ALL = int(OrderAction.CANCEL_ALL)
X_REJECTED, S_REJECTED = int(ExecType.REJECTED), int(OrdStatus.REJECTED)
SYNCED = int(SyncState.SYNCED)
BINANCE = int(FixDialect.BINANCE_SPOT)


@njit(cache=True, _nrt=False)
def _emit(fix, s, e, seq, t_origin):
    """Journal one encoded message (FIX store) and append it to the wire buffer."""
    out = fix.out
    st = fix.store
    journal_append(st.seqs, st.data, st.index, out.scratch, s, e, seq)
    io = out.io[0]
    end = io.end
    for i in range(e - s):
        out.wire[end + i] = out.scratch[s + i]
    io.end = end + e - s
    if io.norig < out.torig.shape[0]:
        out.torig[io.norig] = t_origin
        io.norig += 1
    io.sent += 1


@njit(cache=True, _nrt=False)
def count_denial(io, reason):
    """One intent refused before the wire: the total and its reason's own counter."""
    r = io[0]
    r.denied += 1
    if OK < reason < DENIAL_REASONS:
        r.denied_by[reason] += 1


@njit(cache=True, _nrt=False, inline="always")  # returns a view: inlined
def _sym(syms, sid):
    return syms.names[sid, : syms.lens[sid]]


@njit(cache=True, _nrt=False)
def _room(fix):
    """Room in the wire buffer for one more message."""
    return fix.out.io[0].end + MSG_ROOM <= fix.out.wire.shape[0]


@njit(cache=True, _nrt=False)
def exec_room(ring):
    """Free slots in the exec ring (we are its producer): backpressure, never a drop."""
    pub = load_relaxed(ring.ctl, PUBLISHED)
    return ring.ctl[CAPACITY] - (pub - slowest_gating(ring.ctl, pub))


@njit(cache=True, _nrt=False)
def publish_exec(execs, io):
    """Publish the report built in ``execs.draft[0]`` (every field but the ring stamp)."""
    ring = execs.ring
    start = try_claim(ring.ctl, 1)
    if start < 0:
        io[0].ring_full += 1  # the strategy is a whole ring behind: counted, not blocked
        return False
    d = execs.draft[0]
    r = ring.records[start & ring.ctl[MASK]]
    r["t_origin_ns"] = d["t_origin_ns"]
    r["t_recv_ns"] = d["t_recv_ns"]
    r["t_venue_ns"] = d["t_venue_ns"]
    r["cl_ord_id"] = d["cl_ord_id"]
    r["orig_cl_ord_id"] = d["orig_cl_ord_id"]
    r["venue_order_id"] = d["venue_order_id"]
    r["exec_id"] = d["exec_id"]
    r["price"] = d["price"]
    r["last_px"] = d["last_px"]
    r["last_qty"] = d["last_qty"]
    r["cum_qty"] = d["cum_qty"]
    r["leaves_qty"] = d["leaves_qty"]
    r["symbol_id"] = d["symbol_id"]
    r["exec_type"] = d["exec_type"]
    r["ord_status"] = d["ord_status"]
    r["side"] = d["side"]
    r["source"] = d["source"]
    r["reject_reason"] = d["reject_reason"]
    r["position"] = d["position"]  # the OMS inventory after this report: absolute, idempotent
    publish(ring.ctl, ring.stamps, start + 1)
    return True


@njit(cache=True, _nrt=False)
def _position(positions, sid):
    """The OMS inventory of ``sid`` (0 for an id that names no instrument)."""
    return positions[sid]["position"] if 0 <= sid < positions.shape[0] else 0


@njit(cache=True, _nrt=False)
def deny(om, execs, io, r, reason, now):
    """Intent ``r`` refused before the wire: counted, and a REJECTED report (source RISK,
    ``reject_reason`` = ``reason``) on the exec ring."""
    count_denial(io, reason)
    d = execs.draft[0]
    d["t_origin_ns"] = r["t_origin_ns"]
    d["t_recv_ns"] = now
    d["t_venue_ns"] = 0
    d["cl_ord_id"] = r["cl_ord_id"]
    d["orig_cl_ord_id"] = r["orig_cl_ord_id"]
    d["venue_order_id"] = 0
    d["exec_id"] = 0
    d["price"] = r["price"]
    d["last_px"] = 0
    d["last_qty"] = 0
    d["cum_qty"] = 0
    d["leaves_qty"] = 0
    d["symbol_id"] = r["symbol_id"]
    d["exec_type"] = X_REJECTED
    d["ord_status"] = S_REJECTED
    d["side"] = r["side"]
    d["source"] = SRC_RISK
    d["reject_reason"] = reason
    d["position"] = _position(om.positions, r["symbol_id"])
    publish_exec(execs, io)


@njit(cache=True, _nrt=False)
def _journal_intent(om, io, now):
    """Append the intent payload built in ``om.jpay`` to the OMS journal."""
    if not J.append(om.journal, J.K_INTENT, now, om.jpay):
        io[0].journal_full += 1


@njit(cache=True, _nrt=False)
def _journal_order(om, io, r, now):
    """Journal a NEW or REPLACE intent ``r`` (as sent)."""
    p = om.jpay
    p[:] = 0
    p[J.I_ACTION] = r["action"]
    p[J.I_CL] = r["cl_ord_id"]
    p[J.I_ORIG] = r["orig_cl_ord_id"]
    p[J.I_SID] = r["symbol_id"]
    p[J.I_SIDE] = r["side"]
    p[J.I_PRICE] = r["price"]
    p[J.I_QTY] = r["qty"]
    p[J.I_TIF] = r["tif"]
    p[J.I_TYPE] = r["ord_type"]
    p[J.I_T_ORIGIN] = r["t_origin_ns"]
    _journal_intent(om, io, now)


@njit(cache=True, _nrt=False)
def send_cancel(om, fix, slot, request_id, now, wall_ns):
    """OrderCancelRequest ``request_id`` for the order in ``slot``: encode, journal, OMS."""
    o = om.orders[slot]
    sid = o["symbol_id"]
    seq = take_seq(fix.store.seqs)
    if _binance(fix):
        s, e = B.encode_cancel(fix.out.scratch, fix.comp_ids, seq, wall_ns, request_id,
                               o["cl_ord_id"], o["venue_order_id"], _sym(fix.syms, sid))
    else:
        s, e = C.encode_cancel(fix.out.scratch, fix.comp_ids, seq, wall_ns, request_id,
                               o["cl_ord_id"], _sym(fix.syms, sid), o["side"],
                               o["leaves_qty"], fix.syms.grid[sid])
    _journal_cancel(om, fix.out.io, o, request_id, now)
    oms.accept_cancel(om.orders, slot, request_id, now)
    _emit(fix, s, e, seq, 0)


@njit(cache=True, _nrt=False)
def _journal_cancel(om, io, o, request_id, now):
    """Journal cancel request ``request_id`` of order ``o`` (replay: accept_cancel)."""
    p = om.jpay
    p[:] = 0
    p[J.I_ACTION] = CANCEL
    p[J.I_CL] = request_id
    p[J.I_ORIG] = o["cl_ord_id"]
    p[J.I_SID] = o["symbol_id"]
    p[J.I_SIDE] = o["side"]
    p[J.I_STRATEGY] = o["strategy_id"]
    p[J.I_T_ORIGIN] = o["t_origin_ns"]
    _journal_intent(om, io, now)


@njit(cache=True, _nrt=False, inline="always")
def _binance(fix):
    return fix.dialect[0].kind == BINANCE


@njit(cache=True, _nrt=False)
def _cancelable(o, sid_filter):
    return oms.is_live(o["status"]) and o["status"] != oms.PENDING_CANCEL and (
        sid_filter < 0 or o["symbol_id"] == sid_filter)


@njit(cache=True, _nrt=False)
def mass_cancel(om, fix, sid_filter, now, wall_ns):
    """Binance: one OrderMassCancelRequest (35=q) per instrument with cancelable orders
    (of ``sid_filter``, or all if < 0); each of them awaits it (``pending_id``: the
    request's ClOrdID). Returns how many requests are still to send (buffer full)."""
    left = 0
    orders = om.orders
    for sid in range(fix.syms.lens.shape[0]):
        if sid_filter >= 0 and sid != sid_filter:
            continue
        n = 0
        for slot in range(orders.shape[0]):
            if _cancelable(orders[slot], sid) and orders[slot]["symbol_id"] == sid:
                n += 1
        if n == 0:
            continue
        if not _room(fix):
            left += 1
            continue
        rid = fetch_add(om.words, W_NEXT_CL_ORD_ID, 1)
        seq = take_seq(fix.store.seqs)
        s, e = B.encode_mass_cancel(fix.out.scratch, fix.comp_ids, seq, wall_ns, rid,
                                    _sym(fix.syms, sid))
        for slot in range(orders.shape[0]):
            o = orders[slot]
            if _cancelable(o, sid) and o["symbol_id"] == sid:
                _journal_cancel(om, fix.out.io, o, rid, now)
                oms.accept_cancel(orders, slot, rid, now)
        _emit(fix, s, e, seq, 0)
    return left


@njit(cache=True, _nrt=False)
def cancel_all(om, fix, sid_filter, now, wall_ns):
    """Cancel every live order (of ``sid_filter``, or all if < 0) not already being
    canceled (Binance: ``mass_cancel``). Returns how many cancels are still to send (wire
    buffer full: call again)."""
    if _binance(fix):
        return mass_cancel(om, fix, sid_filter, now, wall_ns)
    left = 0
    orders = om.orders
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if not oms.is_live(o["status"]) or o["status"] == oms.PENDING_CANCEL:
            continue
        if sid_filter >= 0 and o["symbol_id"] != sid_filter:
            continue
        if not _room(fix):
            left += 1
            continue
        rid = fetch_add(om.words, W_NEXT_CL_ORD_ID, 1)
        send_cancel(om, fix, slot, rid, now, wall_ns)
    return left


@njit(cache=True, _nrt=False)
def request_status_all(om, fix, now, wall_ns):
    """OrderStatusRequest (35=H) for every live order; returns how many were sent."""
    n = 0
    orders = om.orders
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if not oms.is_live(o["status"]) or not _room(fix):
            continue
        seq = take_seq(fix.store.seqs)
        sid = o["symbol_id"]
        s, e = C.encode_status_request(fix.out.scratch, fix.comp_ids, seq, wall_ns,
                                       o["cl_ord_id"], _sym(fix.syms, sid), o["side"])
        _emit(fix, s, e, seq, 0)
        n += 1
    store_relaxed(om.words, W_RECONCILE_PENDING, n)
    return n


@njit(cache=True, _nrt=False)
def _remember_shape(out, r):
    """The warm pass sends what real orders look like: keep the last one's shape."""
    w = out.shadow[0]
    w["side"] = r["side"]
    w["qty"] = r["qty"]
    w["tif"] = r["tif"]
    w["ord_type"] = r["ord_type"]
    w["symbol_id"] = r["symbol_id"]


@njit(cache=True, _nrt=False)
def handle_intent(r, om, rk, fix, execs, now, wall_ns):
    """Risk, then OMS, then encode one intent. Returns its RiskReason (OK: on the wire)."""
    io = fix.out.io
    action = r["action"]
    cl = r["cl_ord_id"]
    io[0].warm_last_cl = cl
    sid = r["symbol_id"]
    reason = risk.check(om, rk, r, now)
    if reason != OK:
        deny(om, execs, io, r, reason, now)
        return reason
    if action == CANCEL_ALL:  # symbol_id < 0: every instrument
        cancel_all(om, fix, sid, now, wall_ns)
        return OK
    if action == CANCEL:
        risk.note_cancel(rk.rates, rk.g, now)
        send_cancel(om, fix, oms.find(om.orders, r["orig_cl_ord_id"]), cl, now, wall_ns)
        return OK
    risk.note_order(rk.rates, rk.g, now)
    _remember_shape(fix.out, r)
    seq = take_seq(fix.store.seqs)
    sym = _sym(fix.syms, sid)
    if _binance(fix):
        binance_order(r, om, fix, seq, now, wall_ns)
        return OK
    if action == NEW:
        s, e = C.encode_new_order(fix.out.scratch, fix.comp_ids, seq, wall_ns, r, sym,
                                  fix.syms.grid[sid])
        oms.accept_new(om.words, om.orders, om.positions, r, 0, now)
    else:
        s, e = C.encode_replace(fix.out.scratch, fix.comp_ids, seq, wall_ns, r, sym,
                                fix.syms.grid[sid])
        oms.accept_replace(om.orders, oms.find(om.orders, r["orig_cl_ord_id"]), cl,
                           r["price"], r["qty"], now)
    _journal_order(om, io, r, now)
    _emit(fix, s, e, seq, r["t_origin_ns"])
    return OK


@njit(cache=True, _nrt=False)
def binance_order(r, om, fix, seq, now, wall_ns):
    """A NEW or REPLACE intent that passed risk, the Binance way: NewOrderSingle; a
    quantity decrease at the same price as XAK (amend, queue priority kept: the OMS
    replace path, acked by a REPLACED report); any other change as XCN (cancel + a new
    order of the remaining quantity, a separate order from now on)."""
    sid = r["symbol_id"]
    sym = _sym(fix.syms, sid)
    grid = fix.syms.grid[sid]
    io = fix.out.io
    buf = fix.out.scratch
    if r["action"] == NEW:
        s, e = B.encode_new_order(buf, fix.comp_ids, seq, wall_ns, r, sym, grid)
        oms.accept_new(om.words, om.orders, om.positions, r, 0, now)
        _journal_order(om, io, r, now)
        _emit(fix, s, e, seq, r["t_origin_ns"])
        return
    slot = oms.find(om.orders, r["orig_cl_ord_id"])
    o = om.orders[slot]
    if r["price"] == o["price"] and r["qty"] < o["qty"] and r["tif"] == o["tif"] and \
            r["ord_type"] == o["ord_type"]:
        s, e = B.encode_amend(buf, fix.comp_ids, seq, wall_ns, r["cl_ord_id"],
                              o["cl_ord_id"], o["venue_order_id"], r["qty"], sym, grid)
        oms.accept_replace(om.orders, slot, r["cl_ord_id"], r["price"], r["qty"], now)
        _journal_order(om, io, r, now)
    else:
        qty = r["qty"] - o["cum_qty"]  # risk checked it is > 0
        mode = fix.dialect[0].replace_mode
        s, e = B.encode_cancel_new(buf, fix.comp_ids, seq, wall_ns, r, qty,
                                   o["venue_order_id"], mode, sym, grid)
        _journal_cancel(om, io, o, r["cl_ord_id"], now)  # replay: a cancel and a new order
        oms.accept_cancel_new(om.words, om.orders, om.positions, slot, r, qty, mode, now)
        _journal_leg(om, io, r, qty, now)
    _emit(fix, s, e, seq, r["t_origin_ns"])


@njit(cache=True, _nrt=False)
def _journal_leg(om, io, r, qty, now):
    """Journal an XCN's new order as the NEW of ``qty`` lots it is."""
    p = om.jpay
    p[:] = 0
    p[J.I_ACTION] = NEW
    p[J.I_CL] = r["cl_ord_id"]
    p[J.I_SID] = r["symbol_id"]
    p[J.I_SIDE] = r["side"]
    p[J.I_PRICE] = r["price"]
    p[J.I_QTY] = qty
    p[J.I_TIF] = r["tif"]
    p[J.I_TYPE] = r["ord_type"]
    p[J.I_T_ORIGIN] = r["t_origin_ns"]
    _journal_intent(om, io, now)


@njit(cache=True, _nrt=False)
def process_intents(intents, om, rk, fix, execs, order_hop, now, wall_ns, limit):
    """Consume up to ``limit`` intents from the order ring; returns how many. ``order_hop``
    records the order-ring hop (strategy decision -> read here, stamped after the poll that
    saw it: ``now`` is only the caller's pass time)."""
    ctl = intents.ctl
    n = poll(ctl, intents.stamps, intents.slot, limit)
    if n == 0:
        return 0
    now = monotonic_ns()  # after the poll: the hop of an intent published meanwhile is >= 0
    pos = cursor(ctl, intents.slot)
    done = 0
    mask = ctl[MASK]
    io = fix.out.io
    while done < n and _room(fix) and exec_room(execs.ring) > 0:
        r = intents.records[(pos + done) & mask]
        if J.full(om.journal):
            io[0].journal_full += 1
            deny(om, execs, io, r, JOURNAL_FULL, now)
            done += 1
            continue
        if r["t_decision_ns"] > 0:
            record(order_hop, now - r["t_decision_ns"])
        handle_intent(r, om, rk, fix, execs, now, wall_ns)
        done += 1
    if done:
        release(ctl, intents.slot, pos + done)
    return done


@njit(cache=True, _nrt=False)
def venue_reason(f):
    """The reject reason a venue report carries: Binance's ErrorCode (25016, without its
    sign), else OrdRejReason (103) or CxlRejReason (102)."""
    code = f[C.F_ERROR_CODE]
    if code != 0:
        return -code if code < 0 else code
    return f[C.F_ORD_REJ_REASON] if f[C.F_MSG_TYPE] == C.MSG_EXEC_REPORT else \
        f[C.F_CXL_REJ_REASON]


@njit(cache=True, _nrt=False)
def note_reject(io, f, buf):
    """Count a report with a venue ErrorCode by code (``io.reject_codes``, first
    VENUE_CODES codes, the rest in the total) and keep its Text (58) for the log."""
    code = f[C.F_ERROR_CODE]
    if code == 0:
        return
    r = io[0]
    r.venue_rejects += 1
    for i in range(r.reject_codes.shape[0]):
        if r.reject_codes[i] == code or r.reject_codes[i] == 0:
            r.reject_codes[i] = code
            r.reject_counts[i] += 1
            break
    n = min(f[C.F_TEXT_LEN], r.reject_text.shape[0]) if f[C.F_TEXT_AT] >= 0 else 0
    for i in range(n):
        r.reject_text[i] = buf[f[C.F_TEXT_AT] + i]
    r.reject_text_len = n


@njit(cache=True, _nrt=False)
def _publish_order(execs, io, om, slot, f, et, booked, now):
    """An exec report for the order in ``slot`` after report ``f`` was applied; ``booked``:
    the quantity it filled (the record's LastQty: 0 for a repeat, never just the report's)."""
    o = om.orders[slot]
    d = execs.draft[0]
    d["t_origin_ns"] = o["t_origin_ns"]
    d["t_recv_ns"] = now
    d["t_venue_ns"] = f[C.F_TRANSACT_TIME]
    d["cl_ord_id"] = o["cl_ord_id"] if et == X_REJECTED else f[C.F_CL_ORD_ID]
    d["orig_cl_ord_id"] = f[C.F_ORIG_CL_ORD_ID]
    d["venue_order_id"] = o["venue_order_id"]
    d["exec_id"] = f[C.F_EXEC_ID]
    d["price"] = o["price"]
    if booked > 0 and et == oms.X_STATUS:  # a reconcile booked a fill we had missed: to the
        et = oms.X_FILL if o["status"] == oms.FILLED else oms.X_PARTIAL  # strategy, a fill
    d["last_px"] = (f[C.F_LAST_PX] if f[C.F_LAST_PX] > 0 else o["price"]) if booked else 0
    d["last_qty"] = booked
    d["cum_qty"] = o["cum_qty"]
    d["leaves_qty"] = o["leaves_qty"]
    d["symbol_id"] = o["symbol_id"]
    d["exec_type"] = et
    d["ord_status"] = o["status"]
    d["side"] = o["side"]
    d["source"] = SRC_VENUE
    d["reject_reason"] = venue_reason(f)
    d["position"] = om.positions[o["symbol_id"]]["position"]
    publish_exec(execs, io)


@njit(cache=True, _nrt=False)
def on_report(f, om, execs, io, now):
    """One decoded ExecutionReport / OrderCancelReject (Binance also: OrderAmendReject,
    OrderMassCancelReport) -> OMS -> journal -> exec ring. The exec record's LastQty is
    what was booked (0 for a repeat), never just the report's. A cancel reject that
    abandons an XCN's new order (STOP_ON_FAILURE) publishes that order's REJECTED too."""
    if f[C.F_ERROR] != 0:
        return False  # counted by the caller; an unusable report changes nothing
    leg = oms.abandoned_leg(om.orders, f)
    pre = oms.find_report_order(om.orders, f)
    before = om.orders[pre]["cum_qty"] if pre >= 0 else 0
    slot, et = oms.apply_report(om.words, om.orders, om.positions, f, now)
    if not J.append(om.journal, J.K_REPORT, now, f):
        io[0].journal_full += 1
    if slot < 0:
        return False
    booked = om.orders[slot]["cum_qty"] - before if slot == pre else 0
    _publish_order(execs, io, om, slot, f, et, booked, now)
    if leg >= 0 and om.orders[leg]["status"] == S_REJECTED:
        _publish_order(execs, io, om, leg, f, X_REJECTED, 0, now)
    return True


@njit(cache=True, _nrt=False)
def _duplicated(f):
    """A report every session of the account receives (Binance ResponseMode EVERYTHING:
    all successful ExecutionReports); rejects go only to the session that sent the
    request."""
    return f[C.F_MSG_TYPE] == C.MSG_EXEC_REPORT and f[C.F_EXEC_TYPE] != oms.FIX_REJECTED


@njit(cache=True, _nrt=False)
def pump_inbound(fix, om, execs, now):
    """Consume in-sequence ExecutionReports/OrderCancelRejects straight from the socket
    buffer into the OMS and the exec ring; stop (without consuming) at anything the Python
    session must see (admin message, gap, duplicate). Garbled input is dropped and counted
    by ``next_inbound``. Returns how many application messages were applied, or
    ``-1 - applied`` when it stopped because the exec ring is full (backpressure: the
    reports stay in the socket buffer, nothing is dropped)."""
    n = 0
    io = fix.out.io
    f = fix.inb.fields
    while True:
        if exec_room(execs.ring) < 1:
            io[0].exec_blocked += 1  # the strategy is a ring behind: leave it in the socket
            io[0].last_kind = K_NONE
            return -1 - n  # negative: blocked (after n applied)
        k = next_inbound(fix.inb, fix.store.seqs, fix.syms, now)
        if k == K_APP and fix.dialect[0].draining and _duplicated(f):
            n += 1  # the session that replaced this one gets it too: applied from there
        elif k == K_APP:
            if not on_report(f, om, execs, io, now) and f[C.F_ERROR] != 0:
                io[0].bad_reports += 1
            note_reject(io, f, fix.inb.buf)
            n += 1
        elif k != K_GARBLED:
            io[0].last_kind = k
            return n


@njit(cache=True, _nrt=False)
def record_wire_times(hist, out, now):
    """Tick-to-trade: t_origin -> the moment the bytes were handed to the socket."""
    io = out.io[0]
    for i in range(io.norig):
        if out.torig[i] > 0:
            histogram.record(hist, now - out.torig[i])
    io.norig = 0
    io.end = 0


@njit(cache=True, _nrt=False)
def update_marks(out_rec, n, marks):
    """Latest top of book per instrument from observed BOOK_UPDATE records."""
    for i in range(n):
        r = out_rec[i]
        sid = r["symbol_id"]
        if sid < 0 or sid >= marks.shape[0]:
            continue
        if r["state"] == SYNCED and r["n_bids"] > 0 and r["n_asks"] > 0:
            marks[sid, risk.M_BID] = r["bid_px"][0]
            marks[sid, risk.M_ASK] = r["ask_px"][0]
            marks[sid, risk.M_TIME] = r["t_book_ns"]
        else:
            marks[sid, risk.M_TIME] = 0  # unsynced book: no market data


@njit(cache=True, _nrt=True)  # allocates; cold path
def stale_instruments(orders, g, marks, now, out):
    """Instruments with cancelable live orders whose market data is stale or missing."""
    flagged = np.zeros(marks.shape[0], np.bool_)
    n = 0
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if not oms.is_live(o["status"]) or o["status"] == oms.PENDING_CANCEL:
            continue
        sid = o["symbol_id"]
        if not flagged[sid] and risk.market_check(marks, g, sid, now) != 0:
            flagged[sid] = True
            out[n] = sid
            n += 1
    return n


@njit(cache=True, _nrt=False)
def bump_stale(words):
    store_relaxed(words, W_STALE_CANCELS, load_relaxed(words, W_STALE_CANCELS) + 1)


@njit(cache=True, _nrt=False)
def _inbound(fd, ssl, fix, om, execs, now):
    """Socket -> exec reports -> OMS -> exec ring. Returns the work count, or ``-1 - work``
    with ``io.stop`` set when Python must take over."""
    work = 0
    w = fix.out.io[0]
    inb = fix.inb
    io = inb.io[0]
    if io.start == io.end:
        io.start = 0
        io.end = 0
    end = io.end
    size = inb.buf.shape[0]
    if end >= size:
        w.stop = STOP_ADMIN  # full: Python compacts the buffer
        return -1
    r = wire_recv(fd, ssl, inb.buf, end, size - end)
    if r > 0:
        io.end = end + r
        work += 1
        now = monotonic_ns()  # the reports' t_recv: after the read, not the pass's start
    elif r == 0:
        w.stop = STOP_CLOSED
        return -1
    elif r != -EAGAIN:
        w.stop = STOP_ERROR
        return -1
    w.last_kind = K_NONE
    applied = pump_inbound(fix, om, execs, now)
    work += applied if applied >= 0 else -1 - applied
    if w.last_kind == K_OTHER:
        w.stop = STOP_ADMIN
        return -1 - work
    return work


@njit(cache=True, _nrt=False)
def _send_wire(fd, ssl, fix, hists, now):
    """One send() of everything encoded this pass; tick-to-trade is recorded when it
    returns. False (``io.stop`` = STOP_PARTIAL) when the socket took only part."""
    out = fix.out
    w = out.io[0]
    n = w.end
    t_send = monotonic_ns()
    r = wire_send(fd, ssl, out.wire, 0, n)
    t_sent = monotonic_ns()
    record(hists.send, t_sent - t_send)
    if r == n:
        fix.inb.io[0].last_sent = now
        record_wire_times(hists.tick_to_trade, out, t_sent)
        return True
    w.sent_bytes = max(r, 0)
    w.stop = STOP_PARTIAL
    return False


@njit(cache=True, _nrt=False)
def duty(fd, ssl, intents, oms, risk, fix, execs, book, hists):
    """One pass of the gateway's hot path, all in numba: book marks, then the outbound leg
    (order ring -> risk -> OMS -> FIX -> socket), then the inbound one (socket -> exec
    reports -> OMS -> exec ring). Outbound goes first so an intent never waits behind a
    recv() and the parsing of reports; risk then sees the OMS before those reports, which
    errs safe (an order they fill or cancel still counts as open). Returns the work count,
    or ``-1 - work`` when Python must take over before the next pass (the duty-cycle
    convention of ``pipeline.runtime.agent``); ``io.stop`` says why (admin message,
    partial send, closed or failed socket). ``ssl``: the session's ``SSL*`` over TLS (records
    encrypted/decrypted in this pass), 0 on plain TCP. ``hists``: tick-to-trade; the send() syscall
    alone (on loopback it includes waking the venue process); a sending pass up to its
    send() (marks, risk, OMS, encoding, journals); the order-ring hop; that pass after
    the marks."""
    now = monotonic_ns()
    work = 0
    io = fix.out.io
    b = book.ring
    t_marks = now
    if b.slot >= 0:
        n = observe(b.ctl, b.slot, b.raw, book.out)
        if n:
            update_marks(book.recs, n, risk.marks)
            work += n
            t_marks = monotonic_ns()
    work += process_intents(intents, oms, risk, fix, execs, hists.order_hop, now,
                            realtime_ns(), 256)
    if io[0].end > 0:
        t_send = monotonic_ns()
        record(hists.work, t_send - now)
        record(hists.intents, t_send - t_marks)
        if not _send_wire(fd, ssl, fix, hists, now):
            return -1 - work
        work += 1
    elif warming.is_due(io):  # nothing to send: keep the order path hot
        io[0].warm_result = warm(fix, oms, risk, now, realtime_ns(), io[0].passes & 1) + \
            touch(fix, oms)
    r = _inbound(fd, ssl, fix, oms, execs, now)
    return work + r if r >= 0 else r - work
