"""Emitting order intents from jitted strategy code into the order ring.

An ``IntentSink`` is what a strategy's callbacks get as ``sink``: the order ring (as its
producer) and a private int64 array whose word ``NEXT_ID`` is the next client order id.
Client order ids are ``base + n``; ``base`` comes from the wall clock at start (live:
unique across restarts that are a second apart) or from the seed (replay: identical
across runs). An ``Order`` is what an intent is about (symbol, side, price, quantity,
time in force), built inline in jitted code: numba keeps it in registers, no allocation.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.transport import ring as R
from pipeline.transport.ring import Ring, RingView
from shm_layouts.records import OrderAction, OrderType, Side, TimeInForce

NEW = int(OrderAction.NEW)
CANCEL = int(OrderAction.CANCEL)
REPLACE = int(OrderAction.REPLACE)
CANCEL_ALL = int(OrderAction.CANCEL_ALL)
GTC = int(TimeInForce.GTC)
IOC = int(TimeInForce.IOC)
POST_ONLY = int(TimeInForce.POST_ONLY)
LIMIT = int(OrderType.LIMIT)
MARKET = int(OrderType.MARKET)
NO_ORDER_TYPE = 0  # a CANCEL_ALL names no order: no order type and no time in force
NO_TIF = 0
BID = int(Side.BID)
ASK = int(Side.ASK)

NEXT_ID = 0
IDS_PER_SESSION = 1_000_000_000


class IntentSink(NamedTuple):
    """A strategy's way out: the order ring and its client order id counter."""

    orders: RingView  # slot -1: the strategy is the ring's producer
    ids: np.ndarray  # int64, word NEXT_ID: the next client order id


class Order(NamedTuple):
    """What an intent is about; prices in ticks, quantities in lots."""

    symbol_id: int  # -1 with CANCEL_ALL: every symbol
    side: int  # Side
    price: int
    qty: int
    tif: int  # TimeInForce


def id_state(seed: int | None = None) -> np.ndarray:
    """The id counter: seeded (deterministic) or from the epoch second (live)."""
    base = (seed if seed is not None else int(time.time())) * IDS_PER_SESSION
    return np.array([base + 1], np.int64)


def intent_sink(order_ring: Ring, ids: np.ndarray) -> IntentSink:
    return IntentSink(order_ring.view(), ids)


@njit(cache=True, _nrt=False)
def submit(sink, action, order, cl_ord_id, orig_cl_ord_id, t_origin_ns, t_decision_ns):
    """Write one intent (``action``: OrderAction); False when the order ring is full
    (nothing was sent)."""
    ring = sink.orders
    start = R.try_claim(ring.ctl, 1)
    if start < 0:
        return False
    rec = ring.records[start & (ring.records.shape[0] - 1)]
    rec["t_origin_ns"] = t_origin_ns
    rec["t_decision_ns"] = t_decision_ns
    rec["cl_ord_id"] = cl_ord_id
    rec["orig_cl_ord_id"] = orig_cl_ord_id
    rec["price"] = order.price
    rec["qty"] = order.qty
    rec["symbol_id"] = order.symbol_id
    rec["action"] = action
    rec["side"] = order.side
    rec["tif"] = order.tif
    rec["ord_type"] = LIMIT if action != CANCEL_ALL else NO_ORDER_TYPE
    R.publish(ring.ctl, ring.stamps, start + 1)
    return True


@njit(cache=True, _nrt=False)
def next_id(sink):
    """Take the next client order id of ``sink``."""
    ids = sink.ids
    cl = ids[NEXT_ID]
    ids[NEXT_ID] = cl + 1
    return cl
