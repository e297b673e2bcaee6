"""StrategyAgent: polls the book and exec rings (and observes trades on the md ring),
calls a strategy's jitted callbacks and lets them emit intents into the order ring.

A strategy is five jitted functions with these signatures (``mm`` is the strategy's own
tuple of state arrays, best a named tuple; ``sink`` the ``IntentSink`` from
``intents.py``; ``now`` in ns):

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
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from pipeline.control.area import ControlArea
from pipeline.control.poller import ControlPoller
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.runtime import generated
from pipeline.runtime.agent import Agent, HotDuty
from pipeline.strategy import cycle
from pipeline.strategy import warm as W
from pipeline.strategy.clock import (
    BY_OPERATOR,
    EVENT_CLOCK,
    LIVE_CLOCK,
    STRATEGY_CLOCK,
    UNTIL_GATEWAY_READY,
    tick,
)
from pipeline.strategy.cycle import BATCH
from pipeline.strategy.intents import (
    BID,
    CANCEL_ALL,
    NO_TIF,
    Order,
    intent_sink,
    next_id,
    submit,
)
from pipeline.transport.ring import ConsumerMode, Ring, RingView
from pipeline.transport.shared import atomic_load, atomic_store
from shm_layouts.control import Op, Status
from shm_layouts.oms import W_OPEN_ORDERS, W_READY
from shm_layouts.records import MD_EVENT

log = logging.getLogger(__name__)


class TradeSource(NamedTuple):
    """Trades seen on the md ring, as an observing consumer (``md.slot`` -1: none)."""

    md: RingView
    out: np.ndarray  # uint8 rows: the copies ``observe`` validated
    events: np.ndarray  # the same rows as MD_EVENT records


class StatWords(NamedTuple):
    """Word indices of the strategy's counters in the counters segment."""

    books: int
    execs: int
    trades: int
    intents: int
    late: int
    warms: int


STAT_NAMES = ("book_updates", "exec_reports", "trades", "intents", "books_late",
              "warm_passes")  # strategy.<name>, in StatWords order


class StrategyHists(NamedTuple):
    """Histograms (views into shared memory) the cycle records into, live only."""

    book_hop: np.ndarray  # hop.book_ring
    exec_hop: np.ndarray  # hop.exec_ring
    decision: np.ndarray  # strategy.decision_ns
    tick_to_decision: np.ndarray  # strategy.tick_to_decision_ns
    # the books acted on, split at the book's publication (t_book_ns): frame receipt ->
    # published (parse, md ring, book update), published -> read here (book ring)
    acted_book: np.ndarray  # strategy.acted.frame_to_book_ns
    acted_hop: np.ndarray  # strategy.acted.book_hop_ns


HIST_NAMES = ("hop.book_ring", "hop.exec_ring", "strategy.decision_ns",
              "strategy.tick_to_decision_ns", "strategy.acted.frame_to_book_ns",
              "strategy.acted.book_hop_ns")  # in StrategyHists order


class Telemetry(NamedTuple):
    words: np.ndarray  # the counters segment's words
    stats: StatWords
    hists: StrategyHists


CALLBACKS = ("on_book", "on_trade", "on_exec", "on_timer")  # what the pass calls


def bind_cycle(strategy) -> Callable:
    """The strategy pass with the strategy's callbacks bound as compile-time constants.

    Passed as values (a tuple of dispatchers), numba would type them as first-class
    functions on every call (~80 us each) and could not cache the pass or any loop calling
    it. Bound by name (``pipeline.runtime.generated``), a call dispatches in ~5 us and the
    pass, and a fused loop over it, is compiled once per host.
    """
    return generated.specialize(cycle, {n: getattr(strategy, n) for n in CALLBACKS}).cycle


