"""The gateway's jitted per-message flow: intent -> risk -> OMS -> FIX bytes, and
decoded report -> OMS -> exec ring. No Python object per message.

``Ctx`` bundles the arrays every step needs so the Python side passes one tuple-like
object; numba sees plain arrays. Outbound bytes are appended to ``wire`` (``wio[W_END]``)
and written to the socket by the shell in one send per duty cycle; ``torig`` keeps each
message's t_origin so tick-to-trade is recorded when the bytes hit the socket.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.fix import codec as C
from pipeline.fix.session import (
    IO_END,
    IO_LAST_SENT,
    IO_START,
    K_APP,
    K_GARBLED,
    K_OTHER,
    next_inbound,
)
from pipeline.fix.sockio import EAGAIN, sock_recv, sock_send
from pipeline.fix.store import journal_append, take_seq
from pipeline.observe import histogram
from pipeline.observe.histogram import record
from pipeline.orders import journal as J
from pipeline.orders import oms, risk
from pipeline.orders.warm import touch, warm
from pipeline.runtime import warming
from pipeline.runtime.clock import monotonic_ns, realtime_ns
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
from shm_layouts.ring import CAPACITY, MASK, PUBLISHED

(W_END, W_NORIG, W_RING_FULL, W_JOURNAL_FULL, W_DENIED, W_SENT, W_BAD_REPORTS, W_LAST_KIND,
 W_STOP, W_SENT_BYTES, W_EXEC_BLOCKED) = range(11)
JOURNAL_FULL = int(RiskReason.JOURNAL_FULL)
# why a jitted duty pass handed control back to Python (W_STOP)
STOP_NONE, STOP_ADMIN, STOP_PARTIAL, STOP_CLOSED, STOP_ERROR = 0, 1, 2, 3, 4
# denials per RiskReason: wio[W_DENIED_BY + reason], summing to wio[W_DENIED]
W_DENIED_BY = 16
DENIAL_REASONS = 32  # room for every RiskReason
assert max(RiskReason) < DENIAL_REASONS
# warming the order path while idle (pipeline.orders.warm): the private link's two fds,
# the warming clock (pipeline.runtime.warming), the last pass's result and the ClOrdID of
# the last intent handled
W_WARM = W_DENIED_BY + DENIAL_REASONS
W_WARM_TX, W_WARM_RX, W_WARM_CLOCK = W_WARM, W_WARM + 1, W_WARM + 2
W_WARM_RESULT = W_WARM_CLOCK + warming.CLOCK_WORDS
W_WARM_LAST_CL = W_WARM_RESULT + 1
WIO_WORDS = W_WARM_LAST_CL + 1
MSG_ROOM = 512  # an encoded message is far smaller than this
SRC_VENUE, SRC_RISK = 1, 2


@njit(cache=True, _nrt=False)
def _emit(wire, wio, torig, seqs, jdata, jindex, scratch, s, e, seq, t_origin):
    """Journal one encoded message (FIX store) and append it to the wire buffer."""
    journal_append(seqs, jdata, jindex, scratch, s, e, seq)
    end = wio[W_END]
    for i in range(e - s):
        wire[end + i] = scratch[s + i]
    wio[W_END] = end + e - s
    if wio[W_NORIG] < torig.shape[0]:
        torig[wio[W_NORIG]] = t_origin
        wio[W_NORIG] += 1
    wio[W_SENT] += 1


@njit(cache=True, _nrt=False)
def count_denial(wio, reason):
    """One intent refused before the wire: the total and its reason's own counter."""
    wio[W_DENIED] += 1
    if 0 < reason < DENIAL_REASONS:
        wio[W_DENIED_BY + reason] += 1


def denials_by_reason(wio: np.ndarray) -> dict[str, int]:
    """``orders.denied.<reason>`` (lower-case RiskReason name) -> count, every reason."""
    return {f"orders.denied.{r.name.lower()}": int(wio[W_DENIED_BY + r])
            for r in RiskReason if r != RiskReason.OK}


@njit(cache=True, _nrt=False, inline="always")  # returns a view: inlined
def _sym(syms, sym_lens, sid):
    return syms[sid, : sym_lens[sid]]


@njit(cache=True, _nrt=False)
def exec_room(ectl):
    """Free slots in the exec ring (we are its producer): backpressure, never a drop."""
    pub = load_relaxed(ectl, PUBLISHED)
    return ectl[CAPACITY] - (pub - slowest_gating(ectl, pub))


