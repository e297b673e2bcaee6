"""StrategyAgent: polls the book and exec rings (and observes trades on the md ring),
calls a strategy's jitted callbacks and lets them emit intents into the order ring.

A strategy is four jitted functions with these signatures (``mm`` is the strategy's own
tuple of state arrays, ``sink`` the order sink from ``intents.py``, ``now`` in ns):

    on_book(mm, sink, book_record, now) -> intents sent
    on_trade(mm, sink, symbol_id, price_ticks, qty_lots, now) -> intents sent
    on_exec(mm, sink, exec_record, now) -> intents sent
    on_timer(mm, sink, now) -> intents sent
    on_shutdown(mm, sink, now) -> intents sent   (pull every quote)

Optional, cold path: ``positions(mm)``/``restore(mm, lots)`` (inventory) and
``counters(mm) -> {name: count}`` (published as ``strategy.<name>`` in housekeeping).

``now`` is CLOCK_MONOTONIC when live; in replay it is the event clock (the newest
``t_origin_ns`` seen), so two replays of one capture make byte-identical intents.
"""

from __future__ import annotations

import logging

import numpy as np
from numba import njit

from pipeline.control.area import ControlArea
from pipeline.control.poller import ControlPoller
from pipeline.observe.counters import Counters, bump
from pipeline.observe.histogram import record
from pipeline.orders.segments import OmsState
from pipeline.runtime import warming
from pipeline.runtime.agent import Agent, run_slice
from pipeline.runtime.clock import monotonic_ns
from pipeline.strategy import warm as W
from pipeline.strategy.intents import CANCEL_ALL, next_id, submit
from pipeline.transport import ring as R
from pipeline.transport.ring import ConsumerMode, Ring
from pipeline.transport.shared import atomic_load, atomic_store
from shm_layouts.control import Op, Status
from shm_layouts.oms import W_OPEN_ORDERS, W_READY
from shm_layouts.records import MD_EVENT, MdKind

log = logging.getLogger(__name__)

# clock words (C_PAUSED: quoting paused, non-zero for any reason; books are still consumed;
# C_MAX_AGE: live, a book update whose frame was received longer ago than this is consumed
# but not acted on: it is a backlog (a stall, a start-up compile), not the market)
C_MODE, C_NOW, C_NEXT_TIMER, C_TIMER_NS, C_PAUSED, C_MAX_AGE = 0, 1, 2, 3, 4, 5
# C_PAUSED bits: paused by the operator (control area, kill switch); held until the gateway
# is ready (an intent sent while it logs on and reconciles would only be denied NOT_READY)
BY_OPERATOR, UNTIL_GATEWAY_READY = 1, 2
LIVE_CLOCK, EVENT_CLOCK = 0, 1
# counter indices passed in ``stats`` (word indices into the counters segment)
S_BOOKS, S_EXECS, S_TRADES, S_INTENTS, S_LATE, S_WARMS = 0, 1, 2, 3, 4, 5
H_BOOK_HOP, H_EXEC_HOP, H_DECISION, H_TICK_TO_DECISION = 0, 1, 2, 3
TRADE = int(MdKind.TRADE)
BATCH = 64


@njit(cache=True, _nrt=False)
def tick(clock, event_ns):
    """Advance the clock: wall clock live, newest event time in replay."""
    if clock[C_MODE] == LIVE_CLOCK:
        clock[C_NOW] = monotonic_ns()
    elif event_ns > clock[C_NOW]:
        clock[C_NOW] = event_ns
    return clock[C_NOW]


@njit(_nrt=False)
def strategy_cycle(on_book, on_trade, on_exec, on_timer, mm, sink, books, execs, trades,
                   clock, words, stats, hists, warm):
    """One pass: exec reports first (our state must be current), then book updates, then
    trades seen on the md ring, then the timer; a pass that found nothing may warm the
    decision path (``warm``, see ``pipeline.strategy.warm``). Returns records handled."""
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
            late = clock[C_MODE] == LIVE_CLOCK and now - book["t_origin_ns"] > clock[C_MAX_AGE]
            if late:
                bump(words, stats[S_LATE], 1)
            sent = on_book(mm, sink, book, now) if clock[C_PAUSED] == 0 and not late else 0
            if clock[C_MODE] == LIVE_CLOCK:
                record(hists[H_BOOK_HOP], now - book["t_book_ns"])
                if sent:
                    record(hists[H_DECISION], monotonic_ns() - now)
                    record(hists[H_TICK_TO_DECISION], now - book["t_origin_ns"])
            bump(words, stats[S_INTENTS], sent)
        W.keep_book(warm, recs[(pos + n - 1) & (recs.shape[0] - 1)])
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
    if work == 0 and clock[C_PAUSED] == 0 and warming.due(warm[0]):
        on_book(warm[1], warm[2], W.prepare(warm), now)  # shadow state, shadow sink
        bump(words, stats[S_WARMS], 1)
    return work


