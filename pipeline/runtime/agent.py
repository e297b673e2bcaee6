"""Agents (after Agrona): a stage is an object with a duty cycle and no thread of its own.

The poll loop lives in numba: ``run_slice(duty_cycle, args, idle_state, deadline_ns)``
calls an agent's jitted duty cycle until the deadline, idling between cycles, and returns
the total work count. Python only sees one call per ~1 ms slice, where the runner
does housekeeping (heartbeat, signals, config). Several agents share one process through
``CompositeAgent`` without any change to the agents.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np
from numba import njit

from pipeline.runtime import idle as idle_strategies
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.idle import CLOCK_CHECK_EVERY, idle

# a deadline that asks for exactly one duty cycle (CompositeAgent's single-cycle rounds)
ONE_CYCLE = -1


@njit(cache=True, _nrt=False)
def keep_polling(idle_state, work, iteration, deadline_ns):
    """Idle after a duty cycle, then say whether the slice goes on.

    The clock is read every ``CLOCK_CHECK_EVERY`` cycles, or at once when the idle strategy
    gave up the core, so a slice overruns its deadline by at most a park interval.
    ``deadline_ns == ONE_CYCLE``: stop after this cycle.
    """
    if deadline_ns == ONE_CYCLE:
        return False
    blocked = idle(idle_state, work)
    if blocked or iteration % CLOCK_CHECK_EVERY == 0:
        return monotonic_ns() < deadline_ns
    return True


# no cache: a function taking a dispatcher argument is never a cache hit (~0.1 s compile).
# No NRT either: reference counting of every array argument on every call costs ~1 us.
@njit(_nrt=False)
def run_slice(duty_cycle, args, idle_state, deadline_ns):
    """The poll loop: ``duty_cycle(*args)`` returns its work count; idle between cycles."""
    total = 0
    iteration = 0
    while True:
        work = duty_cycle(*args)
        total += work
        iteration += 1
        if not keep_polling(idle_state, work, iteration, deadline_ns):
            return total


class Agent(ABC):
    """Base class. Subclasses set ``name`` and implement ``do_work``."""

    name = "agent"

    def on_start(self) -> None:
        """Called once in the process that runs the agent, after pinning."""

    @abstractmethod
    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        """Run the duty cycle until ``deadline_ns`` (a jitted slice); return work done."""

    def housekeeping(self, now_ns: int) -> bool:
        """Cold-path work between slices. Return False when the agent is finished."""
        return True

    def on_close(self) -> None:
        """Called once when the runner stops (signal, finished, or error)."""


class CompositeAgent(Agent):
    """Runs several agents round-robin in one thread; idles once for all of them.

    By default each child polls ``CLOCK_CHECK_EVERY`` cycles per round; ``single_cycle``
    gives each child one duty cycle per round, so a message crosses every hop in one round
    (lower latency, more Python calls per cycle). ``close_order``: child names in the order
    their ``on_close`` runs (default: the round-robin order).
    """

    def __init__(self, agents: list[Agent], name: str | None = None, *,
                 single_cycle: bool = False, close_order: list[str] | None = None):
        self.agents = list(agents)
        self.name = name or "+".join(a.name for a in agents)
        self._child_idle = idle_strategies.noop()
        self.single_cycle = single_cycle
        by_name = {a.name: a for a in self.agents}
        self._closing = ([by_name[n] for n in close_order if n in by_name]
                         + [a for a in self.agents if a.name not in close_order]
                         if close_order else self.agents)

    def on_start(self) -> None:
        for a in self.agents:
            a.on_start()

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        total = 0
        while True:
            # each child polls CLOCK_CHECK_EVERY cycles (deadline already due), then yields
            now = ONE_CYCLE if self.single_cycle else time.monotonic_ns()
            work = sum(a.do_work(self._child_idle, now) for a in self.agents)
            total += work
            idle(idle_state, work)
            if time.monotonic_ns() >= deadline_ns:
                return total

    def housekeeping(self, now_ns: int) -> bool:
        alive = [a.housekeeping(now_ns) for a in self.agents]
        return any(alive)

    def on_close(self) -> None:
        """Every child closes even when an earlier one fails (the gateway must cancel)."""
        error = None
        for a in self._closing:
            try:
                a.on_close()
            except Exception as e:  # noqa: BLE001 - re-raised after the others closed
                error = error or e
        if error is not None:
            raise error
