"""Binance Spot's exchange filters as the Binance-strict simulator enforces and publishes them.

One ``SymbolRules`` per instrument, from ``[sim.filters.<SYMBOL>]`` over defaults derived
from the instrument's grid (filters.md): PRICE_FILTER (min/max price, tick), LOT_SIZE
(min/max qty, step), NOTIONAL (min/max price x qty; not applied to MARKET orders, as
``applyMinToMarket``/``applyMaxToMarket`` false say), PERCENT_PRICE_BY_SIDE (around the
last trade price: ``avgPriceMins`` 0, as filters.md defines it) and MAX_NUM_ORDERS (open
orders of the account on the symbol) and MAX_POSITION (a BUY whose base asset held, free
+ locked, plus the account's open BUY quantity and its own would exceed it). ``check``
returns Binance's error for the first filter an order fails -- code -1013 and "Filter
failure: <FILTER>" (errors.md) -- so the simulator rejects exactly what Binance would,
and ``exchange_info`` serves the same rules in ``GET /api/v3/exchangeInfo``'s shape for the
client to enforce before the wire.

The numeric errors the simulator answers with live here too, one table, named as
errors.md names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipeline.config import SCHEMA
from pipeline.instruments import Instrument, OffGrid

# errors.md: (code, message) by name
ERR = {
    "UNKNOWN": (-1000, "An unknown error occurred while processing the request."),
    "INVALID_MESSAGE": (-1013, "The request is rejected by the API."),
    "TOO_MANY_ORDERS": (-1015, "Too many new orders; current limit is {} orders per {}."),
    "UNSUPPORTED_OPERATION": (-1020, "This operation is not supported."),
    "INVALID_TIMESTAMP": (-1021, "Timestamp for this request is outside of the recvWindow."),
    "TIMESTAMP_AHEAD": (-1021, "Timestamp for this request was 1000ms ahead of the "
                               "server's time."),
    "INVALID_SIGNATURE": (-1022, "Signature for this request is not valid."),
    "COMP_ID_IN_USE": (-1033, "SenderCompId(49) is currently in use. Concurrent use of the "
                              "same SenderCompId within one account is not allowed."),
    "TOO_MANY_CONNECTIONS": (-1034, "Too many concurrent connections; current limit is "
                                    "'{}'."),
    "TOO_MANY_ATTEMPTS": (-1034, "Too many connection attempts for account; current limit "
                                 "is {} per '{}'."),
    "ILLEGAL_CHARS": (-1100, "Illegal characters found in parameter '{}'; legal range is "
                             "'{}'."),
    "MANDATORY_PARAM": (-1102, "Mandatory parameter '{}' was not sent, was empty/null, or "
                               "malformed."),
    "REQUIRED_TAG": (-1102, "Required tag '{}' missing."),
    "INVALID_TIF": (-1115, "Invalid timeInForce."),
    "INVALID_ORDER_TYPE": (-1116, "Invalid orderType."),
    "INVALID_SIDE": (-1117, "Invalid side."),
    "BAD_SYMBOL": (-1121, "Invalid symbol."),
    "INVALID_PARAMETER": (-1130, "Data sent for parameter '{}' is not valid."),
    "RESET_SEQ_NUM": (-1175, "Continuation of sequence numbers to new session is currently "
                             "unsupported. Sequence numbers must be reset for each new "
                             "session."),
    "ALREADY_LOGGED_IN": (-1176, "Logon<A> should only be sent once."),
    "BAD_SENDER_COMPID": (-1178, "SenderCompId(49) contains an incorrect value. The "
                                 "SenderCompID value should not change throughout the "
                                 "lifetime of a session."),
    "BAD_SEQ_NUM": (-1179, "MsgSeqNum(34) contains an unexpected value. Expected: '{}'."),
    "EXPECTED_LOGON": (-1180, "Logon<A> must be the first message in the session."),
    "TOO_MANY_MESSAGES": (-1181, "Too many messages; current limit is '{}' messages per "
                                 "'{}'."),
    "NEW_ORDER_REJECTED": (-2010, "NEW_ORDER_REJECTED"),
    "CANCEL_REJECTED": (-2011, "CANCEL_REJECTED"),
    "NO_SUCH_ORDER": (-2013, "Order does not exist."),
    "BAD_API_KEY_FMT": (-2014, "API-key format invalid."),
    "REJECTED_MBX_KEY": (-2015, "Invalid API-key, IP, or permissions for action."),
    "AMEND_REJECTED": (-2038, "ORDER_AMEND_REJECTED"),
}
# matching-engine messages (errors.md, "Messages for -1010 ... -2038")
UNKNOWN_ORDER = "Unknown order sent."
DUPLICATE_ORDER = "Duplicate order sent."
WOULD_TAKE = "Order would immediately match and take."
AMEND_UP = "Order amend (quantity increase) is not supported."
NO_CHANGE = "The requested action would change no state; rejecting."
CANCEL_INVALID = "Cancel order is invalid. Check origClOrdId and orderId."

FILTER_FAILURE = -1013
MARKET = "MARKET"


def err(name: str, *args) -> tuple[int, str]:
    """(code, message) of ``ERR[name]`` with its ``%s`` parts filled in."""
    code, text = ERR[name]
    return code, text.format(*args) if args else text


# [sim.filters.<SYMBOL>] keys and their defaults ("": derived from the instrument's grid)
FILTER_DEFAULTS = SCHEMA["sim"]["filters"].schema


@dataclass(frozen=True)
class SymbolRules:
    """One symbol's filters, exact decimals (Binance's values, not ticks: a rule such as
    minNotional is not on any grid)."""

    inst: Instrument
    min_price: Decimal
    max_price: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    bid_up: Decimal
    bid_down: Decimal
    ask_up: Decimal
    ask_down: Decimal
    max_num_orders: int
    max_position: Decimal  # 0: no MAX_POSITION filter

    @classmethod
    def make(cls, inst: Instrument, table: dict | None = None) -> SymbolRules:
        """``table``: the symbol's ``[sim.filters.<SYMBOL>]`` (unknown keys raise)."""
        table = dict(table or {})
        unknown = set(table) - set(FILTER_DEFAULTS)
        if unknown:
            raise ValueError(f"[sim.filters.{inst.symbol}]: unknown keys {sorted(unknown)}")
        v = FILTER_DEFAULTS | table

        def dec(key: str, default: str) -> Decimal:
            text = str(v[key]) or default
            try:
                d = Decimal(text)
            except ArithmeticError:
                raise ValueError(f"[sim.filters.{inst.symbol}] {key}: {text!r} is not a "
                                 "decimal") from None
            if not d.is_finite() or d < 0:
                raise ValueError(f"[sim.filters.{inst.symbol}] {key}: {text!r} must be >= 0")
            return d

        rules = cls(inst, dec("min_price", inst.tick_size), dec("max_price", ""),
                    dec("min_qty", inst.lot_size), dec("max_qty", ""),
                    dec("min_notional", ""), dec("max_notional", ""),
                    dec("bid_multiplier_up", ""), dec("bid_multiplier_down", ""),
                    dec("ask_multiplier_up", ""), dec("ask_multiplier_down", ""),
                    int(v["max_num_orders"]), dec("max_position", "0"))
        for key, value in (("min_price", rules.min_price), ("min_qty", rules.min_qty)):
            try:
                (inst.ticks if key == "min_price" else inst.lots)(str(value))
            except OffGrid:
                raise ValueError(f"[sim.filters.{inst.symbol}] {key} {value} is not on the "
                                 "instrument's grid") from None
        return rules

    # ------------------------------------------------------------------ checks
    def check(self, side_buy: bool, ord_type: str, qty: str, price: str | None,
              open_orders: int, last_px: Decimal | None,
              position: Decimal = Decimal(0)) -> tuple[int, str] | None:
        """The first filter an order fails, as (code, message); None when it passes.
        ``qty``/``price``: the decimal strings of the request; ``position``: the account's
        base asset held plus its open BUY quantity (MAX_POSITION)."""
        inst = self.inst
        if price is not None:
            p = Decimal(price)
            if (self.min_price and p < self.min_price) or (
                    self.max_price and p > self.max_price) or not _on_grid(inst.ticks, price):
                return _failure("PRICE_FILTER")
        q = Decimal(qty)
        if q < self.min_qty or (self.max_qty and q > self.max_qty) or \
                not _on_grid(inst.lots, qty):
            return _failure("LOT_SIZE")
        if price is not None and ord_type != MARKET:
            notional = p * q
            if notional < self.min_notional or (self.max_notional
                                                and notional > self.max_notional):
                return _failure("NOTIONAL")
            if last_px:
                up, down = (self.bid_up, self.bid_down) if side_buy else (self.ask_up,
                                                                          self.ask_down)
                if p > last_px * up or p < last_px * down:
                    return _failure("PERCENT_PRICE_BY_SIDE")
        if self.max_num_orders and open_orders >= self.max_num_orders:
            return _failure("MAX_NUM_ORDERS")
        if side_buy and self.max_position and position + q > self.max_position:
            return _failure("MAX_POSITION")
        return None

    def check_amend_qty(self, qty: str) -> tuple[int, str] | None:
        """An amended quantity must still pass LOT_SIZE."""
        q = Decimal(qty)
        if q < self.min_qty or not _on_grid(self.inst.lots, qty):
            return _failure("LOT_SIZE")
        return None

    # ------------------------------------------------------------------ publishing
    def filters(self) -> list[dict]:
        """The symbol's ``filters`` array as ``GET /api/v3/exchangeInfo`` shows it."""
        s = _plain
        return [
            {"filterType": "PRICE_FILTER", "minPrice": s(self.min_price),
             "maxPrice": s(self.max_price), "tickSize": s(Decimal(self.inst.tick_size))},
            {"filterType": "LOT_SIZE", "minQty": s(self.min_qty), "maxQty": s(self.max_qty),
             "stepSize": s(Decimal(self.inst.lot_size))},
            {"filterType": "NOTIONAL", "minNotional": s(self.min_notional),
             "applyMinToMarket": False, "maxNotional": s(self.max_notional),
             "applyMaxToMarket": False, "avgPriceMins": 0},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": s(self.bid_up),
             "bidMultiplierDown": s(self.bid_down), "askMultiplierUp": s(self.ask_up),
             "askMultiplierDown": s(self.ask_down), "avgPriceMins": 0},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
            *([{"filterType": "MAX_POSITION", "maxPosition": s(self.max_position)}]
              if self.max_position else []),
        ]

    def symbol_info(self) -> dict:
        inst = self.inst
        base, quote = split_symbol(inst.symbol)
        return {"symbol": inst.symbol, "status": "TRADING", "baseAsset": base,
                "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
                "quoteOrderQtyMarketAllowed": False, "allowTrailingStop": False,
                "cancelReplaceAllowed": True, "amendAllowed": True,
                "pegInstructionsAllowed": False, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "filters": self.filters(),
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_TAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER"]}


QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def starting_balances(balances: dict) -> dict[str, Decimal]:
    """``[sim] balances`` by upper-case asset, exact decimals (a new dict per call)."""
    return {k.upper(): Decimal(str(v)) for k, v in balances.items()}


def split_symbol(symbol: str) -> tuple[str, str]:
    """("BTCUSDT") -> ("BTC", "USDT"): the longest known quote asset that ends it."""
    for q in sorted(QUOTES, key=len, reverse=True):
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[:-len(q)], q
    return symbol, ""


def exchange_info(rules: dict[str, SymbolRules], server_ms: int, limits: dict) -> dict:
    """``GET /api/v3/exchangeInfo``: ``rateLimits`` from ``limits`` (the FIX order limit),
    one entry per symbol."""
    return {"timezone": "UTC", "serverTime": server_ms,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND",
                 "intervalNum": limits["order_window_s"], "limit": limits["order_limit"]},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                 "limit": 61000}],
            "exchangeFilters": [],
            "symbols": [r.symbol_info() for r in rules.values()]}


def _failure(name: str) -> tuple[int, str]:
    return FILTER_FAILURE, f"Filter failure: {name}"


def _on_grid(convert, text: str) -> bool:
    try:
        convert(text)
    except OffGrid:
        return False
    return True


def _plain(d: Decimal) -> str:
    """Binance prints filter values with 8 decimals ("0.01000000")."""
    return f"{d:.8f}"