class StrategyAgent(Agent):
    """Wires a strategy (module with the five callbacks) to its rings."""

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
        self.sink = intent_sink(order_ring, ids)
        self.clock = np.zeros(1, STRATEGY_CLOCK)
        c = self.clock
        c["mode"] = EVENT_CLOCK if event_clock else LIVE_CLOCK
        c["timer_ns"], c["max_age_ns"] = timer_ns, max_book_age_ns
        c["paused"] = 0 if oms is None else UNTIL_GATEWAY_READY
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
        self.telemetry = Telemetry(
            self.words, StatWords(*(counters.counter(f"strategy.{n}") for n in STAT_NAMES)),
            StrategyHists(*(counters.histogram(n) for n in HIST_NAMES)))
        self.warm = W.warm_state(mm, self.sink, book_ring.dtype, 0 if event_clock else warm_ns)
        self.books = self.execs = self.trades = None
        self._cycle_args: tuple = ()

    def on_start(self) -> None:
        self.order_ring.claim_producer()
        if self.control is not None:
            self.poller = ControlPoller(self.control, self.name,
                                        (Op.PAUSE, Op.RESUME, Op.KILL_ON, Op.KILL_OFF))
        self.books = self.book_ring.view(self.book_ring.join("strategy"))
        self.execs = self.exec_ring.view(self.exec_ring.join("strategy"))
        self.trades = self._trade_source()
        self._recover()
        self._cycle = bind_cycle(self.strategy)
        self._cycle_args = (self.mm, self.sink, self.books, self.execs, self.trades,
                            self.clock, self.telemetry, self.warm)

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
            submit(self.sink, CANCEL_ALL, Order(-1, BID, 0, 0, NO_TIF), next_id(self.sink), 0,
                   now, now)
            log.info("restart: %d open orders from before, cancel-all sent",
                     atomic_load(self.oms.words, W_OPEN_ORDERS))

    def _trade_source(self) -> TradeSource:
        if self.md_ring is None:  # same types as a real source, slot -1: never polled
            none = np.zeros((1, MD_EVENT.itemsize), np.uint8)
            events = none.reshape(-1).view(MD_EVENT)
            md = RingView(np.zeros(1, np.int64), none.view(np.int64)[:, 0], events, none, -1)
            return TradeSource(md, none, events)
        ring = self.md_ring
        out = np.zeros((BATCH, ring.dtype.itemsize), np.uint8)
        md = ring.view(ring.join("strategy_trades", ConsumerMode.OBSERVING))
        return TradeSource(md, out, out.reshape(-1).view(ring.dtype))

    def wait_ring(self) -> RingView:
        return self.books  # execs, trades and timers are polled on every wake-up

    def hot_duty(self) -> HotDuty:
        return HotDuty(self._cycle, self._cycle_args)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        return self.poll_slice(self._cycle, self._cycle_args, idle_state, deadline_ns)

    def pause(self, paused: bool) -> None:
        """Stop quoting (pull every quote) or resume; books are consumed either way."""
        if paused and not self.paused:
            self.strategy.on_shutdown(self.mm, self.sink, tick(self.clock, 0))
        held = self.paused & UNTIL_GATEWAY_READY
        self.clock["paused"] = held | (BY_OPERATOR if paused else 0)

    @property
    def paused(self) -> int:
        """Why quoting is paused (BY_OPERATOR | UNTIL_GATEWAY_READY bits); 0: quoting."""
        return int(self.clock["paused"][0])

    def on_close(self) -> None:
        """Pull every quote on the way out (the gateway then cancels what is left)."""
        self.pause(True)
        if self.poller is not None:
            self.poller.close()

    def housekeeping(self, now_ns: int) -> bool:
        if self.paused & UNTIL_GATEWAY_READY and atomic_load(self.oms.words, W_READY):
            self.clock["paused"] = self.paused & ~UNTIL_GATEWAY_READY
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
        self.book_ring.heartbeat(self.books.slot)
        self.exec_ring.heartbeat(self.execs.slot)
        self.order_ring.heartbeat()  # as the order ring's producer
        if self.md_ring is not None:
            self.md_ring.heartbeat(self.trades.md.slot)
        return True
