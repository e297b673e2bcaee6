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
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.marketdata.latest import LatestView, read_latest
from pipeline.orders.oms import apply_fill
from pipeline.transport import ring as R
from pipeline.transport.atomics import load_acquire, load_relaxed
from pipeline.transport.ring import RingView
from shm_layouts.book import SEQ_LINE_WORDS
from shm_layouts.oms import POSITION
from shm_layouts.records import (
    BOOK_UPDATE,
    ExecType,
    OrderAction,
    OrdStatus,
    ReportSource,
    Side,
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


# a paper order (one record per slot)
ORDER = np.dtype([("cl", "<i8"), ("sid", "<i8"), ("side", "<i8"), ("price", "<i8"),
                  ("leaves", "<i8"), ("cum", "<i8"), ("vid", "<i8"), ("live", "<i8"),
                  ("tif", "<i8")])
# the venue's state (1-element record): ids, event clock, intent log fill, resting orders
# and the slot high-water mark (scans stop there), then counters (COUNTERS names them)
COUNTERS = ("intents", "new", "cancel", "replace", "cancel_all", "rejected",
            "cancel_rejected", "canceled", "expired", "fills", "maker_fills", "taker_fills",
            "bad_intents", "exec_ring_full", "intent_log_overflow")
PAPER_STATE = np.dtype([(f, "<i8") for f in ("next_vid", "next_exec", "clock", "log_n", "live",
                                             "hwm", *COUNTERS)])
BATCH = 64

NEW, CANCEL, REPLACE, CANCEL_ALL = (int(OrderAction.NEW), int(OrderAction.CANCEL),
                                    int(OrderAction.REPLACE), int(OrderAction.CANCEL_ALL))
POST_ONLY, IOC, FOK = int(TimeInForce.POST_ONLY), int(TimeInForce.IOC), int(TimeInForce.FOK)
SYNCED, UNSYNCED = int(SyncState.SYNCED), int(SyncState.UNSYNCED)
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
BUY, SELL = int(Side.BID), int(Side.ASK)
TIF_FIRST, TIF_LAST = min(map(int, TimeInForce)), max(map(int, TimeInForce))


class PaperArrays(NamedTuple):
    """The venue's private arrays as one argument of ``paper_cycle``."""

    book: np.ndarray  # BOOK_UPDATE[1]: the latest book read
    seen: np.ndarray  # per symbol: latest-book seq last checked
    orders: np.ndarray  # ORDER per slot
    state: np.ndarray  # PAPER_STATE[1]
    positions: np.ndarray  # POSITION per symbol
    scratch: np.ndarray  # ORDER[1]: the order a reject reports about
    intent_log: np.ndarray  # raw ORDER_INTENT rows


class Report(NamedTuple):
    """What one report says beyond the order row it is about."""

    exec_type: int
    ord_status: int
    cl: int
    orig: int
    last_px: int
    last_qty: int
    reason: int
    t_origin: int


class PaperArgs(NamedTuple):
    """``paper_cycle``'s arguments (``PaperVenue.args``)."""

    intents: RingView  # the orders ring, this venue's consumer slot
    execs: RingView  # the exec ring (producer)
    latest: LatestView
    paper: PaperArrays


class PaperState:
    """The venue's private arrays (process memory: the replay is one process)."""

    def __init__(self, n_symbols: int, max_orders: int = 4096, log_capacity: int = 0):
        self.orders = np.zeros(max_orders, ORDER)
        self.state = np.zeros(1, PAPER_STATE)
        self.state[0]["next_vid"] = self.state[0]["next_exec"] = 1
        self.seen = np.zeros(n_symbols, np.int64)  # latest-book seq last checked
        self.positions = np.zeros(n_symbols, POSITION)
        self.book = np.zeros(1, BOOK_UPDATE)
        self.intent_log = np.zeros((log_capacity, 64), np.uint8)  # raw ORDER_INTENT rows
        self.arrays = PaperArrays(self.book, self.seen, self.orders, self.state,
                                  self.positions, np.zeros(1, ORDER), self.intent_log)

    def counters(self) -> dict[str, int]:
        return {name: int(self.state[0][name]) for name in COUNTERS}

    def take_log(self) -> bytes:
        """The intents logged since the last call, as raw bytes (and empty the log)."""
        n = int(self.state[0]["log_n"])
        out = self.intent_log[:n].tobytes()
        self.state[0]["log_n"] = 0
        return out

    def open_orders(self) -> np.ndarray:
        return self.orders[self.orders["live"] == 1]


# ---------------------------------------------------------------------------- reports
@njit(cache=True)
def exec_room(ctl):
    """Free slots in the exec ring (the strategy is its only gating consumer)."""
    pub = load_relaxed(ctl, PUBLISHED)
    return ctl[CAPACITY] - (pub - R.slowest_gating(ctl, pub))


@njit(cache=True)
def emit(execs, p, o, rep):
    """Publish one report (``Report``) about order ``o`` (its current price, cum, leaves)
    to the exec ring ``execs``; it carries the resulting position."""
    st = p.state[0]
    start = R.try_claim(execs.ctl, 1)
    if start < 0:  # cannot happen: callers check exec_room first
        st.exec_ring_full += 1
        return
    r = execs.records[start & (execs.records.shape[0] - 1)]
    r["t_origin_ns"] = rep.t_origin
    r["t_recv_ns"] = 0
    r["t_venue_ns"] = st.clock
    r["cl_ord_id"] = rep.cl
    r["orig_cl_ord_id"] = rep.orig
    r["venue_order_id"] = o.vid
    r["exec_id"] = st.next_exec
    st.next_exec += 1
    r["price"] = o.price
    r["last_px"] = rep.last_px
    r["last_qty"] = rep.last_qty
    r["cum_qty"] = o.cum
    r["leaves_qty"] = o.leaves
    r["symbol_id"] = o.sid
    r["exec_type"] = rep.exec_type
    r["ord_status"] = rep.ord_status
    r["side"] = o.side
    r["source"] = VENUE
    r["reject_reason"] = rep.reason
    sid = o.sid
    positions = p.positions
    r["position"] = positions[sid]["position"] if 0 <= sid < positions.shape[0] else 0
    R.publish(execs.ctl, execs.stamps, start + 1)


@njit(cache=True)
def fill(execs, p, o, px, t_origin):
    """Fill the order's whole remaining quantity at ``px`` and free its slot."""
    st = p.state[0]
    qty = o.leaves
    o.cum += qty
    o.leaves = 0
    retire(st, o)
    apply_fill(p.positions, o.sid, o.side, qty, px)
    st.fills += 1
    emit(execs, p, o, Report(ET_FILL, OS_FILLED, o.cl, 0, px, qty, 0, t_origin))


# ---------------------------------------------------------------------------- book
@njit(cache=True)
def best(book, side):
    """Best price of ``side`` (BUY: the bid, SELL: the ask) of a synced book, or -1."""
    if book["state"] != SYNCED:
        return -1
    if side == BUY:
        return book["bid_px"][0] if book["n_bids"] > 0 else -1
    return book["ask_px"][0] if book["n_asks"] > 0 else -1


@njit(cache=True)
def crosses(book, side, price):
    """Would a ``side`` order at ``price`` take liquidity from this book?"""
    opp = best(book, SELL if side == BUY else BUY)
    if opp < 0:
        return False
    return price >= opp if side == BUY else price <= opp


@njit(cache=True)
def book_through(execs, p, book, sid):
    """Fill every resting order of ``sid`` the book has traded through; returns fills."""
    st = p.state[0]
    ask, bid = best(book, SELL), best(book, BUY)
    n = 0
    for i in range(st.hwm):
        o = p.orders[i]
        if o.live == 0 or o.sid != sid:
            continue
        if (o.side == BUY and 0 <= ask <= o.price) or \
                (o.side == SELL and bid >= 0 and bid >= o.price):
            fill(execs, p, o, o.price, book["t_origin_ns"])
            st.maker_fills += 1
            n += 1
    return n


@njit(cache=True)
def check_books(execs, latest, p):
    """Book-through fills for every symbol whose latest book changed since last seen."""
    st, seen, book = p.state[0], p.seen, p.book
    n = 0
    for sid in range(seen.shape[0]):
        s = load_acquire(latest.seq, sid * SEQ_LINE_WORDS)
        if s == seen[sid] or s & 1:
            continue
        if exec_room(execs.ctl) < st.live + 1:
            return n  # the strategy must drain its reports first; retried next cycle
        if read_latest(latest.seq, latest.table, sid, book):
            b = book[0]
            if b["t_origin_ns"] > st.clock:
                st.clock = b["t_origin_ns"]
            n += book_through(execs, p, b, sid)
        seen[sid] = s
    return n


# ---------------------------------------------------------------------------- intents
@njit(cache=True)
def find(p, cl_ord_id):
    orders = p.orders
    for i in range(p.state[0].hwm):
        if orders[i].live == 1 and orders[i].cl == cl_ord_id:
            return i
    return -1


@njit(cache=True)
def occupy(p):
    """A free order slot, now counted as resting (-1 if every slot is in use)."""
    st, orders = p.state[0], p.orders
    slot = -1
    if st.live < st.hwm:
        for i in range(st.hwm):
            if orders[i].live == 0:
                slot = i
                break
    elif st.hwm < orders.shape[0]:
        slot = st.hwm
        st.hwm += 1
    if slot >= 0:
        orders[slot].live = 1
        st.live += 1
    return slot


@njit(cache=True)
def retire(st, o):
    o.live = 0
    st.live -= 1


@njit(cache=True)
def reject(execs, p, it, exec_type, reason, orig):
    """A report about an intent that matches no order it could create or change."""
    st = p.state[0]
    o = p.scratch[0]
    o.sid, o.side, o.price = it["symbol_id"], it["side"], it["price"]
    o.leaves = o.cum = o.vid = 0  # what emit reads of it beyond the intent's fields
    if exec_type == ET_REJECTED:
        st.rejected += 1
    else:
        st.cancel_rejected += 1
    emit(execs, p, o, Report(exec_type, OS_REJECTED, it["cl_ord_id"], orig, 0, 0, reason,
                             it["t_origin_ns"]))


@njit(cache=True)
def take_if_marketable(execs, p, o, book, t_origin):
    """A non-post-only limit that crosses fills at the opposite best; True if it did."""
    if o.tif == POST_ONLY or not crosses(book, o.side, o.price):
        return False
    fill(execs, p, o, best(book, SELL if o.side == BUY else BUY), t_origin)
    p.state[0].taker_fills += 1
    return True


@njit(cache=True)
def on_new(execs, p, book, it):
    st = p.state[0]
    t = it["t_origin_ns"]
    if find(p, it["cl_ord_id"]) >= 0:
        return reject(execs, p, it, ET_REJECTED, R_DUP, 0)
    if it["tif"] == POST_ONLY and crosses(book, it["side"], it["price"]):
        return reject(execs, p, it, ET_REJECTED, R_CROSS, 0)
    slot = occupy(p)
    if slot < 0:
        return reject(execs, p, it, ET_REJECTED, R_FULL, 0)
    o = p.orders[slot]
    o.cl, o.sid, o.side, o.price = it["cl_ord_id"], it["symbol_id"], it["side"], it["price"]
    o.leaves, o.cum, o.vid, o.tif = it["qty"], 0, st.next_vid, it["tif"]
    st.next_vid += 1
    if take_if_marketable(execs, p, o, book, t):
        return
    if it["tif"] == IOC or it["tif"] == FOK:
        retire(st, o)
        st.expired += 1
        emit(execs, p, o, Report(ET_EXPIRED, OS_EXPIRED, o.cl, 0, 0, 0, 0, t))
        return
    emit(execs, p, o, Report(ET_NEW, OS_NEW, o.cl, 0, 0, 0, 0, t))


@njit(cache=True)
def on_cancel(execs, p, it):
    i = find(p, it["orig_cl_ord_id"])
    if i < 0 or p.orders[i].sid != it["symbol_id"]:
        return reject(execs, p, it, ET_CANCEL_REJECTED, R_UNKNOWN, it["orig_cl_ord_id"])
    cancel_one(execs, p, p.orders[i], it["cl_ord_id"], it["t_origin_ns"])


@njit(cache=True)
def cancel_one(execs, p, o, request_id, t_origin):
    st = p.state[0]
    retire(st, o)
    o.leaves = 0
    st.canceled += 1
    emit(execs, p, o, Report(ET_CANCELED, OS_CANCELED, request_id, o.cl, 0, 0, 0, t_origin))


@njit(cache=True)
def on_replace(execs, p, book, it):
    old = it["orig_cl_ord_id"]
    i = find(p, old)
    if i < 0 or p.orders[i].sid != it["symbol_id"]:
        return reject(execs, p, it, ET_CANCEL_REJECTED, R_UNKNOWN, old)
    if find(p, it["cl_ord_id"]) >= 0:
        return reject(execs, p, it, ET_REJECTED, R_DUP, old)
    o = p.orders[i]
    if o.tif == POST_ONLY and crosses(book, o.side, it["price"]):
        p.state[0].rejected += 1  # the report describes the order that stands (status NEW)
        return emit(execs, p, o, Report(ET_REJECTED, OS_NEW, it["cl_ord_id"], old, 0, 0,
                                        R_CROSS, it["t_origin_ns"]))
    o.cl, o.price = it["cl_ord_id"], it["price"]
    o.leaves = max(it["qty"] - o.cum, 0)
    emit(execs, p, o, Report(ET_REPLACED, OS_REPLACED, o.cl, old, 0, 0, 0, it["t_origin_ns"]))
    take_if_marketable(execs, p, o, book, it["t_origin_ns"])


@njit(cache=True)
def on_cancel_all(execs, p, it):
    sid = it["symbol_id"]
    for i in range(p.state[0].hwm):
        o = p.orders[i]
        if o.live == 1 and (sid < 0 or o.sid == sid):
            cancel_one(execs, p, o, it["cl_ord_id"], it["t_origin_ns"])


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
    if it["qty"] <= 0 or it["price"] <= 0 or it["side"] > SELL or it["tif"] < TIF_FIRST or \
            it["tif"] > TIF_LAST:
        return R_BAD
    return 0


@njit(cache=True)
def handle(execs, latest, p, it):
    """One intent -> its reports."""
    st, book = p.state[0], p.book
    n_symbols = latest.table.shape[0]
    if it["t_origin_ns"] > st.clock:
        st.clock = it["t_origin_ns"]
    reason = valid(it, n_symbols)
    if reason:
        st.bad_intents += 1
        return reject(execs, p, it, ET_REJECTED, reason, it["orig_cl_ord_id"])
    a = it["action"]
    if a == CANCEL_ALL:
        st.cancel_all += 1
        return on_cancel_all(execs, p, it)
    if a == CANCEL:
        st.cancel += 1
        return on_cancel(execs, p, it)
    if not read_latest(latest.seq, latest.table, it["symbol_id"], book):
        book[0]["state"] = UNSYNCED  # no book yet: nothing crosses, nothing fills
    if a == NEW:
        st.new += 1
        return on_new(execs, p, book[0], it)
    st.replace += 1
    on_replace(execs, p, book[0], it)


@njit(cache=True)
def paper_cycle(intents, execs, latest, p):
    """One duty cycle: book-through fills, then up to BATCH intents. Returns work done.
    ``intents``/``execs``: the rings' ``RingView`` (this venue's consumer slot, producer),
    ``latest``: ``LatestView``, ``p``: ``PaperArrays``."""
    st = p.state[0]
    work = check_books(execs, latest, p)
    n = R.poll(intents.ctl, intents.stamps, intents.slot, BATCH)
    if n == 0:
        return work
    pos = R.cursor(intents.ctl, intents.slot)
    mask = intents.records.shape[0] - 1
    log = p.intent_log
    done = 0
    for i in range(n):
        if exec_room(execs.ctl) < st.live + 1:
            break  # backpressure: the strategy drains its reports, then we go on
        k = (pos + i) & mask
        if log.shape[0]:
            if st.log_n < log.shape[0]:
                log[st.log_n, :] = intents.raw[k, :]
                st.log_n += 1
            else:
                st.intent_log_overflow += 1
        st.intents += 1
        handle(execs, latest, p, intents.records[k])
        done += 1
    R.release(intents.ctl, intents.slot, pos + done)
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
        self.args = PaperArgs(order_ring.view(self.slot), exec_ring.view(), latest.view(),
                              self.paper.arrays)

    def cycle(self) -> int:
        return paper_cycle(*self.args)
