"""ControlEcho: a probe for the control path, a small order source that obeys the control
area, so ``hft ctl`` is tested against one cheap process instead of the whole pipeline.

Duty cycle (jitted): unless the kill switch or the pause flag is on (checked every cycle),
publish one NEW ORDER_INTENT on the order ring every ``1/rate`` seconds.
Housekeeping: execute commands from a ``ControlPoller`` and acknowledge each:
kill on / cancel all publish a CANCEL_ALL intent (as the gateway cancels what is open),
pause/resume/kill off acknowledge the flag change, resync of a known symbol id counts it
(an unknown id is REFUSED).
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from pipeline.control.area import ControlArea, kill_switch_on, quoting_paused
from pipeline.control.poller import ControlPoller
from pipeline.metrics.counters import Counters, bump
from pipeline.runtime.agent import Agent
from pipeline.runtime.clock import monotonic_ns
from pipeline.strategy.intents import CANCEL_ALL, GTC, NEW, Order, intent_sink, submit
from pipeline.transport.ring import Ring
from shm_layouts.control import Op, Status
from shm_layouts.records import Side

# state words
S_NEXT_NS, S_PERIOD_NS, S_NEXT_ID = 0, 1, 2
BUY = int(Side.BID)
PRICE, QTY = 100_000, 1  # ticks, lots: a resting buy far from any market


@njit(cache=True)
def quote_when_allowed(control, sink, state, words, orders_word):
    if kill_switch_on(control) or quoting_paused(control):
        return 0
    now = monotonic_ns()
    if now < state[S_NEXT_NS]:
        return 0
    if not submit(sink, NEW, Order(0, BUY, PRICE, QTY, GTC), state[S_NEXT_ID], 0, now, now):
        return 0
    state[S_NEXT_ID] += 1
    state[S_NEXT_NS] = now + state[S_PERIOD_NS]
    bump(words, orders_word, 1)
    return 1


class ControlEcho(Agent):
    name = "control_echo"

    def __init__(self, control: ControlArea, orders: Ring, counters: Counters, rate: int,
                 n_symbols: int, name: str = "control_echo"):
        self.name = name
        self.control = control
        self.orders = orders
        self.sink = intent_sink(orders, np.zeros(1, np.int64))  # ids: state[S_NEXT_ID]
        self.n_symbols = n_symbols
        self.words = counters.words
        self.c_orders = counters.counter(f"{name}.orders")
        self.c_cancel_all = counters.counter(f"{name}.cancel_all")
        self.c_resyncs = counters.counter(f"{name}.resyncs")
        self.c_commands = counters.counter(f"{name}.commands")
        self.state = np.zeros(3, np.int64)
        self.state[S_PERIOD_NS] = 1_000_000_000 // max(rate, 1)
        self.state[S_NEXT_ID] = 1
        self.poller: ControlPoller | None = None

    def on_start(self) -> None:
        self.orders.claim_producer()
        self.poller = ControlPoller(self.control, self.name, list(Op))

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        args = (self.control.words, self.sink, self.state, self.words, self.c_orders)
        return self.poll_slice(quote_when_allowed, args, idle_state, deadline_ns)

    def _cancel_all(self) -> Status:
        now = time.monotonic_ns()
        if not submit(self.sink, CANCEL_ALL, Order(0, BUY, 0, 0, GTC), 0, 0, now, now):
            return Status.FAILED
        bump(self.words, self.c_cancel_all, 1)
        return Status.DONE

    def execute(self, op: Op, arg0: int) -> Status:
        if op in (Op.KILL_ON, Op.CANCEL_ALL):
            return self._cancel_all()
        if op == Op.RESYNC:
            if not 0 <= arg0 < self.n_symbols:
                return Status.REFUSED
            bump(self.words, self.c_resyncs, 1)
        return Status.DONE  # flag changes take effect in the duty cycle itself

    def housekeeping(self, now_ns: int) -> bool:
        self.orders.heartbeat()
        for cmd in self.poller.poll():
            self.poller.ack(cmd, self.execute(cmd.op, cmd.arg0))
            bump(self.words, self.c_commands, 1)
        return True

    def on_close(self) -> None:
        if self.poller is not None:
            self.poller.close()
