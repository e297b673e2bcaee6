"""Paper venue: fills the strategy's orders against the replayed book, in numba.

It takes the order gateway's place on the order path: gating consumer "gateway" of the
"orders" ring, producer of EXEC_REPORT records (source VENUE) into the "execs" ring. The
market it trades against is the latest-book area the book builder writes, so a replay
exercises the real strategy and book code with nothing on the wire.

Matching rules (deliberately simple and deterministic; no queue position, no depth):
- NEW: a post-only order that would cross the opposite best is REJECTED; a marketable
  non-post-only limit fills in full at the opposite best (taker); an IOC/FOK that is not
  marketable EXPIRES; anything else rests (NEW report).
- CANCEL -> CANCELED (``cl_ord_id`` the cancel's id, ``orig_cl_ord_id`` the order's);
  unknown order -> CANCEL_REJECTED. CANCEL_ALL (``symbol_id < 0``: every symbol) cancels
  each resting order with one CANCELED report per order.
- REPLACE -> REPLACED with the new id, price and quantity; a post-only replace that would
  cross is REJECTED and the old order stands; unknown order -> CANCEL_REJECTED.
- Book-through (maker) fills: whenever a symbol's latest book changes, a resting buy fills
  in full at its own price if the best ask is at or below it (sells symmetric), with the
  book's ``t_origin_ns``. Fills are checked before new intents are handled in a duty
  cycle: the market move happened before the strategy's reaction to it.

Report times are event times (the intent's or the book's ``t_origin_ns``), never a clock
read, so a replay is reproducible byte for byte.
"""

from __future__ import annotations

import enum

import numpy as np
from numba import njit

from pipeline.marketdata.latest import read_latest
from pipeline.orders.oms import apply_fill
from pipeline.transport import ring as R
from pipeline.transport.atomics import load_acquire, load_relaxed
from shm_layouts.book import SEQ_LINE_WORDS
from shm_layouts.oms import POSITION
from shm_layouts.records import (
    BOOK_UPDATE,
    ExecType,
    OrderAction,
    OrdStatus,
    ReportSource,
    SyncState,
    TimeInForce,
)
from shm_layouts.ring import CAPACITY, PUBLISHED


class PaperReason(enum.IntEnum):
    """``EXEC_REPORT.reject_reason`` of paper-venue rejects."""

    OK = 0
    UNKNOWN_SYMBOL = 1
    BAD_ORDER = 2  # qty <= 0, price <= 0, bad side, action or TIF
    WOULD_CROSS = 3  # post-only that would take liquidity
    DUPLICATE_ID = 4
    BOOK_FULL = 5  # no free paper-order slot
    UNKNOWN_ORDER = 6


# per-order words
W_CL, W_SID, W_SIDE, W_PRICE, W_LEAVES, W_CUM, W_VID, W_LIVE, W_TIF = range(9)
ORDER_WORDS = 9
# state words: ids, event clock, intent log fill, resting orders and the slot high-water
# mark (scans stop there), then counters (COUNTERS names them)
V_NEXT_VID, V_NEXT_EXEC, V_CLOCK, V_LOG_N, V_LIVE, V_HWM = 0, 1, 2, 3, 4, 5
COUNTERS = ("intents", "new", "cancel", "replace", "cancel_all", "rejected",
            "cancel_rejected", "canceled", "expired", "fills", "maker_fills", "taker_fills",
            "bad_intents", "exec_ring_full", "intent_log_overflow")
(V_INTENTS, V_NEW, V_CANCEL, V_REPLACE, V_CANCEL_ALL, V_REJECTED, V_CANCEL_REJECTED,
 V_CANCELED, V_EXPIRED, V_FILLS, V_MAKER, V_TAKER, V_BAD, V_EXEC_FULL,
 V_LOG_OVERFLOW) = range(6, 6 + len(COUNTERS))
STATE_WORDS = 6 + len(COUNTERS)
BATCH = 64

NEW, CANCEL, REPLACE, CANCEL_ALL = (int(OrderAction.NEW), int(OrderAction.CANCEL),
                                    int(OrderAction.REPLACE), int(OrderAction.CANCEL_ALL))
