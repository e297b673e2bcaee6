"""The order path's shared memory: the "orders" and "execs" rings and the OMS segment.

Whoever sets up an instance (``./run.sh``, a test) calls ``create_order_path``; the gateway,
the strategy and tools call ``OmsState.attach`` / ``Ring.attach``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from pipeline.transport.segment import Layout, Segment
from pipeline.transport.shared import atomic_add, atomic_load, atomic_store
from shm_layouts import SegmentKind, layout_hash
from shm_layouts import oms as L
from shm_layouts.records import EXEC_REPORT, ORDER_INTENT

ORDERS_RING, ORDERS_STREAM, ORDERS_CONSUMER = "orders", "order_intent", "gateway"
EXECS_RING, EXECS_STREAM, EXECS_CONSUMER = "execs", "exec_report", "strategy"
OMS_SEGMENT = "oms"
OMS_LAYOUT = Layout(SegmentKind.STATE, "oms",
                    layout_hash(L.OMS_VERSION, L.CONTROL_WORDS, L.ORDER_SLOTS, L.ORDER,
                                L.MAX_INSTRUMENTS, L.POSITION))


@dataclass
class OmsState:
    segment: Segment
    words: np.ndarray
    orders: np.ndarray
    positions: np.ndarray

    @classmethod
    def _wrap(cls, seg: Segment) -> OmsState:
        body = seg.body
        a = L.CONTROL_WORDS * 8
        b = a + L.ORDER_SLOTS * L.ORDER.itemsize
        c = b + L.MAX_INSTRUMENTS * L.POSITION.itemsize
        return cls(seg, body[:a].view(np.int64), body[a:b].view(L.ORDER),
                   body[b:c].view(L.POSITION))

    @classmethod
    def create(cls, instance: Instance) -> OmsState:
        seg = instance.create_segment(OMS_SEGMENT, OMS_LAYOUT, L.oms_body_size())
        state = cls._wrap(seg)
        seg.mark_ready()
        return state

    @classmethod
    def attach(cls, instance: Instance, readonly: bool = False) -> OmsState:
        return cls._wrap(instance.attach_segment(OMS_SEGMENT, OMS_LAYOUT, readonly=readonly))

    def next_cl_ord_id(self) -> int:
        """A fresh client order id (any process; fetch-add on the shared counter)."""
        return int(atomic_add(self.words, L.W_NEXT_CL_ORD_ID, 1))

    def set_kill(self, on: bool) -> None:
        atomic_store(self.words, L.W_KILL, 1 if on else 0)

    def kill(self) -> bool:
        return bool(atomic_load(self.words, L.W_KILL))

    def ready(self) -> bool:
        return bool(atomic_load(self.words, L.W_READY))

    def close(self) -> None:
        self.words = self.orders = self.positions = None  # type: ignore[assignment]
        self.segment.close()


def create_order_path(instance: Instance, capacity: int = 4096,
                      also_gating: tuple[str, ...] = ()) -> tuple[Ring, Ring, OmsState]:
    """Create both rings (gating consumers reserved) and the OMS segment.

    ``also_gating``: consumers that must see every intent and report from the first one
    (the drop copy, a bridge), reserved on both rings at creation.
    """
    orders = Ring.create(instance, ORDERS_RING, ORDERS_STREAM, ORDER_INTENT, capacity,
                         gating=(ORDERS_CONSUMER, *also_gating))
    execs = Ring.create(instance, EXECS_RING, EXECS_STREAM, EXEC_REPORT, capacity,
                        gating=(EXECS_CONSUMER, *also_gating))
    return orders, execs, OmsState.create(instance)


def attach_order_path(instance: Instance) -> tuple[Ring, Ring, OmsState]:
    return (Ring.attach(instance, ORDERS_RING, ORDERS_STREAM, ORDER_INTENT),
            Ring.attach(instance, EXECS_RING, EXECS_STREAM, EXEC_REPORT),
            OmsState.attach(instance))