@njit(cache=True, _nrt=False)
def publish_exec(ectl, estamps, erecs, wio, t_origin, now, t_venue, cl, orig, venue_id, exec_id,
                 price, last_px, last_qty, cum, leaves, sid, exec_type, status, side, source,
                 reason, position):
    start = try_claim(ectl, 1)
    if start < 0:
        wio[W_RING_FULL] += 1  # the strategy is a whole ring behind: counted, not blocked
        return False
    r = erecs[start & ectl[MASK]]
    r["t_origin_ns"] = t_origin
    r["t_recv_ns"] = now
    r["t_venue_ns"] = t_venue
    r["cl_ord_id"] = cl
    r["orig_cl_ord_id"] = orig
    r["venue_order_id"] = venue_id
    r["exec_id"] = exec_id
    r["price"] = price
    r["last_px"] = last_px
    r["last_qty"] = last_qty
    r["cum_qty"] = cum
    r["leaves_qty"] = leaves
    r["symbol_id"] = sid
    r["exec_type"] = exec_type
    r["ord_status"] = status
    r["side"] = side
    r["source"] = source
    r["reject_reason"] = reason
    r["position"] = position  # the OMS inventory after this report: absolute, idempotent
    publish(ectl, estamps, start + 1)
    return True


@njit(cache=True, _nrt=False)
def _journal_intent(j, jpay, wio, action, cl, orig, sid, side, price, qty, tif, otype,
                    strategy, t_origin, now):
    jpay[:] = 0
    jpay[J.I_ACTION] = action
    jpay[J.I_CL] = cl
    jpay[J.I_ORIG] = orig
    jpay[J.I_SID] = sid
    jpay[J.I_SIDE] = side
    jpay[J.I_PRICE] = price
    jpay[J.I_QTY] = qty
    jpay[J.I_TIF] = tif
    jpay[J.I_TYPE] = otype
    jpay[J.I_STRATEGY] = strategy
    jpay[J.I_T_ORIGIN] = t_origin
    if not J.append(j, J.K_INTENT, now, jpay):
        wio[W_JOURNAL_FULL] += 1


@njit(cache=True, _nrt=False)
def send_cancel(words, orders, slot, seqs, jdata, jindex, comp_ids, syms, sym_lens, grid,
                scratch, wire, wio, torig, j, jpay, request_id, now, wall_ns):
    o = orders[slot]
    sid = o["symbol_id"]
    seq = take_seq(seqs)
    s, e = C.encode_cancel(scratch, comp_ids, seq, wall_ns, request_id, o["cl_ord_id"],
                           _sym(syms, sym_lens, sid), o["side"], o["leaves_qty"], grid[sid])
    _journal_intent(j, jpay, wio, 2, request_id, o["cl_ord_id"], sid, o["side"], 0, 0, 0, 0,
                    o["strategy_id"], o["t_origin_ns"], now)
    oms.accept_cancel(orders, slot, request_id, now)
    _emit(wire, wio, torig, seqs, jdata, jindex, scratch, s, e, seq, 0)


@njit(cache=True, _nrt=False)
def cancel_all(words, orders, seqs, jdata, jindex, comp_ids, syms, sym_lens, grid, scratch,
               wire, wio, torig, j, jpay, sid_filter, now, wall_ns):
    """Cancel every live order (of ``sid_filter``, or all if < 0) not already being
    canceled. Returns how many cancels are still to send (wire buffer full: call again)."""
    left = 0
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if not oms.is_live(o["status"]) or o["status"] == oms.PENDING_CANCEL:
            continue
        if sid_filter >= 0 and o["symbol_id"] != sid_filter:
            continue
        if wio[W_END] + MSG_ROOM > wire.shape[0]:
            left += 1
            continue
        rid = fetch_add(words, W_NEXT_CL_ORD_ID, 1)
        send_cancel(words, orders, slot, seqs, jdata, jindex, comp_ids, syms, sym_lens, grid,
                    scratch, wire, wio, torig, j, jpay, rid, now, wall_ns)
    return left


@njit(cache=True, _nrt=False)
def request_status_all(words, orders, seqs, jdata, jindex, comp_ids, syms, sym_lens,
                       scratch, wire, wio, torig, now, wall_ns):
    """OrderStatusRequest (35=H) for every live order; returns how many were sent."""
    n = 0
    for slot in range(orders.shape[0]):
        o = orders[slot]
        if not oms.is_live(o["status"]) or wio[W_END] + MSG_ROOM > wire.shape[0]:
            continue
        seq = take_seq(seqs)
        sid = o["symbol_id"]
        s, e = C.encode_status_request(scratch, comp_ids, seq, wall_ns, o["cl_ord_id"],
                                       _sym(syms, sym_lens, sid), o["side"])
        _emit(wire, wio, torig, seqs, jdata, jindex, scratch, s, e, seq, 0)
        n += 1
    store_relaxed(words, W_RECONCILE_PENDING, n)
    return n


