"""The latest-book area: one seqlock-protected BOOK_UPDATE per symbol, plus the symbol
table (so any reader converts ticks/lots back to decimals) and the book builder's
per-symbol state words (read by monitors and replay summaries).

Body layout (offsets in bytes, each block page-aligned)::

    config      int64 words: [0] n_symbols, [1] resync requests (book builder -> feed)
    instruments LATEST_INSTRUMENT[n_symbols]
    seq         int64, one 128-byte line per symbol: word sid*SEQ_LINE_WORDS is its seqlock
    table       BOOK_UPDATE[n_symbols]
    state       int64[n_symbols, BUILDER_WORDS] (book builder state and counters)
"""

from __future__ import annotations

import numpy as np

from shm_layouts.records import BOOK_UPDATE

LATEST_VERSION = 2  # 2: BUILDER_WORDS 16 -> 24 (bookTicker overlay state)
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

LATEST_DTYPES = (BOOK_UPDATE, LATEST_INSTRUMENT)


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
