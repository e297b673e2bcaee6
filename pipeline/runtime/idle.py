"""Idle strategies (after Agrona): what a duty cycle does when it found no work.

A strategy is an ``IdleStrategy``: a small private record (a 1-element array of
``IDLE_STATE``: its configuration, then its running state) and the ring it may sleep on,
so the jitted poll loop can run it without calling back into Python. Build one with the
factories below; ``idle(strategy, work)`` is called after every duty cycle with that
cycle's work count.

- busy-spin: ``pause`` and poll again. Lowest latency; owns a whole core.
- yield: ``sched_yield``; lets another thread on the core run.
- backoff: spin N times, then yield M times, then park with nanosleep, doubling from
  ``min_park`` to ``max_park``; any work resets it. The only sane choice when processes
  share cores (tests, 2-core hosts).
- block: spin and yield as backoff does, then sleep on the futex of the agent's main
  input ring (``pipeline.transport.notify``) until the producer publishes, at most
  ``max_park``: a tick wakes it at once, an idle ring costs no CPU, a busy ring no
  syscall. An agent whose input is a socket (``watch``: the feed handler's, a composite's
  md and FIX sockets) sleeps in ``ppoll`` on those fds instead, at most ``max_park``: a
  nanosleep park would add its timer slack (~50 us) to every tick. With neither it parks
  as backoff does.
- sleep: park a fixed time every idle cycle.
- noop: return at once (a composite agent idles once for all its children).

Several inputs: a blocking agent sleeps on its main ring only (``Agent.wait_ring``: the
strategy's book ring, the gateway's order ring, a composite's first agent's); its other
inputs (the gateway's socket, the exec ring, timers) are polled on every wake-up, so at
least every ``max_park``.

Sleeping on fds: never while an fd's ``pending`` probe says bytes are already held above
the socket (OpenSSL's ``SSL_has_pending``: decrypted or read-ahead records that poll cannot
see); and when a wake (or a probe) found input the next duty cycle did not take (its
output ring full, Python must act first), the next idle parks as backoff does instead of
polling again, so a readable socket nobody reads is not a busy loop of poll calls. The
state counts sleeps, wakes by data, timeouts, held bytes and such stalls.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.runtime.libc import call_int_fn, nanosleep, pollfd_word, ppoll, sched_yield
from pipeline.transport.atomics import cpu_relax
from pipeline.transport.notify import wait_for_publish
from pipeline.transport.ring import RingView
from shm_layouts.ring import CONTROL_WORDS


class IdleKind(enum.IntEnum):
    NOOP = 0
    BUSY_SPIN = 1
    YIELD = 2
    BACKOFF = 3
    SLEEP = 4
    BLOCK = 5


BUSY_SPIN, YIELD = int(IdleKind.BUSY_SPIN), int(IdleKind.YIELD)
BACKOFF, SLEEP, BLOCK = int(IdleKind.BACKOFF), int(IdleKind.SLEEP), int(IdleKind.BLOCK)
IDLE_STATE = np.dtype([
    ("kind", "<i8"), ("max_spins", "<i8"), ("max_yields", "<i8"),  # configuration
    ("min_park_ns", "<i8"), ("max_park_ns", "<i8"),
    ("spins", "<i8"), ("yields", "<i8"), ("park_ns", "<i8"),  # running state
    ("seen", "<i8"),  # block: the ring's cursor when it last looked (wait_for_publish)
    ("n_fds", "<i8"),  # block on fds (``watch``): how many of ``fds`` are in use
    ("fd_ready", "<i8"),  # the last look found input (poll woke by data, or bytes held)
    ("fd_sleeps", "<i8"), ("fd_wakes", "<i8"), ("fd_timeouts", "<i8"),  # ppoll calls, by end
    ("fd_held", "<i8"),  # did not sleep: a pending probe said bytes were held (TLS)
    ("fd_stalls", "<i8"),  # input found, not taken by the next cycle: parked instead
    ("handoff", "<i8"),  # block: sched_yield after a cycle with work (configuration)
])
NO_RING = np.zeros(CONTROL_WORDS, np.int64)  # same type as a ring's words; never read
MAX_WAIT_FDS = 8
FD_COUNTERS = ("fd_sleeps", "fd_wakes", "fd_timeouts", "fd_held", "fd_stalls")


class WaitFd(NamedTuple):
    """An fd a blocking agent sleeps on, and what says bytes are already held above it:
    ``pending_fn`` the address of a C ``int f(void *)`` (> 0: held), called with
    ``pending_arg`` (``pipeline.tls.io.wait_fd``: ``SSL_has_pending`` and the ``SSL*``);
    0 for a plain socket."""

    fd: int
    pending_fn: int = 0
    pending_arg: int = 0


class IdleStrategy(NamedTuple):
    """What ``idle`` runs: the record, the ring a blocking strategy sleeps on (its control
    words and our consumer slot there; ``NO_RING`` and -1 when there is none), and the fds
    it polls without a ring (``pollfd_word``s, and per fd its ``WaitFd`` pending probe)."""

    state: np.ndarray
    ring: np.ndarray
    slot: int
    fds: np.ndarray
    probes: np.ndarray


def _strategy(kind: IdleKind, spins=0, yields=0, min_park=0, max_park=0) -> IdleStrategy:
    s = np.zeros(1, IDLE_STATE)
    s["kind"], s["max_spins"], s["max_yields"] = int(kind), spins, yields
    s["min_park_ns"], s["max_park_ns"], s["park_ns"] = min_park, max_park, min_park
    s["seen"] = -1
    return IdleStrategy(s, NO_RING, -1, np.zeros(MAX_WAIT_FDS, np.int64),
                        np.zeros((MAX_WAIT_FDS, 2), np.int64))


def noop() -> IdleStrategy:
    return _strategy(IdleKind.NOOP)


def busy_spin() -> IdleStrategy:
    return _strategy(IdleKind.BUSY_SPIN)


def yielding() -> IdleStrategy:
    return _strategy(IdleKind.YIELD)


def backoff(max_spins: int = 100, max_yields: int = 10, min_park_ns: int = 1_000,
            max_park_ns: int = 1_000_000) -> IdleStrategy:
    return _strategy(IdleKind.BACKOFF, max_spins, max_yields, min_park_ns, max_park_ns)


def blocking(max_spins: int = 100, max_yields: int = 10, min_park_ns: int = 1_000,
             max_park_ns: int = 1_000_000) -> IdleStrategy:
    """Backoff's ladder, whose last rung sleeps on the ring given by ``wait_on`` (at most
    ``max_park_ns``: housekeeping and the agent's other inputs still run)."""
    return _strategy(IdleKind.BLOCK, max_spins, max_yields, min_park_ns, max_park_ns)


