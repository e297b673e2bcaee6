"""Feed handler agent: Binance-format WebSocket -> parser -> sync -> md ring.

Hot path (``feed_once``, jitted): non-blocking ``recv`` into a byte buffer, a timestamp
per read, WebSocket frames decoded in place, each text frame through ``on_message``
(parse, ticks/lots, sync rules) and the resulting records published to the md ring. A
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
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from pipeline import config as cfgmod
from pipeline.control.area import ControlArea
from pipeline.control.poller import ControlPoller
from pipeline.instruments import SymbolTable
from pipeline.marketdata import sync as S
from pipeline.marketdata import warm as MW
from pipeline.marketdata.events import TRADE
from pipeline.marketdata.latest import LatestBooks
from pipeline.marketdata.normalize import FeedCore, on_message
from pipeline.marketdata.publish import OUT_N, OUT_POS, push_records, words
from pipeline.marketdata.wire import frames as F
from pipeline.marketdata.wire import rest
from pipeline.marketdata.wire.sockio import EAGAIN, recv_nb
from pipeline.marketdata.wire.ws import WsConnection
from pipeline.observe.counters import Counters
from pipeline.runtime import warming
from pipeline.runtime.agent import Agent, run_slice
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.idle import idle
from pipeline.transport.ring import Ring
from pipeline.transport.shared import atomic_store
from shm_layouts.control import Op, Status

log = logging.getLogger(__name__)

# state words (OUT_POS, OUT_N = 1, 2 from publish)
(ST_R, _, _, ST_W, ST_LAST_RECV, ST_EOF, ST_ERRNO, ST_CTRL_OP, ST_CTRL_START, ST_CTRL_END,
 ST_FRAG_ON, ST_FRAG_N, ST_FRAMES, ST_BYTES, ST_PROTO_ERRORS, ST_IGNORED, ST_MORE) = range(17)
ST_WORDS = 24  # ST_MORE: the last cycle stopped after a frame; frames may be left to read


@njit(cache=True, _nrt=False)
def _compact(rbuf, st):
    r, w = st[ST_R], st[ST_W]
    if r == w:
        st[ST_R] = 0
        st[ST_W] = 0
    elif r > 0 and w > rbuf.shape[0] // 2:
        for j in range(w - r):  # forward copy: destination below source
            rbuf[j] = rbuf[r + j]
        st[ST_R] = 0
        st[ST_W] = w - r


@njit(cache=True, _nrt=False)
def feed_once(fd, rbuf, frag, st, hdr, lv, keys, lens, grid, sync, pend, scratch, out,
              out_raw, stats, ctl, stamps, raw, warm):
    """One duty cycle; returns work done (0: nothing arrived, or waiting on Python). A
    cycle with nothing to read may parse a kept bookTicker again (``warm``: a dry pass,
    ``pipeline.marketdata.warm``)."""
    if st[OUT_POS] < st[OUT_N] and not push_records(ctl, stamps, raw, out_raw, st):
        return 0  # md ring full: backpressure
    if st[ST_CTRL_OP] != 0 or st[ST_EOF] != 0:
        return 0
    work = 0
    room = rbuf.shape[0] - st[ST_W]
    # frames left from the last read keep that read's time: no recv until they are taken
    n = recv_nb(fd, rbuf, st[ST_W], room) if room > 0 and not st[ST_MORE] else -EAGAIN
    st[ST_MORE] = 0
    if n > 0:
        st[ST_W] += n
        st[ST_LAST_RECV] = monotonic_ns()
        st[ST_BYTES] += n
        work += 1
    elif n == 0:
        st[ST_EOF] = 1
    elif n != -EAGAIN:
        st[ST_EOF] = 1
        st[ST_ERRNO] = -n
    now = st[ST_LAST_RECV]
    while st[OUT_POS] == st[OUT_N]:
        status, op, fin, ps, pe, nr = F.next_frame(rbuf, st[ST_R], st[ST_W])
        if status == 0:
            break
        if status < 0:
            st[ST_PROTO_ERRORS] += 1
            st[ST_EOF] = 1
            break
        st[ST_R] = nr
        st[ST_FRAMES] += 1
        if op >= 8:  # control frame: Python answers it
            st[ST_CTRL_OP] = op
            st[ST_CTRL_START] = ps
            st[ST_CTRL_END] = pe
            return work + 1
        if op == F.OP_TEXT and fin and not st[ST_FRAG_ON]:
            k = on_message(rbuf, ps, pe, now, -1, hdr, lv, keys, lens, grid, sync, pend,
                           scratch, out, stats)
            if k > 0:
                MW.keep_ticker(warm, rbuf, ps, pe, out)
        elif op == F.OP_TEXT or (op == F.OP_CONT and st[ST_FRAG_ON]):
            if op == F.OP_TEXT:
                st[ST_FRAG_N] = 0
            m = st[ST_FRAG_N]
            if m + (pe - ps) > frag.shape[0]:
                st[ST_PROTO_ERRORS] += 1
                st[ST_EOF] = 1
                break
            for j in range(pe - ps):
                frag[m + j] = rbuf[ps + j]
            st[ST_FRAG_N] = m + pe - ps
            st[ST_FRAG_ON] = 0 if fin else 1
            k = 0
            if fin:
                k = on_message(frag, 0, st[ST_FRAG_N], now, -1, hdr, lv, keys, lens, grid,
                               sync, pend, scratch, out, stats)
        else:
            st[ST_IGNORED] += 1  # binary, pong, stray continuation
            k = 0
        work += 1
        if k > 0:
            st[OUT_POS] = 0
            st[OUT_N] = k
            push_records(ctl, stamps, raw, out_raw, st)
            if out[0].kind != TRADE:  # a book change: downstream acts on it before the next
                st[ST_MORE] = 1
                break
    _compact(rbuf, st)
    if work == 0 and warming.due(warm[0]):
        MW.parse_again(warm, now, hdr, lv, keys, lens, grid, sync, pend, scratch)
    return work


@njit(cache=True, _nrt=False)
def inject(b, start, end, recv_ns, snap_sid, hdr, lv, keys, lens, grid, sync, pend, scratch,
           out, out_raw, stats, ctl, stamps, raw, st):
    """A snapshot body (cold path) through the same stage; requires ``out`` drained."""
    k = on_message(b, start, end, recv_ns, snap_sid, hdr, lv, keys, lens, grid, sync, pend,
                   scratch, out, stats)
    st[OUT_POS] = 0
    st[OUT_N] = k
    return push_records(ctl, stamps, raw, out_raw, st)


@njit(cache=True, _nrt=False)
def resync_symbol(sync, sid, out, out_raw, st, ctl, stamps, raw, t):
    st[OUT_POS] = 0
    st[OUT_N] = S.invalidate_one(sync, sid, out, 0, t)
    return push_records(ctl, stamps, raw, out_raw, st)


@njit(cache=True, _nrt=False)
def disconnect_all(sync, out, out_raw, st, ctl, stamps, raw, t):
    st[OUT_POS] = 0
    st[OUT_N] = S.invalidate_all(sync, out, 0, t)
    return push_records(ctl, stamps, raw, out_raw, st)


_FEED = cfgmod.defaults("feed")


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

    @classmethod
    def from_config(cls, section: dict) -> FeedConfig:
        return cls(**cfgmod.section("feed", section))


COUNTERS = ("messages", "depth", "rejected", "applied", "dropped", "gaps", "resyncs",
            "snapshots", "invalidations", "pending_overflow")


class FeedHandlerAgent(Agent):
    name = "feed_handler"

    def __init__(self, md: Ring, symbols: SymbolTable, config: FeedConfig,
                 counters: Counters | None = None, latest: LatestBooks | None = None,
                 control: ControlArea | None = None, warm_ns: int = 0):
        """``warm_ns`` > 0: a dry parse of a kept bookTicker every ``warm_ns`` while
        nothing arrives (``pipeline.marketdata.warm``; busy-spinning processes only)."""
        self.md = md
        self.md_words = words(md.raw)
        self.latest = latest  # resync requests from the book builder
        self.control = control  # operator resyncs (hft ctl resync SYMBOL)
        self.poller: ControlPoller | None = None
        self._resyncs_seen = latest.resync_requests() if latest else 0
        self.symbols = symbols
        self.config = config
        self.core = FeedCore(symbols)
        self.rbuf = np.zeros(config.recv_buffer, np.uint8)
        self.frag = np.zeros(config.recv_buffer, np.uint8)
        self.st = np.zeros(ST_WORDS, np.int64)
        self.warm = MW.feed_state(warm_ns, self.core.stats.shape[0])
        self.conn: WsConnection | None = None
        self.connects = 0
        self.disconnects: dict[str, int] = {}
        self._next_connect = 0
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
        return self._duty(self.conn.fd)

    def duty_template(self) -> tuple:
        return self._duty(-1)  # the socket's fd is known after connecting

    def _duty(self, fd: int) -> tuple:
        c = self.core
        return feed_once, (fd, self.rbuf, self.frag, self.st, c.hdr, c.lv, c.keys, c.lens,
                           c.grid, c.sync, c.pend, c.scratch, c.out, c.out_raw, c.stats,
                           self.md.ctl, self.md.stamps, self.md_words, self.warm)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        hot = self.hot_duty()
        if hot is None:  # waiting to reconnect: idle as configured, do not spin
            idle(idle_state, 0)
            return 0
        return run_slice(*hot, idle_state, deadline_ns)

    def _operator_resync(self) -> None:
        """``hft ctl resync SYMBOL``: invalidate that symbol and re-snapshot it."""
        for cmd in self.poller.poll():
            sid = cmd.arg0
            if not 0 <= sid < len(self.symbols) or self.st[OUT_POS] < self.st[OUT_N]:
                self.poller.ack(cmd, Status.REFUSED if not 0 <= sid < len(self.symbols)
                                else Status.FAILED)
                continue
            c = self.core
            resync_symbol(c.sync, sid, c.out, c.out_raw, self.st, self.md.ctl, self.md.stamps,
                          self.md_words, time.monotonic_ns())
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
            if self.st[ST_EOF]:
                why = f"errno {self.st[ST_ERRNO]}" if self.st[ST_ERRNO] else "closed by peer"
                self._disconnect("protocol error" if self.st[ST_PROTO_ERRORS] else why)
            elif now_ns - self.st[ST_LAST_RECV] > self.config.stale_ms * 1_000_000:
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
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.publish_counters()

    # ---------------------------------------------------------------- connection
    def _connect(self, now_ns: int) -> None:
        try:
            self.conn = WsConnection.open(self.config.url)
        except (OSError, ConnectionError) as e:
            log.warning("connect %s failed: %s; retry in %d ms", self.config.url, e,
                        self._reconnect_ms)
            self._next_connect = now_ns + self._reconnect_ms * 1_000_000
            self._reconnect_ms = min(self._reconnect_ms * 2, self.config.reconnect_max_ms)
            return
        self.connects += 1
        self._generation += 1  # snapshots fetched for an earlier connection are dropped
        self._reconnect_ms = self.config.reconnect_min_ms
        left = self.conn.leftover
        self.st[:] = 0
        self.rbuf[: len(left)] = np.frombuffer(left, np.uint8)
        self.st[ST_W] = len(left)
        self.st[ST_LAST_RECV] = time.monotonic_ns()
        self._attempts[:] = 0
        self._due[:] = 0
        self._failed[:] = False
        log.info("connected to %s", self.config.url)

    def _disconnect(self, reason: str) -> None:
        log.warning("disconnect (%s): every symbol invalidated, resync after reconnect", reason)
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1
        self.conn.close()
        self.conn = None
        pending = self.st[OUT_POS] < self.st[OUT_N]
        md, core = self.md, self.core
        while pending and not push_records(md.ctl, md.stamps, self.md_words, core.out_raw,
                                           self.st):
            time.sleep(0.001)  # the book builder drains the md ring
        done = disconnect_all(core.sync, core.out, core.out_raw, self.st, md.ctl, md.stamps,
                              self.md_words, time.monotonic_ns())
        while not done:  # the INVALIDATEs must reach the book builder before we go on
            time.sleep(0.001)
            done = push_records(md.ctl, md.stamps, self.md_words, core.out_raw, self.st)
        self._next_connect = time.monotonic_ns() + self._reconnect_ms * 1_000_000

    def _builder_resync(self) -> None:
        """The book builder restarted or dropped a book: resync every symbol."""
        if self.latest is None or self.st[OUT_POS] < self.st[OUT_N]:
            return
        seen = self.latest.resync_requests()
        if seen == self._resyncs_seen:
            return
        self._resyncs_seen = seen
        log.warning("book builder asked for a resync: re-snapshotting every symbol")
        self.resyncs_requested += 1
        md, core = self.md, self.core
        # on a full ring the rest goes out in the next duty cycle
        disconnect_all(core.sync, core.out, core.out_raw, self.st, md.ctl, md.stamps,
                       self.md_words, time.monotonic_ns())
        self._attempts[:] = 0
        self._due[:] = 0

    def _control_frames(self) -> None:
        op = int(self.st[ST_CTRL_OP])
        if not op:
            return
        payload = self.rbuf[self.st[ST_CTRL_START]: self.st[ST_CTRL_END]].tobytes()
        self.st[ST_CTRL_OP] = 0
        if op == F.OP_PING:
            try:
                self.conn.pong(payload)
            except OSError:
                self.st[ST_EOF] = 1
        elif op == F.OP_CLOSE:
            self.st[ST_EOF] = 1

    # ---------------------------------------------------------------- snapshots
    def _snapshots(self, now_ns: int) -> None:
        sync = self.core.sync
        applied = sync[:, S.W_APPLIED]
        progressed = applied > self._applied_seen  # synced and applying: retries reset
        self._attempts[progressed] = 0
        self._applied_seen[:] = applied
        for sid in np.flatnonzero(sync[:, S.W_NEED_SNAPSHOT] == S.SNAP_WANTED):
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
            sync[sid, S.W_NEED_SNAPSHOT] = S.SNAP_IN_FLIGHT
            self._attempts[sid] += 1
            self._due[sid] = now_ns + min(100 << int(self._attempts[sid]), 5_000) * 1_000_000
            self._pool.submit(self._fetch, self._generation, int(sid), url)
        while self.st[OUT_POS] == self.st[OUT_N]:
            try:
                generation, sid, body, t = self._results.get_nowait()
            except queue.Empty:
                break
            if generation != self._generation:
                continue  # fetched for a connection that is gone: its stream is not ours
            if body is None:
                self.snapshot_failures += 1
                if sync[sid, S.W_NEED_SNAPSHOT] == S.SNAP_IN_FLIGHT:
                    sync[sid, S.W_NEED_SNAPSHOT] = S.SNAP_WANTED  # retried when due
                continue
            c = self.core
            b = np.frombuffer(body, np.uint8)
            inject(b, 0, len(b), t, sid, c.hdr, c.lv, c.keys, c.lens, c.grid, c.sync, c.pend,
                   c.scratch, c.out, c.out_raw, c.stats, self.md.ctl, self.md.stamps,
                   self.md_words, self.st)

    def _fetch(self, generation: int, sid: int, url: str) -> None:
        try:
            body, t = rest.fetch(url)
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
        out["warm_passes"] = int(self.warm[0][warming.PASSES])
        return out

    def publish_counters(self) -> None:
        if not self.counters:
            return
        summary = self.summary()
        for name, word in self._counter_words.items():
            atomic_store(self.counters.words, word, summary[name])