POST_ONLY, IOC, FOK = int(TimeInForce.POST_ONLY), int(TimeInForce.IOC), int(TimeInForce.FOK)
SYNCED = int(SyncState.SYNCED)
VENUE = int(ReportSource.VENUE)
ET = {e.name: int(e) for e in ExecType}
OS = {s.name: int(s) for s in OrdStatus}
ET_NEW, ET_FILL, ET_CANCELED, ET_REPLACED = ET["NEW"], ET["FILL"], ET["CANCELED"], ET["REPLACED"]
ET_REJECTED, ET_EXPIRED, ET_CANCEL_REJECTED = ET["REJECTED"], ET["EXPIRED"], ET["CANCEL_REJECTED"]
OS_NEW, OS_FILLED, OS_CANCELED = OS["NEW"], OS["FILLED"], OS["CANCELED"]
OS_REPLACED, OS_REJECTED, OS_EXPIRED = OS["REPLACED"], OS["REJECTED"], OS["EXPIRED"]
R_BAD, R_CROSS, R_DUP = (int(PaperReason.BAD_ORDER), int(PaperReason.WOULD_CROSS),
                         int(PaperReason.DUPLICATE_ID))
R_SYMBOL, R_FULL, R_UNKNOWN = (int(PaperReason.UNKNOWN_SYMBOL), int(PaperReason.BOOK_FULL),
                               int(PaperReason.UNKNOWN_ORDER))


class PaperState:
    """The venue's private arrays (process memory: the replay is one process)."""

    def __init__(self, n_symbols: int, max_orders: int = 4096, log_capacity: int = 0):
        self.orders = np.zeros((max_orders, ORDER_WORDS), np.int64)
        self.state = np.zeros(STATE_WORDS, np.int64)
        self.state[V_NEXT_VID] = self.state[V_NEXT_EXEC] = 1
        self.seen = np.zeros(n_symbols, np.int64)  # latest-book seq last checked
        self.positions = np.zeros(n_symbols, POSITION)
        self.book = np.zeros(1, BOOK_UPDATE)
        self.intent_log = np.zeros((log_capacity, 64), np.uint8)  # raw ORDER_INTENT rows

    def counters(self) -> dict[str, int]:
        return {name: int(self.state[V_INTENTS + i]) for i, name in enumerate(COUNTERS)}

    def take_log(self) -> bytes:
        """The intents logged since the last call, as raw bytes (and empty the log)."""
        n = int(self.state[V_LOG_N])
        out = self.intent_log[:n].tobytes()
        self.state[V_LOG_N] = 0
        return out

    def open_orders(self) -> np.ndarray:
        return self.orders[self.orders[:, W_LIVE] == 1]


# ---------------------------------------------------------------------------- reports
@njit(cache=True)
def exec_room(ctl):
    """Free slots in the exec ring (the strategy is its only gating consumer)."""
    pub = load_relaxed(ctl, PUBLISHED)
    return ctl[CAPACITY] - (pub - R.slowest_gating(ctl, pub))


@njit(cache=True)
def emit(execs, st, o, exec_type, ord_status, cl, orig, last_px, last_qty, reason, t_origin):
    """Publish one report about order row ``o`` (its current price, cum, leaves)."""
    ctl, stamps, recs, positions = execs
    start = R.try_claim(ctl, 1)
    if start < 0:  # cannot happen: callers check exec_room first
        st[V_EXEC_FULL] += 1
        return
    r = recs[start & (recs.shape[0] - 1)]
    r["t_origin_ns"] = t_origin
    r["t_recv_ns"] = 0
    r["t_venue_ns"] = st[V_CLOCK]
    r["cl_ord_id"] = cl
    r["orig_cl_ord_id"] = orig
    r["venue_order_id"] = o[W_VID]
    r["exec_id"] = st[V_NEXT_EXEC]
    st[V_NEXT_EXEC] += 1
    r["price"] = o[W_PRICE]
    r["last_px"] = last_px
    r["last_qty"] = last_qty
    r["cum_qty"] = o[W_CUM]
    r["leaves_qty"] = o[W_LEAVES]
    r["symbol_id"] = o[W_SID]
    r["exec_type"] = exec_type
    r["ord_status"] = ord_status
    r["side"] = o[W_SIDE]
    r["source"] = VENUE
    r["reject_reason"] = reason
    sid = o[W_SID]
    r["position"] = positions[sid]["position"] if 0 <= sid < positions.shape[0] else 0
    R.publish(ctl, stamps, start + 1)


