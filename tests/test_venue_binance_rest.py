"""Binance's REST endpoints on the Binance-strict simulator: exchangeInfo in Binance's shape,
signed USER_DATA requests (Ed25519 and HMAC-SHA256) accepted and refused as Binance does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

import pytest
from binance_sim import HMAC_API_KEY, HMAC_SECRET, accounts, logged_on, new_signer, run

from pipeline.venue.testing import TEST_API_KEY, binance_test_config, running

ALICE, BOB = new_signer(), new_signer()


async def get(url: str, headers: dict | None = None) -> tuple[int, object]:
    def call():
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
    return await asyncio.to_thread(call)


def signed(base: str, path: str, params: dict, key: str = TEST_API_KEY, signer=ALICE,
           secret: str | None = None, ts_ms: float | None = None):
    """The URL and headers of a signed request, signed as rest-api.md shows."""
    params = dict(params) | {"timestamp": int(ts_ms if ts_ms is not None
                                              else time.time() * 1000)}
    payload = urlencode(params)
    if secret is not None:
        sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    else:
        sig = quote(signer.sign_b64(payload.encode()), safe="")
    return f"{base}{path}?{payload}&signature={sig}", {"X-MBX-APIKEY": key}


def config(tmp_path):
    return binance_test_config(tmp_path, accounts(ALICE, BOB),
                               balances={"USDT": "10000", "BTC": "1"})


@pytest.mark.timeout(60)
def test_time_and_exchange_info_in_binance_shape(tmp_path):
    async def main():
        async with running(config(tmp_path)) as sim:
            base = sim.endpoints()["rest"]
            before = time.time() * 1000
            status, t = await get(f"{base}/api/v3/time")
            assert status == 200 and before - 1 <= t["serverTime"] <= time.time() * 1000 + 1
            status, info = await get(f"{base}/api/v3/exchangeInfo?symbol=BTCUSDT")
            assert status == 200 and [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
            btc = info["symbols"][0]
            assert btc["baseAsset"] == "BTC" and btc["quoteAsset"] == "USDT"
            assert "LIMIT_MAKER" in btc["orderTypes"] and btc["status"] == "TRADING"
            f = {x["filterType"]: x for x in btc["filters"]}
            assert f["PRICE_FILTER"] == {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                                         "maxPrice": "1000000.00000000",
                                         "tickSize": "0.01000000"}
            assert f["LOT_SIZE"]["stepSize"] == "0.00001000"
            assert f["LOT_SIZE"]["minQty"] == "0.00001000"
            assert f["NOTIONAL"]["minNotional"] == "5.00000000"
            assert f["PERCENT_PRICE_BY_SIDE"]["bidMultiplierUp"] == "5.00000000"
            assert f["MAX_NUM_ORDERS"] == {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200}
            assert any(r["rateLimitType"] == "ORDERS" for r in info["rateLimits"])
            status, info = await get(f"{base}/api/v3/exchangeInfo")
            assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
            status, e = await get(f"{base}/api/v3/exchangeInfo?symbol=NOPE")
            assert status == 400 and e == {"code": -1121, "msg": "Invalid symbol."}
    run(main())


@pytest.mark.timeout(60)
def test_signed_open_orders_and_account_accepted_and_refused(tmp_path):
    async def main():
        async with running(config(tmp_path)) as sim:
            base = sim.endpoints()["rest"]
            c = await logged_on(sim, "OE1", ALICE)
            c.send("D", [(11, "r1"), (38, "0.001"), (40, "2"), (44, "59000.00"), (54, "1"),
                         (55, "BTCUSDT"), (59, "1")])
            new = await c.recv("8")
            c.send("D", [(11, "r2"), (38, "0.01"), (40, "2"), (18, "6"), (44, "3100.00"),
                         (54, "2"), (55, "ETHUSDT")])
            await c.recv("8")
            status, orders = await get(*signed(base, "/api/v3/openOrders", {}))
            assert status == 200 and [o["clientOrderId"] for o in orders] == ["r1", "r2"]
            o = orders[0]
            assert (o["symbol"], o["orderId"], o["price"], o["origQty"], o["executedQty"],
                    o["status"], o["side"], o["type"], o["timeInForce"]) == (
                "BTCUSDT", int(new.get(37)), "59000", "0.001", "0", "NEW", "BUY", "LIMIT",
                "GTC")
            assert orders[1]["type"] == "LIMIT_MAKER" and orders[1]["side"] == "SELL"
            status, only = await get(*signed(base, "/api/v3/openOrders",
                                             {"symbol": "ETHUSDT"}))
            assert status == 200 and [o["clientOrderId"] for o in only] == ["r2"]
            status, one = await get(*signed(base, "/api/v3/order",
                                            {"symbol": "BTCUSDT", "origClientOrderId": "r1"}))
            assert status == 200 and one["orderId"] == int(new.get(37))
            status, e = await get(*signed(base, "/api/v3/order",
                                          {"symbol": "BTCUSDT", "orderId": 424242}))
            assert status == 400 and e["code"] == -2013
            # a fill moves the balances; open orders lock theirs
            assert sim.fill(1, "r1", "0.001", "59000.00")
            await c.recv("8")
            status, acct = await get(*signed(base, "/api/v3/account", {}))
            assert status == 200 and acct["accountType"] == "SPOT" and acct["canTrade"]
            bal = {b["asset"]: b for b in acct["balances"]}
            assert bal["BTC"] == {"asset": "BTC", "free": "1.00100000",
                                  "locked": "0.00000000"}
            assert bal["USDT"]["free"] == "9941.00000000"
            assert bal["ETH"] == {"asset": "ETH", "free": "-0.01000000",
                                  "locked": "0.01000000"}
            # HMAC-SHA256 keys sign REST too
            status, orders = await get(*signed(base, "/api/v3/openOrders", {},
                                               key=HMAC_API_KEY, secret=HMAC_SECRET))
            assert status == 200 and orders == []

            # refusals, as errors.md words them
            url, headers = signed(base, "/api/v3/openOrders", {}, signer=BOB)
            assert await get(url, headers) == (
                400, {"code": -1022, "msg": "Signature for this request is not valid."})
            url, headers = signed(base, "/api/v3/openOrders", {}, key=HMAC_API_KEY,
                                  secret="wrong")
            assert (await get(url, headers))[1]["code"] == -1022
            url, headers = signed(base, "/api/v3/openOrders", {},
                                  ts_ms=time.time() * 1000 - 6000)
            assert await get(url, headers) == (400, {
                "code": -1021, "msg": "Timestamp for this request is outside of the "
                                      "recvWindow."})
            url, headers = signed(base, "/api/v3/openOrders", {"recvWindow": 10000},
                                  ts_ms=time.time() * 1000 - 6000)
            assert (await get(url, headers))[0] == 200  # a wider recvWindow of its own
            url, headers = signed(base, "/api/v3/openOrders", {},
                                  ts_ms=time.time() * 1000 + 2000)
            assert (await get(url, headers))[1] == {
                "code": -1021, "msg": "Timestamp for this request was 1000ms ahead of the "
                                      "server's time."}
            url, _ = signed(base, "/api/v3/openOrders", {})
            assert await get(url) == (401, {"code": -2014, "msg": "API-key format invalid."})
            assert await get(url, {"X-MBX-APIKEY": "Z" * 64}) == (401, {
                "code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
            status, e = await get(f"{base}/api/v3/openOrders?timestamp=1",
                                  {"X-MBX-APIKEY": TEST_API_KEY})
            assert status == 400 and e["code"] == -1102 and "'signature'" in e["msg"]
            url, headers = signed(base, "/api/v3/openOrders", {"recvWindow": 60001})
            assert (await get(url, headers))[1]["code"] == -1130
            assert sim.stats["rest_signed_refused_1022"] == 2
            assert sim.stats["rest_signed_refused_1021"] == 2
    run(main())
