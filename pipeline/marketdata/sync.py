"""Binance's "manage a local order book" procedure per symbol, Sans-I/O and jitted.

The feed handler feeds it depth events (already parsed into DIFF_LEVEL records) and
snapshots; it decides per event: buffer (no book yet), drop (older than the snapshot),
apply (emit to ``out``) or gap (emit INVALIDATE, ask for a new snapshot, buffer). The I/O
shell reads ``NEED_SNAPSHOT`` to fetch snapshots; nothing here touches a socket.

Rules (``futures`` is USD-M or COIN-M):
- spot: drop ``u <= lastUpdateId``; the first applied event has ``U <= lastUpdateId+1 <= u``;
  afterwards every ``U == previous u + 1``.
- futures: drop ``u < lastUpdateId``; the first applied event has ``U <= lastUpdateId <= u``;
  afterwards every ``pu == previous u``.
- any gap, reconnect or stale stream invalidates the symbol and re-snapshots.

State per symbol: int64 words of ``sync[sid]`` (the W_* indices). Buffered events live in
``pend[sid]`` as DIFF_LEVEL... DIFF_END records.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.marketdata.events import (
    DIFF_END,
    INVALIDATE,
    NO_SIDE,
    SNAPSHOT_END,
    Head,
    copy_record,
    put,
)
from shm_layouts.records import MD_EVENT, SyncState

UNSYNCED = int(SyncState.UNSYNCED)
PENDING = int(SyncState.SNAPSHOT_PENDING)
SYNCED = int(SyncState.SYNCED)

# NEED_SNAPSHOT values: the shell moves 1 -> 2 when it starts fetching
SNAP_IDLE, SNAP_WANTED, SNAP_IN_FLIGHT = 0, 1, 2

(W_STATE, W_FUTURES, W_LAST, W_FIRST_PENDING, W_NEED_SNAPSHOT, W_PEND_N, W_SNAP_ID,
 W_APPLIED, W_DROPPED, W_BUFFERED, W_GAPS, W_RESYNCS, W_SNAPSHOTS, W_STALE_SNAPSHOTS,
 W_PEND_OVERFLOW, W_INVALIDATIONS) = range(16)
SYNC_WORDS = 16
COUNTER_WORDS = {"applied": W_APPLIED, "dropped": W_DROPPED, "buffered": W_BUFFERED,
                 "gaps": W_GAPS, "resyncs": W_RESYNCS, "snapshots": W_SNAPSHOTS,
                 "stale_snapshots": W_STALE_SNAPSHOTS, "pending_overflow": W_PEND_OVERFLOW,
                 "invalidations": W_INVALIDATIONS}

# on_diff verdicts
APPLIED, DROPPED, BUFFERED, GAP = 0, 1, 2, 3


def new_state(futures: np.ndarray, pending_capacity: int = 16_384):
    """``(sync, pend)`` for symbols whose venue is futures where ``futures[sid]``."""
    n = len(futures)
    sync = np.zeros((n, SYNC_WORDS), np.int64)
    sync[:, W_FUTURES] = np.asarray(futures, np.int64)
    sync[:, W_LAST] = -1
    return sync, np.zeros((n, pending_capacity), MD_EVENT)


@njit(cache=True, _nrt=False)
def _invalidate(sync, sid, out, k, t_origin):
    """Lose sync: drop the buffer, tell the book builder, ask for a snapshot."""
    s = sync[sid]
    if s[W_STATE] == SYNCED:
        k = put(out, k, Head(INVALIDATE, sid, 0, s[W_LAST], -1, t_origin, 0), NO_SIDE, 0, 0)
        s[W_INVALIDATIONS] += 1
    s[W_STATE] = PENDING
    s[W_PEND_N] = 0
    s[W_FIRST_PENDING] = 0
    if s[W_NEED_SNAPSHOT] == SNAP_IDLE:
        s[W_NEED_SNAPSHOT] = SNAP_WANTED
    return k


@njit(cache=True, _nrt=False)
def _buffer(sync, pend, sid, ev, start, n):
    """Append one event's records (levels + DIFF_END) to the symbol's buffer."""
    s = sync[sid]
    if s[W_PEND_N] + n > pend.shape[1]:
        # lose the oldest events: the next snapshot's first-event check then fails if
        # they mattered, and the symbol resyncs again
        s[W_PEND_N] = 0
        s[W_PEND_OVERFLOW] += 1
        if n > pend.shape[1]:
            return
    base = s[W_PEND_N]
    for i in range(n):
        pend[sid, base + i] = ev[start + i]
    s[W_PEND_N] = base + n
    s[W_BUFFERED] += 1


@njit(cache=True, _nrt=False)
def check(sync, sid, first, last, prev):
    """Verdict for an event of a SYNCED symbol: APPLIED, DROPPED or GAP (no side effects)."""
    s = sync[sid]
    lid = s[W_LAST]
    fut = s[W_FUTURES] != 0
    if s[W_FIRST_PENDING]:
        if (fut and last < lid) or (not fut and last <= lid):
            return DROPPED
        target = lid if fut else lid + 1
        if first <= target <= last:
            return APPLIED
        return GAP
    if fut:
        return APPLIED if prev == lid else GAP
    return APPLIED if first == lid + 1 else GAP


@njit(cache=True, _nrt=False)
def on_diff(sync, pend, sid, ev, start, n, out, k):
    """One depth event: records ``ev[start:start+n]`` (its DIFF_LEVELs then DIFF_END).
    Returns ``(new k, verdict)``; applied records are copied to ``out`` from ``k``."""
    s = sync[sid]
    end = ev[start + n - 1]
    if s[W_STATE] != SYNCED:
        if s[W_STATE] == UNSYNCED:
            s[W_STATE] = PENDING
            if s[W_NEED_SNAPSHOT] == SNAP_IDLE:
                s[W_NEED_SNAPSHOT] = SNAP_WANTED
        _buffer(sync, pend, sid, ev, start, n)
        return k, BUFFERED
    verdict = check(sync, sid, end.first_id, end.last_id, end.prev_id)
    if verdict == DROPPED:
        s[W_DROPPED] += 1
        return k, DROPPED
    if verdict == GAP:
        s[W_GAPS] += 1
        s[W_RESYNCS] += 1
        k = _invalidate(sync, sid, out, k, end.t_origin_ns)
        _buffer(sync, pend, sid, ev, start, n)
        return k, GAP
    for i in range(n):
        k = copy_record(ev, start + i, out, k)
    s[W_LAST] = end.last_id
    s[W_FIRST_PENDING] = 0
    s[W_APPLIED] += 1
    return k, APPLIED


@njit(cache=True, _nrt=False)
def on_snapshot(sync, pend, sid, snap_id, out, k, t_origin):
    """The snapshot's records are already in ``out`` (SNAPSHOT_BEGIN + levels, ending
    before ``k``): close it, then replay the buffered events through the rules.
    Returns the new ``k``, or -1 if the snapshot is older than the book (ignored: the
    caller discards its records)."""
    s = sync[sid]
    if s[W_STATE] == SYNCED and snap_id <= s[W_LAST]:
        s[W_STALE_SNAPSHOTS] += 1
        return -1
    k = put(out, k, Head(SNAPSHOT_END, sid, snap_id, snap_id, -1, t_origin, 0), NO_SIDE, 0,
            0)
    s[W_STATE] = SYNCED
    s[W_LAST] = snap_id
    s[W_SNAP_ID] = snap_id
    s[W_FIRST_PENDING] = 1
    s[W_NEED_SNAPSHOT] = SNAP_IDLE
    s[W_SNAPSHOTS] += 1
    n = s[W_PEND_N]
    s[W_PEND_N] = 0
    # In place: an event re-buffered after a gap is copied to a position at or before
    # the one it is read from, so nothing not yet read is overwritten.
    buf = pend[sid]
    start = 0
    for i in range(n):
        if buf[i].kind == DIFF_END:
            k, _ = on_diff(sync, pend, sid, buf, start, i + 1 - start, out, k)
            start = i + 1
    return k


@njit(cache=True, _nrt=False)
def invalidate_one(sync, sid, out, k, t_origin):
    """An operator's resync of one symbol: drop its book and re-snapshot it."""
    k = _invalidate(sync, sid, out, k, t_origin)
    sync[sid, W_NEED_SNAPSHOT] = SNAP_WANTED
    return k


@njit(cache=True, _nrt=False)
def invalidate_all(sync, out, k, t_origin):
    """Reconnect or stale stream: every symbol loses sync and needs a new snapshot."""
    for sid in range(sync.shape[0]):
        k = _invalidate(sync, sid, out, k, t_origin)
        sync[sid, W_NEED_SNAPSHOT] = SNAP_WANTED
    return k
