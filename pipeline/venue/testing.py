"""Helpers for tests against the simulator: start one in-process, a reference sync client.

``BinanceBookClient`` follows Binance's "how to manage a local order book correctly"
procedure over the real sockets (spot and futures rules), in plain Python with Decimal
strings: it is the independent check that the simulator's streams and snapshots agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import websockets

from pipeline.instruments import Instrument, SymbolTable
from pipeline.venue.fixcodec import Framer, Message, encode
from pipeline.venue.simulator import Account, SimConfig, Simulator

TEST_PASSWORD = "test-only-password"


def sim_test_config(tmp: Path, **overrides) -> SimConfig:
    """Two instruments (spot BTCUSDT, USD-M ETHUSDT), two accounts, quick depth streams."""
    table = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                         Instrument("ETHUSDT", "usdm", "0.01", "0.001")])
    kwargs = dict(symbols=table, seed=7, rate=3000.0, depth_ms=200, depth_fast_ms=20,
                  start_prices={"BTCUSDT": "60000.00", "ETHUSDT": "3000.00"},
                  mean_qty={"BTCUSDT": "0.001", "ETHUSDT": "0.01"},
                  accounts=[Account("alice", 1, TEST_PASSWORD), Account("bob", 2, "bobpw")],
                  state_dir=tmp / "fix")
    kwargs.update(overrides)
    return SimConfig(**kwargs)


@contextlib.asynccontextmanager
async def running(cfg: SimConfig) -> AsyncIterator[Simulator]:
    sim = Simulator(cfg)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def http_json(url: str, body: dict | None = None) -> tuple[int, dict]:
    def call():
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
    return await asyncio.to_thread(call)


class BinanceBookClient:
    """Local book of one symbol kept in sync by the documented procedure."""

    def __init__(self, sim_endpoints: dict, inst: Instrument, stream: str = "@depth@100ms"):
        self.ep = sim_endpoints
        self.inst = inst
        self.futures = inst.venue != "spot"
        self.stream = inst.symbol.lower() + stream
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.last_u = 0
        self.synced = False
        self.resyncs = 0
        self.gaps = 0
        self.duplicates = 0
        self.events = 0
        self.buffer: list[dict] = []
        self._snapshot_task: asyncio.Task | None = None

    def _snapshot_url(self) -> str:
        path = "/fapi/v1/depth" if self.futures else "/api/v3/depth"
        return f"{self.ep['rest']}{path}?symbol={self.inst.symbol}&limit=5000"

    async def __aenter__(self) -> BinanceBookClient:
        url = f"{self.ep['ws']}/stream?streams={self.stream}"
        self.ws = await websockets.connect(url, max_size=None)
        self._start_snapshot()
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        async for frame in self.ws:
            event = json.loads(frame)["data"]
            self.events += 1
            if not self.synced:
                self.buffer.append(event)
                if self._snapshot_task.done():
                    self._try_sync(self._snapshot_task.result())
            else:
                self._apply(event)

    async def wait(self, until, timeout: float = 30.0) -> None:
        """Until ``until(self)`` holds (polled; raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            while not until(self):
                if self._reader.done():
                    self._reader.result()  # re-raise what stopped the reader
                    raise ConnectionError("market-data connection closed")
                if not self.synced and self.buffer and self._snapshot_task.done():
                    self._try_sync(self._snapshot_task.result())  # no event came after it
                await asyncio.sleep(0.01)

    def _start_snapshot(self) -> None:
        self._snapshot_task = asyncio.ensure_future(http_json(self._snapshot_url()))

    def _try_sync(self, result: tuple[int, dict]) -> None:
        status, snap = result
        assert status == 200, snap
        last_id = snap["lastUpdateId"]
        before = (lambda e: e["u"] < last_id) if self.futures else (lambda e: e["u"] <= last_id)
        self.buffer = [e for e in self.buffer if not before(e)]
        if not self.buffer:
            return  # wait for the first event after the snapshot
        first = self.buffer[0]
        edge = last_id if self.futures else last_id + 1
        if not first["U"] <= edge <= first["u"]:
            self.resyncs += 1
            self._start_snapshot()  # the snapshot is older than the buffered stream
            return
        self.bids = {self.inst.ticks(p): self.inst.lots(q) for p, q in snap["bids"]}
        self.asks = {self.inst.ticks(p): self.inst.lots(q) for p, q in snap["asks"]}
        pending, self.buffer = self.buffer, []
        self._update(pending[0])
        self.synced = True
        for e in pending[1:]:
            self._apply(e)
            if not self.synced:
                return

    def _contiguous(self, e: dict) -> bool:
        return e["pu"] == self.last_u if self.futures else e["U"] == self.last_u + 1

    def _apply(self, e: dict) -> None:
        if e["u"] <= self.last_u:
            self.duplicates += 1
            return
        if not self._contiguous(e):
            self._gap()
            return
        self._update(e)

    def _update(self, e: dict) -> None:
        for levels, book in ((e["b"], self.bids), (e["a"], self.asks)):
            for p, q in levels:
                t, n = self.inst.ticks(p), self.inst.lots(q)
                if n:
                    book[t] = n
                else:
                    book.pop(t, None)
        self.last_u = e["u"]

    def _gap(self) -> None:
        self.gaps += 1
        self.resyncs += 1
        self.synced = False
        self.buffer = []
        self._start_snapshot()

    def levels(self) -> tuple[list, list]:
        return (sorted(self.bids.items(), reverse=True), sorted(self.asks.items()))


class FixClient:
    """A bare FIX 4.4 initiator over a real socket, for driving the acceptor in tests."""

    def __init__(self, port: int, sender: str = "CLIENT1", target: str = "SIMVENUE",
                 host: str = "127.0.0.1"):
        self.host, self.port, self.sender, self.target = host, port, sender, target
        self.next_out = 1
        self.framer = Framer()
        self.inbox: list = []
        self.garbled: list = []
        self.reader = self.writer = None

    async def connect(self) -> FixClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.framer = Framer()
        return self

    def send(self, msg_type: str, body: list, seq: int | None = None,
             extra: list = ()) -> int:
        seq = self.next_out if seq is None else seq
        self.writer.write(encode(msg_type, self.sender, self.target, seq, body, extra))
        self.next_out = max(self.next_out, seq + 1)
        return seq

    def send_raw(self, raw: bytes) -> None:
        self.writer.write(raw)

    async def logon(self, user: str = "alice", password: str = TEST_PASSWORD, hb: int = 30,
                    reset: bool = False) -> Message:
        body = [(98, 0), (108, hb)] + ([(141, "Y")] if reset else [])
        self.send("A", body + [(553, user), (554, password)])
        return await self.recv("A")

    async def recv(self, *types: str, timeout: float = 10.0) -> Message:
        """The next message of one of ``types`` (any when empty); earlier ones are kept."""
        async with asyncio.timeout(timeout):
            while True:
                for i, m in enumerate(self.inbox):
                    if not types or m.msg_type in types:
                        return self.inbox.pop(i)
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("FIX connection closed")
                for item in self.framer.feed(data):
                    (self.inbox if isinstance(item, Message) else self.garbled).append(item)

    async def closed(self, timeout: float = 10.0) -> bool:
        """True once the peer closes the connection (messages before it are kept)."""
        try:
            while True:
                await self.recv("__none__", timeout=timeout)
        except ConnectionError:
            return True

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
