"""One jitted poll loop over several agents' duty cycles: no Python between the hops.

A ``CompositeAgent`` calls each child's ``do_work`` from Python: a message crossing four
agents pays four Python calls (~30 us a round with the pipeline's argument tuples). Fused,
the children's duty cycles are compile-time constants of one numba loop, called once each
per round in data-flow order, so a tick crosses feed -> book -> strategy -> gateway without
leaving machine code. Python runs only between slices (or when a duty cycle asks for it
with a negative result, see ``pipeline.runtime.agent``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit, typeof

from pipeline.runtime.agent import HotDuty, SameArgsCall, keep_polling, work_done

MAX_DUTIES = 4


@njit(cache=True, _nrt=False)
def no_duty():
    """Fills unused slots of the fixed-arity loop."""
    return 0


def fuse(duties: tuple[Callable, ...]) -> Callable:
    """``run(args0, args1, args2, args3, rounds, idle_state, deadline_ns) -> work``: one duty
    cycle of each of ``duties`` per round (counted in ``rounds[0]``), idle once per round;
    returns at the deadline, or after a round in which a duty cycle returned a negative
    result (Python must act).

    The duties are closure constants, not arguments: numba then calls them directly instead
    of typing first-class functions on every call. A closure is never cached, so the loop
    compiles once per process (the duties themselves come from their caches), ~10 s:
    ``FusedLoop.compile`` does it at start-up.
    """
    if not 1 <= len(duties) <= MAX_DUTIES:
        raise ValueError(f"fuse: 1 to {MAX_DUTIES} duty cycles, got {len(duties)}")
    d0, d1, d2, d3 = (*duties, *(no_duty,) * (MAX_DUTIES - len(duties)))

    @njit(_nrt=False)
    def run(a0, a1, a2, a3, rounds, idle_state, deadline_ns):
        total = 0
        iteration = 0
        while True:
            r0 = d0(*a0)
            r1 = d1(*a1)
            r2 = d2(*a2)
            r3 = d3(*a3)
            work = work_done(r0) + work_done(r1) + work_done(r2) + work_done(r3)
            total += work
            iteration += 1
            rounds[0] += 1
            if min(r0, r1, r2, r3) < 0 or not keep_polling(idle_state, work, iteration,
                                                          deadline_ns):
                return total
    return run


class FusedLoop:
    """Calls the fused loop of a list of ``HotDuty(cycle, args)``; fuses again only when the
    set of duty functions changes (argument values may change every slice)."""

    def __init__(self) -> None:
        self._duties: tuple = ()
        self._run: Callable | None = None
        self._call: SameArgsCall | None = None
        self.rounds = np.zeros(1, np.int64)  # rounds run: the loop's frequency, for telemetry

    def __call__(self, hot: list[HotDuty], idle_state: np.ndarray, deadline_ns: int) -> int:
        self._fuse(hot)
        return self._call(*self._args(hot), self.rounds, idle_state, deadline_ns)

    def compile(self, hot: list[HotDuty], idle_state: np.ndarray) -> None:
        """Compile the loop for these duties' argument types now, without running it."""
        self._fuse(hot)
        args = (*self._args(hot), self.rounds, idle_state, 0)
        self._run.compile(tuple(typeof(a) for a in args))

    def _fuse(self, hot: list[HotDuty]) -> None:
        duties = tuple(cycle for cycle, _ in hot)
        if duties != self._duties:
            self._duties, self._run = duties, fuse(duties)
            self._call = SameArgsCall(self._run)

    @staticmethod
    def _args(hot: list[HotDuty]) -> list:
        return [args for _, args in hot] + [()] * (MAX_DUTIES - len(hot))
