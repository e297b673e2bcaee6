"""The gateway's observing consumer of the book ring ("<gateway>-marks": best bid/ask for
risk) beats like every other consumer, so the monitor does not show a healthy gateway with
a stale heartbeat there (it was stamped only when it joined)."""

from __future__ import annotations

import time

import pytest
from test_orders_gateway import Harness

from pipeline.transport.ring import ConsumerMode, Ring, inspect_ring
from shm_layouts.records import BOOK_UPDATE

pytestmark = pytest.mark.timeout(240)  # a cold numba cache


def test_the_marks_consumer_heartbeats_while_the_gateway_runs(instance, tmp_path):
    books = Ring.create(instance, "books", "book_update", BOOK_UPDATE, 256)
    h = Harness(instance, tmp_path, book_ring="books")
    try:
        joined = time.monotonic_ns()
        h.ready()  # polls and housekeeping until logged on and reconciled
        (slot,) = [c["slot"] for c in inspect_ring(instance, "books")["consumers"]
                   if c["name"].endswith("-marks")]
        marks = books.consumer(slot)
        assert marks["mode"] == int(ConsumerMode.OBSERVING)
        assert marks["heartbeat_ns"] > joined
    finally:
        h.close()