@njit(cache=True)
def fill(execs, st, positions, o, px, t_origin):
    """Fill the order's whole remaining quantity at ``px`` and free its slot."""
    qty = o[W_LEAVES]
    o[W_CUM] += qty
    o[W_LEAVES] = 0
    retire(st, o)
    apply_fill(positions, o[W_SID], o[W_SIDE], qty, px)
    st[V_FILLS] += 1
    emit(execs, st, o, ET_FILL, OS_FILLED, o[W_CL], 0, px, qty, 0, t_origin)


# ---------------------------------------------------------------------------- book
@njit(cache=True)
def best(book, side):
    """Best price of ``side`` (0 bid, 1 ask) of a synced book, or -1."""
    if book["state"] != SYNCED:
        return -1
    if side == 0:
        return book["bid_px"][0] if book["n_bids"] > 0 else -1
    return book["ask_px"][0] if book["n_asks"] > 0 else -1


@njit(cache=True)
def crosses(book, side, price):
    """Would a ``side`` order at ``price`` take liquidity from this book?"""
    opp = best(book, 1 - side)
    if opp < 0:
        return False
    return price >= opp if side == 0 else price <= opp


@njit(cache=True)
def book_through(execs, st, orders, positions, book, sid):
    """Fill every resting order of ``sid`` the book has traded through; returns fills."""
    ask, bid = best(book, 1), best(book, 0)
    n = 0
    for i in range(st[V_HWM]):
        o = orders[i]
        if o[W_LIVE] == 0 or o[W_SID] != sid:
            continue
        if (o[W_SIDE] == 0 and 0 <= ask <= o[W_PRICE]) or \
                (o[W_SIDE] == 1 and bid >= 0 and bid >= o[W_PRICE]):
            fill(execs, st, positions, o, o[W_PRICE], book["t_origin_ns"])
            st[V_MAKER] += 1
            n += 1
    return n


@njit(cache=True)
def check_books(execs, seq, table, book, seen, orders, st, positions):
    """Book-through fills for every symbol whose latest book changed since last seen."""
    n = 0
    for sid in range(seen.shape[0]):
        s = load_acquire(seq, sid * SEQ_LINE_WORDS)
        if s == seen[sid] or s & 1:
            continue
        if exec_room(execs[0]) < st[V_LIVE] + 1:
            return n  # the strategy must drain its reports first; retried next cycle
        if read_latest(seq, table, sid, book):
            b = book[0]
            if b["t_origin_ns"] > st[V_CLOCK]:
                st[V_CLOCK] = b["t_origin_ns"]
            n += book_through(execs, st, orders, positions, b, sid)
        seen[sid] = s
    return n


# ---------------------------------------------------------------------------- intents
@njit(cache=True)
def find(orders, st, cl_ord_id):
    for i in range(st[V_HWM]):
        if orders[i, W_LIVE] == 1 and orders[i, W_CL] == cl_ord_id:
            return i
    return -1


@njit(cache=True)
def occupy(orders, st):
    """A free order slot, now counted as resting (-1 if every slot is in use)."""
    slot = -1
    if st[V_LIVE] < st[V_HWM]:
        for i in range(st[V_HWM]):
            if orders[i, W_LIVE] == 0:
                slot = i
                break
    elif st[V_HWM] < orders.shape[0]:
        slot = st[V_HWM]
        st[V_HWM] += 1
    if slot >= 0:
        orders[slot, W_LIVE] = 1
        st[V_LIVE] += 1
    return slot


@njit(cache=True)
def retire(st, o):
    o[W_LIVE] = 0
    st[V_LIVE] -= 1


@njit(cache=True)
def reject(execs, st, scratch, it, exec_type, reason, orig):
    """A report about an intent that matches no order it could create or change."""
    o = scratch
    o[:] = 0
    o[W_SID], o[W_SIDE], o[W_PRICE] = it["symbol_id"], it["side"], it["price"]
    if exec_type == ET_REJECTED:
        st[V_REJECTED] += 1
    else:
        st[V_CANCEL_REJECTED] += 1
    emit(execs, st, o, exec_type, OS_REJECTED, it["cl_ord_id"], orig, 0, 0, reason,
         it["t_origin_ns"])


