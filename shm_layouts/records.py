"""The four record streams (DESIGN.md "Records"). Each is a 64-byte multiple.

Every record begins with ``seq`` (int64), the ring's stamp: ``ring.publish`` writes it,
producers never do; consumers detect a complete record from it (pipeline.transport.ring).
Every record also carries ``t_origin_ns``: the CLOCK_MONOTONIC receive time of the market-data
frame that caused it, so tick-to-trade is measured where the order bytes hit the socket.
Prices are int64 ticks and quantities int64 lots of the record's instrument.
"""

from __future__ import annotations

import enum

import numpy as np


def _record(fields: list[tuple], size: int) -> np.dtype:
    """A packed little-endian dtype padded to exactly ``size`` bytes."""
    dt = np.dtype(fields)
    if dt.itemsize > size:
        raise ValueError(f"record is {dt.itemsize} bytes, more than {size}")
    if dt.itemsize < size:
        dt = np.dtype(fields + [("_pad", "u1", (size - dt.itemsize,))])
    assert dt.itemsize % 64 == 0
    return dt


class Side(enum.IntEnum):
    BID = 0  # also BUY
    ASK = 1  # also SELL


class MdKind(enum.IntEnum):
    SNAPSHOT_BEGIN = 1  # first_id = lastUpdateId of the snapshot
    SNAPSHOT_LEVEL = 2
    SNAPSHOT_END = 3
    DIFF_LEVEL = 4  # one price level of a depth diff (qty 0 = delete)
    DIFF_END = 5  # closes one depth diff event: first/last/prev ids
    TRADE = 6
    BBO = 7  # best bid-offer; one record per side
    INVALIDATE = 8  # the symbol lost sync: drop its book until the next snapshot


MD_EVENT = _record(
    [
        ("seq", "<i8"),  # ring stamp
        ("t_origin_ns", "<i8"),  # frame receive time
        ("exch_time_ns", "<i8"),  # venue event time (E), 0 if absent
        ("first_id", "<i8"),  # U (or lastUpdateId for a snapshot)
        ("last_id", "<i8"),  # u
        ("prev_id", "<i8"),  # pu on futures, -1 where the venue sends none
        ("price", "<i8"),
        ("qty", "<i8"),
        ("symbol_id", "<i4"),
        ("kind", "u1"),
        ("side", "u1"),
        ("flags", "<u2"),
    ],
    128,  # 72 bytes of fields: the stamp pushed it past one line
)


class SyncState(enum.IntEnum):
    UNSYNCED = 0
    SNAPSHOT_PENDING = 1
    SYNCED = 2


BOOK_TOP_N = 5

BOOK_UPDATE = _record(
    [
        ("seq", "<i8"),  # ring stamp
        ("t_origin_ns", "<i8"),
        ("t_book_ns", "<i8"),  # when the book builder published it
        ("exch_time_ns", "<i8"),
        ("update_id", "<i8"),
        ("symbol_id", "<i4"),
        ("state", "u1"),  # SyncState
        ("n_bids", "u1"),
        ("n_asks", "u1"),
        ("flags", "u1"),
        ("bid_px", "<i8", (BOOK_TOP_N,)),  # [0] is the best level
        ("bid_qty", "<i8", (BOOK_TOP_N,)),
        ("ask_px", "<i8", (BOOK_TOP_N,)),
        ("ask_qty", "<i8", (BOOK_TOP_N,)),
    ],
    256,
)


class OrderAction(enum.IntEnum):
    NEW = 1
    CANCEL = 2
    REPLACE = 3
    CANCEL_ALL = 4


class ReplaceMode(enum.IntEnum):
    """What a Binance XCN (cancel + new order) does when its cancel fails (tag 25033)."""

    NONE = 0  # not a cancel-and-new (FIX 4.4 G, Binance XAK)
    STOP_ON_FAILURE = 1  # the new order is not attempted
    ALLOW_FAILURE = 2  # the new order is placed anyway


class FixDialect(enum.IntEnum):
    """The order-entry FIX dialect a gateway session speaks (``[gateway] dialect``)."""

    FIX44 = 1  # standard FIX 4.4 (QuickFIX interop): G replace, H status, resend
    BINANCE_SPOT = 2  # Binance Spot: signed Logon, XCN/XAK/q/XLQ, no resend, no H


class TimeInForce(enum.IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3
    POST_ONLY = 4  # GTX: rejected if it would take liquidity


class OrderType(enum.IntEnum):
    LIMIT = 1
    MARKET = 2


ORDER_INTENT = _record(
    [
        ("seq", "<i8"),  # ring stamp
        ("t_origin_ns", "<i8"),
        ("t_decision_ns", "<i8"),
        ("cl_ord_id", "<i8"),
        ("orig_cl_ord_id", "<i8"),  # the order a cancel/replace targets
        ("price", "<i8"),
        ("qty", "<i8"),
        ("symbol_id", "<i4"),
        ("action", "u1"),  # OrderAction
        ("side", "u1"),  # Side
        ("tif", "u1"),  # TimeInForce
        ("ord_type", "u1"),  # OrderType
    ],
    64,  # one cache line: the order ring is on the tick-to-trade path
)


class ExecType(enum.IntEnum):
    NEW = 1
    PARTIAL_FILL = 2
    FILL = 3
    CANCELED = 4
    REPLACED = 5
    REJECTED = 6  # by the venue or by pre-trade risk (see ``source``)
    EXPIRED = 7
    ORDER_STATUS = 8
    CANCEL_REJECTED = 9


class OrdStatus(enum.IntEnum):
    PENDING_NEW = 1
    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    PENDING_CANCEL = 5
    PENDING_REPLACE = 6
    CANCELED = 7
    REPLACED = 8
    REJECTED = 9
    EXPIRED = 10


class ReportSource(enum.IntEnum):
    VENUE = 1
    RISK = 2  # pre-trade risk denied it: it never reached the wire
    OMS = 3


EXEC_REPORT = _record(
    [
        ("seq", "<i8"),  # ring stamp
        ("t_origin_ns", "<i8"),
        ("t_recv_ns", "<i8"),  # when the gateway decoded it
        ("t_venue_ns", "<i8"),  # TransactTime
        ("cl_ord_id", "<i8"),
        ("orig_cl_ord_id", "<i8"),
        ("venue_order_id", "<i8"),
        ("exec_id", "<i8"),
        ("price", "<i8"),
        ("last_px", "<i8"),
        ("last_qty", "<i8"),
        ("cum_qty", "<i8"),
        ("leaves_qty", "<i8"),
        ("position", "<i8"),  # signed inventory in lots after this report (OMS or venue view)
        ("symbol_id", "<i4"),
        ("exec_type", "u1"),  # ExecType
        ("ord_status", "u1"),  # OrdStatus
        ("side", "u1"),
        ("source", "u1"),  # ReportSource
        ("reject_reason", "<u2"),
    ],
    128,
)

STREAMS = {
    "md_event": MD_EVENT,
    "book_update": BOOK_UPDATE,
    "order_intent": ORDER_INTENT,
    "exec_report": EXEC_REPORT,
}
