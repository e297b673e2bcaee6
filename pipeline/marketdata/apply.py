"""The book builder's core: MD_EVENT records in, books updated, BOOK_UPDATE records out.

The feed handler only forwards validated sequences, but the builder still re-checks
update ids per event and the book for a crossed state after every applied event; either
failure drops the symbol to UNSYNCED (counted) until the next snapshot. An unsynced book
is never published as synced: the update it publishes says UNSYNCED and carries no
levels, so readers stop using the book at once.

A bookTicker (MD_EVENT kind BBO, a BID record then an ASK record with the ticker's update
id) is Binance's real-time top of book, while depth diffs arrive batched (``@depth@100ms``).
With ``ticker_overlay`` set (the live book builder; replays that check the rebuilt books
leave it off), a ticker at or past a synced book's update id is published at once as a
BOOK_UPDATE flagged F_BBO: its best bid and ask, then the book's deeper levels strictly
behind them (a book level at or through the ticker is one the ticker already shows
gone). The book itself is not changed: the next diff brings it up to date. An older ticker
(the book has moved past it) or a crossed or empty one is counted and not published.

``bst`` holds per-symbol state: one ``shm_layouts.book.BUILDER_STATE`` record per symbol
(in the latest-book area, so monitors and replays read its counters).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.marketdata import book as B
from pipeline.marketdata.events import (
    ASK,
    BBO,
    BID,
    DIFF_END,
    DIFF_LEVEL,
    INVALIDATE,
    SNAPSHOT_BEGIN,
    SNAPSHOT_END,
    SNAPSHOT_LEVEL,
    TRADE,
)
from pipeline.runtime.clock import monotonic_ns
from shm_layouts.book import BUILDER_STATE
from shm_layouts.records import BOOK_TOP_N, SyncState

UNSYNCED = int(SyncState.UNSYNCED)
BUILDING = int(SyncState.SNAPSHOT_PENDING)
SYNCED = int(SyncState.SYNCED)

# summary / counter name -> BUILDER_STATE field
COUNTER_FIELDS = {"book_events": "events", "book_levels": "levels",
                  "book_snapshots": "snapshots", "crossed": "crossed",
                  "id_errors": "id_errors", "book_invalidations": "invalidations",
                  "book_updates": "published", "bad_symbol": "bad_symbol",
                  "bbo_updates": "bbo_published", "bbo_superseded": "bbo_stale",
                  "bbo_rejected": "bbo_bad"}

# BOOK_UPDATE.flags
F_SNAPSHOT, F_DIFF, F_INVALID, F_CROSSED, F_BBO = 1, 2, 4, 8, 16


def new_state(futures: np.ndarray, ticker_overlay: bool = False) -> np.ndarray:
    """Per-symbol state; ``ticker_overlay``: publish fresh bookTickers (live trading; a
    book-rebuilding replay leaves it off, so what it publishes is the book alone)."""
    bst = np.zeros(len(futures), BUILDER_STATE)
    bst["futures"] = np.asarray(futures, np.int64)
    bst["ticker_overlay"] = int(ticker_overlay)
    return bst


@njit(cache=True, _nrt=False, inline="always")
def _level(bk, sid, rec):
    B.apply_level(bk.qty, bk.bits, bk.meta, bk.ov, bk.scratch, sid, rec.side, rec.price,
                  rec.qty)


@njit(cache=True, _nrt=False)
def _ids_ok(s, first, last, prev):
    uid = s.update_id
    if s.first_pending:
        target = uid if s.futures else uid + 1
        return first <= target <= last
    if s.futures:
        return prev == uid
    return first == uid + 1


@njit(cache=True, _nrt=False)
def _publish(bk, bst, sid, rec, upd, k, flags):
    s = bst[sid]
    u = upd[k]
    u.t_origin_ns = rec.t_origin_ns
    u.t_book_ns = monotonic_ns()
    u.exch_time_ns = rec.exch_time_ns
    u.update_id = s.update_id
    u.symbol_id = sid
    u.state = s.state
    u.flags = flags
    if s.state == SYNCED:
        u.n_bids = B.top(bk.qty, bk.bits, bk.meta, bk.ov, sid, BID, u.bid_px, u.bid_qty)
        u.n_asks = B.top(bk.qty, bk.bits, bk.meta, bk.ov, sid, ASK, u.ask_px, u.ask_qty)
    else:
        u.n_bids = 0
        u.n_asks = 0
        for i in range(BOOK_TOP_N):
            u.bid_px[i] = 0
            u.bid_qty[i] = 0
            u.ask_px[i] = 0
            u.ask_qty[i] = 0
    s.published += 1
    return k + 1


@njit(cache=True, _nrt=False)
def _behind(px, qt, n, best, side):
    """Put ``best`` (price, qty) first and keep the levels of ``px[:n]`` strictly behind
    it, in order; zero the rest. Returns the new count."""
    i = 0
    while i < n and ((side == BID and px[i] >= best[0]) or (side == ASK and px[i] <= best[0])):
        i += 1  # at or through the ticker: already gone from the venue's book
    keep = min(n - i, px.shape[0] - 1)
    if i == 0:
        for t in range(keep - 1, -1, -1):  # shift right by one, deepest first
            px[t + 1] = px[t]
            qt[t + 1] = qt[t]
    else:
        for t in range(keep):  # shift left by i - 1 (source at or after destination)
            px[1 + t] = px[i + t]
            qt[1 + t] = qt[i + t]
    px[0] = best[0]
    qt[0] = best[1]
    for t in range(1 + keep, px.shape[0]):
        px[t] = 0
        qt[t] = 0
    return 1 + keep


@njit(cache=True, _nrt=False)
def _on_ticker_ask(bk, bst, sid, rec, upd, k):
    """The ASK half of a bookTicker (its BID half is in ``bst``): publish it if fresh."""
    s = bst[sid]
    if not s.ticker_overlay:
        return k
    if s.state != SYNCED or s.tick_id != rec.last_id:
        return k  # no synced book, or the BID half went missing: nothing to overlay
    if rec.last_id < s.update_id:
        s.bbo_stale += 1  # the book has moved past this ticker
        return k
    bid, bq, ask, aq = s.tick_bid, s.tick_bid_qty, rec.price, rec.qty
    if bq <= 0 or aq <= 0 or bid >= ask:
        s.bbo_bad += 1
        return k
    k2 = _publish(bk, bst, sid, rec, upd, k, F_BBO)
    u = upd[k]
    u.update_id = rec.last_id
    u.n_bids = _behind(u.bid_px, u.bid_qty, u.n_bids, (bid, bq), BID)
    u.n_asks = _behind(u.ask_px, u.ask_qty, u.n_asks, (ask, aq), ASK)
    s.bbo_published += 1  # of the ``published`` updates, those from a ticker
    return k2


@njit(cache=True, _nrt=False)
def _after_event(bk, bst, sid, rec, upd, k, flags):
    """Crossed check, then publish."""
    bid, bq = B.best(bk.qty, bk.meta, sid, BID)
    ask, aq = B.best(bk.qty, bk.meta, sid, ASK)
    if bq > 0 and aq > 0 and bid >= ask:
        bst[sid].crossed += 1
        bst[sid].state = UNSYNCED
        flags |= F_CROSSED | F_INVALID
    return _publish(bk, bst, sid, rec, upd, k, flags)


@njit(cache=True, _nrt=False)
def apply_records(recs, pos, n, mask, bk, bst, upd, k):
    """Apply records ``recs[(pos + i) & mask]`` for i < n (``mask=-1`` for a plain array)
    to the books ``bk`` (``book.BookArrays``) and their state ``bst``.
    Stops early when ``upd`` is full; returns (records consumed, updates in ``upd``)."""
    cap = upd.shape[0]
    for j in range(n):
        if k >= cap:
            return j, k
        rec = recs[(pos + j) & mask]
        sid = rec.symbol_id
        if sid < 0 or sid >= bst.shape[0]:
            bst[0].bad_symbol += 1
            continue
        s = bst[sid]
        kind = rec.kind
        if kind == DIFF_LEVEL:
            if s.state == SYNCED:
                _level(bk, sid, rec)
                s.levels += 1
        elif kind == DIFF_END:
            if s.state != SYNCED:
                continue
            if not _ids_ok(s, rec.first_id, rec.last_id, rec.prev_id):
                s.id_errors += 1
                s.state = UNSYNCED
                k = _publish(bk, bst, sid, rec, upd, k, F_INVALID)
                continue
            s.update_id = rec.last_id
            s.first_pending = 0
            s.events += 1
            k = _after_event(bk, bst, sid, rec, upd, k, F_DIFF)
        elif kind == SNAPSHOT_LEVEL:
            if s.state == BUILDING:
                _level(bk, sid, rec)
                s.levels += 1
        elif kind == SNAPSHOT_BEGIN:
            B.clear(bk.qty, bk.bits, bk.meta, sid)
            s.state = BUILDING
        elif kind == SNAPSHOT_END:
            if s.state != BUILDING:
                continue
            s.state = SYNCED
            s.update_id = rec.last_id
            s.first_pending = 1
            s.snapshots += 1
            k = _after_event(bk, bst, sid, rec, upd, k, F_SNAPSHOT)
        elif kind == INVALIDATE:
            s.invalidations += 1
            if s.state != UNSYNCED:
                s.state = UNSYNCED
                k = _publish(bk, bst, sid, rec, upd, k, F_INVALID)
        elif kind == TRADE:
            s.trades += 1
        elif kind == BBO:
            s.bbo += 1
            if rec.side == BID:
                s.tick_bid = rec.price
                s.tick_bid_qty = rec.qty
                s.tick_id = rec.last_id
            else:
                k = _on_ticker_ask(bk, bst, sid, rec, upd, k)
    return n, k
