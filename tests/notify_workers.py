"""Processes for the futex tests (tests/test_transport_notify.py): a sleeper, a ping-pong
pair that sleeps on every message, a busy-spinning consumer."""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.runtime import idle as I
from pipeline.runtime.idle import idle
from pipeline.transport import ring as R
from pipeline.transport.futex import futex_wait
from pipeline.transport.registry import Instance

RECORD = np.dtype([("seq", "<i8"), ("value", "<i8"), ("pad", "<i8", 6)])
STREAM = "notify"
LONG_SLEEP_NS = 60_000_000_000  # a sleep that is not woken outlasts every test's wait


def attach(instance_name: str, name: str) -> R.Ring:
    return R.Ring.attach(Instance.attach(instance_name), name, STREAM, RECORD)


def blocking_on(ring: R.Ring, slot: int) -> I.IdleStrategy:
    """Sleep at once when idle (no spins, no yields): every empty poll is a sleep."""
    return I.wait_on(I.blocking(max_spins=0, max_yields=0, max_park_ns=LONG_SLEEP_NS),
                     ring.view(slot))


@njit(cache=True)
def receive(ring, until, strategy, values):
    """Consume into ``values`` until sequence ``until``, idling with ``strategy``."""
    pos = R.cursor(ring.ctl, ring.slot)
    while pos < until:
        n = R.poll(ring.ctl, ring.stamps, ring.slot, 64)
        for i in range(n):
            values[pos + i] = ring.records[(pos + i) & (ring.records.shape[0] - 1)].value
        pos += n
        R.release(ring.ctl, ring.slot, pos)
        idle(strategy, n)


@njit(cache=True)
def send(ring, value):
    start = R.try_claim(ring.ctl, 1)
    if start < 0:
        return False
    ring.records[start & (ring.records.shape[0] - 1)].value = value
    R.publish(ring.ctl, ring.stamps, start + 1)
    return True


@njit(cache=True)
def ping(out, back, cycles, strategy, got):
    """Publish 0..cycles-1 on ``out``, each after the echo of the previous one came back
    on ``back``: both sides idle (sleep) between every message."""
    for i in range(cycles):
        send(out, i)
        receive(back, i + 1, strategy, got)


@njit(cache=True)
def pong(inp, back, cycles, strategy, got):
    for i in range(cycles):
        receive(inp, i + 1, strategy, got)
        send(back, got[i])


def sleeper_main(instance_name: str, result) -> None:
    """Join ``ring``, sleep until one record arrives, report its value."""
    ring = attach(instance_name, "ring")
    slot = ring.join("sleeper")
    got = np.zeros(1, np.int64)
    receive(ring.view(slot), 1, blocking_on(ring, slot), got)
    result.put(("sleeper", int(got[0])))


def pong_main(instance_name: str, cycles: int, result) -> None:
    inp, back = attach(instance_name, "ping"), attach(instance_name, "pong")
    slot = inp.join("pong")
    got = np.zeros(cycles, np.int64)
    pong(inp.view(slot), back.view(), cycles, blocking_on(inp, slot), got)
    result.put(("pong", bool((got == np.arange(cycles)).all())))


def spinner_main(instance_name: str, total: int, result) -> None:
    """Consume ``total`` records busy-spinning: never flags itself asleep."""
    ring = attach(instance_name, "ring")
    slot = ring.join("spinner")
    got = np.zeros(total, np.int64)
    receive(ring.view(slot), total, I.busy_spin(), got)
    result.put(("spinner", bool((got == np.arange(total)).all())))


@njit(cache=True)
def futex_wait_once(words, index, expected, timeout_ns):
    return futex_wait(words, index, expected, timeout_ns)
