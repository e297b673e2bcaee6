"""Open orders and balances from the signed REST API: Binance's FIX API has no
OrderStatusRequest (35=H), so after every (re)logon the gateway asks
``GET /api/v3/openOrders`` (one call per configured symbol: weight 6 each, where the
all-symbols call weighs 80) and ``GET /api/v3/account``, and reconciles its OMS with that.

Every value is converted exactly (ticks/lots of the configured instrument, balances in
units of 10**-8 of the asset, Binance's precision); anything that does not convert raises
``ReconcileError`` naming the order: an order is never dropped or booked at a wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.instruments import OffGrid, SymbolTable, to_units
from shm_layouts.records import OrdStatus, Side

BALANCE_DECIMALS = 8
SIDES = {"BUY": Side.BID, "SELL": Side.ASK}
# the statuses openOrders returns (enums.md "Order status"); PENDING_NEW: accepted by the
# engine, not yet working (an order list's pending leg)
STATUSES = {"NEW": OrdStatus.NEW, "PARTIALLY_FILLED": OrdStatus.PARTIALLY_FILLED,
            "PENDING_NEW": OrdStatus.PENDING_NEW}


class ReconcileError(ValueError):
    """An open order or balance the venue reported that cannot be represented exactly."""


@dataclass(frozen=True)
class OpenOrder:
    """One working order at the venue. ``cl_ord_id`` is Binance's ``clientOrderId`` as
    sent (the FIX ClOrdID); prices in ticks, quantities in lots of ``symbol``."""

    cl_ord_id: str
    venue_order_id: int
    symbol: str
    side: Side
    price: int
    qty: int
    cum_qty: int
    status: OrdStatus
    ord_type: str  # LIMIT, LIMIT_MAKER, ...
    time_in_force: str

    @property
    def leaves_qty(self) -> int:
        return self.qty - self.cum_qty


@dataclass(frozen=True)
class Balance:
    """One asset, in units of 10**-BALANCE_DECIMALS."""

    asset: str
    free: int
    locked: int

    @property
    def total(self) -> int:
        return self.free + self.locked


def parse_order(o: dict, table: SymbolTable) -> OpenOrder:
    """One element of openOrders for an instrument in ``table``."""
    sym = str(o.get("symbol", "?"))
    where = f"open order {sym} clientOrderId {o.get('clientOrderId', '?')} " \
            f"orderId {o.get('orderId', '?')}"
    try:
        inst = table[sym]
        side = SIDES[o["side"]]
        status = STATUSES[o["status"]]
        return OpenOrder(str(o["clientOrderId"]), int(o["orderId"]), inst.symbol, side,
                         inst.ticks(o["price"]), inst.lots(o["origQty"]),
                         inst.lots(o["executedQty"]), status, str(o.get("type", "")),
                         str(o.get("timeInForce", "")))
    except KeyError as e:
        raise ReconcileError(f"{where}: unknown or missing {e}") from None
    except (OffGrid, ValueError, TypeError) as e:
        raise ReconcileError(f"{where}: {e}") from None


def fetch_open_orders(rest, instruments: SymbolTable) -> list[OpenOrder]:
    """Every open order on every configured instrument (``rest``: a ``SignedRest``)."""
    out: list[OpenOrder] = []
    for inst in instruments:
        body = rest.open_orders(inst.symbol)
        if not isinstance(body, list):
            raise ReconcileError(f"openOrders {inst.symbol}: expected a list, got "
                                 f"{type(body).__name__}")
        out.extend(parse_order(o, instruments) for o in body)
    return out


def parse_balances(account: dict) -> dict[str, Balance]:
    balances = account.get("balances") if isinstance(account, dict) else None
    if not isinstance(balances, list):
        raise ReconcileError("account: no 'balances' list in the body")
    out = {}
    for b in balances:
        asset = str(b.get("asset", "?"))
        try:
            out[asset] = Balance(asset, to_units(b["free"], BALANCE_DECIMALS, 1, asset),
                                 to_units(b["locked"], BALANCE_DECIMALS, 1, asset))
        except (KeyError, OffGrid) as e:
            raise ReconcileError(f"account balance {asset}: {e}") from None
    return out


def fetch_balances(rest) -> dict[str, Balance]:
    """The account's non-zero balances by asset."""
    return parse_balances(rest.account())


def base_holding_lots(balance: Balance | None, inst) -> int:
    """A base-asset balance (free + locked) in whole lots of ``inst`` (rounded down: what
    MAX_POSITION counts is at least this)."""
    if balance is None:
        return 0
    lot = to_units(inst.lot_size, BALANCE_DECIMALS, 1, f"{inst.symbol} lot_size")
    return balance.total // lot
