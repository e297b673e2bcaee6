"""The simulator's SBE streams carry the same events as its JSON streams (decoded by the
feed handler's numba decoder), require the API-key header and announce a shutdown."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipeline.marketdata import sbe
from pipeline.marketdata.events import ASK, BBO, BID, DIFF_LEVEL, SNAPSHOT_LEVEL, TRADE
from pipeline.venue.testing import http_json, running, sim_test_config
from shm_layouts.records import MD_EVENT

KEY = {"X-MBX-APIKEY": "test-key"}


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Streams:
    """What one client saw: depth levels touched (side -> price -> qty), last u, trades, bbo."""

    def __init__(self):
        self.levels: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
        self.last_u = 0
        self.trades: list[tuple] = []
        self.bbo: list[tuple] = []

    def level(self, side: int, px: int, qty: int) -> None:
        self.levels[side][px] = qty


def read_json(seen: Streams, inst, frame: str) -> None:
    msg = json.loads(frame)
    if "stream" not in msg:
        return  # a request's reply
    d = msg["data"]
    if "@depth" in msg["stream"]:
        for key, side in (("b", BID), ("a", ASK)):
            for p, q in d[key]:
                seen.level(side, inst.ticks(p), inst.lots(q))
        seen.last_u = d["u"]
    elif msg["stream"].endswith("@trade"):
        seen.trades.append((d["t"], inst.ticks(d["p"]), inst.lots(d["q"]),
                            ASK if d["m"] else BID))
    else:
        seen.bbo.append((d["u"], inst.ticks(d["b"]), inst.lots(d["B"]), inst.ticks(d["a"]),
                         inst.lots(d["A"])))


def read_sbe(seen: Streams, dec, frame: bytes) -> np.ndarray:
    out = np.zeros(4096, MD_EVENT)
    n, _ = sbe.decode_bytes(dec, frame, 0, out)
    assert n >= 0, sbe.Reject(-n)
    recs = out[:n]
    for r in recs:
        if r["kind"] == DIFF_LEVEL:
            seen.level(int(r["side"]), int(r["price"]), int(r["qty"]))
            seen.last_u = int(r["last_id"])
        elif r["kind"] == TRADE:
            seen.trades.append((int(r["first_id"]), int(r["price"]), int(r["qty"]),
                                int(r["side"])))
    bbo = recs[recs["kind"] == BBO]
    if len(bbo):
        seen.bbo.append((int(bbo[0]["first_id"]), int(bbo[0]["price"]), int(bbo[0]["qty"]),
                         int(bbo[1]["price"]), int(bbo[1]["qty"])))
    return recs


async def _reader(ws, handle) -> None:
    try:
        async for frame in ws:
            handle(frame)
    except ConnectionClosed:
        pass


async def _subscribed(ws) -> None:
    """A request's reply: the streams named in the URL are registered by then."""
    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
    while True:
        frame = await ws.recv()
        if isinstance(frame, str) and '"id":1' in frame.replace(" ", ""):
            return


@pytest.mark.timeout(120)
def test_sbe_streams_carry_the_json_events(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, rate=0.0)) as sim:
            inst = sim.cfg.symbols["BTCUSDT"]
            dec = sbe.new_decoder(sim.cfg.symbols)
            ep = sim.endpoints()
            base = inst.symbol.lower()
            j_url = f"{ep['ws']}/stream?streams={base}@depth@100ms/{base}@trade/{base}@bookTicker"
            s_url = f"{ep['sbe']}/stream?streams={base}@depth/{base}@trade/{base}@bestBidAsk"
            js, ss = Streams(), Streams()
            async with websockets.connect(j_url) as jws, \
                    websockets.connect(s_url, additional_headers=KEY) as sws:
                await _subscribed(jws)
                await _subscribed(sws)
                tasks = [asyncio.create_task(_reader(jws, lambda f: read_json(js, inst, f))),
                         asyncio.create_task(_reader(sws, lambda f: isinstance(f, bytes)
                                                     and read_sbe(ss, dec, f)))]
                for _ in range(20):
                    sim.step_flow(100)
                    await asyncio.sleep(0.01)
                target = sim.update_id(inst.symbol)
                while js.last_u < target or ss.last_u < target:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.1)  # the trades/bbo frames sent before the last diff
                for t in tasks:
                    t.cancel()
            assert js.last_u == ss.last_u == target
            assert len(js.levels[BID]) > 20 and len(js.trades) > 0 and len(js.bbo) > 10
            assert ss.levels == js.levels
            assert ss.trades == js.trades
            assert ss.bbo == js.bbo
            bids, asks = sim.levels(inst.symbol)
            book = {BID: dict(bids), ASK: dict(asks)}
            for side in (BID, ASK):  # every touched level holds the engine's quantity
                assert all(book[side].get(p, 0) == q for p, q in ss.levels[side].items())
            assert sbe.summary(dec)["rejected"] == 0
    run(main())


@pytest.mark.timeout(60)
def test_sbe_depth20_api_key_and_server_shutdown(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, rate=0.0)) as sim:
            ep, dec = sim.endpoints(), sbe.new_decoder(sim.cfg.symbols)
            with pytest.raises(InvalidStatus) as e:
                async with websockets.connect(f"{ep['sbe']}/ws/btcusdt@depth20"):
                    pass
            assert e.value.response.status_code == 401
            async with websockets.connect(f"{ep['sbe']}/ws/btcusdt@depth20",
                                          additional_headers=KEY) as ws:
                frame = await ws.recv()
                assert isinstance(frame, bytes)
                recs = read_sbe(Streams(), dec, frame)
                bids, asks = sim.levels("BTCUSDT", 20)
                lv = recs[recs["kind"] == SNAPSHOT_LEVEL]
                assert [(int(r["price"]), int(r["qty"])) for r in lv if r["side"] == BID] == bids
                assert [(int(r["price"]), int(r["qty"])) for r in lv if r["side"] == ASK] == asks
                assert int(recs[0]["first_id"]) == sim.update_id("BTCUSDT")
                status, body = await http_json(f"{ep['rest']}/admin/sbe_shutdown", {},
                                                token=ep["admin_token"])
                assert status == 200 and body["closed"] == 1
                texts = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        frame = await ws.recv()
                        if isinstance(frame, str):
                            texts.append(json.loads(frame))
                assert texts and texts[-1]["e"] == "serverShutdown"
    run(main())
