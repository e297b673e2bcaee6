"""The latest-book area: the newest book per symbol, for any process, via a seqlock.

Writer (the book builder, one per area): seq odd (relaxed store) -> release fence ->
write the record -> seq even (release store). Reader: acquire-load seq (retry if odd),
copy, acquire fence, relaxed re-load, retry if it changed. A reader never blocks the
writer and never returns a torn book.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.instruments import VENUE_KINDS, Instrument, SymbolTable
from pipeline.transport.atomics import (
    cpu_relax,
    fence_acquire,
    fence_release,
    load_acquire,
    load_relaxed,
    store_relaxed,
    store_release,
)
from pipeline.transport.registry import Instance
from pipeline.transport.segment import Layout, Segment
from pipeline.transport.shared import atomic_add, atomic_load
from shm_layouts import SegmentKind, layout_hash
from shm_layouts.book import (
    BUILDER_STATE,
    BUILDER_WORDS,
    CONFIG_WORDS,
    LATEST_DTYPES,
    LATEST_INSTRUMENT,
    LATEST_VERSION,
    N_SYMBOLS,
    RESYNC_REQUESTS,
    SEQ_LINE_WORDS,
    offsets,
)
from shm_layouts.records import BOOK_UPDATE

LATEST_LAYOUT = Layout(SegmentKind.LATEST, "latest:book_update",
                       layout_hash(LATEST_VERSION, SEQ_LINE_WORDS, BUILDER_WORDS,
                                   *LATEST_DTYPES))
SEGMENT_NAME = "latest_book"
READ_TRIES = 1000


@njit(cache=True, _nrt=False)
def write_latest(seq, table, sid, rec):
    """Publish ``rec`` (a BOOK_UPDATE record) as the latest book of ``sid``."""
    i = sid * SEQ_LINE_WORDS
    s = load_relaxed(seq, i)
    store_relaxed(seq, i, s + 1)
    fence_release()  # the odd seq is visible before any byte of the record changes
    table[sid] = rec
    store_release(seq, i, s + 2)


@njit(cache=True, _nrt=False)
def read_latest(seq, table, sid, out):
    """Copy the latest book of ``sid`` into ``out[0]``; False if none was ever written or
    no consistent copy was obtained within ``READ_TRIES`` attempts."""
    i = sid * SEQ_LINE_WORDS
    for _ in range(READ_TRIES):
        s1 = load_acquire(seq, i)
        if s1 & 1:
            cpu_relax()
            continue
        out[0] = table[sid]
        fence_acquire()  # the copy completes before the re-check
        if load_relaxed(seq, i) == s1:
            return s1 != 0
        cpu_relax()
    return False


class LatestView(NamedTuple):
    """The area as one argument of a jitted stage (``LatestBooks.view()``)."""

    seq: np.ndarray
    table: np.ndarray


class LatestBooks:
    """Handle on the area: ``seq`` (int64 words), ``table`` (BOOK_UPDATE per symbol),
    ``state`` (BUILDER_STATE per symbol) and the symbol table it was created with."""

    def __init__(self, seg: Segment):
        self.segment = seg
        body = seg.body
        n = int(body[:8].view(np.int64)[0])
        off = offsets(n)
        self.n_symbols = n
        self.config = body[: CONFIG_WORDS * 8].view(np.int64)
        self.instruments = body[off["instruments"]:][: n * LATEST_INSTRUMENT.itemsize].view(
            LATEST_INSTRUMENT)
        self.seq = body[off["seq"]:][: n * SEQ_LINE_WORDS * 8].view(np.int64)
        self.table = body[off["table"]:][: n * BOOK_UPDATE.itemsize].view(BOOK_UPDATE)
        self.state = body[off["state"]:][: n * BUILDER_STATE.itemsize].view(BUILDER_STATE)

    @classmethod
    def create(cls, instance: Instance, n_symbols: int | SymbolTable) -> LatestBooks:
        """Create for ``n_symbols`` (or a SymbolTable, whose instruments are recorded)."""
        symbols = n_symbols if isinstance(n_symbols, SymbolTable) else None
        n = len(symbols) if symbols is not None else int(n_symbols)
        seg = instance.create_segment(SEGMENT_NAME, LATEST_LAYOUT, offsets(n)["size"])
        seg.body[:8].view(np.int64)[N_SYMBOLS] = n
        area = cls(seg)
        for ins in symbols or ():
            area.instruments[ins.symbol_id] = (
                ins.symbol.encode(), VENUE_KINDS.index(ins.venue), ins.price_decimals,
                ins.tick_units, ins.qty_decimals, ins.lot_units)
        seg.mark_ready()
        return area

    @classmethod
    def attach(cls, instance: Instance, readonly: bool = False) -> LatestBooks:
        return cls(instance.attach_segment(SEGMENT_NAME, LATEST_LAYOUT, readonly=readonly))

    def symbols(self) -> SymbolTable:
        """The instruments recorded at creation (steps rebuilt from the grid)."""
        out = []
        for row in self.instruments:
            tick = _step(int(row["tick_units"]), int(row["price_decimals"]))
            lot = _step(int(row["lot_units"]), int(row["qty_decimals"]))
            out.append(Instrument(row["symbol"].decode(), VENUE_KINDS[int(row["venue_kind"])],
                                  tick, lot))
        return SymbolTable(out)

    def request_resync(self) -> None:
        """Ask the feed handler to re-snapshot every symbol (the book builder lost its
        books: restart, crossed book, id error)."""
        atomic_add(self.config, RESYNC_REQUESTS, 1)

    def resync_requests(self) -> int:
        return int(atomic_load(self.config, RESYNC_REQUESTS))

    def futures(self) -> np.ndarray:
        return (self.instruments["venue_kind"] != VENUE_KINDS.index("spot")).astype(np.int64)

    def view(self) -> LatestView:
        return LatestView(self.seq, self.table)

    def read(self, sid: int) -> np.void | None:
        """Cold-path read (tools, tests): the record, or None."""
        out = np.zeros(1, BOOK_UPDATE)
        return out[0] if read_latest(self.seq, self.table, sid, out) else None

    def close(self) -> None:
        self.config = self.instruments = self.seq = self.table = self.state = None
        self.segment.close()


def _step(units: int, decimals: int) -> str:
    from pipeline.instruments import from_units
    return from_units(1, decimals, units)
