"""Feed handler agent: Binance-format WebSocket -> parser -> sync -> md ring.

Market data format per venue (``[feed] md_format``): ``json`` (text frames) or ``sbe``
(Binance's binary streams: binary frames through ``marketdata.sbe``, the ``X-MBX-APIKEY``
header from the environment variable ``api_key_env`` names, never logged; JSON text frames
still carry request replies and ``serverShutdown``, which makes us reconnect). Binary frames
are decoded in either mode; the REST snapshot and the sync rules are the same.

Hot path (``feed_once``, jitted): non-blocking ``recv`` (``wss://``: ``SSL_read``, the
records decrypted in the loop) into a byte buffer, a timestamp per read, WebSocket frames
decoded in place, each text frame through ``on_message`` (parse, ticks/lots, sync rules),
each binary one through the SBE decoder, and the resulting records published to the md
ring. A
cycle publishes at most one book-changing frame's records (any trades before it too),
then returns (the next cycle takes the next frame without a ``recv``): in a fused loop the
book builder and strategy act on a bookTicker before a 100-level depth diff read with it
is parsed.
Control frames, end of stream and errors stop the cycle and are handled in Python.

Cold path (``housekeeping``): ping/pong and close, reconnect with backoff, stale-stream
detection (no frame for ``stale_ms`` while connected), REST snapshots fetched on a helper
thread for every symbol the sync state machine marks as needing one (bounded retries with
exponential backoff), and counters published to the counters area.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from errno import EAGAIN
from typing import NamedTuple
from urllib.parse import urlparse

import numpy as np
from numba import njit

from pipeline import config as cfgmod
from pipeline.control.area import ControlArea
from pipeline.control.poller import ControlPoller
from pipeline.instruments import SymbolTable
from pipeline.marketdata import sbe
from pipeline.marketdata import sync as S
from pipeline.marketdata import warm as MW
from pipeline.marketdata.events import TRADE
from pipeline.marketdata.latest import LatestBooks
from pipeline.marketdata.normalize import M_OTHER, FeedCore, on_message
from pipeline.marketdata.publish import PUSH_FIELDS, pending, push_records, start_batch
from pipeline.marketdata.wire import frames as F
from pipeline.marketdata.wire import rest
from pipeline.marketdata.wire.ws import WsConnection
from pipeline.metrics.counters import Counters
from pipeline.runtime import warming
from pipeline.runtime.agent import Agent
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.idle import WaitFd, idle
from pipeline.tls import client as tls
from pipeline.tls.io import wait_fd, wire_errno_code, wire_recv
from pipeline.transport.ring import Ring
from pipeline.transport.shared import atomic_store
from shm_layouts.control import Op, Status

log = logging.getLogger(__name__)

# the feed's cycle state (1-element record, ``new_state``): the publish cursor first
FEED_STATE = np.dtype(PUSH_FIELDS + [
    ("r", "<i8"), ("w", "<i8"),  # unread bytes of rbuf: [r, w)
    ("last_recv", "<i8"),  # monotonic ns of the last read (the time of its frames)
    ("eof", "<i8"), ("errno", "<i8"),  # the connection is done (and why)
    ("ctrl_op", "<i8"), ("ctrl_start", "<i8"), ("ctrl_end", "<i8"),  # for Python to answer
    ("frag_on", "<i8"), ("frag_n", "<i8"),  # a fragmented message being gathered
    ("frag_bin", "<i8"),  # ... a binary (SBE) one
    ("shutdown", "<i8"),  # the venue announced serverShutdown: Python reconnects
    ("frames", "<i8"), ("bytes", "<i8"), ("proto_errors", "<i8"), ("ignored", "<i8"),
    ("more", "<i8"),  # the last cycle stopped after a frame; frames may be left to read
])


def new_state() -> np.ndarray:
    return np.zeros(1, FEED_STATE)


class Sock(NamedTuple):
    """The connection a duty cycle reads: its fd, and for ``wss://`` the ``SSL*`` whose
    records ``feed_once`` decrypts (0: plain ``ws://``)."""

    fd: int
    ssl: int


@njit(cache=True, _nrt=False)
def _compact(rbuf, s):
    r, w = s.r, s.w
    if r == w:
        s.r = 0
        s.w = 0
    elif r > 0 and w > rbuf.shape[0] // 2:
        for j in range(w - r):  # forward copy: destination below source
            rbuf[j] = rbuf[r + j]
        s.r = 0
        s.w = w - r


@njit(cache=True, _nrt=False)
def _message(b, start, end, now, binary, ps, sy, em, dec, st):
    """One whole message: binary -> the SBE decoder, text -> the JSON stage (a text frame
    that is no market data may be ``serverShutdown``: flagged for Python)."""
    if binary:
        return sbe.on_frame(b, start, end, now, dec, ps, sy, em)
    other = em.stats[M_OTHER]
    k = on_message(b, start, end, now, -1, ps, sy, em)
    if em.stats[M_OTHER] != other and sbe.is_shutdown(b, start, end):
        st[0].shutdown = 1
    return k


@njit(cache=True, _nrt=False)
def feed_once(sock, rbuf, frag, st, ps, sy, em, md, warm, dec):
    """One duty cycle; returns work done (0: nothing arrived, or waiting on Python).
    ``sock``: the socket's fd and, for a ``wss://`` stream, its ``SSL*`` (records decrypted
    here; 0 for ``ws://``).
    ``st``: FEED_STATE, ``ps``/``sy``/``em``: ``normalize``'s views, ``md``: the md ring's
    producer ``RingView``, ``dec``: the ``sbe.SbeDecoder`` for binary frames. A cycle with
    nothing to read may parse a kept bookTicker again (``warm``: a dry pass,
    ``pipeline.marketdata.warm``)."""
    s = st[0]
    if s.out_pos < s.out_n and not push_records(md, em.rows, st):
        return 0  # md ring full: backpressure
    if s.ctrl_op != 0 or s.eof != 0:
        return 0
    work = 0
    room = rbuf.shape[0] - s.w
    # frames left from the last read keep that read's time: no recv until they are taken
    n = wire_recv(sock.fd, sock.ssl, rbuf, s.w, room) if room > 0 and not s.more else -EAGAIN
    s.more = 0
    if n > 0:
        s.w += n
        s.last_recv = monotonic_ns()
        s.bytes += n
        work += 1
    elif n == 0:
        s.eof = 1
    elif n != -EAGAIN:
        s.eof = 1
        s.errno = -n
    now = s.last_recv
    while s.out_pos == s.out_n:
        status, op, fin, p0, p1, nr = F.next_frame(rbuf, s.r, s.w)
        if status == 0:
            break
        if status < 0:
            s.proto_errors += 1
            s.eof = 1
            break
        s.r = nr
        s.frames += 1
        if op >= F.OP_CLOSE:  # control frame (close, ping, pong): Python answers it
            s.ctrl_op = op
            s.ctrl_start = p0
            s.ctrl_end = p1
            return work + 1
        data = op == F.OP_TEXT or op == F.OP_BINARY
        if data and fin and not s.frag_on:
            k = _message(rbuf, p0, p1, now, op == F.OP_BINARY, ps, sy, em, dec, st)
            if k > 0 and op == F.OP_TEXT:  # the warm pass re-parses JSON
                MW.keep_ticker(warm, rbuf, p0, p1, em.recs)
        elif data or (op == F.OP_CONT and s.frag_on):
            if data:
                s.frag_n = 0
                s.frag_bin = op == F.OP_BINARY
            m = s.frag_n
            if m + (p1 - p0) > frag.shape[0]:
                s.proto_errors += 1
                s.eof = 1
                break
            for j in range(p1 - p0):
                frag[m + j] = rbuf[p0 + j]
            s.frag_n = m + p1 - p0
            s.frag_on = 0 if fin else 1
            k = 0
            if fin:
                k = _message(frag, 0, s.frag_n, now, s.frag_bin != 0, ps, sy, em, dec, st)
        else:
            s.ignored += 1  # stray continuation
            k = 0
        work += 1
        if k > 0:
            start_batch(st, k)
            push_records(md, em.rows, st)
            if em.recs[0].kind != TRADE:  # a book change: downstream acts on it first
                s.more = 1
                break
    _compact(rbuf, s)
    if work == 0 and warming.is_due(warm.clock):
        MW.parse_again(warm, now, ps, sy)
    return work


@njit(cache=True, _nrt=False)
def inject(b, start, end, recv_ns, snap_sid, ps, sy, em, md, st):
    """A snapshot body (cold path) through the same stage; requires ``em`` drained."""
    start_batch(st, on_message(b, start, end, recv_ns, snap_sid, ps, sy, em))
    return push_records(md, em.rows, st)


@njit(cache=True, _nrt=False)
def resync_symbol(sy, sid, em, md, st, t):
    start_batch(st, S.invalidate_one(sy.sync, sid, em.recs, 0, t))
    return push_records(md, em.rows, st)


@njit(cache=True, _nrt=False)
def disconnect_all(sy, em, md, st, t):
    start_batch(st, S.invalidate_all(sy.sync, em.recs, 0, t))
    return push_records(md, em.rows, st)


_FEED = cfgmod.defaults("feed")
MD_FORMATS = ("json", "sbe")


@dataclass
class FeedConfig:
    url: str
    rest_url: str
    stale_ms: int = _FEED["stale_ms"]
    snapshot_limit: int = _FEED["snapshot_limit"]
    max_snapshot_retries: int = _FEED["max_snapshot_retries"]
    reconnect_min_ms: int = _FEED["reconnect_min_ms"]
    reconnect_max_ms: int = _FEED["reconnect_max_ms"]
    recv_buffer: int = _FEED["recv_buffer"]
    server_name: str = _FEED["server_name"]  # wss:// / https:// (config.TLS_KEYS)
    ca_file: str = _FEED["ca_file"]
    tls_verify: bool = _FEED["tls_verify"]
    handshake_timeout_s: float = _FEED["handshake_timeout_s"]
    md_format: str = _FEED["md_format"]  # "json" or "sbe" (binary frames, API-key header)
    api_key_env: str = _FEED["api_key_env"]  # the variable holding the SBE API key
    max_conn_s: float = _FEED["max_conn_s"]  # reconnect before the venue's 24 h limit

    def __post_init__(self) -> None:
        if self.md_format not in MD_FORMATS:
            raise cfgmod.ConfigError(f"[feed] md_format = {self.md_format!r}: expected one "
                                     f"of {', '.join(MD_FORMATS)}")

    def api_key(self) -> str:
        """The SBE streams' API key (from the environment; never logged, never stored)."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if not key:
            raise cfgmod.ConfigError(f"[feed] md_format = \"sbe\" needs an API key in the "
                                     f"environment variable {self.api_key_env!r} "
                                     "([feed] api_key_env)")
        return key

    @classmethod
    def from_config(cls, section: dict) -> FeedConfig:
        return cls(**cfgmod.section("feed", section))


COUNTERS = ("messages", "depth", "rejected", "applied", "dropped", "gaps", "resyncs",
            "snapshots", "invalidations", "pending_overflow", "sbe_frames", "sbe_rejected")


class FeedHandlerAgent(Agent):
    name = "feed_handler"

    def __init__(self, md: Ring, symbols: SymbolTable, config: FeedConfig,
                 counters: Counters | None = None, latest: LatestBooks | None = None,
                 control: ControlArea | None = None, warm_ns: int = 0):
        """``warm_ns`` > 0: a dry parse of a kept bookTicker every ``warm_ns`` while
        nothing arrives (``pipeline.marketdata.warm``; busy-spinning processes only)."""
        self.md = md
        self.md_view = md.view()  # the producer's view: built once
        self.latest = latest  # resync requests from the book builder
        self.control = control  # operator resyncs (hft ctl resync SYMBOL)
        self.poller: ControlPoller | None = None
        self._resyncs_seen = latest.resync_requests() if latest else 0
        self.symbols = symbols
        self.config = config
        self.core = FeedCore(symbols)
        self.rbuf = np.zeros(config.recv_buffer, np.uint8)
        self.frag = np.zeros(config.recv_buffer, np.uint8)
        self.st = new_state()
        self.warm = MW.feed_state(warm_ns, self.core.stats.shape[0])
        self.dec = sbe.new_decoder(symbols)
        # SBE: the key is read once, here (a missing one stops start-up), and sent only in
        # the handshake's X-MBX-APIKEY header
        self._headers = {"X-MBX-APIKEY": config.api_key()} if config.md_format == "sbe" \
            else {}
        c = self.core
        self._args = (self.rbuf, self.frag, self.st, c.parse, c.syms, c.emit, self.md_view,
                      self.warm, self.dec)  # feed_once's arguments after the fd
        self.conn: WsConnection | None = None
        self.tls, self.tls_ctx = self._tls_setup(config)
        self.connects = 0
        self.disconnects: dict[str, int] = {}
        self._next_connect = 0
        self._connected_at = 0
        self._reconnect_ms = config.reconnect_min_ms
        n = len(symbols)
        self._attempts = np.zeros(n, np.int64)
        self._due = np.zeros(n, np.int64)
        self._failed = np.zeros(n, bool)
        self._applied_seen = np.zeros(n, np.int64)
        self._results: queue.Queue = queue.Queue()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")
        self.snapshot_failures = 0
        self._generation = 0
        self.resyncs_requested = 0
        self.counters = counters
        self._counter_words = {name: counters.counter(f"feed.{name}") for name in
                               (*COUNTERS, "connects", "disconnects", "snapshot_failures",
                                "resyncs_requested", "warm_passes")
                               } if counters else {}
        self._last_publish = 0

    # ---------------------------------------------------------------- agent
    def on_start(self) -> None:
        self.md.claim_producer()
        if self.control is not None:
            self.poller = ControlPoller(self.control, self.name, (Op.RESYNC,))

    def hot_duty(self) -> tuple | None:
        if self.conn is None:  # waiting to reconnect: nothing to poll
            return None
        return self._duty(self.conn.fd, self.conn.ssl)

    def duty_template(self) -> tuple:
        return self._duty(-1, 0)  # the socket's fd is known after connecting

    def wait_fds(self) -> list[WaitFd]:
        return [] if self.conn is None else [wait_fd(self.conn.fd, self.conn.ssl)]

    def _duty(self, fd: int, ssl: int) -> tuple:
        return feed_once, (Sock(fd, ssl), *self._args)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        hot = self.hot_duty()
        if hot is None:  # waiting to reconnect: idle as configured, do not spin
            idle(idle_state, 0)
            return 0
        return self.poll_slice(*hot, idle_state, deadline_ns)

    def _operator_resync(self) -> None:
        """``hft ctl resync SYMBOL``: invalidate that symbol and re-snapshot it."""
        for cmd in self.poller.poll():
            sid = cmd.arg0
            if not 0 <= sid < len(self.symbols) or pending(self.st):
                self.poller.ack(cmd, Status.REFUSED if not 0 <= sid < len(self.symbols)
                                else Status.FAILED)
                continue
            c = self.core
            resync_symbol(c.syms, sid, c.emit, self.md_view, self.st, time.monotonic_ns())
            self._attempts[sid] = 0
            self._due[sid] = 0
            log.warning("operator resync of %s", self.symbols[sid].symbol)
            self.poller.ack(cmd, Status.DONE)

    def housekeeping(self, now_ns: int) -> bool:
        self.md.heartbeat()
        if self.poller is not None:
            self._operator_resync()
        if self.conn is not None:
            self._control_frames()
        if self.conn is not None:
            s = self.st[0]
            if s["shutdown"]:
                self._disconnect("server shutdown")
            elif s["eof"]:
                why = self._eof_reason(int(s["errno"]))
                self._disconnect("protocol error" if s["proto_errors"] else why)
            elif now_ns - self._connected_at > self.config.max_conn_s * 1e9:
                self._disconnect("connection age")
            elif now_ns - s["last_recv"] > self.config.stale_ms * 1_000_000:
                self._disconnect("stale stream")
        if self.conn is None and now_ns >= self._next_connect:
            self._connect(now_ns)
        if self.conn is not None:
            self._builder_resync()
            self._snapshots(now_ns)
        if now_ns - self._last_publish > 50_000_000:
            self.publish_counters()
            self._last_publish = now_ns
        return True

    def on_close(self) -> None:
        if self.poller is not None:
            self.poller.close()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.tls_ctx is not None:
            self.tls_ctx.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.publish_counters()

    # ---------------------------------------------------------------- connection
    @staticmethod
    def _tls_setup(config: FeedConfig) -> tuple[tls.TlsSettings | None, tls.TlsContext | None]:
        """wss:// / https://: the settings (validated) and, for the stream, one context
        (CA store loaded once, reused by every reconnect)."""
        if not (config.url.startswith("wss://") or config.rest_url.startswith("https://")):
            return None, None
        host = urlparse(config.url).hostname or ""
        settings = tls.TlsSettings.from_config(vars(config), host, "[feed]")
        ctx = (tls.client_context(settings.ca_file, settings.verify)
               if config.url.startswith("wss://") else None)
        return settings, ctx

    def _eof_reason(self, errno: int) -> str:
        """Why the stream ended; over TLS with the OpenSSL detail (drains its error queue,
        as required before the next TLS call on this thread)."""
        if self.conn.tls is None:
            return f"errno {errno}" if errno else "closed by peer"
        return "TLS: " + self.conn.tls.describe(wire_errno_code(errno))

    def _connect(self, now_ns: int) -> None:
        try:
            self.conn = WsConnection.open(self.config.url, tls=self.tls, ctx=self.tls_ctx,
                                          headers=self._headers)
        except (OSError, ConnectionError) as e:
            log.warning("connect %s failed: %s; retry in %d ms", self.config.url, e,
                        self._reconnect_ms)
            self._next_connect = now_ns + self._reconnect_ms * 1_000_000
            self._reconnect_ms = min(self._reconnect_ms * 2, self.config.reconnect_max_ms)
            return
        self.connects += 1
        self._connected_at = now_ns
        self._generation += 1  # snapshots fetched for an earlier connection are dropped
        self._reconnect_ms = self.config.reconnect_min_ms
        left = self.conn.leftover
        self.st[:] = 0
        self.rbuf[: len(left)] = np.frombuffer(left, np.uint8)
        self.st[0]["w"] = len(left)
        self.st[0]["last_recv"] = time.monotonic_ns()
        self._attempts[:] = 0
        self._due[:] = 0
        self._failed[:] = False
        log.info("connected to %s", self.config.url)

    def _disconnect(self, reason: str) -> None:
        log.warning("disconnect (%s): every symbol invalidated, resync after reconnect", reason)
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1
        self.conn.close()
        self.conn = None
        md, core = self.md_view, self.core
        while pending(self.st) and not push_records(md, core.out_raw, self.st):
            time.sleep(0.001)  # the book builder drains the md ring
        done = disconnect_all(core.syms, core.emit, md, self.st, time.monotonic_ns())
        while not done:  # the INVALIDATEs must reach the book builder before we go on
            time.sleep(0.001)
            done = push_records(md, core.out_raw, self.st)
        self._next_connect = time.monotonic_ns() + self._reconnect_ms * 1_000_000

    def _builder_resync(self) -> None:
        """The book builder restarted or dropped a book: resync every symbol."""
        if self.latest is None or pending(self.st):
            return
        seen = self.latest.resync_requests()
        if seen == self._resyncs_seen:
            return
        self._resyncs_seen = seen
        log.warning("book builder asked for a resync: re-snapshotting every symbol")
        self.resyncs_requested += 1
        # on a full ring the rest goes out in the next duty cycle
        disconnect_all(self.core.syms, self.core.emit, self.md_view, self.st,
                       time.monotonic_ns())
        self._attempts[:] = 0
        self._due[:] = 0

    def _control_frames(self) -> None:
        s = self.st[0]
        op = int(s["ctrl_op"])
        if not op:
            return
        payload = self.rbuf[s["ctrl_start"]: s["ctrl_end"]].tobytes()
        s["ctrl_op"] = 0
        if op == F.OP_PING:
            try:
                self.conn.pong(payload)
            except OSError:
                s["eof"] = 1
        elif op == F.OP_CLOSE:
            s["eof"] = 1

    # ---------------------------------------------------------------- snapshots
    def _snapshots(self, now_ns: int) -> None:
        sync = self.core.sync
        applied = sync["applied"]
        progressed = applied > self._applied_seen  # synced and applying: retries reset
        self._attempts[progressed] = 0
        self._applied_seen[:] = applied
        for sid in np.flatnonzero(sync["need_snapshot"] == S.SNAP_WANTED):
            if self._failed[sid] or now_ns < self._due[sid]:
                continue
            if self._attempts[sid] >= self.config.max_snapshot_retries:
                self._failed[sid] = True
                log.error("%s: %d snapshot attempts without sync; giving up until reconnect",
                          self.symbols[int(sid)].symbol, self._attempts[sid])
                continue
            ins = self.symbols[int(sid)]
            url = rest.snapshot_url(self.config.rest_url, ins.venue, ins.symbol,
                                    self.config.snapshot_limit)
            sync[sid]["need_snapshot"] = S.SNAP_IN_FLIGHT
            self._attempts[sid] += 1
            self._due[sid] = now_ns + min(100 << int(self._attempts[sid]), 5_000) * 1_000_000
            self._pool.submit(self._fetch, self._generation, int(sid), url)
        while not pending(self.st):
            try:
                generation, sid, body, t = self._results.get_nowait()
            except queue.Empty:
                break
            if generation != self._generation:
                continue  # fetched for a connection that is gone: its stream is not ours
            if body is None:
                self.snapshot_failures += 1
                if sync[sid]["need_snapshot"] == S.SNAP_IN_FLIGHT:
                    sync[sid]["need_snapshot"] = S.SNAP_WANTED  # retried when due
                continue
            c = self.core
            b = np.frombuffer(body, np.uint8)
            inject(b, 0, len(b), t, sid, c.parse, c.syms, c.emit, self.md_view, self.st)

    def _fetch(self, generation: int, sid: int, url: str) -> None:
        try:
            body, t = rest.fetch(url, tls=self.tls)
            self._results.put((generation, sid, body, t))
        except Exception as e:  # noqa: BLE001 - any failure is retried with backoff
            log.warning("snapshot %s failed: %s", url, e)
            self._results.put((generation, sid, None, 0))

    # ---------------------------------------------------------------- observability
    def summary(self) -> dict[str, int]:
        out = self.core.summary()
        out["connects"] = self.connects
        out["disconnects"] = sum(self.disconnects.values())
        out["snapshot_failures"] = self.snapshot_failures
        out["resyncs_requested"] = self.resyncs_requested
        out["warm_passes"] = int(self.warm.clock[0]["passes"])
        out.update({f"sbe_{k}": v for k, v in sbe.summary(self.dec).items()})
        return out

    def publish_counters(self) -> None:
        if not self.counters:
            return
        summary = self.summary()
        for name, word in self._counter_words.items():
            atomic_store(self.counters.words, word, summary[name])
