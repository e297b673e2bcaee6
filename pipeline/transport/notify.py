"""Sleeping on a ring instead of spinning, woken by the publish (after Disruptor's
BlockingWaitStrategy and Linux futex(2)).

A consumer that has found nothing for a while sets its bit in ``WAITERS`` and sleeps on
the ring's futex, the low half of the ``PUBLISHED`` cursor; after every publish the
producer loads ``WAITERS`` and calls FUTEX_WAKE only when a bit is set, so a busy ring
costs one fence and one load per publish and no syscall.

No lost wakeup: the consumer stores its flag, then (full fence) reads the cursor; the
producer stores the cursor, then (full fence) reads the flags. With both fences at least
one side sees the other's store: either the consumer sees the new cursor and does not
sleep, or the producer sees the flag and wakes it. A wake that comes between the
consumer's read and its FUTEX_WAIT is not lost either: the kernel compares the futex
with the cursor the consumer read, finds it moved, and returns at once.

    producer: publish(...)                     # ring.publish calls wake_sleepers
    consumer: seen = wait_for_publish(ctl, slot, seen, timeout_ns)  # when idle
"""

from __future__ import annotations

from numba import njit

from pipeline.transport.atomics import fence_seq_cst, fetch_add, load_relaxed, store_relaxed
from pipeline.transport.futex import ETIMEDOUT, WAKE_ALL, futex_wait, futex_wake
from shm_layouts.ring import (
    C_CURSOR,
    C_SLEEPS,
    C_TIMEOUTS,
    CONSUMER_BASE,
    LINE_WORDS,
    P_WAKES,
    PUBLISHED,
    WAITERS,
)


@njit(cache=True, _nrt=False)
def wake_sleepers(ctl):
    """Producer, right after its release store of ``PUBLISHED``: wake the consumers that
    flagged themselves asleep, if any (no syscall when none did)."""
    fence_seq_cst()  # our cursor store is visible to all before we read the flags
    if load_relaxed(ctl, WAITERS) != 0:  # relaxed: the fence above orders it
        store_relaxed(ctl, P_WAKES, load_relaxed(ctl, P_WAKES) + 1)  # only we write it
        futex_wake(ctl, PUBLISHED, WAKE_ALL)


@njit(cache=True, _nrt=False)
def wait_for_publish(ctl, slot, seen, timeout_ns):
    """Consumer ``slot``, after a duty cycle that found nothing: sleep until the producer
    publishes, at most ``timeout_ns``. Returns the cursor read before sleeping; pass it
    back as ``seen`` next time.

    It does not sleep when records it has not consumed were published since ``seen``
    (the last call): the next duty cycle looks at them first. Records still unconsumed at
    the same cursor as last time are held back on purpose (the consumer's output ring is
    full): then it sleeps, until a publish or the timeout.
    """
    base = CONSUMER_BASE + slot * LINE_WORDS
    flag = 1 << slot
    fetch_add(ctl, WAITERS, flag)  # seq_cst RMW; only this consumer sets or clears its bit
    fence_seq_cst()  # the flag is visible to all before we read the cursor
    pub = load_relaxed(ctl, PUBLISHED)  # relaxed: no payload is read on the strength of it
    if pub == load_relaxed(ctl, base + C_CURSOR) or pub == seen:
        store_relaxed(ctl, base + C_SLEEPS, load_relaxed(ctl, base + C_SLEEPS) + 1)
        # the kernel re-reads the futex: if it moved since ``pub`` we return at once
        if futex_wait(ctl, PUBLISHED, pub, timeout_ns) == -ETIMEDOUT:
            store_relaxed(ctl, base + C_TIMEOUTS, load_relaxed(ctl, base + C_TIMEOUTS) + 1)
    fetch_add(ctl, WAITERS, -flag)  # seq_cst RMW: awake (a later wake is merely spare)
    return pub


@njit(cache=True, _nrt=False)
def is_asleep(ctl, slot):
    """True while consumer ``slot`` has its bit set in ``WAITERS`` (tests, monitors)."""
    return (load_relaxed(ctl, WAITERS) >> slot) & 1 == 1
