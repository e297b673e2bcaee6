"""Probe agents: a paced timestamping producer and a latency-recording consumer."""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from pipeline.metrics.counters import Counters, bump
from pipeline.metrics.histogram import record
from pipeline.runtime.agent import Agent
from pipeline.runtime.clock import monotonic_ns
from pipeline.transport import ring as R
from pipeline.transport.ring import Ring

# producer state words
P_SEQ, P_START_NS, P_RATE, P_BATCH = 0, 1, 2, 3


@njit(cache=True, _nrt=False)
def produce_due(ctl, stamps, records, state):
    """Publish the records due by now at the configured rate (rate 0: as fast as possible),
    at most one batch per cycle, all stamped with one clock read just before publishing."""
    now = monotonic_ns()
    if state[P_RATE] > 0:
        due = (now - state[P_START_NS]) * state[P_RATE] // 1_000_000_000 - state[P_SEQ]
        n = min(due, state[P_BATCH])
    else:
        n = state[P_BATCH]
    if n <= 0:
        return 0
    start = R.try_claim(ctl, n)
    if start < 0:
        return 0
    mask = records.shape[0] - 1
    stamp = monotonic_ns()
    for i in range(n):
        rec = records[(start + i) & mask]
        rec["t_send_ns"] = stamp
    R.publish(ctl, stamps, start + n)
    state[P_SEQ] += n
    return n


@njit(cache=True, _nrt=False)
def consume_and_measure(ctl, stamps, records, slot, words, seen_word, error_word, hist):
    """Take what is ready, check sequence continuity, record now - t_send per record."""
    n = R.poll(ctl, stamps, slot, 256)
    if n == 0:
        return 0
    pos = R.cursor(ctl, slot)
    now = monotonic_ns()
    mask = records.shape[0] - 1
    errors = 0
    for i in range(n):
        rec = records[(pos + i) & mask]
        if rec["seq"] != pos + i:
            errors += 1
        record(hist, now - rec["t_send_ns"])
    R.release(ctl, slot, pos + n)
    bump(words, seen_word, n)
    if errors:
        bump(words, error_word, errors)
    return n


class ProbeProducer(Agent):
    def __init__(self, ring: Ring, rate: int, batch: int, name: str = "probe_producer"):
        self.name = name
        self.ring = ring
        self.state = np.zeros(4, np.int64)
        self.state[P_RATE], self.state[P_BATCH] = rate, batch

    def on_start(self) -> None:
        self.ring.claim_producer()
        self.state[P_SEQ] = self.ring.published()  # resume after a restart
        self.state[P_START_NS] = time.monotonic_ns() - (
            self.state[P_SEQ] * 1_000_000_000 // max(self.state[P_RATE], 1))

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        args = (self.ring.ctl, self.ring.stamps, self.ring.records, self.state)
        return self.poll_slice(produce_due, args, idle_state, deadline_ns)

    def housekeeping(self, now_ns: int) -> bool:
        self.ring.heartbeat()
        return True


class ProbeConsumer(Agent):
    def __init__(self, ring: Ring, counters: Counters, name: str):
        self.name = name
        self.ring = ring
        self.words = counters.words
        self.seen = counters.counter(f"{name}.records")
        self.errors = counters.counter(f"{name}.sequence_errors")
        self.hist = counters.histogram(f"hop.{name}")
        self.slot = -1

    def on_start(self) -> None:
        self.slot = self.ring.join(self.name)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        args = (self.ring.ctl, self.ring.stamps, self.ring.records, self.slot, self.words,
                self.seen, self.errors, self.hist)
        return self.poll_slice(consume_and_measure, args, idle_state, deadline_ns)

    def housekeeping(self, now_ns: int) -> bool:
        self.ring.heartbeat(self.slot)
        return True
