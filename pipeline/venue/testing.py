"""Helpers for tests against the simulator: start one in-process, a reference sync client.

``BinanceBookClient`` follows Binance's "how to manage a local order book correctly"
procedure over the real sockets (spot and futures rules), in plain Python with Decimal
strings: it is the independent check that the simulator's streams and snapshots agree.

``VenueThread`` runs the simulator on its own loop in a thread for synchronous tests of
our FIX initiator and gateway (they poll their sockets on the test's thread); it is the
venue's acceptor, with ``faults.Faults`` making it misbehave. ``run_until`` and
``send_order`` drive a ``pipeline.fix.wire.Initiator`` against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import simplefix
import websockets

from pipeline.fix import codec as C
from pipeline.instruments import Instrument, SymbolTable
from pipeline.venue import admin
from pipeline.venue.fixcodec import Framer, Message, encode
from pipeline.venue.mdserver import DEPTH_PATHS
from pipeline.venue.session import AcceptorSession
from pipeline.venue.simulator import Account, SimConfig, Simulator
from shm_layouts.records import ORDER_INTENT, OrderType, Side, TimeInForce

TEST_PASSWORD = "test-only-password"


def sim_test_config(tmp: Path, **overrides) -> SimConfig:
    """Spot BTCUSDT, USD-M ETHUSDT, COIN-M BTCUSD_PERP; two accounts; quick depth streams."""
    table = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                         Instrument("ETHUSDT", "usdm", "0.01", "0.001"),
                         Instrument("BTCUSD_PERP", "coinm", "0.1", "1")])
    kwargs = dict(symbols=table, seed=7, rate=2000.0, depth_ms=200, depth_fast_ms=20,
                  start_prices={"BTCUSDT": "60000.00", "ETHUSDT": "3000.00",
                                "BTCUSD_PERP": "60000.0"},
                  mean_qty={"BTCUSDT": "0.001", "ETHUSDT": "0.01", "BTCUSD_PERP": "3"},
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


async def http_json(url: str, body: dict | None = None, token: str = "") -> tuple[int, dict]:
    """GET (or POST ``body``) ``url``: (status, JSON); ``token``: the /admin API's."""
    def call():
        data = None if body is None else json.dumps(body).encode()
        headers = {admin.HEADER: token} if token else {}
        req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers=headers)
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
        path = DEPTH_PATHS[self.inst.venue]
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


def quiet_venue(tmp: Path, symbols: SymbolTable, password: str = "", username: str = "",
                comp_id: str = "VENUE") -> SimConfig:
    """A venue for an initiator under test: no background flow and empty books (orders
    rest until the test fills them), one account (id 1) ``username``/``password``."""
    return SimConfig(symbols=symbols, rate=0, flow={"target_orders": 0}, comp_id=comp_id,
                     accounts=[Account(username, 1, password)], state_dir=tmp / "venue")


