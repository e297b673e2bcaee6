"""Strategy-side helpers for tests and benchmarks: publish intents, read exec reports."""

from __future__ import annotations

import time

import numpy as np

from pipeline.transport.ring import Ring, cursor, poll, publish, release, try_claim
from shm_layouts.records import EXEC_REPORT


def push_intent(ring: Ring, **fields) -> None:
    """Publish one ORDER_INTENT (fields by name); t_origin/t_decision default to the
    moment just before it is published."""
    start = -1
    deadline = time.monotonic() + 5
    while start < 0:
        start = int(try_claim(ring.ctl, 1))
        if start < 0:
            if time.monotonic() > deadline:
                raise TimeoutError("order ring full")
            time.sleep(0.001)
    ring.raw[start & ring.mask, 8:] = 0  # not the seq stamp: publish writes it
    rec = ring.records[start & ring.mask]
    for key, value in fields.items():
        rec[key] = value
    now = time.monotonic_ns()  # stamped last: Python's field writes are not the gateway's
    if "t_origin_ns" not in fields:
        rec["t_origin_ns"] = now
    rec["t_decision_ns"] = now
    publish(ring.ctl, ring.stamps, start + 1)


def read_execs(ring: Ring, slot: int) -> np.ndarray:
    """Every exec report published since the last call (copies), released at once."""
    n = int(poll(ring.ctl, ring.stamps, slot, ring.capacity))
    pos = int(cursor(ring.ctl, slot))
    out = np.zeros(n, EXEC_REPORT)
    for i in range(n):
        out[i] = ring.records[(pos + i) & ring.mask]
    if n:
        release(ring.ctl, slot, pos + n)
    return out


class GatewayDriver:
    """Runs a ``GatewayAgent`` in the test's thread and collects what it publishes on the
    exec ring (the test plays the strategy). Sleeps between rounds: no busy-spinning."""

    def __init__(self, gw, execs: Ring, slot: int):
        self.gw, self.execs, self.slot = gw, execs, slot
        self.seen: list = []

    def until(self, pred, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            self.gw.poll_once()
            self.gw.housekeeping(time.monotonic_ns())
            self.seen.extend(read_execs(self.execs, self.slot))
            time.sleep(0.0005)

    def execs_for(self, cl_ord_id: int) -> list:
        return [e for e in self.seen if e["cl_ord_id"] == cl_ord_id]
