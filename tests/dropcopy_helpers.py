"""What the drop-copy and audit tests share: an instance's order path with the drop copy
reserved, a feeder that offers records (and plays gateway and strategy, so only the drop
copy can hold the rings back), the drop-copy process, and the stream read back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from waiting import until

from pipeline.firm import jetstream
from pipeline.firm.audit import Continuity, read_stream, subject_filter
from pipeline.firm.batch import STREAM_NAME, msg_id, new_buffer, pack_header, record_dtype, subject
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import EXECS_CONSUMER, ORDERS_CONSUMER, create_order_path
from pipeline.runtime.processes import Child, wait_running
from pipeline.transport.registry import Instance
from shm_layouts.dropcopy import HEADER_SIZE
from shm_layouts.records import (
    EXEC_REPORT,
    ORDER_INTENT,
    ExecType,
    OrderAction,
    OrderType,
    OrdStatus,
    ReportSource,
    Side,
    TimeInForce,
)


def intent(i: int) -> np.ndarray:
    r = np.zeros((), ORDER_INTENT)
    r["cl_ord_id"], r["orig_cl_ord_id"] = 1000 + i, 0
    r["symbol_id"], r["price"], r["qty"] = i % 3, 50_000 + i, 1 + i % 7
    r["action"], r["tif"], r["ord_type"] = OrderAction.NEW, TimeInForce.GTC, OrderType.LIMIT
    r["side"] = Side.BID if i % 2 else Side.ASK
    r["t_origin_ns"], r["t_decision_ns"] = 10 * i, 10 * i + 3
    return r


def report(i: int) -> np.ndarray:
    r = np.zeros((), EXEC_REPORT)
    r["cl_ord_id"], r["venue_order_id"], r["exec_id"] = 1000 + i, 7_000 + i, 9_000 + i
    r["symbol_id"], r["price"], r["last_px"], r["last_qty"] = i % 3, 50_000 + i, 50_000 + i, 1
    r["cum_qty"], r["leaves_qty"], r["side"] = 1, 0, Side.BID
    r["exec_type"], r["ord_status"], r["source"] = ExecType.FILL, OrdStatus.FILLED, \
        ReportSource.VENUE
    return r


class OrderPath:
    """An instance's rings and counters, with the drop copy reserved as a gating consumer."""

    def __init__(self, instance: Instance, capacity: int = 1024, reserve: bool = True):
        self.instance = instance
        self.counters = Counters.create(instance)
        self.orders, self.execs, self.oms = create_order_path(
            instance, capacity, also_gating=("dropcopy",) if reserve else ())
        # the test plays gateway and strategy: their slots advance as records arrive
        self.others = [(self.orders, self.orders.join(ORDERS_CONSUMER)),
                       (self.execs, self.execs.join(EXECS_CONSUMER))]
        self.offered = {"orders": 0, "execs": 0}

    def slot(self, ring_name: str) -> int:
        ring = self.orders if ring_name == "orders" else self.execs
        return next(c["slot"] for c in ring.consumers() if c["name"] == "dropcopy")

    def cursor(self, ring_name: str) -> int:
        ring = self.orders if ring_name == "orders" else self.execs
        return ring.consumer(self.slot(ring_name))["cursor"]

    def offer(self, n_orders: int, n_execs: int | None = None, timeout: float = 60.0) -> None:
        """Offer records (values from the running count), waiting while a ring is full."""
        n_execs = n_orders if n_execs is None else n_execs
        for ring, name, make, n in ((self.orders, "orders", intent, n_orders),
                                    (self.execs, "execs", report, n_execs)):
            deadline = time.monotonic() + timeout
            for _ in range(n):
                while not ring.offer(make(self.offered[name])):
                    self.drain_others()
                    assert time.monotonic() < deadline, f"{name} ring stayed full"
                    time.sleep(0.002)
                self.offered[name] += 1
        self.drain_others()

    def drain_others(self) -> None:
        for ring, slot in self.others:
            ring.take(slot, 4096)

    def value(self, name: str) -> int:
        return self.counters.values().get(f"dropcopy.{name}", 0)

    def all_released(self) -> bool:
        return all(self.cursor(r) == self.offered[r] for r in ("orders", "execs"))

    def close(self) -> None:
        for seg in (self.orders, self.execs, self.oms, self.counters):
            seg.close()


