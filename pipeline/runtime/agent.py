"""Agents (after Agrona): a stage is an object with a duty cycle and no thread of its own.

The poll loop lives in numba: ``run_slice(duty_cycle, args, idle_state, deadline_ns)``
calls an agent's jitted duty cycle until the deadline, idling between cycles, and returns
the total work count. A duty cycle returns its work count, or ``-1 - work`` when Python
must act before the next cycle (a FIX admin message, a partial write): the slice ends.
Python only sees one call per ~1 ms slice, where the runner does housekeeping (heartbeat,
signals, config). Several agents share one process through ``CompositeAgent`` without any
change to the agents; agents that expose ``hot_duty`` can be fused into one jitted loop
(``pipeline.runtime.fused``) so no Python runs between their duty cycles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.idle import CLOCK_CHECK_EVERY, WaitFd, idle
from pipeline.transport.ring import RingView

# a deadline that asks for exactly one duty cycle (CompositeAgent's single-cycle rounds)
ONE_CYCLE = -1


class HotDuty(NamedTuple):
    """What ``Agent.hot_duty`` returns: ``cycle(*args)`` is one duty cycle (a plain
    ``(cycle, args)`` pair is accepted too)."""

    cycle: Callable
    args: tuple


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


@njit(cache=True, _nrt=False)
def no_duty():
    """A duty cycle with nothing to do (fills the unused slots of a fused loop)."""
    return 0


@njit(cache=True, _nrt=False)
def work_done(result):
    """The work count in a duty cycle's result (``-1 - work`` asks Python to act first)."""
    return result if result >= 0 else -1 - result


# no cache: a function taking a dispatcher argument is never a cache hit (~0.1 s compile).
# No NRT either: reference counting of every array argument on every call costs ~1 us.
@njit(_nrt=False)
def run_slice(duty_cycle, args, idle_state, deadline_ns):
    """The poll loop: ``duty_cycle(*args)`` returns its work count; idle between cycles.
    A negative result (``-1 - work``) ends the slice at once: Python must act first."""
    total = 0
    iteration = 0
    while True:
        result = duty_cycle(*args)
        work = work_done(result)
        total += work
        iteration += 1
        if result < 0 or not keep_polling(idle_state, work, iteration, deadline_ns):
            return total


_INT64 = range(-(1 << 63), 1 << 63)


def _same_type(seen, arg) -> bool:
    """True when ``arg`` certainly has the numba type ``seen`` had: the same object (an
    array's dtype, rank and layout never change), two ints numba types as int64, two
    floats or bools, or two tuples of one class whose items all pass."""
    if seen is arg:
        return True
    kind = type(seen)
    if kind is not type(arg):
        return False
    if kind is int:
        return seen in _INT64 and arg in _INT64
    if kind is float or kind is bool:
        return True
    return isinstance(seen, tuple) and len(seen) == len(arg) and all(map(_same_type, seen, arg))


class SameArgsCall:
    """Calls a jitted function with arguments of the types it had last time (an agent's
    argument tuples, rebuilt or not from the same arrays; its idle state; a deadline)
    without numba typing them on every call.

    The dispatcher types every argument on every call, in Python for named tuples and
    record arrays: ~18 us for the strategy's slice, against ~1.3 us for the call itself.
    After one call through the dispatcher this calls the overload it chose directly for
    as long as ``_same_type`` holds for every argument; anything else goes through the
    dispatcher again and is remembered, up to ``MAX_RESOLVES`` times: finding the overload
    types the arguments in Python (~1 ms for the strategy's), so a caller whose arguments
    keep changing gets plain dispatcher calls from then on.
    """

    MAX_RESOLVES = 4

    def __init__(self, dispatcher: Callable):
        self.dispatcher = dispatcher
        self._seen: tuple = ()  # held: an id compared in _same_type is never reused
        self._entry: Callable | None = None
        self.resolves = 0

    def __call__(self, *args):
        if self._entry is not None and len(args) == len(self._seen) \
                and all(map(_same_type, self._seen, args)):
            return self._entry(*args)
        result = self.dispatcher(*args)
        self._seen, self._entry = (), None
        if self.resolves < self.MAX_RESOLVES:
            self.resolves += 1
            sig = tuple(self.dispatcher.typeof_pyval(a) for a in args)
            overload = self.dispatcher.overloads.get(sig)  # None: it matched by conversion
            if overload is not None:
                self._seen, self._entry = args, overload.entry_point
        return result


class Agent(ABC):
    """Base class. Subclasses set ``name`` and implement ``do_work``."""

    name = "agent"

    def on_start(self) -> None:
        """Called once in the process that runs the agent, after pinning."""

    @abstractmethod
    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        """Run the duty cycle until ``deadline_ns`` (a jitted slice); return work done."""

    def poll_slice(self, duty_cycle, args: tuple, idle_state: np.ndarray,
                   deadline_ns: int) -> int:
        """``run_slice`` for this agent, through a ``SameArgsCall``: an agent passes the
        same views every slice, so numba need not type them again each time."""
        call = self.__dict__.get("_slice_call")
        if call is None:
            call = self._slice_call = SameArgsCall(run_slice)
        return call(duty_cycle, args, idle_state, deadline_ns)

    def hot_duty(self) -> HotDuty | None:
        """``HotDuty(jitted duty cycle, argument tuple)`` for a fused loop, or None while this
        agent needs its Python ``do_work`` (disconnected, mid-handshake) or has no jitted
        duty cycle. Asked before every fused slice; ``after_hot`` runs after it."""
        return None

    def wait_ring(self) -> RingView | None:
        """The ring a blocking idle strategy sleeps on (``idle.wait_on``): this agent's
        main input, as its consumer view, once ``on_start`` joined it. None (the default):
        the input is a socket or there is none; a blocking strategy then sleeps on
        ``wait_fds``."""
        return None

    def wait_fds(self) -> list[WaitFd]:
        """The sockets a blocking idle strategy without a ring sleeps on (``idle.watch``),
        asked every slice: they change on reconnect. Empty (the default): it parks."""
        return []

    def duty_template(self) -> HotDuty | None:
        """``hot_duty`` as it will be once connected (placeholder fds allowed: only the
        argument types count), asked once at start so a fused loop compiles before the
        process reports running, not in the middle of trading."""
        return self.hot_duty()

    def after_hot(self) -> None:
        """The Python side of a round after a fused slice (what ``do_work`` does around its
        jitted slice, e.g. the gateway's FIX session shell)."""

    def housekeeping(self, now_ns: int) -> bool:
        """Cold-path work between slices. Return False when the agent is finished."""
        return True

    def on_close(self) -> None:
        """Called once when the runner stops (signal, finished, or error)."""