@njit(cache=True)
def take_if_marketable(execs, st, positions, o, book, t_origin):
    """A non-post-only limit that crosses fills at the opposite best; True if it did."""
    if o[W_TIF] == POST_ONLY or not crosses(book, o[W_SIDE], o[W_PRICE]):
        return False
    fill(execs, st, positions, o, best(book, 1 - o[W_SIDE]), t_origin)
    st[V_TAKER] += 1
    return True


@njit(cache=True)
def on_new(execs, st, orders, positions, book, scratch, it):
    t = it["t_origin_ns"]
    if find(orders, st, it["cl_ord_id"]) >= 0:
        return reject(execs, st, scratch, it, ET_REJECTED, R_DUP, 0)
    if it["tif"] == POST_ONLY and crosses(book, it["side"], it["price"]):
        return reject(execs, st, scratch, it, ET_REJECTED, R_CROSS, 0)
    slot = occupy(orders, st)
    if slot < 0:
        return reject(execs, st, scratch, it, ET_REJECTED, R_FULL, 0)
    o = orders[slot]
    o[W_CL], o[W_SID], o[W_SIDE], o[W_PRICE] = (it["cl_ord_id"], it["symbol_id"], it["side"],
                                                it["price"])
    o[W_LEAVES], o[W_CUM], o[W_VID], o[W_TIF] = it["qty"], 0, st[V_NEXT_VID], it["tif"]
    st[V_NEXT_VID] += 1
    if take_if_marketable(execs, st, positions, o, book, t):
        return
    if it["tif"] == IOC or it["tif"] == FOK:
        retire(st, o)
        st[V_EXPIRED] += 1
        emit(execs, st, o, ET_EXPIRED, OS_EXPIRED, o[W_CL], 0, 0, 0, 0, t)
        return
    emit(execs, st, o, ET_NEW, OS_NEW, o[W_CL], 0, 0, 0, 0, t)


@njit(cache=True)
def on_cancel(execs, st, orders, scratch, it):
    i = find(orders, st, it["orig_cl_ord_id"])
    if i < 0 or orders[i, W_SID] != it["symbol_id"]:
        return reject(execs, st, scratch, it, ET_CANCEL_REJECTED, R_UNKNOWN,
                      it["orig_cl_ord_id"])
    cancel_one(execs, st, orders[i], it["cl_ord_id"], it["t_origin_ns"])


@njit(cache=True)
def cancel_one(execs, st, o, request_id, t_origin):
    retire(st, o)
    o[W_LEAVES] = 0
    st[V_CANCELED] += 1
    emit(execs, st, o, ET_CANCELED, OS_CANCELED, request_id, o[W_CL], 0, 0, 0, t_origin)


@njit(cache=True)
def on_replace(execs, st, orders, positions, book, scratch, it):
    old = it["orig_cl_ord_id"]
    i = find(orders, st, old)
    if i < 0 or orders[i, W_SID] != it["symbol_id"]:
        return reject(execs, st, scratch, it, ET_CANCEL_REJECTED, R_UNKNOWN, old)
    if find(orders, st, it["cl_ord_id"]) >= 0:
        return reject(execs, st, scratch, it, ET_REJECTED, R_DUP, old)
    o = orders[i]
    if o[W_TIF] == POST_ONLY and crosses(book, o[W_SIDE], it["price"]):
        st[V_REJECTED] += 1  # the report describes the order that stands (status NEW)
        return emit(execs, st, o, ET_REJECTED, OS_NEW, it["cl_ord_id"], old, 0, 0, R_CROSS,
                    it["t_origin_ns"])
    o[W_CL], o[W_PRICE] = it["cl_ord_id"], it["price"]
    o[W_LEAVES] = max(it["qty"] - o[W_CUM], 0)
    emit(execs, st, o, ET_REPLACED, OS_REPLACED, o[W_CL], old, 0, 0, 0, it["t_origin_ns"])
    take_if_marketable(execs, st, positions, o, book, it["t_origin_ns"])


@njit(cache=True)
def on_cancel_all(execs, st, orders, it):
    sid = it["symbol_id"]
    for i in range(st[V_HWM]):
        o = orders[i]
        if o[W_LIVE] == 1 and (sid < 0 or o[W_SID] == sid):
            cancel_one(execs, st, o, it["cl_ord_id"], it["t_origin_ns"])


