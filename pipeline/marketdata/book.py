"""L2 order books in numba arrays: O(1) level updates, no dict, any price range.

Each (symbol, side) row keeps a window of ``W`` consecutive ticks: ``qty[row, i]`` is the
quantity at price ``base + i`` and a bitmap marks non-empty ticks, so an update is one
store plus one bit flip, and the next best level after deleting the best is a
count-leading/trailing-zeros scan over 64 ticks per word. The window is placed around the
best price with room on the improving side (3/4 below the best bid, 3/4 above the best
ask); a level arriving beyond the improving edge re-centres it (rare: the best moved by
W/4 ticks). Levels beyond the other edge, far from the touch, go to a small unsorted
``overflow`` list, so a whole BTC book (any range) fits without a dense array over all
prices. Invariant: every overflow level is worse than every window level, so the best is
always in the window unless the window is empty, and then the overflow is empty too.

Rows are ``2 * symbol_id + side``; ``meta`` words are the M_* indices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.marketdata.bits import ctlz, cttz
from pipeline.marketdata.events import ASK, BID

M_BASE, M_BEST, M_COUNT, M_OVN, M_DROPPED = range(5)
META_WORDS = 8


class BookArrays(NamedTuple):
    """Every book's arrays, as one argument of a jitted stage (``Books.view()``)."""

    qty: np.ndarray
    bits: np.ndarray
    meta: np.ndarray
    ov: np.ndarray
    scratch: np.ndarray