def sleeping(park_ns: int = 1_000_000) -> IdleStrategy:
    return _strategy(IdleKind.SLEEP, min_park=park_ns, max_park=park_ns)


FACTORIES = {"busy_spin": busy_spin, "yield": yielding, "backoff": backoff,
             "block": blocking, "sleep": sleeping, "noop": noop}


def from_name(name: str) -> IdleStrategy:
    """``busy_spin``, ``yield``, ``backoff``, ``block``, ``sleep`` or ``noop`` with default
    parameters."""
    try:
        return FACTORIES[name]()
    except KeyError:
        raise ValueError(f"unknown idle strategy {name!r}; one of {sorted(FACTORIES)}") from None


def with_ladder(strategy: IdleStrategy, spins: int | None = None, yields: int | None = None,
                max_park_ns: int | None = None, handoff: bool = False) -> IdleStrategy:
    """``strategy`` (backoff or block) with its spins, yields and longest park (a block's
    sleep timeout) set; None keeps the default. Profiles set them per process.

    ``handoff`` (block only): ``sched_yield`` after every cycle that did work, so a
    consumer this cycle woke on the same core runs now, not when we next sleep (a woken
    task does not preempt the waker at once: the scheduler lets the waker run on)."""
    s = strategy.state
    if int(s[0]["kind"]) not in (BACKOFF, BLOCK):
        raise ValueError("spins, yields and max park apply to backoff and block only")
    if handoff and int(s[0]["kind"]) != BLOCK:
        raise ValueError("handoff applies to block only")
    s["handoff"] = int(handoff)
    for field, value in (("max_spins", spins), ("max_yields", yields),
                         ("max_park_ns", max_park_ns)):
        if value is not None:
            if value < 0:
                raise ValueError(f"{field} {value} < 0")
            s[field] = value
    s["park_ns"] = min(s[0]["min_park_ns"], s[0]["max_park_ns"])
    return strategy


