"""Keep the strategy's decision path hot while the book is quiet.

The market maker acts on a few books a second. Between two, this VM's caches lose the
code and data of the decision: a decision that sends took 5-6 us in the pipeline against
well under 1 us when repeated (BENCHMARKS.md). Every ``period`` ns in which the strategy
had nothing to do, the strategy pass (``cycle.py``) calls the strategy's own ``on_book``
on a *shadow*:

- the state arrays are a private copy of ``mm``, refreshed from the live state byte for
  byte just before each pass (``restore``): the pass starts from the real inventory,
  quotes and estimates, and whatever it changes is thrown away;
- the book is the last one seen, every price shifted by ``SHIFT_TICKS`` (up, then down on
  the next pass): the targets move, so the pass takes the requote branch that sends;
- the sink is a private ring that nobody consumes (never full, never read) with its own
  order id counter: no intent reaches the order ring, no real id is used.

The shadow state and sink have the numba types of the live ones, so the pass runs the very
machine code the next real decision runs. The strategy API needs nothing new: any strategy
whose state is a tuple (or named tuple) of arrays, the documented contract, is warmed.
Live only: a replay on the event clock never warms, and its intents stay byte-identical.
When a pass is due: ``pipeline.runtime.warming`` (the clock record ``WarmState.clock``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.runtime import warming
from pipeline.strategy.intents import IntentSink
from pipeline.transport.ring import RingView
from shm_layouts.ring import CAPACITY, CONTROL_WORDS, MASK

# the warming clock, and the direction of the next pass's shift (+1 up, -1 down)
STRATEGY_WARM_CLOCK = np.dtype(warming.WARM_CLOCK_FIELDS + [("sign", "<i8")])
SHIFT_TICKS = 64  # far past any requote threshold, small against any price in ticks
SHADOW_SLOTS = 64
LAST_SEEN, SHIFTED = 0, 1  # the two books of ``WarmState.books``


class WarmState(NamedTuple):
    """The ``warm`` argument of the strategy pass (``pipeline.strategy.cycle``)."""

    clock: np.ndarray  # 1 record of STRATEGY_WARM_CLOCK
    mm: tuple  # the shadow state (same type as the live ``mm``)
    sink: IntentSink  # the shadow sink: private ring, private id counter
    shadow_bytes: tuple  # the shadow arrays as flat bytes, written by ``prepare``
    live_bytes: tuple  # the live arrays as flat bytes, read by ``prepare``
    books: np.ndarray  # [LAST_SEEN]: the last book seen, [SHIFTED]: the one a pass decides on


def _flat_bytes(arrays: tuple) -> tuple:
    return tuple(a.reshape(-1).view(np.uint8) for a in arrays)


def _copy_state(mm: tuple) -> tuple:
    """A copy of ``mm`` of the same type (a named tuple stays that named tuple)."""
    copies = [a.copy() for a in mm]
    return type(mm)(*copies) if hasattr(mm, "_fields") else tuple(copies)


def shadow_sink(sink: IntentSink) -> IntentSink:
    """A private ring of the order ring's record type (no consumer: never full) and an id
    counter of its own, with the same array types as ``sink``."""
    records = sink.orders.records
    raw = np.zeros((SHADOW_SLOTS, records.dtype.itemsize), np.uint8)
    ctl = np.zeros(CONTROL_WORDS, np.int64)
    ctl[CAPACITY], ctl[MASK] = SHADOW_SLOTS, SHADOW_SLOTS - 1
    ring = RingView(ctl, raw.view(np.int64)[:, 0], raw.reshape(-1).view(records.dtype), raw,
                    -1)
    return IntentSink(ring, sink.ids.copy())


def warm_state(mm: tuple, sink: IntentSink, book_dtype: np.dtype, period_ns: int) -> WarmState:
    """``period_ns`` 0: never warm (the arrays still type the cycle)."""
    if not all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in mm):
        raise TypeError("strategy warming needs the state to be a tuple of C-contiguous arrays")
    shadow = _copy_state(mm)
    clock = warming.clock_record(period_ns, STRATEGY_WARM_CLOCK)
    clock["sign"] = 1
    return WarmState(clock, shadow, shadow_sink(sink), _flat_bytes(shadow), _flat_bytes(mm),
                     np.zeros(2, book_dtype))


@njit(cache=True, _nrt=False)
def keep_book(warm, book):
    """Remember the newest book (a copy: the ring slot is reused)."""
    c = warm.clock[0]
    if c.period_ns > 0:
        warm.books[LAST_SEEN] = book
        c.ready = 1


@njit(cache=True, _nrt=False)
def prepare(warm):
    """Refresh the shadow state from the live one; return the shifted book to decide on."""
    shadow, live = warm.shadow_bytes, warm.live_bytes
    for i in range(len(shadow)):
        d, s = shadow[i], live[i]
        for k in range(d.shape[0]):
            d[k] = s[k]
    c, books = warm.clock[0], warm.books
    books[SHIFTED] = books[LAST_SEEN]
    b = books[SHIFTED]
    shift = SHIFT_TICKS * c.sign
    c.sign = -c.sign
    for k in range(b["n_bids"]):
        b["bid_px"][k] = max(b["bid_px"][k] + shift, 1)
    for k in range(b["n_asks"]):
        b["ask_px"][k] = max(b["ask_px"][k] + shift, 2)
    return b
