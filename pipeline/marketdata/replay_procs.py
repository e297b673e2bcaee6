"""Replay through the real processes and rings: this process is the feed side (capture ->
parser -> sync -> md ring), a ``procs.book_builder`` child builds the books, and this
process reads the book ring back (as its gating consumer "strategy") for the BBO log.
"""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
from numba import njit

from pipeline.marketdata import apply as A
from pipeline.marketdata.latest import read_latest
from pipeline.marketdata.normalize import FeedCore, on_message
from pipeline.marketdata.publish import OUT_N, OUT_POS, push_records, words
from pipeline.marketdata.replay import Prepared, ReplayResult, log_update
from pipeline.marketdata.segments import BOOK_CONSUMER, MD_CONSUMER, create_md_segments
from pipeline.observe.counters import Counters
from pipeline.runtime import idle as I
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from pipeline.transport.shared import atomic_load
from shm_layouts.records import BOOK_UPDATE

# feed cursor words
FC_MSG, FC_T0, FC_DONE = 0, 3, 4  # with publish.OUT_POS, OUT_N (1, 2)


@njit(cache=True, _nrt=False)
def feed_slice(data, start, end, recv, snap_sid, hdr, lv, keys, lens, grid, sync, pend,
               scratch, out, out_raw, stats, ctl, stamps, raw, st, speed, max_msgs):
    """Feed up to ``max_msgs`` messages into the md ring; returns messages fed."""
    fed = 0
    while fed < max_msgs:
        if not push_records(ctl, stamps, raw, out_raw, st):
            return fed
        i = st[FC_MSG]
        if i >= start.shape[0]:
            st[FC_DONE] = 1
            return fed
        if speed > 0 and monotonic_ns() < st[FC_T0] + int((recv[i] - recv[0]) / speed):
            return fed
        st[OUT_N] = on_message(data, start[i], end[i], recv[i], snap_sid[i], hdr, lv, keys,
                                  lens, grid, sync, pend, scratch, out, stats)
        st[OUT_POS] = 0
        st[FC_MSG] = i + 1
        fed += 1
    return fed


@njit(cache=True, _nrt=False)
def drain_book(ctl, stamps, recs, slot, log, nlog):
    """Read book updates; log BBO rows of applied depth events. Returns updates read."""
    n = R.poll(ctl, stamps, slot, 1024)
    if n == 0:
        return 0
    pos = R.cursor(ctl, slot)
    mask = recs.shape[0] - 1
    for j in range(n):
        nlog[0] = log_update(recs[(pos + j) & mask], log, nlog[0])
    R.release(ctl, slot, pos + n)
    return n


def run_processes(prepared: Prepared, speed: float = 0.0, log_bbo: bool = False,
                  capacity: int = 1 << 16, idle: str = "backoff",
                  timeout: float = 300.0) -> ReplayResult:
    """Replay through md ring -> book_builder process -> book ring (see module doc)."""
    cap, symbols = prepared.capture, prepared.symbols
    inst = Instance.create(f"replay{os.getpid()}{uuid.uuid4().hex[:6]}")
    child = None
    try:
        counters = Counters.create(inst)
        segs = create_md_segments(inst, capacity, symbols)
        slot = segs.book.join(BOOK_CONSUMER)
        core = FeedCore(symbols)
        md_words = words(segs.md.raw)
        segs.md.claim_producer()
        child = Child("book_builder", "procs.book_builder",
                      ["--instance", inst.name, "--idle", idle, "--no-ticker-overlay"]).start()
        wait_running(counters, [child], timeout=120)
        log = np.zeros((len(cap) if log_bbo else 0, 6), np.int64)
        nlog = np.zeros(1, np.int64)
        st = np.zeros(8, np.int64)
        st[FC_T0] = time.monotonic_ns()
        backoff = I.backoff()
        deadline = time.monotonic() + timeout
        t = time.perf_counter()
        md_consumer = R.CONSUMER_BASE + R.C_CURSOR  # slot 0 is the book builder
        while True:
            fed = feed_slice(cap.data, cap.start, cap.end, cap.recv_ns, prepared.snap_sid,
                             core.hdr, core.lv, core.keys, core.lens, core.grid, core.sync,
                             core.pend, core.scratch, core.out, core.out_raw, core.stats,
                             segs.md.ctl, segs.md.stamps, md_words, st, float(speed), 4096)
            got = drain_book(segs.book.ctl, segs.book.stamps, segs.book.records, slot, log,
                             nlog)
            if st[FC_DONE] and got == 0 and \
                    atomic_load(segs.md.ctl, md_consumer) == segs.md.published():
                if drain_book(segs.book.ctl, segs.book.stamps, segs.book.records, slot, log,
                              nlog) == 0:
                    break
            I.idle(backoff, fed + got)
            if not child.alive():
                raise RuntimeError(f"book_builder exited with {child.popen.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay through processes not done after {timeout:.0f}s")
        seconds = time.perf_counter() - t
        assert segs.md.consumer_name(0) == MD_CONSUMER
        summary = core.summary()
        for name, w in A.COUNTER_WORDS.items():
            summary[name] = int(segs.latest.state[:, w].sum())
        final = {}
        rec = np.zeros(1, BOOK_UPDATE)
        for ins in symbols:
            ok = read_latest(segs.latest.seq, segs.latest.table, ins.symbol_id, rec)
            u = rec[0]
            has_bid = ok and u["n_bids"] > 0
            has_ask = ok and u["n_asks"] > 0
            final[ins.symbol] = {
                "state": int(u["state"]) if ok else 0,
                "update_id": int(u["update_id"]) if ok else 0,
                "bid_px": ins.price_str(int(u["bid_px"][0]) if has_bid else 0),
                "bid_qty": ins.qty_str(int(u["bid_qty"][0]) if has_bid else 0),
                "ask_px": ins.price_str(int(u["ask_px"][0]) if has_ask else 0),
                "ask_qty": ins.qty_str(int(u["ask_qty"][0]) if has_ask else 0)}
        return ReplayResult(symbols, summary, final, log[: nlog[0]], seconds)
    finally:
        if child is not None:
            stop([child])
        inst.destroy()
