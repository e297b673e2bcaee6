"""Idle strategies (after Agrona): what a duty cycle does when it found no work.

A strategy is a small private record (a 1-element array of ``IDLE_STATE``: its
configuration, then its running state) so the jitted poll loop can run it without calling
back into Python. Build one with the factories below; ``idle(state, work)`` is called
after every duty cycle with that cycle's work count.

- busy-spin: ``pause`` and poll again. Lowest latency; owns a whole core.
- yield: ``sched_yield``; lets another thread on the core run.
- backoff: spin N times, then yield M times, then park with nanosleep, doubling from
  ``min_park`` to ``max_park``; any work resets it. The only sane choice when processes
  share cores (tests, 2-core hosts).
- sleep: park a fixed time every idle cycle.
- noop: return at once (a composite agent idles once for all its children).
"""

from __future__ import annotations

import enum

import numpy as np
from numba import njit

from pipeline.runtime.libc import nanosleep, sched_yield
from pipeline.transport.atomics import cpu_relax


class IdleKind(enum.IntEnum):
    NOOP = 0
    BUSY_SPIN = 1
    YIELD = 2
    BACKOFF = 3
    SLEEP = 4


BUSY_SPIN, YIELD = int(IdleKind.BUSY_SPIN), int(IdleKind.YIELD)
BACKOFF, SLEEP = int(IdleKind.BACKOFF), int(IdleKind.SLEEP)
IDLE_STATE = np.dtype([
    ("kind", "<i8"), ("max_spins", "<i8"), ("max_yields", "<i8"),  # configuration
    ("min_park_ns", "<i8"), ("max_park_ns", "<i8"),
    ("spins", "<i8"), ("yields", "<i8"), ("park_ns", "<i8"),  # running state
])


def _state(kind: IdleKind, spins=0, yields=0, min_park=0, max_park=0) -> np.ndarray:
    s = np.zeros(1, IDLE_STATE)
    s["kind"], s["max_spins"], s["max_yields"] = int(kind), spins, yields
    s["min_park_ns"], s["max_park_ns"], s["park_ns"] = min_park, max_park, min_park
    return s


def noop() -> np.ndarray:
    return _state(IdleKind.NOOP)


def busy_spin() -> np.ndarray:
    return _state(IdleKind.BUSY_SPIN)


def yielding() -> np.ndarray:
    return _state(IdleKind.YIELD)


def backoff(max_spins: int = 100, max_yields: int = 10, min_park_ns: int = 1_000,
            max_park_ns: int = 1_000_000) -> np.ndarray:
    return _state(IdleKind.BACKOFF, max_spins, max_yields, min_park_ns, max_park_ns)


def sleeping(park_ns: int = 1_000_000) -> np.ndarray:
    return _state(IdleKind.SLEEP, min_park=park_ns, max_park=park_ns)


def from_name(name: str) -> np.ndarray:
    """``busy_spin``, ``yield``, ``backoff``, ``sleep`` or ``noop`` with default parameters."""
    factories = {"busy_spin": busy_spin, "yield": yielding, "backoff": backoff,
                 "sleep": sleeping, "noop": noop}
    try:
        return factories[name]()
    except KeyError:
        raise ValueError(f"unknown idle strategy {name!r}; one of {sorted(factories)}") from None


@njit(cache=True, _nrt=False)
def idle(state, work):
    """Apply the strategy after a duty cycle; returns True if the thread gave up the core
    (yield, park, sleep), so the caller knows time has passed."""
    s = state[0]
    kind = s.kind
    if work > 0:
        s.spins = 0
        s.yields = 0
        s.park_ns = s.min_park_ns
        return False
    if kind == BUSY_SPIN:
        cpu_relax()
        return False
    if kind == YIELD:
        sched_yield()
        return True
    if kind == SLEEP:
        nanosleep(s.min_park_ns)
        return True
    if kind == BACKOFF:
        if s.spins < s.max_spins:
            s.spins += 1
            cpu_relax()
            return False
        if s.yields < s.max_yields:
            s.yields += 1
            sched_yield()
            return True
        nanosleep(s.park_ns)
        s.park_ns = min(s.park_ns * 2, s.max_park_ns)
        return True
    return False


CLOCK_CHECK_EVERY = 64
