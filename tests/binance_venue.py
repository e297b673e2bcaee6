"""A small local Binance REST venue for tests (127.0.0.1, a real HTTP server on a thread,
HTTPS with ``tls``): ``/api/v3/time``, ``/api/v3/exchangeInfo``, and the SIGNED
``/api/v3/openOrders`` and ``/api/v3/account``, which verify ``X-MBX-APIKEY``, the
signature over the query string as sent (HMAC-SHA256 hex or Ed25519 base64) and the timing
rule of rest-api.md, answering Binance's error bodies. Every request is recorded (path, raw
query, headers)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

from pipeline.binance.keys import verify_b64

BTC = {
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
    "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
         "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
         "stepSize": "0.00001000"},
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "76.0",
         "stepSize": "0.00000000"},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
         "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
         "maxTrailingBelowDelta": 2000},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
         "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2",
         "avgPriceMins": 5},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ],
    "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
}
ETH = {
    **BTC, "symbol": "ETHUSDT", "baseAsset": "ETH",
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "100000.00",
         "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.0001", "maxQty": "9000", "stepSize": "0.0001"},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.3000", "multiplierDown": "0.7000",
         "avgPriceMins": 5},
        {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000", "applyToMarket": True,
         "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 25},
        {"filterType": "MAX_POSITION", "maxPosition": "10.00000000"},
    ],
}


def exchange_info(symbols=(BTC, ETH)) -> dict:
    return {"timezone": "UTC", "serverTime": 1565246363776,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": 100}],
            "exchangeFilters": [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 1000}],
            "symbols": list(symbols)}


def open_order(cl: str, oid: int, side: str = "BUY", price: str = "60000.01000000",
               qty: str = "0.00100000", done: str = "0.00000000",
               status: str = "NEW") -> dict:
    return {"symbol": "BTCUSDT", "orderId": oid, "orderListId": -1, "clientOrderId": cl,
            "price": price, "origQty": qty, "executedQty": done,
            "cummulativeQuoteQty": "0.0", "status": status, "timeInForce": "GTC",
            "type": "LIMIT_MAKER", "side": side, "stopPrice": "0.0", "icebergQty": "0.0",
            "time": 1499827319559, "updateTime": 1499827319559, "isWorking": True,
            "origQuoteOrderQty": "0.000000", "workingTime": 1499827319559,
            "selfTradePreventionMode": "NONE"}


class Venue:
    """``api_key`` + (``hmac_secret`` or ``public_key``) is the one registered account."""

    def __init__(self, api_key: str, hmac_secret: str = "", public_key=None,
                 clock_ms=None, tls=None):
        import time
        self.api_key, self.secret, self.public_key = api_key, hmac_secret, public_key
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.info = exchange_info()
        self.orders: dict[str, list] = {"BTCUSDT": [], "ETHUSDT": []}
        self.balances = [{"asset": "BTC", "free": "1.50000000", "locked": "0.00100000"},
                         {"asset": "USDT", "free": "10000.12345678", "locked": "60.00001000"}]
        self.requests: list[tuple[str, str, dict]] = []
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path, _, query = self.path.partition("?")
                venue.requests.append((path, query, dict(self.headers)))
                status, body = venue.answer(path, query, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        if tls is not None:  # a ServerCert (pipeline.tls.certs): HTTPS, handshake on accept
            from pipeline.tls.pyssl import server_ssl_context
            ctx = server_ssl_context(str(tls.cert_file), str(tls.key_file))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Venue:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ answers
    def answer(self, path: str, query: str, headers) -> tuple[int, object]:
        params = dict(parse_qsl(query))
        if path == "/api/v3/time":
            return 200, {"serverTime": self.clock_ms()}
        if path == "/api/v3/exchangeInfo":
            wanted = json.loads(params["symbols"]) if "symbols" in params else None
            listed = {s["symbol"]: s for s in self.info["symbols"]}
            if wanted and any(w not in listed for w in wanted):
                return 400, {"code": -1121, "msg": "Invalid symbol."}
            return 200, {**self.info, "symbols": [listed[w] for w in wanted or listed]}
        if path in ("/api/v3/openOrders", "/api/v3/account"):
            err = self.authenticate(query, params, headers)
            if err:
                return err
            if path == "/api/v3/account":
                return 200, {"makerCommission": 15, "canTrade": True, "accountType": "SPOT",
                             "balances": self.balances, "permissions": ["SPOT"]}
            return 200, self.orders.get(params.get("symbol", ""), [])
        return 404, {"code": -1000, "msg": f"no route {path}"}

    def authenticate(self, query: str, params: dict, headers):
        if headers.get("X-MBX-APIKEY") != self.api_key:
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        payload, sep, sig = query.rpartition("&signature=")
        if not sep:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'signature' was not sent."}
        sig = unquote(sig)
        if self.secret:
            good = hmac.compare_digest(
                hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest(),
                sig.lower())
        else:
            good = verify_b64(self.public_key, payload.encode(), sig)
        if not good:
            return 400, {"code": -1022, "msg": "Signature for this request is not valid."}
        ts, window = int(params["timestamp"]), float(params.get("recvWindow", 5000))
        now = self.clock_ms()
        if not (ts < now + 1000 and now - ts <= window):
            return 400, {"code": -1021, "msg": "Timestamp for this request is outside of "
                         "the recvWindow."}
        return None
