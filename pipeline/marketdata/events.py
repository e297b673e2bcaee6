"""Writing MD_EVENT records from jitted code (``shm_layouts.records.MD_EVENT``).

``Head`` is what the records of one message share (kind, symbol, update ids, times); a
stage builds it once per message and ``put`` adds the per-record side, price and qty.
"""

from __future__ import annotations

from typing import NamedTuple

from numba import njit

from shm_layouts.records import MdKind, Side

SNAPSHOT_BEGIN = int(MdKind.SNAPSHOT_BEGIN)
SNAPSHOT_LEVEL = int(MdKind.SNAPSHOT_LEVEL)
SNAPSHOT_END = int(MdKind.SNAPSHOT_END)
DIFF_LEVEL = int(MdKind.DIFF_LEVEL)
DIFF_END = int(MdKind.DIFF_END)
TRADE = int(MdKind.TRADE)
BBO = int(MdKind.BBO)
INVALIDATE = int(MdKind.INVALIDATE)
BID = int(Side.BID)
ASK = int(Side.ASK)
NO_SIDE = BID  # records that carry no side (ends, invalidations) leave the field 0


class Head(NamedTuple):
    """The fields the records of one message share (all int64)."""

    kind: int
    sid: int
    first: int
    last: int
    prev: int
    t_origin: int
    exch: int


@njit(cache=True, _nrt=False)
def put(out, k, h, side, price, qty):
    """Write record ``out[k]`` (``h``: a ``Head``); returns ``k + 1``."""
    r = out[k]
    r.t_origin_ns = h.t_origin
    r.exch_time_ns = h.exch
    r.first_id = h.first
    r.last_id = h.last
    r.prev_id = h.prev
    r.price = price
    r.qty = qty
    r.symbol_id = h.sid
    r.kind = h.kind
    r.side = side
    r.flags = 0
    return k + 1


@njit(cache=True, _nrt=False)
def copy_record(src, i, dst, k):
    dst[k] = src[i]
    return k + 1
