"""StrategyAgent: polls the book and exec rings (and observes trades on the md ring),
calls a strategy's jitted callbacks and lets them emit intents into the order ring.

A strategy is four jitted functions with these signatures (``mm`` is the strategy's own
tuple of state arrays, ``sink`` the order sink from ``intents.py``, ``now`` in ns):

    on_book(mm, sink, book_record, now) -> intents sent
    on_trade(mm, sink, symbol_id, price_ticks, qty_lots, now) -> intents sent
    on_exec(mm, sink, exec_record, now) -> intents sent
    on_timer(mm, sink, now) -> intents sent
    on_shutdown(mm, sink, now) -> intents sent   (pull every quote)

``now`` is CLOCK_MONOTONIC when live; in replay it is the event clock (the newest
``t_origin_ns`` seen), so two replays of one capture make byte-identical intents.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.observe.counters import Counters, bump
from pipeline.observe.histogram import record
from pipeline.runtime.agent import Agent, run_slice
from pipeline.runtime.clock import monotonic_ns
from pipeline.transport import ring as R
from pipeline.transport.ring import ConsumerMode, Ring
from shm_layouts.records import MD_EVENT, MdKind

# clock words
C_MODE, C_NOW, C_NEXT_TIMER, C_TIMER_NS = 0, 1, 2, 3
LIVE_CLOCK, EVENT_CLOCK = 0, 1
# counter indices passed in ``stats`` (word indices into the counters segment)
S_BOOKS, S_EXECS, S_TRADES, S_INTENTS = 0, 1, 2, 3
H_BOOK_HOP, H_EXEC_HOP, H_DECISION = 0, 1, 2
TRADE = int(MdKind.TRADE)
BATCH = 64


@njit(cache=True)
def tick(clock, event_ns):
    """Advance the clock: wall clock live, newest event time in replay."""
    if clock[C_MODE] == LIVE_CLOCK:
        clock[C_NOW] = monotonic_ns()
    elif event_ns > clock[C_NOW]:
        clock[C_NOW] = event_ns
    return clock[C_NOW]


@njit
def strategy_cycle(on_book, on_trade, on_exec, on_timer, mm, sink, books, execs, trades,
                   clock, words, stats, hists):
    """One pass: exec reports first (our state must be current), then book updates, then
    trades seen on the md ring, then the timer. Returns records handled."""
    work = 0
    ctl, stamps, recs, slot = execs
    n = R.poll(ctl, stamps, slot, BATCH)
    if n:
        pos = R.cursor(ctl, slot)
        for i in range(n):
            rep = recs[(pos + i) & (recs.shape[0] - 1)]
            now = tick(clock, rep["t_origin_ns"])
            if clock[C_MODE] == LIVE_CLOCK and rep["t_recv_ns"] > 0:
                record(hists[H_EXEC_HOP], now - rep["t_recv_ns"])
            bump(words, stats[S_INTENTS], on_exec(mm, sink, rep, now))
        R.release(ctl, slot, pos + n)
        bump(words, stats[S_EXECS], n)
        work += n
    ctl, stamps, recs, slot = books
    n = R.poll(ctl, stamps, slot, BATCH)
    if n:
        pos = R.cursor(ctl, slot)
        for i in range(n):
            book = recs[(pos + i) & (recs.shape[0] - 1)]
            now = tick(clock, book["t_origin_ns"])
            sent = on_book(mm, sink, book, now)
            if clock[C_MODE] == LIVE_CLOCK:
                record(hists[H_BOOK_HOP], now - book["t_book_ns"])
                if sent:
                    record(hists[H_DECISION], monotonic_ns() - now)
            bump(words, stats[S_INTENTS], sent)
        R.release(ctl, slot, pos + n)
        bump(words, stats[S_BOOKS], n)
        work += n
    ctl, raw, out, out_recs, slot = trades
    if slot >= 0:
        n = R.observe(ctl, slot, raw, out)
        for i in range(n):
            ev = out_recs[i]
            if ev["kind"] == TRADE:
                now = tick(clock, ev["t_origin_ns"])
                on_trade(mm, sink, ev["symbol_id"], ev["price"], ev["qty"], now)
                bump(words, stats[S_TRADES], 1)
        work += n
    now = tick(clock, 0)
    if now >= clock[C_NEXT_TIMER]:
        clock[C_NEXT_TIMER] = now + clock[C_TIMER_NS]
        bump(words, stats[S_INTENTS], on_timer(mm, sink, now))
    return work


class StrategyAgent(Agent):
    """Wires a strategy (module with the four callbacks) to its rings."""

    name = "strategy"

    def __init__(self, strategy, mm: tuple, order_ring: Ring, ids: np.ndarray,
                 book_ring: Ring, exec_ring: Ring, counters: Counters,
                 md_ring: Ring | None = None, event_clock: bool = False,
                 timer_ns: int = 1_000_000):
        self.strategy = strategy
        self.mm = mm
        self.order_ring, self.book_ring, self.exec_ring, self.md_ring = (
            order_ring, book_ring, exec_ring, md_ring)
        self.sink = (order_ring.ctl, order_ring.stamps, order_ring.records, ids)
        self.clock = np.array([EVENT_CLOCK if event_clock else LIVE_CLOCK, 0, 0, timer_ns],
                              np.int64)
        self.words = counters.words
        self.stats = np.array([counters.counter(f"strategy.{n}") for n in
                               ("book_updates", "exec_reports", "trades", "intents")], np.int64)
        self.hists = tuple(counters.histogram(n) for n in  # views into shared memory
                           ("hop.book_ring", "hop.exec_ring", "strategy.decision_ns"))
        self.args: tuple = ()

    def on_start(self) -> None:
        self.order_ring.claim_producer()
        books = (self.book_ring.ctl, self.book_ring.stamps, self.book_ring.records,
                 self.book_ring.join("strategy"))
        execs = (self.exec_ring.ctl, self.exec_ring.stamps, self.exec_ring.records,
                 self.exec_ring.join("strategy"))
        trades = self._trade_source()
        s = self.strategy
        self.args = (s.on_book, s.on_trade, s.on_exec, s.on_timer, self.mm, self.sink, books,
                     execs, trades, self.clock, self.words, self.stats, self.hists)

    def _trade_source(self) -> tuple:
        if self.md_ring is None:  # same types as a real source, slot -1: never polled
            none = np.zeros((1, MD_EVENT.itemsize), np.uint8)
            return (np.zeros(1, np.int64), none, none, none.reshape(-1).view(MD_EVENT), -1)
        ring = self.md_ring
        out = np.zeros((BATCH, ring.dtype.itemsize), np.uint8)
        slot = ring.join("strategy_trades", ConsumerMode.OBSERVING)
        return (ring.ctl, ring.raw, out, out.reshape(-1).view(ring.dtype), slot)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        return run_slice(strategy_cycle, self.args, idle_state, deadline_ns)

    def on_close(self) -> None:
        """Pull every quote on the way out (the gateway then cancels what is left)."""
        now = tick(self.clock, 0)
        self.strategy.on_shutdown(self.mm, self.sink, now)

    def housekeeping(self, now_ns: int) -> bool:
        self.book_ring.heartbeat(self.args[6][3])
        self.exec_ring.heartbeat(self.args[7][3])
        return True
