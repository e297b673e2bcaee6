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
from numba import typeof

from pipeline.runtime import fused_loop, generated
from pipeline.runtime.agent import HotDuty, SameArgsCall, no_duty

MAX_DUTIES = 4


def fuse(duties: tuple[Callable, ...]) -> Callable:
    """``run(args0, args1, args2, args3, rounds, idle_state, deadline_ns) -> work``: one duty
    cycle of each of ``duties`` per round (counted in ``rounds[0]``), idle once per round;
    returns at the deadline, or after a round in which a duty cycle returned a negative
    result (Python must act).

    The duties are compile-time constants of the loop, not arguments: numba then calls them
    directly instead of typing first-class functions on every call. The loop is
    ``fused_loop`` specialised to them by name (``pipeline.runtime.generated``), so each
    set of duties compiles once per host, not once per process start.
    """
    if not 1 <= len(duties) <= MAX_DUTIES:
        raise ValueError(f"fuse: 1 to {MAX_DUTIES} duty cycles, got {len(duties)}")
    padded = (*duties, *(no_duty,) * (MAX_DUTIES - len(duties)))
    return generated.specialize(fused_loop, {f"d{i}": d for i, d in enumerate(padded)}).run


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
