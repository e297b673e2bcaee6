"""Keep the bookTicker path hot: dry passes of the feed's parse and the builder's overlay.

A ticker that moves our quotes comes a few times a second; between two, this VM loses the
parser's and the overlay's code and data, and frame receipt -> book update took 8-11 us
where the warm path takes a fraction of that (BENCHMARKS.md). While idle, every
``period`` ns (``pipeline.runtime.warming``):

- the feed handler parses again the first bookTicker frame it saw (a private copy) into
  private records and counters. ``on_message`` turns a bookTicker into two BBO records
  without touching the sync state, so the pass changes nothing a real frame will see;
- the book builder applies the first BBO record pair it saw to a private copy of its
  per-symbol state and a private book update: the overlay reads the live book (warming
  its lines) and writes nothing shared. The copy's update id is set back to the pair's so
  the pass takes the publishing branch, not the stale one.

Both passes are the agents' own jitted code on shadow state; nothing reaches a ring.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.marketdata import apply as A
from pipeline.marketdata.events import ASK, BBO, BID
from pipeline.marketdata.normalize import Emit, new_emit, on_message
from pipeline.runtime import warming
from shm_layouts.records import BOOK_UPDATE, MD_EVENT

FRAME_BYTES = 1024  # a bookTicker frame is ~200 bytes
# the feed's clock also keeps the length of the frame it kept
FEED_CLOCK = np.dtype(warming.WARM_CLOCK_FIELDS + [("frame_len", "<i8")])


# ---------------------------------------------------------------------------- feed
class FeedWarm(NamedTuple):
    """The feed's ``warm`` argument: clock (FEED_CLOCK), kept frame, private records."""

    clock: np.ndarray
    frame: np.ndarray
    emit: Emit


def feed_state(period_ns: int, stats_words: int) -> FeedWarm:
    return FeedWarm(warming.clock_record(period_ns, FEED_CLOCK),
                    np.zeros(FRAME_BYTES, np.uint8), new_emit(4, stats_words))


@njit(cache=True, _nrt=False)
def keep_ticker(warm, b, start, end, out):
    """After a frame parsed into ``out`` (records): keep the first bookTicker frame seen."""
    c = warm.clock[0]
    if c.period_ns <= 0 or c.ready or out[0].kind != BBO:
        return
    n = end - start
    if n > warm.frame.shape[0]:
        return
    for i in range(n):
        warm.frame[i] = b[start + i]
    c.frame_len = n
    c.ready = 1


@njit(cache=True, _nrt=False)
def parse_again(warm, now, ps, sy):
    """The dry pass: the kept frame through ``on_message`` into private records."""
    return on_message(warm.frame, 0, warm.clock[0].frame_len, now, -1, ps, sy, warm.emit)


# ---------------------------------------------------------------------------- builder
class BuilderWarm(NamedTuple):
    """The builder's ``warm`` argument: clock (WARM_CLOCK), kept BBO record pair, a copy
    of its per-symbol state and a private book update."""

    clock: np.ndarray
    pair: np.ndarray
    shadow: np.ndarray
    upd: np.ndarray


def builder_state(period_ns: int, bst: np.ndarray) -> BuilderWarm:
    return BuilderWarm(warming.clock_record(period_ns), np.zeros(2, MD_EVENT), bst.copy(),
                       np.zeros(2, BOOK_UPDATE))


@njit(cache=True, _nrt=False)
def keep_pair(warm, recs, pos, n, mask):
    """After a batch: keep the first BBO bid/ask pair of one symbol it ends with."""
    c = warm.clock[0]
    if c.period_ns <= 0 or c.ready or n < 2:
        return
    bid, ask = recs[(pos + n - 2) & mask], recs[(pos + n - 1) & mask]
    if bid.kind == BBO and ask.kind == BBO and bid.side == BID and ask.side == ASK and \
            bid.symbol_id == ask.symbol_id:
        warm.pair[0] = bid
        warm.pair[1] = ask
        c.ready = 1


@njit(cache=True, _nrt=False)
def overlay_again(warm, bk, bst):
    """The dry pass: the kept pair through ``apply_records`` on a copy of ``bst``
    (``bk``: the live ``book.BookArrays``, read and not changed)."""
    shadow = warm.shadow
    for i in range(bst.shape[0]):
        shadow[i] = bst[i]
    pair = warm.pair
    sid = pair[0].symbol_id
    shadow[sid].update_id = min(shadow[sid].update_id, pair[1].last_id)
    _, k = A.apply_records(pair, 0, 2, -1, bk, shadow, warm.upd, 0)
    return k
