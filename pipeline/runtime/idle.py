"""Idle strategies (after Agrona): what a duty cycle does when it found no work.

A strategy is a small private int64 array so the jitted poll loop can run it without
calling back into Python. Build one with the factories below; ``idle(state, work)`` is
called after every duty cycle with that cycle's work count.

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


# configuration words
KIND, MAX_SPINS, MAX_YIELDS, MIN_PARK_NS, MAX_PARK_NS = 0, 1, 2, 3, 4
# running state words
SPINS, YIELDS, PARK_NS = 5, 6, 7
WORDS = 8


def _state(kind: IdleKind, spins=0, yields=0, min_park=0, max_park=0) -> np.ndarray:
    s = np.zeros(WORDS, np.int64)
    s[[KIND, MAX_SPINS, MAX_YIELDS, MIN_PARK_NS, MAX_PARK_NS]] = (
        int(kind), spins, yields, min_park, max_park)
    s[PARK_NS] = min_park
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
    kind = state[KIND]
    if work > 0:
        state[SPINS] = 0
        state[YIELDS] = 0
        state[PARK_NS] = state[MIN_PARK_NS]
        return False
    if kind == 1:  # BUSY_SPIN
        cpu_relax()
        return False
    if kind == 2:  # YIELD
        sched_yield()
        return True
    if kind == 4:  # SLEEP
        nanosleep(state[MIN_PARK_NS])
        return True
    if kind == 3:  # BACKOFF
        if state[SPINS] < state[MAX_SPINS]:
            state[SPINS] += 1
            cpu_relax()
            return False
        if state[YIELDS] < state[MAX_YIELDS]:
            state[YIELDS] += 1
            sched_yield()
            return True
        nanosleep(state[PARK_NS])
        state[PARK_NS] = min(state[PARK_NS] * 2, state[MAX_PARK_NS])
        return True
    return False


CLOCK_CHECK_EVERY = 64
