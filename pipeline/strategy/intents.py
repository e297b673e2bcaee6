"""Emitting order intents from jitted strategy code into the order ring.

An ``OrderSink`` is a tuple of arrays ``(ctl, stamps, records, ids)``: the order ring and
a private int64 array whose word 0 is the next client order id. Client order ids are
``base + n``; ``base`` comes from the wall clock at start (live: unique across restarts
that are a second apart) or from the seed (replay: identical across runs).
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from pipeline.transport import ring as R
from shm_layouts.records import OrderAction, OrderType, TimeInForce

NEW = int(OrderAction.NEW)
CANCEL = int(OrderAction.CANCEL)
REPLACE = int(OrderAction.REPLACE)
CANCEL_ALL = int(OrderAction.CANCEL_ALL)
GTC = int(TimeInForce.GTC)
IOC = int(TimeInForce.IOC)
POST_ONLY = int(TimeInForce.POST_ONLY)
LIMIT = int(OrderType.LIMIT)
MARKET = int(OrderType.MARKET)

NEXT_ID = 0
IDS_PER_SESSION = 1_000_000_000


def id_state(seed: int | None = None) -> np.ndarray:
    """The id counter: seeded (deterministic) or from the epoch second (live)."""
    base = (seed if seed is not None else int(time.time())) * IDS_PER_SESSION
    return np.array([base + 1], np.int64)


@njit(cache=True, _nrt=False)
def submit(ctl, stamps, records, action, symbol_id, side, price, qty, tif, cl_ord_id,
           orig_cl_ord_id, t_origin_ns, t_decision_ns):
    """Write one intent; False when the order ring is full (nothing was sent)."""
    start = R.try_claim(ctl, 1)
    if start < 0:
        return False
    rec = records[start & (records.shape[0] - 1)]
    rec["t_origin_ns"] = t_origin_ns
    rec["t_decision_ns"] = t_decision_ns
    rec["cl_ord_id"] = cl_ord_id
    rec["orig_cl_ord_id"] = orig_cl_ord_id
    rec["price"] = price
    rec["qty"] = qty
    rec["symbol_id"] = symbol_id
    rec["action"] = action
    rec["side"] = side
    rec["tif"] = tif
    rec["ord_type"] = LIMIT if action != CANCEL_ALL else 0
    R.publish(ctl, stamps, start + 1)
    return True


@njit(cache=True, _nrt=False)
def next_id(ids):
    cl = ids[NEXT_ID]
    ids[NEXT_ID] = cl + 1
    return cl
