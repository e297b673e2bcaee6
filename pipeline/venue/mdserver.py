"""Binance-format market data: WebSocket streams and the REST depth snapshot.

WebSocket (``websockets`` asyncio server): combined streams ``/stream?streams=a/b/c``
(frames wrapped as ``{"stream":..., "data":...}``) and raw streams ``/ws/a[/b...]``;
``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` requests as on Binance; pings from
the library. Streams per symbol: ``@depth`` (1000 ms), ``@depth@100ms``, ``@trade``,
``@aggTrade``, ``@bookTicker``. A second server on its own hub serves Binance's SBE streams
(``venue.sbe_feed``: binary frames, never wrapped; the ``X-MBX-APIKEY`` header required;
JSON text frames for request replies and ``serverShutdown``).

Depth consistency: the book stamps one update id per book-changing operation; each depth
stream keeps the set of levels touched since its last event and publishes ``U = prev u + 1``
.. ``u = book.update_id`` with the current quantity of each touched level. Tracking runs
whether or not anyone listens, so a snapshot taken at any update id is bridged by the next
event exactly as Binance's sync procedure expects.

REST is a small HTTP/1.1 server (keep-alive): ``/api/v3/depth`` (spot symbols),
``/fapi/v1/depth`` (USD-M), ``/dapi/v1/depth`` (COIN-M), ``/api/v3/ping``, ``/api/v3/time``,
``/api/v3/exchangeInfo``, and the ``/admin/...`` endpoints the simulator registers.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from pipeline.instruments import Instrument
from pipeline.venue.binance_format import Formatter
from pipeline.venue.faults import Faults
from pipeline.venue.matching import BUY, SELL, Book
from pipeline.venue.sbe_feed import SbeFeed

log = logging.getLogger("venue.md")

DEPTH_STREAMS = ("@depth", "@depth@100ms")
SUFFIXES = ("@depth", "@depth@100ms", "@trade", "@aggTrade", "@bookTicker")
MAX_QUEUE = 200_000  # frames queued for one client before it is cut off as too slow
DEPTH_PATHS = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth", "coinm": "/dapi/v1/depth"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Stats(collections.Counter):
    """Named counters of the simulator (dropped, duplicated, bad_request ...)."""


class MdConnection:
    """One WebSocket client: its streams, its outgoing queue, per-connection faults."""

    def __init__(self, ws: ServerConnection, combined: bool, faults: Faults, stats: Stats,
                 rng: random.Random):
        self.ws = ws
        self.combined = combined
        self.streams: set[str] = set()
        self.faults = faults
        self.stats = stats
        self.rng = rng
        self.queue: list[str | bytes] = []  # bytes: an SBE binary frame
        self.wake = asyncio.Event()
        self.held: str | bytes | None = None
        self.closed = False

    def push(self, data: str | bytes, wrapped: str | bytes) -> None:
        if self.closed:
            return
        msg = wrapped if self.combined else data
        f = self.faults
        if f.md_stall_until and f.stalled():
            self.stats["md_stalled"] += 1
            return
        if f.take("md_drop_next") or (f.md_drop and self.rng.random() < f.md_drop):
            self.stats["md_dropped"] += 1
            return
        if self.held is None and (f.take("md_reorder_next") or (
                f.md_reorder and self.rng.random() < f.md_reorder)):
            self.held = msg
            self.stats["md_reordered"] += 1
            return
        q = self.queue
        q.append(msg)
        if self.held is not None:
            q.append(self.held)
            self.held = None
        if f.take("md_duplicate_next") or (f.md_duplicate and
                                           self.rng.random() < f.md_duplicate):
            q.append(msg)
            self.stats["md_duplicated"] += 1
        if len(q) > MAX_QUEUE and not self.closed:
            self.stats["md_slow_client_closed"] += 1
            self.closed = True
            asyncio.ensure_future(self.ws.close(1008, "client too slow"))
        self.wake.set()

    def reply(self, text: str) -> None:
        self.queue.append(text)
        self.wake.set()

    async def writer(self) -> None:
        ws = self.ws
        # one frame per message as always, but a whole batch handed to the socket at once
        # (``send_context`` is websockets' own per-send wrapper: write, then drain)
        batched = hasattr(ws, "send_context") and hasattr(ws, "protocol")
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.queue = self.queue, []
            if batched:
                async with ws.send_context():
                    for msg in batch:
                        if isinstance(msg, bytes):
                            ws.protocol.send_binary(msg)
                        else:
                            ws.protocol.send_text(msg.encode())
            else:
                for msg in batch:
                    await ws.send(msg)
            self.stats["md_sent"] += len(batch)


class MdHub:
    """Stream name -> subscribed connections; formats nothing itself. ``binary``: SBE
    frames (bytes), sent as they are on combined streams too (the symbol is in each)."""

    def __init__(self, symbols: dict[str, Instrument], suffixes: tuple = SUFFIXES,
                 binary: bool = False):
        self.binary = binary
        self.canonical = {f"{s.lower()}{suf}".lower(): f"{s.lower()}{suf}"
                          for s in symbols for suf in suffixes}
        self.subs: dict[str, set[MdConnection]] = {name: set() for name in
                                                   self.canonical.values()}
        self.conns: set[MdConnection] = set()

    def resolve(self, name: str) -> str | None:
        return self.canonical.get(name.strip().lower())

    def listening(self, stream: str) -> bool:
        return bool(self.subs[stream])

    def publish(self, stream: str, data: str | bytes) -> None:
        conns = self.subs[stream]
        if not conns:
            return
        wrapped = data if self.binary else f'{{"stream":"{stream}","data":{data}}}'
        for c in conns:
            c.push(data, wrapped)

    def subscribe(self, conn: MdConnection, stream: str) -> None:
        conn.streams.add(stream)
        self.subs[stream].add(conn)

    def unsubscribe(self, conn: MdConnection, stream: str) -> None:
        conn.streams.discard(stream)
        self.subs[stream].discard(conn)

    def drop(self, conn: MdConnection) -> None:
        for s in list(conn.streams):
            self.unsubscribe(conn, s)
        self.conns.discard(conn)


class SymbolFeed:
    """Turns one book's changes and trades into its streams' frames."""

    def __init__(self, inst: Instrument, book: Book, hub: MdHub, faults: Faults,
                 sbe: SbeFeed | None = None):
        self.inst = inst
        self.book = book
        self.hub = hub
        self.faults = faults
        self.sbe = sbe  # the same events as SBE frames (spot instruments)
        self.fmt = Formatter(inst)
        base = inst.symbol.lower()
        self.depth_names = [f"{base}{s}" for s in DEPTH_STREAMS]
        self.trade_name = f"{base}@trade"
        self.agg_name = f"{base}@aggTrade"
        self.bbo_name = f"{base}@bookTicker"
        self.dirty: dict[str, set[tuple[int, int]]] = {n: set() for n in self.depth_names}
        self.prev_u: dict[str, int] = {n: book.update_id for n in self.depth_names}
        self.last_bbo: tuple | None = None
        self.next_agg = 1
        self.history: collections.deque = collections.deque(maxlen=600)

    def drain(self) -> None:
        """Take the book's pending changes and trades; publish trades and the BBO now."""
        book = self.book
        if book.changed:
            for d in self.dirty.values():
                d.update(book.changed)
            if self.sbe is not None:
                self.sbe.dirty.update(book.changed)
            book.changed.clear()
            self._bbo()
        if book.trades:
            if self.sbe is not None:
                self.sbe.trades(book.trades)
            self._trades(book.trades)
            book.trades.clear()

    def _bbo(self) -> None:
        book = self.book
        bid, ask = book.best(BUY), book.best(SELL)
        if bid is None or ask is None:
            return
        bbo = (bid, book.totals[BUY][bid], ask, book.totals[SELL][ask])
        if bbo == self.last_bbo:
            return
        self.last_bbo = bbo
        if self.sbe is not None:
            self.sbe.bbo(book.update_id, bbo)
        if self.hub.listening(self.bbo_name):
            self.hub.publish(self.bbo_name, self.fmt.book_ticker(
                book.update_id, bbo[:2], bbo[2:], now_ms()))

    def _trades(self, trades: list) -> None:
        hub, fmt = self.hub, self.fmt
        t_on, a_on = hub.listening(self.trade_name), hub.listening(self.agg_name)
        if not (t_on or a_on):
            self.next_agg += len(trades)  # ids stay comparable across subscriptions
            return
        ms = now_ms()
        i = 0
        n = len(trades)
        while i < n:
            first = trades[i]
            j, qty = i, 0
            while j < n and trades[j].taker_oid == first.taker_oid and \
                    trades[j].price == first.price:
                t = trades[j]
                qty += t.qty
                if t_on:
                    hub.publish(self.trade_name, fmt.trade(ms, t.trade_id, t.price, t.qty,
                                                           t.time_ms or ms, t.taker_side == SELL))
                j += 1
            if a_on:
                hub.publish(self.agg_name, fmt.agg_trade(
                    ms, self.next_agg, first.price, qty, first.trade_id, trades[j - 1].trade_id,
                    first.time_ms or ms, first.taker_side == SELL))
            self.next_agg += 1
            i = j

    def flush(self, name: str) -> None:
        """Publish one depth stream's event covering everything since its last one."""
        self.drain()
        book = self.book
        u = book.update_id
        prev = self.prev_u[name]
        if u == prev:
            return
        dirty = self.dirty[name]
        self.prev_u[name] = u
        if self.hub.listening(name):
            bids, asks = touched_levels(book, dirty)
            self.hub.publish(name, self.fmt.depth_update(now_ms(), prev + 1, u, prev, bids, asks))
        dirty.clear()
        if self.faults.snapshot_stale_ms and name == self.depth_names[1]:
            self.history.append((time.monotonic(), self.snapshot(1000)))

    def flush_sbe(self) -> None:
        """The SBE ``@depth`` diff (its own period and ids)."""
        if self.sbe is not None:
            self.drain()
            self.sbe.flush_depth(touched_levels)

    def snapshot(self, limit: int) -> tuple[int, list, list]:
        return (self.book.update_id, self.book.depth(BUY, limit), self.book.depth(SELL, limit))

    def snapshot_json(self, limit: int) -> str:
        snap = self.snapshot(limit)
        stale = self.faults.snapshot_stale_ms
        if stale:
            cutoff = time.monotonic() - stale / 1000
            old = [s for t, s in self.history if t <= cutoff]
            if not old and self.history:
                old = [self.history[0][1]]
            if old:  # the newest at least that old, else the oldest kept
                last_id, bids, asks = old[-1]
                snap = (last_id, bids[:limit], asks[:limit])
        return self.fmt.snapshot(snap[0], now_ms(), snap[1], snap[2])


