"""Book builder agent: md ring -> books -> book ring + latest-book area.

Per duty cycle: poll up to ``batch`` md records, claim as many book-ring slots first (a
full book ring is backpressure: nothing is consumed, nothing lost), apply the records
(``apply.apply_records``), publish the book updates to the ring and the seqlock area,
then release the md records. Its state words live in the latest area, so monitors and
replay see its counters; books are process memory and are rebuilt from the next snapshot
after a restart.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.marketdata import apply as A
from pipeline.marketdata import warm as MW
from pipeline.marketdata.book import Books
from pipeline.marketdata.latest import write_latest
from pipeline.marketdata.publish import copy_payload, rows, words
from pipeline.marketdata.segments import MD_CONSUMER, MdSegments
from pipeline.observe import histogram
from pipeline.observe.counters import Counters
from pipeline.observe.histogram import record
from pipeline.runtime import warming
from pipeline.runtime.agent import Agent, run_slice
from pipeline.runtime.clock import monotonic_ns
from pipeline.transport import ring as R
from pipeline.transport.shared import atomic_store
from shm_layouts.records import BOOK_UPDATE


@njit(cache=True, _nrt=False)
def build_once(md_ctl, md_stamps, md_recs, slot, book_ctl, book_stamps, book_raw, seq, table,
               qty, bits, meta, ov, scratch, bst, upd, upd_raw, batch, hop, warm):
    """One duty cycle; returns the md records consumed. ``hop`` records, once per batch,
    frame receipt (the first record's t_origin) -> read here. A cycle with nothing to
    read may overlay a kept bookTicker again (``warm``: a dry pass on shadow state,
    ``pipeline.marketdata.warm``)."""
    n = R.poll(md_ctl, md_stamps, slot, batch)
    if n == 0:
        if warming.due(warm[0]):
            MW.overlay_again(warm, qty, bits, meta, ov, scratch, bst)
        return 0
    record(hop, monotonic_ns() - md_recs[R.cursor(md_ctl, slot) & (md_recs.shape[0] - 1)][
        "t_origin_ns"])
    start = R.try_claim(book_ctl, n)  # at most one update per record
    if start < 0:
        return 0
    pos = R.cursor(md_ctl, slot)
    used, k = A.apply_records(md_recs, pos, n, md_recs.shape[0] - 1, qty, bits, meta, ov,
                              scratch, bst, upd, 0)
    bmask = book_raw.shape[0] - 1
    for j in range(k):
        copy_payload(book_raw, (start + j) & bmask, upd_raw, j)
        write_latest(seq, table, upd[j].symbol_id, upd[j])
    R.publish(book_ctl, book_stamps, start + k)
    MW.keep_pair(warm, md_recs, pos, used, md_recs.shape[0] - 1)
    R.release(md_ctl, slot, pos + used)
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
                               for name in A.COUNTER_WORDS} if counters else {}
        self._warm_word = counters.counter("book.warm_passes") if counters else -1
        n = segs.latest.n_symbols
        self.books = Books(n, window=window)
        self.bst = segs.latest.state  # shared: readable by monitors and replay
        self.bst[:, A.B_FUTURES] = segs.latest.futures()
        self.bst[:, A.B_TICKER_OVERLAY] = int(ticker_overlay)
        self.bst[:, A.B_STATE] = A.UNSYNCED  # books are rebuilt from the next snapshot
        self.upd = np.zeros(batch, BOOK_UPDATE)
        self.warm = MW.builder_state(warm_ns if ticker_overlay else 0, self.bst)
        self.upd_raw = rows(self.upd)
        self.book_words = words(segs.book.raw)
        self.batch = batch
        self.slot = -1
        self._faults = 0

    def on_start(self) -> None:
        self.slot = self.segs.md.join(MD_CONSUMER)
        self.segs.book.claim_producer()
        self.segs.latest.request_resync()  # (re)started with empty books
        self._faults = self._fault_count()

    def hot_duty(self) -> tuple:
        s = self.segs
        return build_once, (s.md.ctl, s.md.stamps, s.md.records, self.slot, s.book.ctl,
                            s.book.stamps, self.book_words, s.latest.seq, s.latest.table,
                            *self.books.arrays(), self.bst, self.upd, self.upd_raw, self.batch,
                            self.hop, self.warm)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        return run_slice(*self.hot_duty(), idle_state, deadline_ns)

    def housekeeping(self, now_ns: int) -> bool:
        self.segs.md.heartbeat(self.slot)
        self.segs.book.heartbeat()
        for name, word in self._counter_words.items():
            atomic_store(self.counters.words, word, int(self.bst[:, A.COUNTER_WORDS[name]].sum()))
        if self._counter_words:
            atomic_store(self.counters.words, self._warm_word, int(self.warm[0][warming.PASSES]))
        faults = self._fault_count()
        if faults != self._faults:  # a book dropped itself: only a snapshot restores it
            self._faults = faults
            self.segs.latest.request_resync()
        return True

    def _fault_count(self) -> int:
        return int(self.bst[:, A.B_CROSSED].sum() + self.bst[:, A.B_ID_ERRORS].sum())