def bind_cycle(strategy):
    """``strategy_cycle`` with the strategy's callbacks bound as compile-time constants.

    Passing the four callbacks in the argument tuple makes numba type them (first-class
    functions) on every call: ~80 us each, ~1 ms a call, paid once per slice alone but once
    per round in a single-cycle composite. Bound here, a call dispatches in ~5 us.
    """
    on_book, on_trade, on_exec, on_timer = (strategy.on_book, strategy.on_trade,
                                            strategy.on_exec, strategy.on_timer)

    @njit(_nrt=False)
    def cycle(mm, sink, books, execs, trades, clock, words, stats, hists, warm):
        return strategy_cycle(on_book, on_trade, on_exec, on_timer, mm, sink, books, execs,
                              trades, clock, words, stats, hists, warm)
    return cycle


class StrategyAgent(Agent):
    """Wires a strategy (module with the four callbacks) to its rings."""

    name = "strategy"

    def __init__(self, strategy, mm: tuple, order_ring: Ring, ids: np.ndarray,
                 book_ring: Ring, exec_ring: Ring, counters: Counters,
                 md_ring: Ring | None = None, event_clock: bool = False,
                 timer_ns: int = 1_000_000, control: ControlArea | None = None,
                 symbol_names: list[str] | None = None, oms: OmsState | None = None,
                 max_book_age_ns: int = 50_000_000, warm_ns: int = 0):
        """``max_book_age_ns``: live, book updates from frames received longer ago than
        this are not acted on (``strategy.books_late`` counts them). ``warm_ns`` > 0, live
        only: a dry decision on shadow state every ``warm_ns`` while idle
        (``pipeline.strategy.warm``; ``strategy.warm_passes`` counts them)."""
        self.strategy = strategy
        self.mm = mm
        self.order_ring, self.book_ring, self.exec_ring, self.md_ring = (
            order_ring, book_ring, exec_ring, md_ring)
        self.sink = (order_ring.ctl, order_ring.stamps, order_ring.records, ids)
        self.clock = np.array([EVENT_CLOCK if event_clock else LIVE_CLOCK, 0, 0, timer_ns,
                               0 if oms is None else UNTIL_GATEWAY_READY, max_book_age_ns],
                              np.int64)
        self.control = control
        self.oms = oms
        self.poller: ControlPoller | None = None
        # the strategy's own view of its inventory, for cross-checks with OMS and venue
        self.position_words = [counters.counter(f"strategy.position.{name}")
                               for name in (symbol_names or [])]
        self.words = counters.words
        # optional API: counters(mm) -> {name: count}, published as strategy.<name>,
        # continuing from the value a previous incarnation left after a restart
        self.own_counters = getattr(strategy, "counters", None)
        self.own_words: dict[str, tuple[int, int]] = {}
        for n in self.own_counters(mm) if self.own_counters else ():
            word = counters.counter(f"strategy.{n}")
            self.own_words[n] = (word, int(atomic_load(self.words, word)))
        self.stats = np.array([counters.counter(f"strategy.{n}") for n in
                               ("book_updates", "exec_reports", "trades", "intents",
                                "books_late", "warm_passes")], np.int64)
        self.hists = tuple(counters.histogram(n) for n in  # views into shared memory
                           ("hop.book_ring", "hop.exec_ring", "strategy.decision_ns",
                            "strategy.tick_to_decision_ns"))
        self.warm = W.warm_state(mm, self.sink, book_ring.dtype, 0 if event_clock else warm_ns)
        self.args: tuple = ()

    def on_start(self) -> None:
        self.order_ring.claim_producer()
        if self.control is not None:
            self.poller = ControlPoller(self.control, self.name,
                                        (Op.PAUSE, Op.RESUME, Op.KILL_ON, Op.KILL_OFF))
        books = (self.book_ring.ctl, self.book_ring.stamps, self.book_ring.records,
                 self.book_ring.join("strategy"))
        execs = (self.exec_ring.ctl, self.exec_ring.stamps, self.exec_ring.records,
                 self.exec_ring.join("strategy"))
        trades = self._trade_source()
        self._recover()
        s = self.strategy
        # the full argument list of strategy_cycle (lock-step replay calls it directly)
        self.args = (s.on_book, s.on_trade, s.on_exec, s.on_timer, self.mm, self.sink, books,
                     execs, trades, self.clock, self.words, self.stats, self.hists, self.warm)
        self._cycle, self._cycle_args = bind_cycle(s), self.args[4:]

    def _recover(self) -> None:
        """Crash-only restart: take the inventory from the OMS and cancel any order a
        previous incarnation left open (its ids are not in our fresh state)."""
        if self.oms is None:
            return
        restore = getattr(self.strategy, "restore", None)
        if restore is not None:  # optional API: restore(mm, lots per symbol id)
            restore(self.mm, self.oms.positions["position"].copy())
        if atomic_load(self.oms.words, W_OPEN_ORDERS) > 0:
            now = tick(self.clock, 0)
            submit(self.sink[0], self.sink[1], self.sink[2], CANCEL_ALL, -1, 0, 0, 0, 0,
                   next_id(self.sink[3]), 0, now, now)
            log.info("restart: %d open orders from before, cancel-all sent",
                     atomic_load(self.oms.words, W_OPEN_ORDERS))

    def _trade_source(self) -> tuple:
        if self.md_ring is None:  # same types as a real source, slot -1: never polled
            none = np.zeros((1, MD_EVENT.itemsize), np.uint8)
            return (np.zeros(1, np.int64), none, none, none.reshape(-1).view(MD_EVENT), -1)
        ring = self.md_ring
        out = np.zeros((BATCH, ring.dtype.itemsize), np.uint8)
        slot = ring.join("strategy_trades", ConsumerMode.OBSERVING)
        return (ring.ctl, ring.raw, out, out.reshape(-1).view(ring.dtype), slot)

    def hot_duty(self) -> tuple:
        return self._cycle, self._cycle_args

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        return run_slice(self._cycle, self._cycle_args, idle_state, deadline_ns)

    def pause(self, paused: bool) -> None:
        """Stop quoting (pull every quote) or resume; books are consumed either way."""
        if paused and not self.clock[C_PAUSED]:
            self.strategy.on_shutdown(self.mm, self.sink, tick(self.clock, 0))
        held = self.clock[C_PAUSED] & UNTIL_GATEWAY_READY
        self.clock[C_PAUSED] = held | (BY_OPERATOR if paused else 0)

    def on_close(self) -> None:
        """Pull every quote on the way out (the gateway then cancels what is left)."""
        self.pause(True)
        if self.poller is not None:
            self.poller.close()

    def housekeeping(self, now_ns: int) -> bool:
        if self.clock[C_PAUSED] & UNTIL_GATEWAY_READY and atomic_load(self.oms.words, W_READY):
            self.clock[C_PAUSED] &= ~UNTIL_GATEWAY_READY
            log.info("gateway ready: quoting")
        if self.poller is not None:
            for cmd in self.poller.poll():
                self.pause(cmd.op in (Op.PAUSE, Op.KILL_ON))
                self.poller.ack(cmd, Status.DONE)
            if self.poller.kill_switch_on() or self.control.paused():
                self.pause(True)
        positions = getattr(self.strategy, "positions", None)
        if positions is not None and self.position_words:
            for word, lots in zip(self.position_words, positions(self.mm), strict=False):
                atomic_store(self.words, word, int(lots))
        for name, value in (self.own_counters(self.mm) if self.own_words else {}).items():
            word, base = self.own_words[name]
            atomic_store(self.words, word, base + value)
        self.book_ring.heartbeat(self.args[6][3])
        self.exec_ring.heartbeat(self.args[7][3])
        self.order_ring.heartbeat()  # as the order ring's producer
        if self.md_ring is not None:
            self.md_ring.heartbeat(self.args[8][4])
        return True