class VenueThread:
    """The simulator on its own event loop in a daemon thread. Every call into it runs on
    that loop (``call``): nothing is touched from two threads. ``received`` holds every
    message a client sent (simplefix messages: ``get`` returns bytes)."""

    def __init__(self, cfg: SimConfig, client: str = "CLIENT", account: int = 1):
        self.client, self.account = client, account
        self.received: list[simplefix.FixMessage] = []
        Framer().feed(encode("0", "V", "C", 1, []))  # jit-compile the framing here, not
        # inside a test's bounded wait
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="venue",
                                       daemon=True)
        self.thread.start()
        self.sim: Simulator = self.call(self._start, cfg)
        self.port: int = self.sim.ports["fix"]

    async def _start(self, cfg: SimConfig) -> Simulator:
        sim = Simulator(cfg)
        await sim.start()
        sim.fix.server.tap = self._tap  # before any client can connect: the test's own
        return sim

    def _tap(self, msg: Message) -> None:
        p = simplefix.FixParser()
        p.append_buffer(msg.raw)
        self.received.append(p.get_message())

    def call(self, fn: Callable, *args):
        """``fn(*args)`` on the venue's loop (awaited if it is a coroutine); its result."""
        async def run():
            r = fn(*args)
            return await r if inspect.isawaitable(r) else r
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def stop(self) -> None:
        self.call(self.sim.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # ------------------------------------------------------------------ state
    @property
    def logons(self) -> int:
        return self.sim.stats["fix_logons"]

    @property
    def connected(self) -> bool:
        """A session of ``client`` is logged on."""
        return self.call(self.sim.fix.live, self.client)

    @property
    def next_out(self) -> int:
        return self.call(lambda: self.sim.fix.store(self.client).next_out)

    @next_out.setter
    def next_out(self, seq: int) -> None:
        self.call(lambda: self._session().set_next_out(seq))

    # ------------------------------------------------------------------ the venue acts
    def faults(self, **values) -> dict:
        return self.call(self.sim.set_faults, values)

    def fill(self, cl_ord_id: str, qty: str, price: str) -> None:
        """Fill the account's resting order ``cl_ord_id`` at ``price`` (``Book.execute``)."""
        assert self.call(self.sim.fill, self.account, cl_ord_id, qty, price), cl_ord_id

    def unsolicited_cancel(self, cl_ord_id: str) -> None:
        assert self.call(self.sim.cancel, self.account, cl_ord_id), cl_ord_id

    def drop(self) -> None:
        """Cut the connection without a Logout (the ``drop_fix`` fault)."""
        self.faults(drop_fix=True)

    def send(self, msg_type: str, pairs: list, seq: int | None = None,
             lose: bool = False) -> None:
        """One message from the venue's session. ``seq``: with that MsgSeqNum, outside the
        sequence (neither taken nor journaled); ``lose``: sequenced and journaled but never
        sent (the ``fix_drop_next`` fault), so the client sees a gap and asks for it."""
        def go(s: AcceptorSession, now: float) -> None:
            if seq is not None:
                s.send_unsequenced(encode(msg_type, s.host.comp_id, s.client, seq, pairs), now)
                return
            self.sim.faults.fix_drop_next += int(lose)
            s.send(msg_type, pairs, now)
        self._act(go)

    def send_raw(self, raw: bytes) -> None:
        self._act(lambda s, now: s.send_unsequenced(raw, now))

    def send_garbled(self) -> None:
        """A heartbeat with a broken CheckSum (the ``fix_garble_next`` fault: it spends a
        sequence number, so the client also sees a gap)."""
        def go(s: AcceptorSession, now: float) -> None:
            self.sim.faults.fix_garble_next += 1
            s.send("0", [], now)
        self._act(go)

    def skip_seq(self, n: int = 1) -> None:
        """The venue's next message jumps ``n`` sequence numbers (``fix_skip_seq``)."""
        self.faults(fix_skip_seq=n)

    def _session(self) -> AcceptorSession:
        s = self.sim.fix.sessions.get(self.client)
        assert s is not None, f"{self.client} is not logged on"
        return s

    def _act(self, fn: Callable[[AcceptorSession, float], None]) -> None:
        def go() -> None:
            s = self._session()
            fn(s, time.monotonic())
            self.sim.fix.server.flush(s)
        self.call(go)


def run_until(init, pred, timeout: float = 5.0, apps: list | None = None) -> None:
    """Poll ``init`` (a ``wire.Initiator``) until ``pred()``; parsed application messages
    are copied into ``apps``. Sleeps between polls: tests never busy-spin a shared core."""
    def on_app(f, buf):
        if apps is not None:
            apps.append(f.copy())
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        init.poll(time.monotonic_ns(), on_app)
        time.sleep(0.0005)


def send_order(init, cl: int, symbol: bytes, grid_row, px: int, qty: int) -> None:
    """Encode, journal and send one limit GTC buy through ``init`` (cold-path helper)."""
    buf = np.zeros(512, np.uint8)
    s = init.session
    seq = s.next_seq()
    o = np.zeros(1, ORDER_INTENT)
    o[0]["cl_ord_id"], o[0]["price"], o[0]["qty"] = cl, px, qty
    o[0]["side"], o[0]["ord_type"], o[0]["tif"] = Side.BID, OrderType.LIMIT, TimeInForce.GTC
    start, end = C.encode_new_order(buf, s.comp_ids, seq, time.time_ns(), o[0],
                                    np.frombuffer(symbol, np.uint8).copy(), grid_row)
    s.store.record(seq, buf[start:end].tobytes())
    init.send(buf[start:end])


# ---------------------------------------------------------------------- Binance dialect
TEST_API_KEY = "T" * 32 + "0123456789abcdefghijABCDEFGHIJkl"  # 64 alphanumerics, as Binance


def binance_test_config(tmp: Path, accounts: list[Account], **overrides) -> SimConfig:
    """``dialect = "binance"``: spot BTCUSDT and ETHUSDT, no background flow, empty books,
    the given accounts (``Account(name, id, None, api_key, public_key, hmac_secret)``)."""
    table = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                         Instrument("ETHUSDT", "spot", "0.01", "0.0001")])
    kwargs = dict(symbols=table, rate=0, flow={"target_orders": 0}, dialect="binance",
                  accounts=accounts, state_dir=tmp / "venue",
                  start_prices={"BTCUSDT": "60000.00", "ETHUSDT": "3000.00"})
    kwargs.update(overrides)
    return SimConfig(**kwargs)


class BinanceFixClient(FixClient):
    """A bare Binance Spot FIX client: Ed25519-signed Logon, ``56=SPOT``, sequences reset."""

    def __init__(self, port: int, sender: str, api_key: str, signer, host: str = "127.0.0.1"):
        super().__init__(port, sender, "SPOT", host)
        self.api_key, self.signer = api_key, signer

    def logon_message(self, seq: int = 1, stime: str | None = None, hb: int = 30,
                      drop: tuple = (), extra: list = (), sign_with=None,
                      override: dict | None = None) -> bytes:
        """The Logon as fix-api.md shows it; ``drop`` leaves tags out, ``override`` replaces
        values (after signing: a wrong value stays wrong), ``sign_with`` another key."""
        from pipeline.venue.fixcodec import sending_time
        stime = stime or sending_time()
        payload = "\x01".join(["A", self.sender, self.target, str(seq), stime]).encode()
        sig = (sign_with or self.signer).sign_b64(payload)
        body = [(95, len(sig)), (96, sig), (98, 0), (108, hb), (141, "Y"),
                (553, self.api_key), (25035, 2), *extra]
        body = [(t, (override or {}).get(t, v)) for t, v in body if t not in drop]
        return encode("A", self.sender, self.target, seq, body, stime=stime)

    async def logon(self, hb: int = 30, **kw) -> Message:
        """Send the Logon; the venue's answer: Logon(A), or the Reject(3) that refused it."""
        self.writer.write(self.logon_message(hb=hb, **kw))
        self.next_out = 2
        return await self.recv("A", "3")
