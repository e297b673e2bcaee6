"""OMS state segment: control words, the order table and per-instrument positions.

Written only by the gateway (single writer); the monitor, ``hft ctl`` and the strategy
read it. The kill-switch word is the one word written from outside (``hft ctl``), with a
release store; the gateway acquire-loads it every duty cycle. Strategies draw client
order ids from ``W_NEXT_CL_ORD_ID`` with fetch-add, so ids are unique across processes,
and the gateway raises it past every id in its journal on start, so also across restarts.

An order lives in slot ``cl_ord_id & (ORDER_SLOTS - 1)``: ids come from one counter, so
a slot is reused only ORDER_SLOTS ids later, and an intent whose slot still holds a live
order is refused (``RiskReason.TABLE_FULL``) rather than clobbering it.
"""

from __future__ import annotations

import enum

import numpy as np

ORDER_SLOTS = 1 << 14
MAX_INSTRUMENTS = 64
OMS_VERSION = 1

# control words (int64), each on its own 64-byte line where writers differ
W_NEXT_CL_ORD_ID = 0  # fetch-add by strategies
W_KILL = 8  # kill switch: 0 off, 1 on (written by hft ctl)
W_READY = 16  # 1 once reconciled after (re)connect: intents are accepted
W_OPEN_ORDERS = 17
W_RECONCILE_PENDING = 18  # status requests not yet answered
W_JOURNAL_RECORDS = 19
W_FILLS = 20
W_REJECTS = 21
W_UNKNOWN_REPORTS = 22  # exec reports for orders we do not know
W_RECONCILE_MISMATCH = 23
W_LOGONS = 24
W_STALE_CANCELS = 25
W_OVERFILLS = 26  # fills beyond an order's quantity (or on a dead order): booked, reconciled
W_DUPLICATE_FILLS = 27  # fill reports that raised no CumQty: not booked again
W_RECONCILE_WANTED = 28  # bumped by the OMS when it must reconcile with the venue; trading
# stops (W_READY 0) until the gateway has
CONTROL_WORDS = 32

ORDER = np.dtype([
    ("cl_ord_id", "<i8"),  # 0: slot free
    ("pending_id", "<i8"),  # ClOrdID of the cancel/replace request in flight
    ("venue_order_id", "<i8"),
    ("price", "<i8"),
    ("qty", "<i8"),
    ("cum_qty", "<i8"),
    ("leaves_qty", "<i8"),
    ("pending_price", "<i8"),
    ("pending_qty", "<i8"),
    ("t_origin_ns", "<i8"),
    ("t_sent_ns", "<i8"),
    ("t_update_ns", "<i8"),
    ("symbol_id", "<i4"),
    ("strategy_id", "<i4"),
    ("status", "u1"),  # OrdStatus
    ("prev_status", "u1"),  # restored by a cancel/replace reject
    ("side", "u1"),
    ("tif", "u1"),
    ("ord_type", "u1"),
    ("replace_mode", "u1"),  # ReplaceMode of the Binance XCN in flight (pending_id: its new order)
    ("replaces", "<i8"),  # an XCN's new order: the ClOrdID of the order its cancel leg targets
    ("_pad", "u1", (10,)),
])
assert ORDER.itemsize == 128

POSITION = np.dtype([
    ("position", "<i8"),  # signed lots
    ("open_cost", "<i8"),  # sum of price ticks * lots of the open position (signed)
    ("realised", "<i8"),  # realised PnL in tick*lot units
    ("open_buy", "<i8"),  # lots resting in open buy orders
    ("open_sell", "<i8"),
    ("fills", "<i8"),
    ("volume", "<i8"),
    ("_pad", "<i8"),
])
assert POSITION.itemsize == 64


class RiskReason(enum.IntEnum):
    """``EXEC_REPORT.reject_reason`` when ``source`` is RISK or OMS."""

    OK = 0
    KILL_SWITCH = 1
    NOT_READY = 2  # not logged on / reconciling
    UNKNOWN_SYMBOL = 3
    BAD_ORDER = 4  # qty <= 0, price <= 0 for a limit, bad side/action
    MAX_QTY = 5
    MAX_NOTIONAL = 6
    MAX_POSITION = 7
    PRICE_BAND = 8
    ORDER_RATE = 9
    CANCEL_RATE = 10
    MAX_OPEN_ORDERS = 11
    DUPLICATE_ID = 12
    STALE_MARKET_DATA = 13
    UNKNOWN_ORDER = 14  # cancel/replace of an order we do not have open
    TABLE_FULL = 15
    NO_MARKET_DATA = 16
    ORDER_NOT_CANCELABLE = 17  # already pending cancel/replace
    JOURNAL_FULL = 18  # the OMS journal has no room: nothing new until it is rotated
    # the venue's exchange rules (Binance exchangeInfo filters, pipeline/orders/risk.py):
    # an order the venue would reject never reaches the wire
    PRICE_TICK = 19  # PRICE_FILTER tickSize: not a multiple of the venue's tick
    PRICE_RANGE = 20  # PRICE_FILTER minPrice / maxPrice
    LOT_STEP = 21  # LOT_SIZE stepSize
    MIN_QTY = 22  # LOT_SIZE minQty
    LOT_MAX_QTY = 23  # LOT_SIZE maxQty
    MIN_NOTIONAL = 24  # MIN_NOTIONAL / NOTIONAL minNotional (price x qty)
    NOTIONAL_MAX = 25  # NOTIONAL maxNotional
    PERCENT_PRICE = 26  # PERCENT_PRICE(_BY_SIDE): too far from the reference (mid) price
    MAX_NUM_ORDERS = 27  # MAX_NUM_ORDERS / EXCHANGE_MAX_NUM_ORDERS: open orders
    VENUE_MAX_POSITION = 28  # MAX_POSITION: base asset held + open buys


def oms_body_size() -> int:
    return CONTROL_WORDS * 8 + ORDER_SLOTS * ORDER.itemsize + MAX_INSTRUMENTS * POSITION.itemsize
