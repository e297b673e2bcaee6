"""The book builder's core: MD_EVENT records in, books updated, BOOK_UPDATE records out.

The feed handler only forwards validated sequences, but the builder still re-checks
update ids per event and the book for a crossed state after every applied event; either
failure drops the symbol to UNSYNCED (counted) until the next snapshot. An unsynced book
is never published as synced: the update it publishes says UNSYNCED and carries no
levels, so readers stop using the book at once.

``bst`` holds per-symbol state words (the B_* indices).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.marketdata import book as B
from pipeline.marketdata.events import (
    BBO,
    DIFF_END,
    DIFF_LEVEL,
    INVALIDATE,
    SNAPSHOT_BEGIN,
    SNAPSHOT_END,
    SNAPSHOT_LEVEL,
    TRADE,
)
from pipeline.runtime.clock import monotonic_ns
from shm_layouts.records import BOOK_TOP_N, SyncState

UNSYNCED = int(SyncState.UNSYNCED)
BUILDING = int(SyncState.SNAPSHOT_PENDING)
SYNCED = int(SyncState.SYNCED)

(B_STATE, B_UPDATE_ID, B_FIRST_PENDING, B_FUTURES, B_EVENTS, B_LEVELS, B_SNAPSHOTS,
 B_CROSSED, B_ID_ERRORS, B_INVALIDATIONS, B_PUBLISHED, B_TRADES, B_BBO, B_BAD_SYMBOL) = range(14)
BST_WORDS = 16
COUNTER_WORDS = {"book_events": B_EVENTS, "book_levels": B_LEVELS,
                 "book_snapshots": B_SNAPSHOTS, "crossed": B_CROSSED,
                 "id_errors": B_ID_ERRORS, "book_invalidations": B_INVALIDATIONS,
                 "book_updates": B_PUBLISHED, "bad_symbol": B_BAD_SYMBOL}

# BOOK_UPDATE.flags
F_SNAPSHOT, F_DIFF, F_INVALID, F_CROSSED = 1, 2, 4, 8


def new_state(futures: np.ndarray) -> np.ndarray:
    bst = np.zeros((len(futures), BST_WORDS), np.int64)
    bst[:, B_FUTURES] = np.asarray(futures, np.int64)
    return bst


@njit(cache=True, _nrt=False)
def _ids_ok(s, first, last, prev):
    uid = s[B_UPDATE_ID]
    if s[B_FIRST_PENDING]:
        target = uid if s[B_FUTURES] else uid + 1
        return first <= target <= last
    if s[B_FUTURES]:
        return prev == uid
    return first == uid + 1


@njit(cache=True, _nrt=False)
def _publish(qty, bits, meta, ov, bst, sid, rec, upd, k, flags):
    s = bst[sid]
    u = upd[k]
    u.t_origin_ns = rec.t_origin_ns
    u.t_book_ns = monotonic_ns()
    u.exch_time_ns = rec.exch_time_ns
    u.update_id = s[B_UPDATE_ID]
    u.symbol_id = sid
    u.state = s[B_STATE]
    u.flags = flags
    if s[B_STATE] == SYNCED:
        u.n_bids = B.top(qty, bits, meta, ov, sid, 0, u.bid_px, u.bid_qty)
        u.n_asks = B.top(qty, bits, meta, ov, sid, 1, u.ask_px, u.ask_qty)
    else:
        u.n_bids = 0
        u.n_asks = 0
        for i in range(BOOK_TOP_N):
            u.bid_px[i] = 0
            u.bid_qty[i] = 0
            u.ask_px[i] = 0
            u.ask_qty[i] = 0
    s[B_PUBLISHED] += 1
    return k + 1


@njit(cache=True, _nrt=False)
def _after_event(qty, bits, meta, ov, bst, sid, rec, upd, k, flags):
    """Crossed check, then publish."""
    bid, bq = B.best(qty, meta, sid, 0)
    ask, aq = B.best(qty, meta, sid, 1)
    if bq > 0 and aq > 0 and bid >= ask:
        bst[sid, B_CROSSED] += 1
        bst[sid, B_STATE] = UNSYNCED
        flags |= F_CROSSED | F_INVALID
    return _publish(qty, bits, meta, ov, bst, sid, rec, upd, k, flags)


@njit(cache=True, _nrt=False)
def apply_records(recs, pos, n, mask, qty, bits, meta, ov, scratch, bst, upd, k):
    """Apply records ``recs[(pos + i) & mask]`` for i < n (``mask=-1`` for a plain array).
    Stops early when ``upd`` is full; returns (records consumed, updates in ``upd``)."""
    cap = upd.shape[0]
    for j in range(n):
        if k >= cap:
            return j, k
        rec = recs[(pos + j) & mask]
        sid = rec.symbol_id
        if sid < 0 or sid >= bst.shape[0]:
            bst[0, B_BAD_SYMBOL] += 1
            continue
        s = bst[sid]
        kind = rec.kind
        if kind == DIFF_LEVEL:
            if s[B_STATE] == SYNCED:
                B.apply_level(qty, bits, meta, ov, scratch, sid, rec.side, rec.price, rec.qty)
                s[B_LEVELS] += 1
        elif kind == DIFF_END:
            if s[B_STATE] != SYNCED:
                continue
            if not _ids_ok(s, rec.first_id, rec.last_id, rec.prev_id):
                s[B_ID_ERRORS] += 1
                s[B_STATE] = UNSYNCED
                k = _publish(qty, bits, meta, ov, bst, sid, rec, upd, k, F_INVALID)
                continue
            s[B_UPDATE_ID] = rec.last_id
            s[B_FIRST_PENDING] = 0
            s[B_EVENTS] += 1
            k = _after_event(qty, bits, meta, ov, bst, sid, rec, upd, k, F_DIFF)
        elif kind == SNAPSHOT_LEVEL:
            if s[B_STATE] == BUILDING:
                B.apply_level(qty, bits, meta, ov, scratch, sid, rec.side, rec.price, rec.qty)
                s[B_LEVELS] += 1
        elif kind == SNAPSHOT_BEGIN:
            B.clear(qty, bits, meta, sid)
            s[B_STATE] = BUILDING
        elif kind == SNAPSHOT_END:
            if s[B_STATE] != BUILDING:
                continue
            s[B_STATE] = SYNCED
            s[B_UPDATE_ID] = rec.last_id
            s[B_FIRST_PENDING] = 1
            s[B_SNAPSHOTS] += 1
            k = _after_event(qty, bits, meta, ov, bst, sid, rec, upd, k, F_SNAPSHOT)
        elif kind == INVALIDATE:
            s[B_INVALIDATIONS] += 1
            if s[B_STATE] != UNSYNCED:
                s[B_STATE] = UNSYNCED
                k = _publish(qty, bits, meta, ov, bst, sid, rec, upd, k, F_INVALID)
        elif kind == TRADE:
            s[B_TRADES] += 1
        elif kind == BBO:
            s[B_BBO] += 1
    return n, k
