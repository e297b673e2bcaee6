"""Binance Spot's REST endpoints on the Binance-strict simulator (rest-api.md).

Public: ``GET /api/v3/time``, ``GET /api/v3/exchangeInfo`` (the ``binance_rules`` filters
of the configured instruments in Binance's shape). SIGNED (USER_DATA): ``GET
/api/v3/openOrders``, ``GET /api/v3/order``, ``GET /api/v3/account``, checked as Binance
does ("Request Security", "Timing security"):

- ``X-MBX-APIKEY``: missing or malformed -> -2014, not registered -> -2015 (HTTP 401);
- ``timestamp`` (ms or us) required (-1102); ``recvWindow`` default 5000, at most 60000
  (-1130); ``timestamp`` >= server + 1 s or older than recvWindow -> -1021;
- ``signature``: required (-1102); over the query string as sent (without the signature
  parameter) followed by the body: Ed25519 (base64) for an account with a registered
  public key, else HMAC-SHA256 (hex, case-insensitive) with its secret; wrong -> -1022.

Balances (``/account``) are ``[sim] balances`` (asset -> decimal amount) plus the account's
fills; ``locked`` is what its open orders hold (quote for bids, base for asks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from decimal import Decimal
from urllib.parse import unquote

from pipeline.binance.keys import verify_b64
from pipeline.venue.binance_orders import symbol_rules
from pipeline.venue.binance_rules import err, exchange_info, split_symbol, starting_balances
from pipeline.venue.binance_session import API_KEY_RE, Limits
from pipeline.venue.matching import BUY, Order
from pipeline.venue.mdserver import Request
from shm_layouts.records import OrderType, OrdStatus, TimeInForce

log = logging.getLogger("venue.rest.binance")

DEFAULT_RECV_WINDOW_MS = 5000.0
MAX_RECV_WINDOW_MS = 60000.0
AHEAD_MS = 1000.0
SIGNATURE_RE = re.compile(r"(^|&)signature=([^&]*)")
STATUS = {OrdStatus.NEW: "NEW", OrdStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED",
          OrdStatus.FILLED: "FILLED", OrdStatus.CANCELED: "CANCELED",
          OrdStatus.REJECTED: "REJECTED", OrdStatus.EXPIRED: "EXPIRED"}
TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK",
       TimeInForce.POST_ONLY: "GTC"}


class Refused(Exception):
    """A request Binance would refuse: HTTP status and the error body."""

    def __init__(self, status: int, name: str, *args):
        code, msg = err(name, *args)
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


class BinanceRest:
    """The Binance endpoints of one ``Simulator`` (registered on its REST server)."""

    def __init__(self, sim):
        self.sim = sim
        self.stats = sim.stats
        self.rules = symbol_rules(sim.cfg)
        self.limits = Limits(**sim.cfg.binance)
        self.by_key = {a.api_key: a for a in sim.cfg.accounts if a.api_key}

    def install(self, rest) -> None:
        rest.route("GET", "/api/v3/exchangeInfo", self._exchange_info)
        for path, handler in (("/api/v3/openOrders", self._open_orders),
                              ("/api/v3/order", self._order),
                              ("/api/v3/account", self._account)):
            rest.route_request("GET", path, self._signed(handler))

    # ------------------------------------------------------------------ public
    async def _exchange_info(self, path, query, body):
        wanted = query.get("symbol")
        if query.get("symbols"):
            try:
                wanted = json.loads(query["symbols"])
            except json.JSONDecodeError:
                return _error(400, -1100, "Illegal characters found in parameter 'symbols'.")
        rules = self.rules
        if wanted:
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            if any(n.upper() not in rules for n in names):
                return _error(400, *err("BAD_SYMBOL"))
            rules = {n.upper(): rules[n.upper()] for n in names}
        self.stats["rest_exchange_info"] += 1
        return 200, json.dumps(exchange_info(rules, time.time_ns() // 1_000_000,
                                             {"order_limit": self.limits.order_limit,
                                              "order_window_s": self.limits.order_window_s}))

    # ------------------------------------------------------------------ signed
    def _signed(self, handler):
        async def checked(req: Request) -> tuple[int, str]:
            try:
                account = self.authenticate(req)
                return 200, json.dumps(handler(account, req.query))
            except Refused as e:
                self.stats[f"rest_signed_refused_{-e.code}"] += 1
                log.warning("REST %s refused: %s (%d)", req.path, e.msg, e.code)
                return _error(e.status, e.code, e.msg)
        return checked

    def authenticate(self, req: Request):
        """The account a signed request is from, or ``Refused``."""
        key = req.headers.get("X-MBX-APIKEY", "")
        if not API_KEY_RE.match(key):
            raise Refused(401, "BAD_API_KEY_FMT")
        account = self.by_key.get(key)
        if account is None or (account.public_key is None and account.hmac_secret is None):
            raise Refused(401, "REJECTED_MBX_KEY")
        q = req.query
        try:
            stamp = float(q["timestamp"])
        except (KeyError, ValueError):
            raise Refused(400, "MANDATORY_PARAM", "timestamp") from None
        if stamp > 1e14:  # microseconds
            stamp /= 1000
        try:
            window = float(q.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except ValueError:
            window = -1.0
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            raise Refused(400, "INVALID_PARAMETER", "recvWindow")
        found = SIGNATURE_RE.search(req.raw_query)
        if found is None or not found.group(2):
            raise Refused(400, "MANDATORY_PARAM", "signature")
        payload = (req.raw_query[:found.start()] + req.raw_query[found.end():]).lstrip("&")
        payload_bytes = payload.encode("latin-1") + req.body
        signature = unquote(found.group(2))
        if account.public_key is not None:
            ok = verify_b64(account.public_key, payload_bytes, signature)
        else:
            mac = hmac.new(account.hmac_secret.encode(), payload_bytes, hashlib.sha256)
            ok = hmac.compare_digest(mac.hexdigest(), signature.lower())
        if not ok:
            raise Refused(400, "INVALID_SIGNATURE")
        server = time.time() * 1000
        if stamp >= server + AHEAD_MS:
            raise Refused(400, "TIMESTAMP_AHEAD")
        if server - stamp > window:
            raise Refused(400, "INVALID_TIMESTAMP")
        self.stats["rest_signed_ok"] += 1
        return account

    # ------------------------------------------------------------------ USER_DATA
    def _books(self, query: dict):
        sym = query.get("symbol", "").upper()
        if not sym:
            return list(self.sim.books.items())
        if sym not in self.sim.books:
            raise Refused(400, "BAD_SYMBOL")
        return [(sym, self.sim.books[sym])]

    def _open_orders(self, account, query: dict) -> list:
        out = []
        for sym, book in self._books(query):
            inst = self.sim.cfg.symbols[sym]
            out += [order_json(inst, o) for o in book.orders.values()
                    if o.account == account.account_id]
        return sorted(out, key=lambda o: o["orderId"])

    def _order(self, account, query: dict) -> dict:
        if not query.get("symbol"):
            raise Refused(400, "MANDATORY_PARAM", "symbol")
        ((sym, book),) = self._books(query)
        oid, orig = query.get("orderId"), query.get("origClientOrderId")
        if not oid and not orig:
            raise Refused(400, "MANDATORY_PARAM", "orderId")
        order = None
        if oid:
            order = next((o for (a, _), o in book.clids.items()
                          if a == account.account_id and str(o.oid) == oid), None)
            if order is not None and orig and order.cl_ord_id != orig:
                order = None
        else:
            order = book.order(account.account_id, orig)
        if order is None:
            raise Refused(400, "NO_SUCH_ORDER")
        return order_json(self.sim.cfg.symbols[sym], order)

    def _account(self, account, query: dict) -> dict:
        free = starting_balances(self.sim.cfg.balances)
        locked: dict[str, Decimal] = {}
        for sym, book in self.sim.books.items():
            inst = self.sim.cfg.symbols[sym]
            base, quote = split_symbol(sym)
            lots, cash = book.positions.get(account.account_id, (0, 0))
            free[base] = free.get(base, Decimal(0)) + Decimal(lots) * Decimal(inst.lot_size)
            free[quote] = free.get(quote, Decimal(0)) + Decimal(cash) * Decimal(
                inst.tick_size) * Decimal(inst.lot_size)
            for o in book.orders.values():
                if o.account != account.account_id:
                    continue
                if o.side == BUY:
                    hold = Decimal(o.price * o.leaves) * Decimal(inst.tick_size) * Decimal(
                        inst.lot_size)
                    asset = quote
                else:
                    hold, asset = Decimal(o.leaves) * Decimal(inst.lot_size), base
                locked[asset] = locked.get(asset, Decimal(0)) + hold
                free[asset] = free.get(asset, Decimal(0)) - hold
        omit = query.get("omitZeroBalances", "false").lower() == "true"
        balances = [{"asset": a, "free": _plain(free.get(a, Decimal(0))),
                     "locked": _plain(locked.get(a, Decimal(0)))}
                    for a in sorted(set(free) | set(locked))
                    if not omit or free.get(a) or locked.get(a)]
        return {"makerCommission": 0, "takerCommission": 0, "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": "0.00000000", "taker": "0.00000000",
                                    "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": False, "canDeposit": False,
                "brokered": False, "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": time.time_ns() // 1_000_000, "accountType": "SPOT",
                "balances": balances, "permissions": ["SPOT"], "uid": account.account_id}


def order_json(inst, o: Order) -> dict:
    """One order as ``GET /api/v3/openOrders`` lists it."""
    quote = Decimal(o.notional) * Decimal(inst.tick_size) * Decimal(inst.lot_size)
    kind = "MARKET" if o.ord_type == OrderType.MARKET else (
        "LIMIT_MAKER" if o.tif == TimeInForce.POST_ONLY else "LIMIT")
    return {"symbol": inst.symbol, "orderId": o.oid, "orderListId": -1,
            "clientOrderId": o.cl_ord_id, "price": inst.price_str(o.price),
            "origQty": inst.qty_str(o.qty), "executedQty": inst.qty_str(o.cum),
            "cummulativeQuoteQty": _plain(quote), "status": STATUS.get(o.status, "NEW"),
            "timeInForce": TIF.get(o.tif, "GTC"), "type": kind,
            "side": "BUY" if o.side == BUY else "SELL", "stopPrice": "0.00000000",
            "icebergQty": "0.00000000", "time": o.time_ms, "updateTime": o.time_ms,
            "isWorking": True, "workingTime": o.time_ms, "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_TAKER"}


def _plain(d: Decimal) -> str:
    return f"{d:.8f}"


def _error(status: int, code: int, msg: str) -> tuple[int, str]:
    return status, json.dumps({"code": code, "msg": msg})



