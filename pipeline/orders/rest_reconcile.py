"""Reconcile the OMS from Binance's signed REST API: its FIX API has no OrderStatusRequest
(35=H) and resends nothing, so after every (re)logon the gateway asks ``openOrders`` per
instrument, and for each of its live orders the venue no longer lists, ``GET
/api/v3/order`` (its final state: filled, canceled, expired; -2013 "Order does not exist":
it never reached the book). Each answer becomes an order-status report (ExecType 'I')
through the same OMS path as a FIX 4.4 status reply (``oms.reconcile``): a fill the venue
has and we missed is applied once (only what raises our CumQty to the venue's), so a
reconnect never books a fill twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from pipeline.binance.reconcile import SIDES, OpenOrder, ReconcileError, fetch_open_orders
from pipeline.binance.rest import BinanceError
from pipeline.fix import codec as C
from pipeline.instruments import OffGrid, SymbolTable
from pipeline.orders import oms
from shm_layouts.records import OrdStatus

log = logging.getLogger(__name__)

NO_SUCH_ORDER = -2013  # errors.md: "Order does not exist."
# Binance order status -> OrdStatus (enums.md "Order status")
FINAL = {"NEW": OrdStatus.NEW, "PARTIALLY_FILLED": OrdStatus.PARTIALLY_FILLED,
         "PENDING_NEW": OrdStatus.PENDING_NEW, "FILLED": OrdStatus.FILLED,
         "CANCELED": OrdStatus.CANCELED, "PENDING_CANCEL": OrdStatus.NEW,
         "REJECTED": OrdStatus.REJECTED, "EXPIRED": OrdStatus.EXPIRED,
         "EXPIRED_IN_MATCH": OrdStatus.EXPIRED}
# OrdStatus -> the FIX OrdStatus (39) char oms.venue_status reads back
FIX_STATUS = {OrdStatus.NEW: oms.FIX_NEW, OrdStatus.PARTIALLY_FILLED: oms.FIX_PARTIAL,
              OrdStatus.FILLED: oms.FIX_FILLED, OrdStatus.CANCELED: oms.FIX_CANCELED,
              OrdStatus.REJECTED: oms.FIX_REJECTED, OrdStatus.PENDING_NEW: oms.FIX_PENDING_NEW,
              OrdStatus.EXPIRED: oms.FIX_EXPIRED}


@dataclass
class Outcome:
    """What one reconcile found: reports applied, venue orders we do not know."""

    reports: list[np.ndarray] = field(default_factory=list)
    unknown: list[OpenOrder] = field(default_factory=list)


def status_report(sid: int, cl_ord_id: int, venue_order_id: int, status: OrdStatus,
                  cum_qty: int) -> np.ndarray:
    """The order-status field vector (35=8, 150=I) for one order."""
    f = np.zeros(C.N_FIELDS, np.int64)
    f[C.F_MSG_TYPE] = C.MSG_EXEC_REPORT
    f[C.F_EXEC_TYPE] = oms.FIX_ORDER_STATUS
    f[C.F_ORD_STATUS] = FIX_STATUS[status]
    f[C.F_CL_ORD_ID] = cl_ord_id
    f[C.F_ORDER_ID] = venue_order_id
    f[C.F_SYMBOL_ID] = sid
    f[C.F_CUM_QTY] = cum_qty
    f[C.F_MASK] = C.M_CUM_QTY
    f[C.F_TEXT_AT] = -1
    return f


def _final_state(rest, table: SymbolTable, symbol: str, cl_ord_id: int
                 ) -> tuple[OrdStatus, int, int]:
    """(status, cum lots, venue id) of one order no longer open (``GET /api/v3/order``)."""
    try:
        body = rest.signed("GET", "/api/v3/order",
                           [("symbol", symbol), ("origClientOrderId", str(cl_ord_id))])
    except BinanceError as e:
        if e.code == NO_SUCH_ORDER:
            return OrdStatus.REJECTED, 0, 0  # it never reached the venue's book
        raise
    where = f"order {symbol} clientOrderId {cl_ord_id}"
    try:
        status = FINAL[body["status"]]
        if body["side"] not in SIDES:
            raise KeyError("side")
        return status, table[symbol].lots(body["executedQty"]), int(body["orderId"])
    except KeyError as e:
        raise ReconcileError(f"{where}: unknown or missing {e}") from None
    except (OffGrid, ValueError, TypeError) as e:
        raise ReconcileError(f"{where}: {e}") from None


def venue_reports(rest, table: SymbolTable, orders: np.ndarray) -> Outcome:
    """The status report of every live order in ``orders`` (the OMS table) from the
    venue, and the venue's open orders the OMS does not have. Raises ``ReconcileError``,
    ``BinanceError`` or ``VenueUnreachable`` (the caller retries; nothing was applied)."""
    venue = fetch_open_orders(rest, table)
    by_cl = {int(v.cl_ord_id): v for v in venue if v.cl_ord_id.isdigit()}
    out = Outcome()
    for slot in np.nonzero([oms.is_live(s) for s in orders["status"]])[0]:
        o = orders[slot]
        cl, sid = int(o["cl_ord_id"]), int(o["symbol_id"])
        v = by_cl.pop(cl, None)
        if v is not None:
            out.reports.append(status_report(sid, cl, v.venue_order_id, v.status, v.cum_qty))
            continue
        status, cum, venue_id = _final_state(rest, table, table[sid].symbol, cl)
        out.reports.append(status_report(sid, cl, venue_id, status, cum))
    out.unknown = list(by_cl.values()) + [v for v in venue if not v.cl_ord_id.isdigit()]
    return out