def start_dropcopy(path: OrderPath, url: str, *extra: str, log: Path | None = None) -> Child:
    """The drop-copy process, RUNNING; its stderr to ``log`` if given."""
    child = Child("dropcopy", "procs.dropcopy",
                  ["--instance", path.instance.name, "--nats", url, *extra])
    if log is None:
        child.start()
    else:
        with open(log, "wb") as f:
            child.popen = subprocess.Popen([sys.executable, "-m", child.module, *child.args],
                                           stdin=subprocess.DEVNULL, stderr=f)
    wait_running(path.counters, [child], timeout=120)
    return child


async def _read(url: str, instance: str | None, ring: str | None):
    nc = await jetstream.connect(url, "test-reader", forever=False)
    try:
        return await read_stream(nc.jetstream(timeout=5), STREAM_NAME,
                                 subject_filter(instance, ring))
    finally:
        await nc.close()


def stored(url: str, instance: str | None = None, ring: str | None = None):
    return asyncio.run(asyncio.wait_for(_read(url, instance, ring), 60))


def checked(url: str, instance: str) -> tuple[dict[str, np.ndarray], Continuity]:
    """Every stored record per ring (concatenated) and the sequence check over them."""
    check = Continuity()
    parts: dict[str, list[np.ndarray]] = {"orders": [], "execs": []}
    for item in stored(url, instance):
        check.add(item)
        if item.batch is not None:
            parts[item.ring].append(item.batch.records)
    return {r: np.concatenate(p) if p else np.zeros(0) for r, p in parts.items()}, check


def wait_stored(path: OrderPath, timeout: float = 120.0) -> None:
    until(path.all_released, timeout, "the drop copy to release every offered record")


__all__ = ["OrderPath", "checked", "encode", "intent", "publish_batches", "publish_raw",
           "report", "start_dropcopy", "stored", "until", "wait_stored"]


async def _publish(url: str, batches: list[tuple[str, str, bytes]]) -> None:
    nc = await jetstream.connect(url, "test-writer", forever=False)
    try:
        js = nc.jetstream(timeout=5)
        await jetstream.ensure_stream(js, STREAM_NAME, 1)
        for subj, msg_id, payload in batches:
            await js.publish(subj, payload, headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


def encode(ring: str, epoch_ns: int, first: int, records: np.ndarray) -> bytes:
    """A batch as the drop copy writes it (records' ``seq`` set from ``first``)."""
    buf = new_buffer(ring, len(records))
    rows = buf[HEADER_SIZE:].view(record_dtype(ring))
    rows[:] = records
    rows["seq"] = np.arange(first, first + len(records))
    pack_header(buf, ring, epoch_ns, first, len(records))
    return buf.tobytes()


def publish_batches(url: str, instance: str, ring: str, epoch_ns: int,
                    spans: list[tuple[int, int]]) -> None:
    """Store batches ``[first, first + n)`` for ``(first, n)`` in ``spans``, with the records
    ``intent(seq)`` / ``report(seq)`` would give."""
    make = intent if ring == "orders" else report
    out = []
    for first, n in spans:
        recs = np.array([make(s) for s in range(first, first + n)])
        out.append((subject(instance, ring), msg_id(instance, ring, epoch_ns, first,
                                                    first + n - 1),
                    encode(ring, epoch_ns, first, recs)))
    publish_raw(url, out)


def publish_raw(url: str, batches: list[tuple[str, str, bytes]]) -> None:
    asyncio.run(asyncio.wait_for(_publish(url, batches), 60))
