"""Writing MD_EVENT records from jitted code (``shm_layouts.records.MD_EVENT``)."""

from __future__ import annotations

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


@njit(cache=True, _nrt=False)
def put(out, k, kind, sid, side, price, qty, first, last, prev, t_origin, exch):
    r = out[k]
    r.t_origin_ns = t_origin
    r.exch_time_ns = exch
    r.first_id = first
    r.last_id = last
    r.prev_id = prev
    r.price = price
    r.qty = qty
    r.symbol_id = sid
    r.kind = kind
    r.side = side
    r.flags = 0
    return k + 1


@njit(cache=True, _nrt=False)
def copy_record(src, i, dst, k):
    dst[k] = src[i]
    return k + 1
