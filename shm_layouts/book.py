"""The latest-book area: one seqlock-protected BOOK_UPDATE per symbol, plus the symbol
table (so any reader converts ticks/lots back to decimals) and the book builder's
per-symbol state records (read by monitors and replay summaries).

Body layout (offsets in bytes, each block page-aligned)::

    config      int64 words: [0] n_symbols, [1] resync requests (book builder -> feed)
    instruments LATEST_INSTRUMENT[n_symbols]
    seq         int64, one 128-byte line per symbol: word sid*SEQ_LINE_WORDS is its seqlock
    table       BOOK_UPDATE[n_symbols]
    state       BUILDER_STATE[n_symbols] (book builder state and counters)
"""

from __future__ import annotations

import numpy as np

from shm_layouts.records import BOOK_UPDATE

LATEST_VERSION = 3  # 2: BUILDER_WORDS 16 -> 24 (bookTicker overlay state); 3: named fields
CONFIG_WORDS = 16
N_SYMBOLS = 0
RESYNC_REQUESTS = 1  # bumped by the book builder when it needs fresh snapshots
SEQ_LINE_WORDS = 16  # 128 bytes: no two symbols' seqlocks share a prefetched line pair
BUILDER_WORDS = 24

LATEST_INSTRUMENT = np.dtype([
    ("symbol", "S32"),
    ("venue_kind", "<i8"),  # index into pipeline.instruments.VENUE_KINDS
    ("price_decimals", "<i8"),
    ("tick_units", "<i8"),
    ("qty_decimals", "<i8"),
    ("lot_units", "<i8"),
])

# the book builder's per-symbol state (``pipeline.marketdata.apply``): the rules' words,
# the last bookTicker's BID half, then counters; BUILDER_WORDS int64 in all
BUILDER_FIELDS = (
    "state",  # SyncState of the book
    "update_id",  # the book's update id
    "first_pending",  # the next diff is the first after a snapshot
    "futures",  # the futures id rules (else spot)
    "events", "levels", "snapshots", "crossed", "id_errors", "invalidations", "published",
    "trades", "bbo", "bad_symbol",
    "tick_bid", "tick_bid_qty", "tick_id",  # the BID half of the last bookTicker
    "bbo_published", "bbo_stale", "bbo_bad",
    "ticker_overlay",  # publish fresh bookTickers over the book
)
BUILDER_STATE = np.dtype([(f, "<i8") for f in BUILDER_FIELDS]
                         + [("spare", "<i8", (BUILDER_WORDS - len(BUILDER_FIELDS),))])
assert BUILDER_STATE.itemsize == BUILDER_WORDS * 8

LATEST_DTYPES = (BOOK_UPDATE, LATEST_INSTRUMENT, BUILDER_STATE)


def _page(n: int) -> int:
    return (n + 4095) // 4096 * 4096


def offsets(n_symbols: int) -> dict[str, int]:
    """Byte offset of each block and the total body size."""
    out = {"config": 0}
    out["instruments"] = _page(CONFIG_WORDS * 8)
    out["seq"] = out["instruments"] + _page(n_symbols * LATEST_INSTRUMENT.itemsize)
    out["table"] = out["seq"] + _page(n_symbols * SEQ_LINE_WORDS * 8)
    out["state"] = out["table"] + _page(n_symbols * BOOK_UPDATE.itemsize)
    out["size"] = out["state"] + _page(n_symbols * BUILDER_WORDS * 8)
    return out
