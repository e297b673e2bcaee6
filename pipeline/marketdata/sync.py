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

State per symbol: the SYNC record ``sync[sid]``. Buffered events live in ``pend[sid]`` as
DIFF_LEVEL... DIFF_END records.
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

# per-symbol state (one record per symbol): the rules' words, then counters (COUNTERS)
COUNTERS = ("applied", "dropped", "buffered", "gaps", "resyncs", "snapshots",
            "stale_snapshots", "pending_overflow", "invalidations")
SYNC = np.dtype([
    ("state", "<i8"),  # SyncState
    ("futures", "<i8"),  # the futures rules (else spot)
    ("last", "<i8"),  # the book's update id
    ("first_pending", "<i8"),  # the next applied event is the first after a snapshot
    ("need_snapshot", "<i8"),  # SNAP_*: the I/O shell fetches one
    ("pend_n", "<i8"),  # buffered records in pend[sid]
    ("snap_id", "<i8"),  # lastUpdateId of the snapshot last applied
] + [(name, "<i8") for name in COUNTERS])

# on_diff verdicts
APPLIED, DROPPED, BUFFERED, GAP = 0, 1, 2, 3


def new_state(futures: np.ndarray, pending_capacity: int = 16_384):
    """``(sync, pend)`` for symbols whose venue is futures where ``futures[sid]``."""
    n = len(futures)
    sync = np.zeros(n, SYNC)
    sync["futures"] = np.asarray(futures, np.int64)
    sync["last"] = -1
    return sync, np.zeros((n, pending_capacity), MD_EVENT)


@njit(cache=True, _nrt=False)
def _invalidate(sync, sid, out, k, t_origin):
    """Lose sync: drop the buffer, tell the book builder, ask for a snapshot."""
    s = sync[sid]
    if s.state == SYNCED:
        k = put(out, k, Head(INVALIDATE, sid, 0, s.last, -1, t_origin, 0), NO_SIDE, 0, 0)
        s.invalidations += 1
    s.state = PENDING
    s.pend_n = 0
    s.first_pending = 0
    if s.need_snapshot == SNAP_IDLE:
        s.need_snapshot = SNAP_WANTED
    return k


@njit(cache=True, _nrt=False)
def _buffer(sync, pend, sid, ev, start, n):
    """Append one event's records (levels + DIFF_END) to the symbol's buffer."""
    s = sync[sid]
    if s.pend_n + n > pend.shape[1]:
        # lose the oldest events: the next snapshot's first-event check then fails if
        # they mattered, and the symbol resyncs again
        s.pend_n = 0
        s.pending_overflow += 1
        if n > pend.shape[1]:
            return
    base = s.pend_n
    for i in range(n):
        pend[sid, base + i] = ev[start + i]
    s.pend_n = base + n
    s.buffered += 1


@njit(cache=True, _nrt=False)
def check(sync, sid, first, last, prev):
    """Verdict for an event of a SYNCED symbol: APPLIED, DROPPED or GAP (no side effects)."""
    s = sync[sid]
    lid = s.last
    fut = s.futures != 0
    if s.first_pending:
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
    if s.state != SYNCED:
        if s.state == UNSYNCED:
            s.state = PENDING
            if s.need_snapshot == SNAP_IDLE:
                s.need_snapshot = SNAP_WANTED
        _buffer(sync, pend, sid, ev, start, n)
        return k, BUFFERED
    verdict = check(sync, sid, end.first_id, end.last_id, end.prev_id)
    if verdict == DROPPED:
        s.dropped += 1
        return k, DROPPED
    if verdict == GAP:
        s.gaps += 1
        s.resyncs += 1
        k = _invalidate(sync, sid, out, k, end.t_origin_ns)
        _buffer(sync, pend, sid, ev, start, n)
        return k, GAP
    for i in range(n):
        k = copy_record(ev, start + i, out, k)
    s.last = end.last_id
    s.first_pending = 0
    s.applied += 1
    return k, APPLIED


@njit(cache=True, _nrt=False)
def on_snapshot(sync, pend, sid, snap_id, out, k, t_origin):
    """The snapshot's records are already in ``out`` (SNAPSHOT_BEGIN + levels, ending
    before ``k``): close it, then replay the buffered events through the rules.
    Returns the new ``k``, or -1 if the snapshot is older than the book (ignored: the
    caller discards its records)."""
    s = sync[sid]
    if s.state == SYNCED and snap_id <= s.last:
        s.stale_snapshots += 1
        return -1
    k = put(out, k, Head(SNAPSHOT_END, sid, snap_id, snap_id, -1, t_origin, 0), NO_SIDE, 0,
            0)
    s.state = SYNCED
    s.last = snap_id
    s.snap_id = snap_id
    s.first_pending = 1
    s.need_snapshot = SNAP_IDLE
    s.snapshots += 1
    n = s.pend_n
    s.pend_n = 0
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
    sync[sid].need_snapshot = SNAP_WANTED
    return k


@njit(cache=True, _nrt=False)
def invalidate_all(sync, out, k, t_origin):
    """Reconnect or stale stream: every symbol loses sync and needs a new snapshot."""
    for sid in range(sync.shape[0]):
        k = _invalidate(sync, sid, out, k, t_origin)
        sync[sid].need_snapshot = SNAP_WANTED
    return k
