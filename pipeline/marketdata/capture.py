"""Recording a Binance-format feed: ``<recv_ns> <raw>`` per line, gzip (the line format
hftbacktest's collector writes). Every WebSocket text frame and every REST snapshot body
is written with its receive time (CLOCK_REALTIME ns, as hftbacktest does). A snapshot body
names no symbol, so each symbol gets its own file (``--out`` as given for one symbol,
``NAME.SYMBOL.gz`` for several); frames are routed by their combined-stream name. Binary
frames (Binance SBE, ``headers`` carrying the API key) are written as
``<recv_ns> b64:<base64>`` lines (``files.binary_line``), routed by the symbol they name.

Cold path: this is a recorder, not the trading feed; it reuses the same WebSocket shell.
"""

from __future__ import annotations

import gzip
import logging
import re
import select
import time
from pathlib import Path

import numpy as np

from pipeline.marketdata.files import binary_line
from pipeline.marketdata.sbe import symbol_of
from pipeline.marketdata.wire import frames as F
from pipeline.marketdata.wire import rest
from pipeline.marketdata.wire.ws import WsConnection

log = logging.getLogger(__name__)
_STREAM = re.compile(rb'^\s*\{\s*"stream"\s*:\s*"([A-Za-z0-9_]+)@')


def output_paths(out: str | Path, symbols: list[str]) -> dict[str, Path]:
    out = Path(out)
    if len(symbols) == 1:
        return {symbols[0]: out}
    stem = out.name[:-3] if out.name.endswith(".gz") else out.name
    return {s: out.with_name(f"{stem}.{s}.gz") for s in symbols}


class Recorder:
    def __init__(self, url: str, rest_url: str, symbols: list[str], venue: str,
                 out: str | Path, snapshot_limit: int = 1000,
                 headers: dict[str, str] | None = None):
        self.headers = headers or {}  # SBE: X-MBX-APIKEY (never written anywhere)
        self.url = url
        self.rest_url = rest_url
        self.symbols = [s.upper() for s in symbols]
        self.venue = venue
        self.snapshot_limit = snapshot_limit
        self.paths = output_paths(out, self.symbols)
        self.files = {s: gzip.open(p, "wb") for s, p in self.paths.items()}
        self.frames = 0
        self.snapshots = 0
        self.unrouted = 0

    def _write(self, symbol: str, raw: bytes) -> None:
        self.files[symbol].write(b"%d %s\n" % (time.time_ns(), raw))

    def _route(self, raw: bytes) -> str | None:
        m = _STREAM.match(raw)
        sym = m.group(1).decode().upper() if m else None
        return sym if sym in self.files else None

    def snapshot_all(self) -> None:
        for sym in self.symbols:
            url = rest.snapshot_url(self.rest_url, self.venue, sym, self.snapshot_limit)
            body, _ = rest.fetch(url)
            self._write(sym, body)
            self.snapshots += 1

    def run(self, seconds: float = 0.0, max_frames: int = 0) -> None:
        """Record until ``seconds`` elapse or ``max_frames`` frames (0: no limit), or
        KeyboardInterrupt. Reconnects and re-snapshots if the connection drops."""
        deadline = time.monotonic() + seconds if seconds else float("inf")
        buf = np.zeros(8 << 20, np.uint8)
        try:
            while time.monotonic() < deadline and not (max_frames and self.frames >= max_frames):
                conn = WsConnection.open(self.url, headers=self.headers)
                try:
                    self.snapshot_all()  # after subscribing: the stream buffers meanwhile
                    self._pump(conn, buf, deadline, max_frames)
                finally:
                    conn.close()
        finally:
            for f in self.files.values():
                f.close()

    def _pump(self, conn: WsConnection, buf: np.ndarray, deadline: float,
              max_frames: int) -> None:
        r, w = 0, len(conn.leftover)
        buf[:w] = np.frombuffer(conn.leftover, np.uint8)
        while time.monotonic() < deadline and not (max_frames and self.frames >= max_frames):
            while not (max_frames and self.frames >= max_frames):  # one read: many frames
                status, op, fin, ps, pe, nr = F.next_frame(buf, r, w)
                if status <= 0:
                    break
                r = nr
                if op == F.OP_TEXT and fin:
                    raw = buf[ps:pe].tobytes()
                    sym = self._route(raw)
                    if sym is None:
                        self.unrouted += 1
                        sym = self.symbols[0]
                    self._write(sym, raw)
                    self.frames += 1
                elif op == F.OP_BINARY and fin:
                    raw = buf[ps:pe].tobytes()
                    sym = symbol_of(raw).upper()
                    if sym not in self.files:
                        self.unrouted += 1
                        sym = self.symbols[0]
                    self.files[sym].write(binary_line(time.time_ns(), raw))
                    self.frames += 1
                elif op == F.OP_PING:
                    conn.pong(buf[ps:pe].tobytes())
                elif op == F.OP_CLOSE:
                    log.warning("server closed the connection; reconnecting")
                    return
            if status < 0:
                log.warning("WebSocket protocol error; reconnecting")
                return
            if r == w:
                r = w = 0
            elif w > len(buf) // 2:
                buf[: w - r] = buf[r:w]
                w -= r
                r = 0
            ready, _, _ = select.select([conn.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = conn.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                log.warning("connection closed; reconnecting")
                return
            buf[w: w + len(chunk)] = np.frombuffer(chunk, np.uint8)
            w += len(chunk)