@njit(cache=True, _nrt=False)
def _position(positions, sid):
    """The OMS inventory of ``sid`` (0 for an id that names no instrument)."""
    return positions[sid]["position"] if 0 <= sid < positions.shape[0] else 0


@njit(cache=True, _nrt=False)
def handle_intent(r, words, orders, positions, limits, g, marks, rates, seqs, jdata, jindex,
                  comp_ids, syms, sym_lens, grid, scratch, wire, wio, torig, ectl, estamps,
                  erecs, j, jpay, now, wall_ns):
    """Risk, then OMS, then encode one intent. Returns its RiskReason (0: on the wire)."""
    action = r["action"]
    cl = r["cl_ord_id"]
    wio[W_WARM_LAST_CL] = cl
    orig = r["orig_cl_ord_id"]
    sid = r["symbol_id"]
    side = r["side"]
    price = r["price"]
    qty = r["qty"]
    otype = r["ord_type"]
    reason = risk.check(words, orders, positions, limits, g, marks, rates, action, cl, orig,
                        sid, side, price, qty, otype, now)
    if reason != 0:
        count_denial(wio, reason)
        publish_exec(ectl, estamps, erecs, wio, r["t_origin_ns"], now, 0, cl, orig, 0, 0, price,
                     0, 0, 0, 0, sid, 6, 9, side, SRC_RISK, reason,
                     _position(positions, sid))
        return reason
    if action == 4:  # CANCEL_ALL (symbol_id < 0: every instrument)
        cancel_all(words, orders, seqs, jdata, jindex, comp_ids, syms, sym_lens, grid, scratch,
                   wire, wio, torig, j, jpay, sid, now, wall_ns)
        return 0
    if action == 2:
        risk.note_cancel(rates, g, now)
        send_cancel(words, orders, oms.find(orders, orig), seqs, jdata, jindex, comp_ids, syms,
                    sym_lens, grid, scratch, wire, wio, torig, j, jpay, cl, now, wall_ns)
        return 0
    risk.note_order(rates, g, now)
    seq = take_seq(seqs)
    sym = _sym(syms, sym_lens, sid)
    if action == 1:
        s, e = C.encode_new_order(scratch, comp_ids, seq, wall_ns, cl, sym, side, price, qty,
                                  otype, r["tif"], grid[sid])
        oms.accept_new(words, orders, positions, cl, sid, side, price, qty, r["tif"], otype,
                       0, r["t_origin_ns"], now)
    else:
        s, e = C.encode_replace(scratch, comp_ids, seq, wall_ns, cl, orig, sym, side, price,
                                qty, otype, r["tif"], grid[sid])
        oms.accept_replace(orders, oms.find(orders, orig), cl, price, qty, now)
    _journal_intent(j, jpay, wio, action, cl, orig, sid, side, price, qty, r["tif"], otype,
                    0, r["t_origin_ns"], now)
    _emit(wire, wio, torig, seqs, jdata, jindex, scratch, s, e, seq, r["t_origin_ns"])
    return 0


@njit(cache=True, _nrt=False)
def process_intents(ictl, istamps, irecs, islot, words, orders, positions, limits, g, marks, rates,
                    seqs, jdata, jindex, comp_ids, syms, sym_lens, grid, scratch, wire, wio,
                    torig, ectl, estamps, erecs, j, jpay, ohist, now, wall_ns, limit):
    """Consume up to ``limit`` intents from the order ring; returns how many. ``ohist``
    records the order-ring hop (strategy decision -> read here)."""
    n = poll(ictl, istamps, islot, limit)
    pos = cursor(ictl, islot)
    done = 0
    mask = ictl[MASK]
    while done < n and wio[W_END] + MSG_ROOM <= wire.shape[0] and exec_room(ectl) > 0:
        if J.full(j):
            r = irecs[(pos + done) & mask]
            publish_exec(ectl, estamps, erecs, wio, r["t_origin_ns"], now, 0, r["cl_ord_id"], 0,
                         0, 0, 0, 0, 0, 0, 0, r["symbol_id"], 6, 9, 0, SRC_RISK, JOURNAL_FULL,
                         _position(positions, r["symbol_id"]))
            wio[W_JOURNAL_FULL] += 1
            count_denial(wio, JOURNAL_FULL)
            done += 1
            continue
        if irecs[(pos + done) & mask]["t_decision_ns"] > 0:
            record(ohist, now - irecs[(pos + done) & mask]["t_decision_ns"])
        handle_intent(irecs[(pos + done) & mask], words, orders, positions, limits, g, marks,
                      rates, seqs, jdata, jindex, comp_ids, syms, sym_lens, grid, scratch,
                      wire, wio, torig, ectl, estamps, erecs, j, jpay, now, wall_ns)
        done += 1
    if done:
        release(ictl, islot, pos + done)
    return done


