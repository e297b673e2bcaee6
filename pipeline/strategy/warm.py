"""Keep the strategy's decision path hot while the book is quiet.

The market maker acts on a few books a second. Between two, this VM's caches lose the
code and data of the decision: a decision that sends took 5-6 us in the pipeline against
well under 1 us when repeated (BENCHMARKS.md). Every ``period`` ns in which the strategy
had nothing to do, ``strategy_cycle`` calls the strategy's own ``on_book`` on a *shadow*:

- the state arrays are a private copy of ``mm``, refreshed from the live state byte for
  byte just before each pass (``restore``): the pass starts from the real inventory,
  quotes and estimates, and whatever it changes is thrown away;
- the book is the last one seen, every price shifted by ``SHIFT_TICKS`` (up, then down on
  the next pass): the targets move, so the pass takes the requote branch that sends;
- the sink is a private ring that nobody consumes (never full, never read) with its own
  order id counter: no intent reaches the order ring, no real id is used.

So the strategy API needs nothing new: any strategy whose state is a tuple of arrays (the
documented contract) is warmed. Live only: a replay on the event clock never warms, and
its intents stay byte-identical. When a pass is due: ``pipeline.runtime.warming``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.runtime import warming
from shm_layouts.ring import CAPACITY, CONTROL_WORDS, MASK

W_SIGN = warming.READY + 1  # the direction of the next pass's shift
SHIFT_TICKS = 64  # far past any requote threshold, small against any price in ticks
SHADOW_SLOTS = 64


def _flat_bytes(arrays: tuple) -> tuple:
    return tuple(a.reshape(-1).view(np.uint8) for a in arrays)


def shadow_sink(sink: tuple) -> tuple:
    """A private ring of the order ring's record type (no consumer: never full) and an id
    counter of its own, with the same array types as ``sink``."""
    _, _, records, ids = sink
    raw = np.zeros((SHADOW_SLOTS, records.dtype.itemsize), np.uint8)
    ctl = np.zeros(CONTROL_WORDS, np.int64)
    ctl[CAPACITY], ctl[MASK] = SHADOW_SLOTS, SHADOW_SLOTS - 1
    return ctl, raw.view(np.int64)[:, 0], raw.reshape(-1).view(records.dtype), ids.copy()


def warm_state(mm: tuple, sink: tuple, book_dtype: np.dtype, period_ns: int) -> tuple:
    """The ``warm`` argument of ``strategy_cycle``: ``(words, shadow mm, shadow sink, shadow
    bytes, live bytes, books)``, ``books[0]`` the last book seen, ``books[1]`` the shifted
    copy a pass decides on. ``period_ns`` 0: never warm (the arrays still type the cycle)."""
    if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in mm):
        raise TypeError("strategy warming needs the state to be a tuple of C-contiguous arrays")
    shadow = tuple(a.copy() for a in mm)
    words = warming.clock(period_ns)
    words[W_SIGN] = 1
    return (words, shadow, shadow_sink(sink), _flat_bytes(shadow), _flat_bytes(mm),
            np.zeros(2, book_dtype))


@njit(cache=True, _nrt=False)
def keep_book(warm, book):
    """Remember the newest book (a copy: the ring slot is reused)."""
    if warm[0][warming.PERIOD] > 0:
        warm[5][0] = book
        warm[0][warming.READY] = 1


@njit(cache=True, _nrt=False)
def prepare(warm):
    """Refresh the shadow state from the live one; return the shifted book to decide on."""
    shadow, live = warm[3], warm[4]
    for i in range(len(shadow)):
        d, s = shadow[i], live[i]
        for k in range(d.shape[0]):
            d[k] = s[k]
    words, books = warm[0], warm[5]
    books[1] = books[0]
    b = books[1]
    shift = SHIFT_TICKS * words[W_SIGN]
    words[W_SIGN] = -words[W_SIGN]
    for k in range(b["n_bids"]):
        b["bid_px"][k] = max(b["bid_px"][k] + shift, 1)
    for k in range(b["n_asks"]):
        b["ask_px"][k] = max(b["ask_px"][k] + shift, 2)
    return b
