"""Market data over real sockets: a Binance-procedure client rebuilds the engine's book."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from pipeline.venue.testing import BinanceBookClient, http_json, running, sim_test_config


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def settle_and_compare(sim, client: BinanceBookClient) -> None:
    """Resync, stop the flow, read until the client has the engine's update id, compare."""
    await client.wait(lambda c: c.synced)
    sim.paused = True
    target = sim.update_id(client.inst.symbol)
    await client.wait(lambda c: c.synced and c.last_u >= target)
    assert client.last_u == sim.update_id(client.inst.symbol)
    bids, asks = sim.levels(client.inst.symbol)
    cb, ca = client.levels()
    assert len(bids) > 100 and len(asks) > 100, "book should be deep"
    assert cb == bids
    assert ca == asks


@pytest.mark.timeout(120)
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "BTCUSD_PERP"])  # spot, USD-M, COIN-M
@pytest.mark.parametrize("stream", ["@depth@100ms", "@depth"])
def test_client_rebuilds_engine_book(tmp_path, symbol, stream):
    async def main():
        async with running(sim_test_config(tmp_path)) as sim:
            inst = sim.cfg.symbols[symbol]
            async with BinanceBookClient(sim.endpoints(), inst, stream) as client:
                await client.wait(lambda c: c.synced and sim.stats["flow_events"] > 3000)
                assert client.gaps == 0 and client.duplicates == 0
                await settle_and_compare(sim, client)
    run(main())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
@pytest.mark.parametrize("fault", [{"md_drop_next": 2}, {"md_reorder_next": 1},
                                   {"md_duplicate_next": 3}, {"md_drop": 0.2}])
def test_client_recovers_across_injected_faults(tmp_path, symbol, fault):
    async def main():
        async with running(sim_test_config(tmp_path)) as sim:
            inst = sim.cfg.symbols[symbol]
            async with BinanceBookClient(sim.endpoints(), inst) as client:
                await client.wait(lambda c: c.synced)
                await sim.set_faults(fault)
                start = sim.stats["flow_events"]
                await client.wait(lambda c: sim.stats["flow_events"] > start + 1500)
                if "md_duplicate_next" in fault:
                    assert client.duplicates >= 1 and client.gaps == 0
                else:
                    assert client.gaps >= 1 and client.resyncs >= 1
                await sim.set_faults({"md_drop": 0})
                await settle_and_compare(sim, client)
    run(main())


@pytest.mark.timeout(60)
def test_stale_snapshot_makes_client_refetch(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, faults={"snapshot_stale_ms": 5000})) as sim:
            await asyncio.sleep(0.3)  # snapshot history older than the client's stream
            async with BinanceBookClient(sim.endpoints(), sim.cfg.symbols["BTCUSDT"]) as client:
                await asyncio.sleep(1.0)
                assert not client.synced and client.resyncs >= 1  # every snapshot is too old
                await sim.set_faults({"snapshot_stale_ms": 0})
                await settle_and_compare(sim, client)
    run(main())


@pytest.mark.timeout(60)
def test_plain_websockets_client_streams_and_shapes(tmp_path):
    """A plain client: combined and raw streams in Binance's JSON shapes, SUBSCRIBE, ping."""
    async def main():
        async with running(sim_test_config(tmp_path)) as sim:
            ep = sim.endpoints()
            names = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker",
                     "btcusdt@depth", "ethusdt@bookTicker", "ethusdt@depth@100ms",
                     "ethusdt@aggTrade"]
            seen = {}
            async with websockets.connect(f"{ep['ws']}/stream?streams={'/'.join(names)}") as ws:
                pong = await ws.ping()
                await asyncio.wait_for(pong, 5)
                while len(seen) < len(names):
                    msg = json.loads(await ws.recv())
                    seen.setdefault(msg["stream"], msg["data"])
            assert list(seen["btcusdt@trade"]) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
            assert list(seen["btcusdt@aggTrade"]) == ["e", "E", "s", "a", "p", "q", "f", "l",
                                                      "T", "m", "M"]
            assert list(seen["btcusdt@bookTicker"]) == ["u", "s", "b", "B", "a", "A"]
            assert list(seen["btcusdt@depth"]) == ["e", "E", "s", "U", "u", "b", "a"]
            assert list(seen["ethusdt@bookTicker"]) == ["e", "u", "s", "b", "B", "a", "A", "T",
                                                        "E"]
            assert list(seen["ethusdt@depth@100ms"]) == ["e", "E", "T", "s", "U", "u", "pu",
                                                         "b", "a"]
            assert list(seen["ethusdt@aggTrade"]) == ["e", "E", "a", "s", "p", "q", "f", "l",
                                                      "T", "m"]
            p = seen["btcusdt@trade"]["p"]
            assert len(p.split(".")[1]) == 8  # spot: 8 decimals
            assert len(seen["ethusdt@bookTicker"]["b"].split(".")[1]) == 2  # futures: tick's
            sim.cfg.symbols["BTCUSDT"].ticks(p)  # on the tick grid
            # raw stream + SUBSCRIBE / LIST_SUBSCRIPTIONS / bad requests
            async with websockets.connect(f"{ep['ws']}/ws/btcusdt@bookTicker") as ws:
                data = json.loads(await ws.recv())
                assert data["s"] == "BTCUSDT" and "stream" not in data
                await ws.send(json.dumps({"method": "SUBSCRIBE",
                                          "params": ["ethusdt@trade"], "id": 5}))
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 6}))
                await ws.send("not json")
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["nope@x"], "id": 7}))
                replies = {}
                while len(replies) < 4:
                    d = json.loads(await ws.recv())
                    if "id" in d:
                        replies[d["id"] if d["id"] is not None else "bad"] = d
                assert replies[5] == {"result": None, "id": 5}
                assert replies[6]["result"] == ["btcusdt@bookTicker", "ethusdt@trade"]
                assert "error" in replies[7] and "error" in replies["bad"]
            with pytest.raises(websockets.InvalidStatus):
                async with websockets.connect(f"{ep['ws']}/stream?streams=nosuch@depth"):
                    pass
            assert sim.stats["md_bad_request"] == 2 and sim.stats["md_bad_path"] == 1
    run(main())


