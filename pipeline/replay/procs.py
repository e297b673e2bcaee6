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
from pipeline.marketdata.normalize import FeedCore
from pipeline.marketdata.publish import PUSH_FIELDS, push_records, start_batch
from pipeline.marketdata.segments import BOOK_CONSUMER, MD_CONSUMER, create_md_segments
from pipeline.metrics.counters import Counters
from pipeline.replay.inline import Prepared, ReplayResult, log_update, stage
from pipeline.runtime import idle as I
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from pipeline.transport.shared import atomic_load
from shm_layouts.records import BOOK_UPDATE

# the replay feed's cursor (1-element record, ``feed_state``): the publish cursor first
FEED_CURSOR = np.dtype(PUSH_FIELDS + [
    ("msg", "<i8"),  # the next message to feed
    ("t0", "<i8"),  # monotonic ns of message 0 (paced replays)
    ("done", "<i8"),  # every message fed
])


def feed_state(t0_ns: int = 0) -> np.ndarray:
    st = np.zeros(1, FEED_CURSOR)
    st[0]["t0"] = t0_ns
    return st


@njit(cache=True, _nrt=False)
def feed_slice(msgs, ps, sy, em, md, st, speed, max_msgs):
    """Feed up to ``max_msgs`` of ``msgs`` (``replay.Messages``) into the md ring
    (``md``: producer ``RingView``; ``ps``/``sy``/``em``: ``normalize``'s views); returns
    messages fed."""
    fed = 0
    s = st[0]
    recv = msgs.recv
    while fed < max_msgs:
        if not push_records(md, em.rows, st):
            return fed
        i = s.msg
        if i >= msgs.start.shape[0]:
            s.done = 1
            return fed
        if speed > 0 and monotonic_ns() < s.t0 + int((recv[i] - recv[0]) / speed):
            return fed
        start_batch(st, stage(msgs, i, ps, sy, em))
        s.msg = i + 1
        fed += 1
    return fed


@njit(cache=True, _nrt=False)
def drain_book(book, log, nlog):
    """Read book updates (``book``: consumer ``RingView``); log BBO rows of applied depth
    events. Returns updates read."""
    n = R.poll(book.ctl, book.stamps, book.slot, 1024)
    if n == 0:
        return 0
    pos = R.cursor(book.ctl, book.slot)
    mask = book.records.shape[0] - 1
    for j in range(n):
        nlog[0] = log_update(book.records[(pos + j) & mask], log, nlog[0])
    R.release(book.ctl, book.slot, pos + n)
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
        segs.md.claim_producer()
        child = Child("book_builder", "procs.book_builder",
                      ["--instance", inst.name, "--idle", idle, "--no-ticker-overlay"]).start()
        wait_running(counters, [child], timeout=120)
        log = np.zeros((len(cap) if log_bbo else 0, 6), np.int64)
        nlog = np.zeros(1, np.int64)
        st = feed_state(time.monotonic_ns())
        msgs, md, book = prepared.messages(), segs.md.view(), segs.book.view(slot)
        backoff = I.backoff()
        deadline = time.monotonic() + timeout
        t = time.perf_counter()
        md_consumer = R.CONSUMER_BASE + R.C_CURSOR  # slot 0 is the book builder
        while True:
            fed = feed_slice(msgs, core.parse, core.syms, core.emit, md, st, float(speed),
                             4096)
            got = drain_book(book, log, nlog)
            if st[0]["done"] and got == 0 and \
                    atomic_load(segs.md.ctl, md_consumer) == segs.md.published():
                if drain_book(book, log, nlog) == 0:
                    break
            I.idle(backoff, fed + got)
            if not child.alive():
                raise RuntimeError(f"book_builder exited with {child.popen.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay through processes not done after {timeout:.0f}s")
        seconds = time.perf_counter() - t
        assert segs.md.consumer_name(0) == MD_CONSUMER
        summary = core.summary()
        for name, f in A.COUNTER_FIELDS.items():
            summary[name] = int(segs.latest.state[f].sum())
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
