"""Exact sliding one-second rate windows, shared by pre-trade risk and the strategy's own
order budget (so both count the same way).

A window allowing ``n`` events per second is a ring of the last ``n`` event times in an
int64 array (``times[base : base + n]``) plus a running event count kept by the caller:
one more event at ``now`` is allowed when the n-th last one is at least a second old.
"""

from __future__ import annotations

from numba import njit

SECOND = 1_000_000_000


@njit(cache=True, _nrt=False)
def window_ok(times, base, count, n, now):
    """May one more event happen at ``now``? (``n <= 0``: never.)"""
    if n <= 0:
        return False
    return times[base + count % n] <= now - SECOND


@njit(cache=True, _nrt=False)
def window_take(times, base, count, n, now):
    """Record event number ``count`` (the caller then adds one to its count)."""
    times[base + count % n] = now