@pytest.mark.timeout(60)
def test_rest_endpoints_and_errors(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, rate=0)) as sim:
            rest = sim.endpoints()["rest"]
            status, snap = await http_json(f"{rest}/api/v3/depth?symbol=BTCUSDT&limit=5")
            assert status == 200 and list(snap) == ["lastUpdateId", "bids", "asks"]
            assert len(snap["bids"]) == 5 and snap["lastUpdateId"] == sim.update_id("BTCUSDT")
            bids, _ = sim.levels("BTCUSDT", 5)
            assert [[sim.cfg.symbols["BTCUSDT"].ticks(p), q] for p, q in snap["bids"]][0][0] \
                == bids[0][0]
            status, snap = await http_json(f"{rest}/fapi/v1/depth?symbol=ETHUSDT&limit=10")
            assert status == 200 and list(snap) == ["lastUpdateId", "E", "T", "bids", "asks"]
            for url, code in [("/api/v3/depth?symbol=ETHUSDT", 400),  # futures symbol on spot
                              ("/api/v3/depth?symbol=NOPE", 400),
                              ("/api/v3/depth?symbol=BTCUSDT&limit=x", 400),
                              ("/api/v3/depth?symbol=BTCUSDT&limit=0", 400),
                              ("/nothing", 404)]:
                status, body = await http_json(rest + url)
                assert status == code and "msg" in body, url
            tok = sim.admin_token  # the /admin API refuses a caller without it
            for token in ("", "wrong"):
                status, body = await http_json(f"{rest}/admin/faults", {"md_drop": 1.0},
                                               token=token)
                assert status == 401 and "admin token" in body["msg"]
            assert sim.faults.md_drop == 0
            status, body = await http_json(f"{rest}/admin/faults", {"md_drop": "x"}, token=tok)
            assert status == 400
            status, body = await http_json(f"{rest}/admin/faults", {"nosuch": 1}, token=tok)
            assert status == 400
            status, body = await http_json(f"{rest}/admin/faults", {"snapshot_delay_ms": 300},
                                           token=tok)
            assert status == 200 and body["snapshot_delay_ms"] == 300
            t0 = asyncio.get_running_loop().time()
            await http_json(f"{rest}/api/v3/depth?symbol=BTCUSDT&limit=5")
            assert asyncio.get_running_loop().time() - t0 >= 0.3
            status, book = await http_json(f"{rest}/admin/book?symbol=BTCUSDT&limit=3",
                                           token=tok)
            assert status == 200 and len(book["bids"]) == 3
            status, stats = await http_json(f"{rest}/admin/stats", token=tok)
            assert stats["rest_bad_request"] >= 5 and stats["rest_not_found"] == 1
            assert stats["rest_unauthorized"] == 2
    run(main())


@pytest.mark.timeout(60)
def test_stall_and_disconnect_faults(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path)) as sim:
            ep = sim.endpoints()
            async with websockets.connect(f"{ep['ws']}/ws/btcusdt@depth@100ms") as ws:
                await ws.recv()
                await sim.set_faults({"md_stall_ms": 30_000})
                await asyncio.sleep(0.1)
                while True:  # drain what was queued before the stall
                    try:
                        await asyncio.wait_for(ws.recv(), 0.05)
                    except TimeoutError:
                        break
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)  # silent, but still open
                await asyncio.wait_for(await ws.ping(), 10)  # the connection is alive
                await sim.set_faults({"md_stall_ms": 0})
                await asyncio.wait_for(ws.recv(), 10)  # flows again after the stall
                await sim.set_faults({"disconnect_md": True})
                with pytest.raises(websockets.ConnectionClosed):
                    for _ in range(10_000):
                        await asyncio.wait_for(ws.recv(), 5)
            assert sim.stats["md_stalled"] > 0
    run(main())


@pytest.mark.timeout(60)
def test_rest_keep_alive_and_malformed_http(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, rate=0)) as sim:
            port = sim.endpoints()["rest_port"]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(2):  # two requests on one connection
                writer.write(b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and b"keep-alive" in head
                assert await reader.readexactly(2) == b"{}"
            writer.write(b"NONSENSE\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400")
            writer.close()
            assert sim.stats["rest_bad_request"] == 1
    run(main())


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_slow_client_is_cut_off(tmp_path, monkeypatch):
    """A subscriber that stops reading is closed (1008) once its queue passes the limit."""
    monkeypatch.setattr("pipeline.venue.mdserver.MAX_QUEUE", 2000)

    async def main():
        async with running(sim_test_config(tmp_path, rate=20_000)) as sim:
            ep = sim.endpoints()
            streams = "/".join(f"{s.lower()}{suf}" for s in ep["symbols"]
                               for suf in ("@trade", "@aggTrade", "@bookTicker"))
            async with websockets.connect(f"{ep['ws']}/stream?streams={streams}",
                                          max_queue=1) as ws:
                async with asyncio.timeout(40):
                    while not sim.stats["md_slow_client_closed"]:
                        await asyncio.sleep(0.05)  # not reading
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd.code == 1008
    run(main(), 60)
