"""Book builder agent: md ring -> books -> book ring + latest-book area.

Per duty cycle: poll up to ``batch`` md records, claim as many book-ring slots first (a
full book ring is backpressure: nothing is consumed, nothing lost), apply the records
(``apply.apply_records``), publish the book updates to the ring and the seqlock area,
then release the md records. Its state records live in the latest area, so monitors and
replay see its counters; books are process memory and are rebuilt from the next snapshot
after a restart.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.marketdata import apply as A
from pipeline.marketdata import warm as MW
from pipeline.marketdata.book import Books
from pipeline.marketdata.latest import write_latest
from pipeline.marketdata.publish import copy_payload, rows
from pipeline.marketdata.segments import MD_CONSUMER, MdSegments
from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters
from pipeline.metrics.histogram import record
from pipeline.runtime import warming
from pipeline.runtime.agent import Agent
from pipeline.runtime.clock import monotonic_ns
from pipeline.transport import ring as R
from pipeline.transport.shared import atomic_store
from shm_layouts.records import BOOK_UPDATE


class Updates(NamedTuple):
    """The builder's book updates of one batch: BOOK_UPDATE records and their int64 rows."""

    recs: np.ndarray
    rows: np.ndarray


@njit(cache=True, _nrt=False)
def build_once(md, book, latest, bk, bst, upd, batch, hop, warm):
    """One duty cycle; returns the md records consumed. ``md``/``book``: the rings'
    ``RingView`` (consumer, producer), ``latest``: ``LatestView``, ``bk``: ``BookArrays``,
    ``upd``: ``Updates``. ``hop`` records, once per batch consumed, frame receipt (the
    first record's t_origin) -> read here: a batch held back by a full book ring is
    counted once, when it goes through. A cycle with nothing to read may overlay a kept
    bookTicker again (``warm``: a dry pass on shadow state, ``pipeline.marketdata.warm``)."""
    n = R.poll(md.ctl, md.stamps, md.slot, batch)
    if n == 0:
        if warming.is_due(warm.clock):
            MW.overlay_again(warm, bk, bst)
        return 0
    start = R.try_claim(book.ctl, n)  # at most one update per record
    if start < 0:
        return 0  # book ring full: nothing consumed, nothing counted
    pos = R.cursor(md.ctl, md.slot)
    mask = md.records.shape[0] - 1
    read_ns = monotonic_ns()
    used, k = A.apply_records(md.records, pos, n, mask, bk, bst, upd.recs, 0)
    bmask = book.raw.shape[0] - 1
    for j in range(k):
        copy_payload(book.raw[(start + j) & bmask], upd.rows, j)
        write_latest(latest.seq, latest.table, upd.recs[j].symbol_id, upd.recs[j])
    R.publish(book.ctl, book.stamps, start + k)
    record(hop, read_ns - md.records[pos & mask].t_origin_ns)
    MW.keep_pair(warm, md.records, pos, used, mask)
    R.release(md.ctl, md.slot, pos + used)
    return used


class BookBuilderAgent(Agent):
    name = "book_builder"

    def __init__(self, segs: MdSegments, window: int = 1 << 16, batch: int = 256,
                 counters: Counters | None = None, ticker_overlay: bool = True,
                 warm_ns: int = 0):
        """``ticker_overlay``: publish fresh bookTickers over the book (``apply``).
        ``warm_ns`` > 0: a dry overlay of a kept bookTicker every ``warm_ns`` while idle
        (``pipeline.marketdata.warm``; busy-spinning processes only)."""
        self.segs = segs
        self.hop = counters.histogram("hop.md_ring") if counters else histogram.new()
        self.counters = counters  # book.<name>: the builder's counts, all symbols together
        self._counter_words = {name: counters.counter(f"book.{name}")
                               for name in A.COUNTER_FIELDS} if counters else {}
        self._warm_word = counters.counter("book.warm_passes") if counters else -1
        n = segs.latest.n_symbols
        self.books = Books(n, window=window)
        self.bst = segs.latest.state  # shared: readable by monitors and replay
        self.bst["futures"] = segs.latest.futures()
        self.bst["ticker_overlay"] = int(ticker_overlay)
        self.bst["state"] = A.UNSYNCED  # books are rebuilt from the next snapshot
        self.upd = np.zeros(batch, BOOK_UPDATE)
        self.warm = MW.builder_state(warm_ns if ticker_overlay else 0, self.bst)
        self.upd_raw = rows(self.upd)
        self.batch = batch
        self.slot = -1
        self._faults = 0
        self._args: tuple = ()

    def on_start(self) -> None:
        self.slot = self.segs.md.join(MD_CONSUMER)
        self.segs.book.claim_producer()
        self.segs.latest.request_resync()  # (re)started with empty books
        self._faults = self._fault_count()
        s = self.segs  # the duty cycle's arguments, built once the md slot is known
        self._args = (s.md.view(self.slot), s.book.view(), s.latest.view(), self.books.view(),
                      self.bst, Updates(self.upd, self.upd_raw), self.batch, self.hop,
                      self.warm)

    def hot_duty(self) -> tuple:
        return build_once, self._args

    def wait_ring(self) -> R.RingView:
        return self._args[0]  # the md ring

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        return self.poll_slice(*self.hot_duty(), idle_state, deadline_ns)

    def housekeeping(self, now_ns: int) -> bool:
        self.segs.md.heartbeat(self.slot)
        self.segs.book.heartbeat()
        for name, word in self._counter_words.items():
            atomic_store(self.counters.words, word, int(self.bst[A.COUNTER_FIELDS[name]].sum()))
        if self._counter_words:
            atomic_store(self.counters.words, self._warm_word, int(self.warm.clock[0]["passes"]))
        faults = self._fault_count()
        if faults != self._faults:  # a book dropped itself: only a snapshot restores it
            self._faults = faults
            self.segs.latest.request_resync()
        return True

    def _fault_count(self) -> int:
        return int(self.bst["crossed"].sum() + self.bst["id_errors"].sum())