@njit(cache=True, _nrt=False)
def on_report(f, words, orders, positions, ectl, estamps, erecs, wio, j, now):
    """One decoded ExecutionReport / OrderCancelReject -> OMS -> journal -> exec ring."""
    if f[C.F_ERROR] != 0:
        return False  # counted by the caller; an unusable report changes nothing
    slot, et = oms.apply_report(words, orders, positions, f, now)
    if not J.append(j, J.K_REPORT, now, f):
        wio[W_JOURNAL_FULL] += 1
    if slot < 0:
        return False
    o = orders[slot]
    reason = f[C.F_ORD_REJ_REASON] if f[C.F_MSG_TYPE] == C.MSG_EXEC_REPORT else \
        f[C.F_CXL_REJ_REASON]
    publish_exec(ectl, estamps, erecs, wio, o["t_origin_ns"], now, f[C.F_TRANSACT_TIME],
                 f[C.F_CL_ORD_ID], f[C.F_ORIG_CL_ORD_ID], o["venue_order_id"], f[C.F_EXEC_ID],
                 o["price"], f[C.F_LAST_PX], f[C.F_LAST_QTY], o["cum_qty"], o["leaves_qty"],
                 o["symbol_id"], et, o["status"], o["side"], SRC_VENUE, reason,
                 positions[o["symbol_id"]]["position"])
    return True


@njit(cache=True, _nrt=False)
def pump_inbound(inbuf, io, seqs, f, syms, grid, words, orders, positions, ectl, estamps, erecs,
                 wio, j, now):
    """Consume in-sequence ExecutionReports/OrderCancelRejects straight from the socket
    buffer into the OMS and the exec ring; stop (without consuming) at anything the Python
    session must see (admin message, gap, duplicate). Garbled input is dropped and counted
    by ``next_inbound``. Returns how many application messages were applied, or
    ``-1 - applied`` when it stopped because the exec ring is full (backpressure: the
    reports stay in the socket buffer, nothing is dropped)."""
    n = 0
    while True:
        if exec_room(ectl) < 1:
            wio[W_EXEC_BLOCKED] += 1  # the strategy is a ring behind: leave it in the socket
            wio[W_LAST_KIND] = 0
            return -1 - n  # negative: blocked (after n applied)
        k = next_inbound(inbuf, io, seqs, f, syms, grid, now)
        if k == K_APP:
            if not on_report(f, words, orders, positions, ectl, estamps, erecs, wio, j, now) and \
                    f[C.F_ERROR] != 0:
                wio[W_BAD_REPORTS] += 1
            n += 1
        elif k != K_GARBLED:
            wio[W_LAST_KIND] = k
            return n


@njit(cache=True, _nrt=False)
def record_wire_times(hist, torig, wio, now):
    """Tick-to-trade: t_origin -> the moment the bytes were handed to the socket."""
    for i in range(wio[W_NORIG]):
        if torig[i] > 0:
            histogram.record(hist, now - torig[i])
    wio[W_NORIG] = 0
    wio[W_END] = 0


@njit(cache=True, _nrt=False)
def update_marks(out_rec, n, marks):
    """Latest top of book per instrument from observed BOOK_UPDATE records."""
    for i in range(n):
        r = out_rec[i]
        sid = r["symbol_id"]
        if sid < 0 or sid >= marks.shape[0]:
            continue
        if r["state"] == 2 and r["n_bids"] > 0 and r["n_asks"] > 0:
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
def _inbound(fd, inbuf, io, seqs, f, syms, grid, words, orders, positions, ectl, estamps,
             erecs, wio, j, now):
    """Socket -> exec reports -> OMS -> exec ring. Returns the work count, or ``-1 - work``
    with ``wio[W_STOP]`` set when Python must take over."""
    work = 0
    if io[IO_START] == io[IO_END]:
        io[IO_START] = 0
        io[IO_END] = 0
    end = io[IO_END]
    if end >= inbuf.shape[0]:
        wio[W_STOP] = STOP_ADMIN  # full: Python compacts the buffer
        return -1
    r = sock_recv(fd, inbuf, end, inbuf.shape[0] - end)
    if r > 0:
        io[IO_END] = end + r
        work += 1
    elif r == 0:
        wio[W_STOP] = STOP_CLOSED
        return -1
    elif r != -EAGAIN:
        wio[W_STOP] = STOP_ERROR
        return -1
    wio[W_LAST_KIND] = 0
    applied = pump_inbound(inbuf, io, seqs, f, syms, grid, words, orders, positions, ectl,
                           estamps, erecs, wio, j, now)
    work += applied if applied >= 0 else -1 - applied
    if wio[W_LAST_KIND] == K_OTHER:
        wio[W_STOP] = STOP_ADMIN
        return -1 - work
    return work