@njit(cache=True)
def valid(it, n_symbols):
    """Reason an intent is malformed (0: well formed)."""
    a = it["action"]
    if a < NEW or a > CANCEL_ALL:
        return R_BAD
    if a == CANCEL_ALL:
        return R_SYMBOL if it["symbol_id"] >= n_symbols else 0
    if it["symbol_id"] < 0 or it["symbol_id"] >= n_symbols:
        return R_SYMBOL
    if a == CANCEL:
        return 0
    if it["qty"] <= 0 or it["price"] <= 0 or it["side"] > 1 or it["tif"] < 1 or it["tif"] > 4:
        return R_BAD
    return 0


@njit(cache=True)
def handle(execs, seq, table, book, st, orders, positions, scratch, it):
    """One intent -> its reports."""
    n_symbols = table.shape[0]
    if it["t_origin_ns"] > st[V_CLOCK]:
        st[V_CLOCK] = it["t_origin_ns"]
    reason = valid(it, n_symbols)
    if reason:
        st[V_BAD] += 1
        return reject(execs, st, scratch, it, ET_REJECTED, reason, it["orig_cl_ord_id"])
    a = it["action"]
    if a == CANCEL_ALL:
        st[V_CANCEL_ALL] += 1
        return on_cancel_all(execs, st, orders, it)
    if a == CANCEL:
        st[V_CANCEL] += 1
        return on_cancel(execs, st, orders, scratch, it)
    if not read_latest(seq, table, it["symbol_id"], book):
        book[0]["state"] = 0  # no book yet: nothing crosses, nothing fills
    if a == NEW:
        st[V_NEW] += 1
        return on_new(execs, st, orders, positions, book[0], scratch, it)
    st[V_REPLACE] += 1
    on_replace(execs, st, orders, positions, book[0], scratch, it)


@njit(cache=True)
def paper_cycle(o_ctl, o_stamps, o_recs, o_raw, slot, e_ctl, e_stamps, e_recs, seq, table,
                book, seen, orders, st, positions, scratch, intent_log):
    """One duty cycle: book-through fills, then up to BATCH intents. Returns work done."""
    execs = (e_ctl, e_stamps, e_recs, positions)  # reports carry the resulting position
    work = check_books(execs, seq, table, book, seen, orders, st, positions)
    n = R.poll(o_ctl, o_stamps, slot, BATCH)
    if n == 0:
        return work
    pos = R.cursor(o_ctl, slot)
    mask = o_recs.shape[0] - 1
    done = 0
    for i in range(n):
        if exec_room(e_ctl) < st[V_LIVE] + 1:
            break  # backpressure: the strategy drains its reports, then we go on
        k = (pos + i) & mask
        if intent_log.shape[0]:
            if st[V_LOG_N] < intent_log.shape[0]:
                intent_log[st[V_LOG_N], :] = o_raw[k, :]
                st[V_LOG_N] += 1
            else:
                st[V_LOG_OVERFLOW] += 1
        st[V_INTENTS] += 1
        handle(execs, seq, table, book, st, orders, positions, scratch, o_recs[k])
        done += 1
    R.release(o_ctl, slot, pos + done)
    return work + done


class PaperVenue:
    """Cold-path handle: joins the rings and hands ``paper_cycle`` its arguments."""

    name = "paper_venue"

    def __init__(self, order_ring, exec_ring, latest, max_orders: int = 4096,
                 log_capacity: int = 0, consumer: str = "gateway"):
        self.order_ring, self.exec_ring, self.latest = order_ring, exec_ring, latest
        self.paper = PaperState(latest.n_symbols, max_orders, log_capacity)
        self.slot = order_ring.join(consumer)
        exec_ring.claim_producer()
        p = self.paper
        self.args = (order_ring.ctl, order_ring.stamps, order_ring.records, order_ring.raw,
                     self.slot, exec_ring.ctl, exec_ring.stamps, exec_ring.records, latest.seq,
                     latest.table, p.book, p.seen, p.orders, p.state, p.positions,
                     np.zeros(ORDER_WORDS, np.int64), p.intent_log)

    def cycle(self) -> int:
        return paper_cycle(*self.args)