def wait_on(strategy: IdleStrategy, ring: RingView | None) -> IdleStrategy:
    """``strategy`` sleeping on ``ring`` (a consumer's view: its slot >= 0) when it blocks;
    unchanged for ``None`` or a strategy that never blocks."""
    if ring is None or int(strategy.state[0]["kind"]) != BLOCK:
        return strategy
    if ring.slot < 0:
        raise ValueError("wait_on: a producer's view (slot -1) has nothing to wait for")
    return strategy._replace(ring=ring.ctl, slot=int(ring.slot))


def blocks_on_fds(strategy: IdleStrategy) -> bool:
    """True for a blocking strategy without a ring: it sleeps on the fds ``watch`` gives."""
    return int(strategy.state[0]["kind"]) == BLOCK and strategy.slot < 0


def watch(strategy: IdleStrategy, fds: Sequence[WaitFd]) -> bool:
    """Make ``fds`` (``Agent.wait_fds``) the set a blocking strategy without a ring sleeps
    on; cheap when unchanged (the runner calls it every slice: fds change on reconnect).
    Returns True when the set changed."""
    if len(fds) > MAX_WAIT_FDS:
        raise ValueError(f"watch: {len(fds)} fds, at most {MAX_WAIT_FDS}")
    s = strategy.state
    n = len(fds)
    words = [pollfd_word(w.fd) for w in fds]
    if n == int(s[0]["n_fds"]) and all(
            strategy.fds[i] == words[i] and strategy.probes[i, 0] == w.pending_fn
            and strategy.probes[i, 1] == w.pending_arg for i, w in enumerate(fds)):
        return False
    s["n_fds"] = 0  # not a live set while it is rewritten
    for i, w in enumerate(fds):
        if w.fd < 0:
            raise ValueError(f"watch: fd {w.fd}")
        strategy.fds[i] = words[i]
        strategy.probes[i] = (w.pending_fn, w.pending_arg)
    s["n_fds"] = n
    s["fd_ready"] = 0
    return True


def fd_counts(strategy: IdleStrategy) -> dict[str, int]:
    """The fd-sleep counters (tests, the runner's published counters)."""
    return {name: int(strategy.state[0][name]) for name in FD_COUNTERS}


@njit(cache=True, _nrt=False)
def park(s):
    """Backoff's park: nanosleep ``park_ns``, doubled for next time up to ``max_park_ns``
    (``s``: the IDLE_STATE record). True: the thread gave up the core."""
    nanosleep(s.park_ns)
    s.park_ns = min(s.park_ns * 2, s.max_park_ns)
    return True


@njit(cache=True, _nrt=False)
def wait_for_fds(strategy):
    """The last rung of a blocking ladder without a ring: ppoll (POLLIN) on the watched fds,
    at most ``max_park_ns``, unless bytes are held above them or the last look's input was
    not taken (see the module docstring). True when the thread gave up the core."""
    s = strategy.state[0]
    for i in range(s.n_fds):
        fn = strategy.probes[i, 0]
        if fn != 0 and call_int_fn(fn, strategy.probes[i, 1]) > 0:
            s.fd_held += 1
            if s.fd_ready == 0:  # the next cycle reads them: do not sleep
                s.fd_ready = 1
                cpu_relax()
                return False
            break
    if s.fd_ready != 0:  # the agent left the input it was woken for: back off
        s.fd_ready = 0
        s.fd_stalls += 1
        return park(s)
    s.fd_sleeps += 1
    r = ppoll(strategy.fds, s.n_fds, s.max_park_ns)
    if r > 0:
        s.fd_wakes += 1
        s.fd_ready = 1
    elif r == 0:
        s.fd_timeouts += 1
    return True


@njit(cache=True, _nrt=False)
def idle(strategy, work):
    """Apply the strategy after a duty cycle; returns True if the thread gave up the core
    (yield, park, sleep), so the caller knows time has passed."""
    s = strategy.state[0]
    kind = s.kind
    if work > 0:
        s.spins = 0
        s.yields = 0
        s.park_ns = s.min_park_ns
        s.fd_ready = 0
        if s.handoff != 0:
            sched_yield()
            return True
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
    if kind == BACKOFF or kind == BLOCK:
        if s.spins < s.max_spins:
            s.spins += 1
            cpu_relax()
            return False
        if s.yields < s.max_yields:
            s.yields += 1
            sched_yield()
            return True
        if kind == BLOCK and strategy.slot >= 0:
            s.seen = wait_for_publish(strategy.ring, strategy.slot, s.seen, s.max_park_ns)
            return True
        if kind == BLOCK and s.n_fds > 0:
            return wait_for_fds(strategy)
        return park(s)
    return False


CLOCK_CHECK_EVERY = 64