@njit(cache=True, _nrt=False)
def _send_wire(fd, wire, wio, torig, io, hist, send_hist, now):
    """One send() of everything encoded this pass; tick-to-trade is recorded when it
    returns. False (``wio[W_STOP]`` = STOP_PARTIAL) when the socket took only part."""
    n = wio[W_END]
    t_send = monotonic_ns()
    r = sock_send(fd, wire, 0, n)
    t_sent = monotonic_ns()
    record(send_hist, t_sent - t_send)
    if r == n:
        io[IO_LAST_SENT] = now
        record_wire_times(hist, torig, wio, t_sent)
        return True
    wio[W_SENT_BYTES] = max(r, 0)
    wio[W_STOP] = STOP_PARTIAL
    return False


@njit(cache=True, _nrt=False)
def duty(fd, ictl, istamps, irecs, islot, words, orders, positions, limits, g, marks, rates,
         seqs, jdata, jindex, comp_ids, syms, sym_lens, grid, scratch, wire, wio, torig, ectl,
         estamps, erecs, j, jpay, ohist, inbuf, io, f, hist, send_hist, work_hist, book_ctl,
         book_raw, book_slot, book_out, book_rec):
    """One pass of the gateway's hot path, all in numba: book marks, then the outbound leg
    (order ring -> risk -> OMS -> FIX -> socket), then the inbound one (socket -> exec
    reports -> OMS -> exec ring). Outbound goes first so an intent never waits behind a
    recv() and the parsing of reports; risk then sees the OMS before those reports, which
    errs safe (an order they fill or cancel still counts as open). Returns the work count,
    or ``-1 - work`` when Python must take over before the next pass (the duty-cycle
    convention of ``pipeline.runtime.agent``); ``wio[W_STOP]`` says why (admin message,
    partial send, closed or failed socket). ``hist``: tick-to-trade; ``send_hist``: the
    send() syscall alone (on loopback it includes waking the venue process); ``work_hist``:
    a sending pass up to its send() (marks, risk, OMS, encoding, journals)."""
    now = monotonic_ns()
    work = 0
    if book_slot >= 0:
        n = observe(book_ctl, book_slot, book_raw, book_out)
        if n:
            update_marks(book_rec, n, marks)
            work += n
    work += process_intents(ictl, istamps, irecs, islot, words, orders, positions, limits, g,
                            marks, rates, seqs, jdata, jindex, comp_ids, syms, sym_lens, grid,
                            scratch, wire, wio, torig, ectl, estamps, erecs, j, jpay, ohist,
                            now, realtime_ns(), 256)
    if wio[W_END] > 0:
        record(work_hist, monotonic_ns() - now)
        if not _send_wire(fd, wire, wio, torig, io, hist, send_hist, now):
            return -1 - work
        work += 1
    elif warming.due(wio, W_WARM_CLOCK):  # nothing to send: keep the order path hot
        wio[W_WARM_RESULT] = warm(wio[W_WARM_TX], wio[W_WARM_RX], scratch, seqs, comp_ids, syms,
                                  sym_lens, grid, words, orders, positions, limits, g, marks,
                                  rates, now, realtime_ns(),
                                  wio[W_WARM_CLOCK + warming.PASSES] & 1) + touch(
            wire, torig, orders, wio[W_WARM_LAST_CL], j, seqs, jdata, jindex)
    r = _inbound(fd, inbuf, io, seqs, f, syms, grid, words, orders, positions, ectl, estamps,
                 erecs, wio, j, now)
    return work + r if r >= 0 else r - work


def empty_wire(size: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(size, np.uint8), np.zeros(WIO_WORDS, np.int64), np.zeros(4096, np.int64)