def touched_levels(book: Book, dirty: set[tuple[int, int]]) -> tuple[list, list]:
    """The current quantity (0: gone) of each touched (side, price): bids best first, asks."""
    bids, asks = [], []
    tb, ta = book.totals
    for side, price in dirty:
        if side == BUY:
            bids.append((price, tb.get(price, 0)))
        else:
            asks.append((price, ta.get(price, 0)))
    bids.sort(reverse=True)
    asks.sort()
    return bids, asks


# ---------------------------------------------------------------------------- WebSocket
class MdServer:
    def __init__(self, hub: MdHub, faults: Faults, stats: Stats, seed: int,
                 api_key: bool = False):
        self.api_key = api_key  # SBE: the X-MBX-APIKEY header is required (any value)
        self.hub = hub
        self.faults = faults
        self.stats = stats
        self.rng = random.Random(seed ^ 0x5EED)
        self.server = None

    async def start(self, host: str, port: int, ssl=None) -> int:
        """``ssl``: an ``ssl.SSLContext`` to serve wss:// (``hft sim --tls``)."""
        self.server = await serve(self._handler, host, port, process_request=self._check_path,
                                  compression=None, ping_interval=20, ping_timeout=60,
                                  max_size=1 << 16, ssl=ssl)
        return self.server.sockets[0].getsockname()[1]

    def _streams_of(self, path: str) -> tuple[bool, list[str]] | None:
        parts = urlsplit(path)
        if parts.path == "/stream":
            names = parse_qs(parts.query).get("streams", [""])[0].split("/")
            combined = True
        elif parts.path.startswith("/ws"):
            names = parts.path[3:].strip("/").split("/")
            combined = False
        else:
            return None
        names = [n for n in names if n]
        streams = [self.hub.resolve(n) for n in names]
        if any(s is None for s in streams):
            return None
        return combined, streams

    def _check_path(self, conn: ServerConnection, request) -> Response | None:
        if self._streams_of(request.path) is None:
            self.stats["md_bad_path"] += 1
            return conn.respond(400, "Invalid request: unknown path or stream\n")
        if self.api_key and not request.headers.get("X-MBX-APIKEY"):
            self.stats["sbe_no_api_key"] += 1
            return conn.respond(401, "API key required (X-MBX-APIKEY header)\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        combined, streams = self._streams_of(ws.request.path)
        conn = MdConnection(ws, combined, self.faults, self.stats,
                            random.Random(self.rng.random()))
        self.hub.conns.add(conn)
        for s in streams:
            self.hub.subscribe(conn, s)
        self.stats["md_connections"] += 1
        writer = asyncio.create_task(conn.writer())
        try:
            async for text in ws:
                self._request(conn, text)
        except ConnectionClosed:
            pass
        finally:
            self.hub.drop(conn)
            writer.cancel()

    def _request(self, conn: MdConnection, text) -> None:
        try:
            req = json.loads(text)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
            if not isinstance(params, list):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self.stats["md_bad_request"] += 1
            conn.reply('{"error":{"code":2,"msg":"Invalid request"},"id":null}')
            return
        rid_json = json.dumps(rid)
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            streams = [self.hub.resolve(str(p)) for p in params]
            if any(s is None for s in streams):
                self.stats["md_bad_request"] += 1
                conn.reply(f'{{"error":{{"code":2,"msg":"Invalid stream"}},"id":{rid_json}}}')
                return
            for s in streams:
                (self.hub.subscribe if method == "SUBSCRIBE" else self.hub.unsubscribe)(conn, s)
            conn.reply(f'{{"result":null,"id":{rid_json}}}')
        elif method == "LIST_SUBSCRIPTIONS":
            conn.reply(json.dumps({"result": sorted(conn.streams), "id": rid}))
        else:
            self.stats["md_bad_request"] += 1
            conn.reply(f'{{"error":{{"code":2,"msg":"Unknown method"}},"id":{rid_json}}}')

    async def shutdown_all(self) -> int:
        """Binance's ``serverShutdown`` (a JSON text frame), then close every connection."""
        text = json.dumps({"e": "serverShutdown", "E": now_ms()})
        for c in list(self.hub.conns):
            c.reply(text)
        await asyncio.sleep(0.05)  # the writers send it before the close frame
        return await self.disconnect_all()

    async def disconnect_all(self) -> int:
        conns = list(self.hub.conns)
        for c in conns:
            c.closed = True
        await asyncio.gather(*(c.ws.close(1001, "disconnected") for c in conns),
                             return_exceptions=True)
        return len(conns)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# ---------------------------------------------------------------------------- REST
Handler = Callable[[str, dict, bytes], Awaitable[tuple[int, str]]]


@dataclass
class Request:
    """Everything of one request, for handlers that need more than path, query and body
    (signed endpoints: the raw query string as signed, the X-MBX-APIKEY header)."""

    method: str
    path: str
    raw_query: str
    query: dict
    headers: Headers
    body: bytes


RequestHandler = Callable[[Request], Awaitable[tuple[int, str]]]


class RestServer:
    """Minimal HTTP/1.1 (GET/POST, Content-Length bodies, keep-alive) for JSON endpoints."""

    def __init__(self, stats: Stats):
        self.routes: dict[tuple[str, str], Handler] = {}
        self.request_routes: dict[tuple[str, str], RequestHandler] = {}
        self.stats = stats
        self.server: asyncio.AbstractServer | None = None
        self.tokens: dict[str, tuple[str, str]] = {}  # path prefix -> (header, token)

    def protect(self, prefix: str, header: str, token: str) -> None:
        """Paths under ``prefix`` answer 401 unless the request's ``header`` is ``token``."""
        self.tokens[prefix] = (header, token)

    def _allowed(self, target: str, headers: Headers) -> bool:
        for prefix, (header, token) in self.tokens.items():
            if target.startswith(prefix) and not hmac.compare_digest(
                    headers.get(header, "").encode(), token.encode()):
                return False
        return True

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def route_request(self, method: str, path: str, handler: RequestHandler) -> None:
        """``handler`` gets the whole ``Request`` (and wins over a ``route`` of the path)."""
        self.request_routes[(method, path)] = handler

    async def start(self, host: str, port: int, ssl=None) -> int:
        self.server = await asyncio.start_server(self._client, host, port, ssl=ssl)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                headers = Headers()
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip()] = v.strip()
                try:
                    length = int(headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if len(parts) != 3 or length < 0 or length > 1 << 20:
                    self.stats["rest_bad_request"] += 1
                    await self._send(writer, 400, '{"code":-1100,"msg":"Malformed request."}',
                                     False)
                    return
                body = await reader.readexactly(length) if length else b""
                if not self._allowed(parts[1], headers):
                    self.stats["rest_unauthorized"] += 1
                    await self._send(writer, 401, '{"code":-2015,"msg":"Missing or wrong '
                                     'admin token (X-Admin-Token)."}', False)
                    return
                status, text = await self._dispatch(parts[0], parts[1], body, headers)
                keep = headers.get("Connection", "").lower() != "close"
                await self._send(writer, status, text, keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _dispatch(self, method: str, target: str, body: bytes,
                        headers: Headers | None = None) -> tuple[int, str]:
        url = urlsplit(target)
        full = self.request_routes.get((method, url.path))
        handler = self.routes.get((method, url.path))
        if handler is None and full is None:
            self.stats["rest_not_found"] += 1
            return 404, '{"code":-1000,"msg":"Unknown endpoint."}'
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if full is not None:
                return await full(Request(method, url.path, url.query, query,
                                          headers or Headers(), body))
            return await handler(url.path, query, body)
        except ValueError as e:
            self.stats["rest_bad_request"] += 1
            return 400, json.dumps({"code": -1100, "msg": str(e)})
        except Exception:  # a bug must not take the server down: 500 and a counter
            log.exception("REST %s %s failed", method, target)
            self.stats["rest_errors"] += 1
            return 500, '{"code":-1000,"msg":"An unknown error occurred."}'

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, text: str, keep: bool) -> None:
        data = text.encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized",
                  404: "Not Found"}.get(status, "Error")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n"
                     f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n".encode() + data)
        await writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