class Books:
    """The arrays for ``n_symbols`` books (cold-path allocation)."""

    def __init__(self, n_symbols: int, window: int = 1 << 16, overflow: int = 8192):
        if window < 128 or window & (window - 1):
            raise ValueError("window must be a power of two >= 128")
        rows = 2 * n_symbols
        self.qty = np.zeros((rows, window), np.int64)
        self.bits = np.zeros((rows, window // 64), np.int64)
        self.meta = np.zeros((rows, META_WORDS), np.int64)
        self.meta[:, M_BEST] = -1
        self.ov = np.zeros((rows, overflow, 2), np.int64)
        self.scratch = np.zeros((window + overflow, 2), np.int64)

    def arrays(self):
        return self.qty, self.bits, self.meta, self.ov, self.scratch

    def view(self) -> BookArrays:
        return BookArrays(*self.arrays())


@njit(cache=True, _nrt=False, inline="always")
def _highest_below(bits, r, i):
    """Highest set index < i, or -1."""
    w = i >> 6
    m = bits[r, w] & ((1 << (i & 63)) - 1)
    while True:
        if m != 0:
            return (w << 6) + 63 - ctlz(m)
        w -= 1
        if w < 0:
            return -1
        m = bits[r, w]


@njit(cache=True, _nrt=False, inline="always")
def _lowest_above(bits, r, i):
    """Lowest set index > i, or -1."""
    w = i >> 6
    b = (i & 63) + 1
    m = bits[r, w] & ~((1 << b) - 1) if b < 64 else 0
    while True:
        if m != 0:
            return (w << 6) + cttz(m)
        w += 1
        if w >= bits.shape[1]:
            return -1
        m = bits[r, w]


@njit(cache=True, _nrt=False, inline="always")
def _next_worse(bits, r, side, i):
    return _highest_below(bits, r, i) if side == BID else _lowest_above(bits, r, i)


@njit(cache=True, _nrt=False)
def _ov_find(ov, meta, r, price):
    for j in range(meta[r, M_OVN]):
        if ov[r, j, 0] == price:
            return j
    return -1


@njit(cache=True, _nrt=False)
def _ov_set(ov, meta, r, price, q):
    j = _ov_find(ov, meta, r, price)
    if q == 0:
        if j >= 0:
            last = meta[r, M_OVN] - 1
            ov[r, j, 0] = ov[r, last, 0]
            ov[r, j, 1] = ov[r, last, 1]
            meta[r, M_OVN] = last
        return
    if j >= 0:
        ov[r, j, 1] = q
    elif meta[r, M_OVN] < ov.shape[1]:
        n = meta[r, M_OVN]
        ov[r, n, 0] = price
        ov[r, n, 1] = q
        meta[r, M_OVN] = n + 1
    else:
        meta[r, M_DROPPED] += 1  # farther than W ticks and more than the list holds


@njit(cache=True, _nrt=False, inline="always")
def _window_set(qty, bits, meta, r, side, i, q):
    """Set/delete window tick ``i``; keeps count and best. Returns True if the best
    level was deleted and the window emptied (caller refills from the overflow)."""
    w = i >> 6
    bit = 1 << (i & 63)
    if q > 0:
        if qty[r, i] == 0:
            bits[r, w] |= bit
            meta[r, M_COUNT] += 1
        qty[r, i] = q
        best = meta[r, M_BEST]
        if best < 0 or (side == BID and i > best) or (side == ASK and i < best):
            meta[r, M_BEST] = i
        return False
    if qty[r, i] == 0:
        return False
    qty[r, i] = 0
    bits[r, w] &= ~bit
    meta[r, M_COUNT] -= 1
    if i == meta[r, M_BEST]:
        meta[r, M_BEST] = _next_worse(bits, r, side, i)
    return meta[r, M_BEST] < 0


@njit(cache=True, _nrt=False)
def _place(qty, bits, meta, ov, r, side, price, q):
    """Insert without moving the window: in it, or to the overflow."""
    i = price - meta[r, M_BASE]
    if 0 <= i < qty.shape[1]:
        _window_set(qty, bits, meta, r, side, i, q)
    else:
        _ov_set(ov, meta, r, price, q)


@njit(cache=True, _nrt=False)
def _recenter(qty, bits, meta, ov, scratch, r, side, center):
    """Move the window so ``center`` sits 3/4 into it on the worse side."""
    n = 0
    base = meta[r, M_BASE]
    for w in range(bits.shape[1]):
        m = bits[r, w]
        while m != 0:
            i = (w << 6) + cttz(m)
            scratch[n, 0] = base + i
            scratch[n, 1] = qty[r, i]
            qty[r, i] = 0
            n += 1
            m &= m - 1
        bits[r, w] = 0
    for j in range(meta[r, M_OVN]):
        scratch[n, 0] = ov[r, j, 0]
        scratch[n, 1] = ov[r, j, 1]
        n += 1
    width = qty.shape[1]
    meta[r, M_BASE] = center - (width - width // 4 if side == BID else width // 4)
    meta[r, M_BEST] = -1
    meta[r, M_COUNT] = 0
    meta[r, M_OVN] = 0
    for j in range(n):
        _place(qty, bits, meta, ov, r, side, scratch[j, 0], scratch[j, 1])


@njit(cache=True, _nrt=False)
def _ov_best(ov, meta, r, side):
    best = 0
    for j in range(meta[r, M_OVN]):
        p = ov[r, j, 0]
        if j == 0 or (side == BID and p > best) or (side == ASK and p < best):
            best = p
    return best


@njit(cache=True, _nrt=False, inline="always")
def apply_level(qty, bits, meta, ov, scratch, sid, side, price, q):
    """Set the quantity at ``price`` (0 deletes) on one side of symbol ``sid``."""
    r = 2 * sid + side
    width = qty.shape[1]
    if meta[r, M_COUNT] == 0 and meta[r, M_OVN] == 0:
        if q == 0:
            return
        meta[r, M_BASE] = price - (width - width // 4 if side == BID else width // 4)
    i = price - meta[r, M_BASE]
    if 0 <= i < width:
        if _window_set(qty, bits, meta, r, side, i, q) and meta[r, M_OVN] > 0:
            _recenter(qty, bits, meta, ov, scratch, r, side, _ov_best(ov, meta, r, side))
            return
    elif (side == BID and i >= width) or (side == ASK and i < 0):  # beyond the improving edge
        if q == 0:
            return  # nothing is stored there
        _recenter(qty, bits, meta, ov, scratch, r, side, price)
        _place(qty, bits, meta, ov, r, side, price, q)
        return
    else:
        _ov_set(ov, meta, r, price, q)
        return
    best = meta[r, M_BEST]  # keep room below the best bid / above the best ask
    edge = width // 8
    if best >= 0 and ((side == BID and best < edge) or (side == ASK and best >= width - edge)):
        _recenter(qty, bits, meta, ov, scratch, r, side, meta[r, M_BASE] + best)


@njit(cache=True, _nrt=False)
def clear(qty, bits, meta, sid):
    for side in (BID, ASK):
        r = 2 * sid + side
        for w in range(bits.shape[1]):
            m = bits[r, w]
            while m != 0:
                qty[r, (w << 6) + cttz(m)] = 0
                m &= m - 1
            bits[r, w] = 0
        meta[r, M_BEST] = -1
        meta[r, M_COUNT] = 0
        meta[r, M_OVN] = 0


@njit(cache=True, _nrt=False)
def best(qty, meta, sid, side):
    """(price, qty) of the best level; qty 0 if the side is empty."""
    r = 2 * sid + side
    i = meta[r, M_BEST]
    if i < 0:
        return 0, 0
    return meta[r, M_BASE] + i, qty[r, i]


@njit(cache=True, _nrt=False)
def top(qty, bits, meta, ov, sid, side, px, qt):
    """Best levels into ``px``/``qt`` (their length is N); returns how many."""
    r = 2 * sid + side
    n = 0
    i = meta[r, M_BEST]
    base = meta[r, M_BASE]
    while i >= 0 and n < px.shape[0]:
        px[n] = base + i
        qt[n] = qty[r, i]
        n += 1
        i = _next_worse(bits, r, side, i)
    last = 0
    while n < px.shape[0]:  # window exhausted: the overflow, best first (rare)
        found = -1
        for j in range(meta[r, M_OVN]):
            p = ov[r, j, 0]
            if n > 0 and ((side == BID and p >= px[n - 1]) or (side == ASK and p <= px[n - 1])):
                continue
            if found < 0 or (side == BID and p > last) or (side == ASK and p < last):
                found = j
                last = p
        if found < 0:
            break
        px[n] = ov[r, found, 0]
        qt[n] = ov[r, found, 1]
        n += 1
    return n


@njit(cache=True, _nrt=False)
def depth(meta, sid, side):
    r = 2 * sid + side
    return meta[r, M_COUNT] + meta[r, M_OVN]
