"""FIX 4.4 initiator session layer: a Sans-I/O core (bytes in, bytes out, no socket).

The owner (``wire.Initiator`` or a test) appends received bytes to ``inbuf`` (advancing
``io[0]["end"]``), calls ``process(now_ns, on_app)`` and ``on_timer(now_ns)``, and writes
whatever ``take_output()`` returns to the wire; ``want_disconnect`` tells it to drop the
connection. Application messages (ExecutionReport, OrderCancelReject) in sequence are
framed and parsed by the jitted ``next_inbound`` with no Python object per message, so a
jitted gateway loop can consume them directly; everything else (admin messages, gaps,
duplicates) comes back to Python, where ``simplefix`` is good enough.

With a ``dialect`` (``binance_spot.BinanceSpot``) the session follows Binance Spot's rules
instead: the clock check, a fresh SenderCompID and reset sequence numbers at every connect,
the Ed25519-signed Logon, XLQ once logged on, and an inbound gap answered by a Logout (the
gateway reconnects and reconciles through REST: Binance resends nothing).

Sequence numbers and the outbound journal live in a ``SessionStore`` on disk. Credentials
come from config/environment (``SessionConfig.from_config``); the password is never
logged, never journaled and hidden from ``repr``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import simplefix
from numba import njit

from pipeline import config as cfgmod
from pipeline.fix import binance_spot
from pipeline.fix import codec as C
from pipeline.fix.binance_spot import BinanceSpot
from pipeline.fix.store import NEXT_IN, SessionStore, take_seq
from pipeline.transport.atomics import load_relaxed, store_relaxed

log = logging.getLogger(__name__)
_GW = cfgmod.defaults("gateway")  # SessionConfig reads [gateway]

# the inbound buffer's window and the liveness times, shared with jitted loops: a
# 1-element record (``io[0]["end"]`` from Python, ``io[0].end`` in numba)
IO = np.dtype([("start", "<i8"), ("end", "<i8"),  # unread bytes: inbuf[start:end]
               ("garbled", "<i8"),  # messages dropped (bad framing/checksum), session life
               ("msg_len", "<i8"),  # length of the K_OTHER message left at start
               ("last_recv", "<i8"), ("last_sent", "<i8"),  # monotonic ns
               ("app_in", "<i8")])  # application messages consumed by the jitted path
# next_inbound() results
K_NONE, K_GARBLED, K_APP, K_OTHER = 0, 1, 2, 3
INBUF_BYTES = 1 << 20
SECOND = 1_000_000_000


class Inbound(NamedTuple):
    """The inbound side as one argument: the receive buffer, its ``IO`` record, the parsed
    field vector and ``codec.parse``'s scratch."""

    buf: np.ndarray
    io: np.ndarray
    fields: np.ndarray
    spans: np.ndarray


def inbound(size: int = INBUF_BYTES) -> Inbound:
    return Inbound(np.zeros(size, np.uint8), np.zeros(1, IO), np.zeros(C.N_FIELDS, np.int64),
                   np.zeros(C.SPAN_WORDS, np.int64))


class State(enum.IntEnum):
    DISCONNECTED = 0
    LOGON_SENT = 1
    ACTIVE = 2
    LOGOUT_SENT = 3


@njit(cache=True, _nrt=False)
def next_inbound(inb, seqs, syms, now_ns):
    """Frame the next inbound message of ``inb`` (``Inbound``); see K_*.

    K_APP: an in-sequence ExecutionReport/OrderCancelReject parsed into ``inb.fields`` and
    consumed (NEXT_IN advanced). K_OTHER: parsed but left for the Python session (length
    in ``io.msg_len``). K_GARBLED: bytes dropped up to the next begin string and counted;
    the sequence gap it leaves is recovered by a ResendRequest.
    """
    io = inb.io[0]
    f = inb.fields
    start = io.start
    end = io.end
    if start >= end:
        return K_NONE
    n = C.frame(inb.buf, start, end)
    if n == C.NEED_MORE:
        return K_NONE
    if n == C.GARBLED:
        io.start = C.resync(inb.buf, start, end)
        io.garbled += 1
        return K_GARBLED
    io.last_recv = now_ns
    C.parse(inb.buf, start, n, syms, f, inb.spans)
    mt = f[C.F_MSG_TYPE]
    if (mt == C.MSG_EXEC_REPORT or mt == C.MSG_CANCEL_REJECT) and \
            f[C.F_SEQ] == load_relaxed(seqs, NEXT_IN):
        store_relaxed(seqs, NEXT_IN, f[C.F_SEQ] + 1)
        io.start = start + n
        io.app_in += 1
        return K_APP
    io.msg_len = n
    return K_OTHER


def utc_timestamp(ns: int) -> str:
    secs, rem = divmod(ns, SECOND)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)) + f".{rem // 1000:06d}"


@dataclass
class SessionConfig:
    sender: str
    target: str
    store_dir: str
    heartbeat_s: int = _GW["heartbeat_s"]
    username: str = _GW["username"]
    password: str = field(default="", repr=False)
    reset_on_logon: bool = _GW["reset_on_logon"]
    logon_timeout_s: float = _GW["logon_timeout_s"]
    logout_timeout_s: float = 2.0
    resend_app: bool = _GW["resend_app"]  # True: answer a ResendRequest with the journaled orders
    # (PossDup); False: gap-fill them too (an order-entry session should not resend stale
    # orders after a reconnect; the OMS reconciles with OrderStatusRequest instead)

    @classmethod
    def from_config(cls, section: dict) -> SessionConfig:
        """``[gateway]`` keys (defaults: ``config.SCHEMA``) plus ``store_dir``; the password
        only through ``password_env``."""
        if "password" in section:
            raise ValueError("put the FIX password in the environment (password_env), "
                             "never in a config file")
        s = _GW | section
        password = cfgmod.secret(s, "password") if s["password_env"] else ""
        # from config, orders are gap-filled by default (resend_app false): after a
        # reconnect a stale order must not reach the market; the OMS reconciles instead
        return cls(sender=s["sender_comp_id"], target=s["target_comp_id"],
                   store_dir=s["store_dir"], heartbeat_s=int(s["heartbeat_s"]),
                   username=s["username"], password=password,
                   reset_on_logon=bool(s["reset_on_logon"]),
                   logon_timeout_s=float(s["logon_timeout_s"]),
                   resend_app=bool(s["resend_app"]))


@dataclass
class SessionCounters:
    garbled: int = 0
    resend_requests_sent: int = 0
    resend_requests_answered: int = 0
    gap_fills_sent: int = 0
    messages_resent: int = 0
    rejects_received: int = 0
    duplicates_ignored: int = 0
    logons: int = 0
    disconnects: int = 0
    test_requests_sent: int = 0


class Session:
    def __init__(self, cfg: SessionConfig, symbols: np.ndarray, grid: np.ndarray,
                 store: SessionStore | None = None, dialect: BinanceSpot | None = None):
        """``dialect``: Binance Spot's session rules (``pipeline.fix.binance_spot``); None
        is standard FIX 4.4."""
        self.cfg = cfg
        self.dialect = dialect
        self.sender = dialect.new_comp_id() if dialect is not None else cfg.sender
        self.app_types = ("8", "9", "XAR", "r") if dialect is not None else ("8", "9")
        self.store = store or SessionStore(cfg.store_dir)
        self.syms = C.symbols(symbols, grid)
        self.inb = inbound()
        self.inbuf, self.io, self.fields = self.inb.buf, self.inb.io, self.inb.fields
        self.comp_ids = C.comp_id_block(self.sender, cfg.target)
        self.state = State.DISCONNECTED
        self.counters = SessionCounters()
        self.events: list[tuple[str, str]] = []  # ("logon"|"refused"|"logout"|..., detail)
        self.want_disconnect: str | None = None
        self.pump: Callable[[int], int] | None = None
        self._out: list[bytes] = []
        self._hb_ns = cfg.heartbeat_s * SECOND
        self._state_since = 0
        self._test_req_at = 0
        self._resend_until = 0  # inbound gap being refilled up to this seq

    # ------------------------------------------------------------------ owner interface
    def on_connected(self, now_ns: int) -> None:
        io = self.io[0]
        garbled = io["garbled"]
        self.io[:] = 0
        io["garbled"] = garbled  # a count over the session's life, not per connection
        io["last_recv"] = io["last_sent"] = now_ns
        self._test_req_at = self._resend_until = 0
        self.want_disconnect = None
        if self.dialect is not None:
            self._binance_logon(now_ns)
            return
        if self.cfg.reset_on_logon:
            self.store.reset()
        pairs: list[tuple[int, str | int]] = [(98, 0), (108, self.cfg.heartbeat_s)]
        if self.cfg.reset_on_logon:
            pairs.append((141, "Y"))
        if self.cfg.username:
            pairs.append((553, self.cfg.username))
        if self.cfg.password:
            pairs.append((554, self.cfg.password))
        self._send_admin("A", pairs, now_ns)
        self._set_state(State.LOGON_SENT, now_ns)

    def on_disconnected(self, now_ns: int, reason: str) -> None:
        if self.state != State.DISCONNECTED:
            self.counters.disconnects += 1
            self.events.append(("disconnected", reason))
            log.info("FIX %s->%s disconnected: %s", self.cfg.sender, self.cfg.target, reason)
        self._set_state(State.DISCONNECTED, now_ns)
        self._out.clear()
        self.want_disconnect = None

    def logout(self, now_ns: int, text: str = "") -> None:
        if self.state == State.ACTIVE:
            self._send_admin("5", [(58, text)] if text else [], now_ns)
            self._set_state(State.LOGOUT_SENT, now_ns)
        elif self.state == State.LOGON_SENT:
            self._drop("logout before logon completed")

    def take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def compact(self) -> None:
        """Move unread bytes to the front of ``inbuf`` before the next read."""
        io = self.io[0]
        s, e = int(io["start"]), int(io["end"])
        if s:
            self.inbuf[: e - s] = self.inbuf[s:e]
            io["start"], io["end"] = 0, e - s

    def free_space(self) -> memoryview:
        self.compact()
        return memoryview(self.inbuf)[int(self.io[0]["end"]):]

    def received(self, n: int) -> None:
        self.io[0]["end"] += n

    def feed(self, data: bytes) -> None:
        """Append received bytes (tests and simple shells)."""
        space = self.free_space()
        if len(data) > len(space):
            self._drop("inbound buffer overflow")
            return
        space[: len(data)] = data
        self.received(len(data))

    @property
    def next_out(self) -> int:
        return self.store.next_out

    @property
    def next_in(self) -> int:
        return self.store.next_in

    def next_seq(self) -> int:
        """Claim an outbound MsgSeqNum for an application message (cold-path callers)."""
        return int(take_seq(self.store.words))

    def sent_app(self, now_ns: int) -> None:
        self.io[0]["last_sent"] = now_ns

    # ------------------------------------------------------------------ inbound
    def process(self, now_ns: int, on_app: Callable[[np.ndarray, np.ndarray], None] | None
                = None) -> int:
        """Handle every complete inbound message; returns how many were handled.

        If ``pump`` is set (a jitted consumer, see ``orders.flow.pump_inbound``), runs of
        in-sequence application messages are consumed there without returning to Python;
        ``on_app`` then only sees the rare ones that come through the Python path."""
        handled = 0
        while self.want_disconnect is None:
            if self.pump is not None:
                n = self.pump(now_ns)
                if n < 0:  # the consumer is blocked (backpressure): leave the bytes queued
                    handled += -1 - n
                    break
                if n:
                    handled += n
                    self._gap_refilled()
            kind = next_inbound(self.inb, self.store.words, self.syms, now_ns)
            if kind == K_NONE:
                break
            handled += 1
            if kind == K_APP:
                if on_app is not None:
                    on_app(self.fields, self.inbuf)
                self._gap_refilled()
            elif kind == K_OTHER:
                io = self.io[0]
                s, n = int(io["start"]), int(io["msg_len"])
                raw = self.inbuf[s: s + n].tobytes()
                io["start"] = s + n
                self._handle(raw, now_ns, on_app)
        garbled = int(self.io[0]["garbled"])
        if garbled != self.counters.garbled:
            log.warning("FIX: dropped %d garbled inbound message(s) (bad framing/checksum)",
                        garbled - self.counters.garbled)
            self.counters.garbled = garbled
        return handled

    def _handle(self, raw: bytes, now_ns: int, on_app) -> None:
        parser = simplefix.FixParser()
        parser.append_buffer(raw)
        m = parser.get_message()
        msg_type = m.get(35).decode()
        seq = int(m.get(34) or 0)
        poss_dup = m.get(43) == b"Y"
        expected = self.next_in
        if msg_type == "A":
            self._on_logon(m, seq, expected, now_ns)
            return
        if msg_type == "5":
            self._on_logout(m, now_ns)
            return
        if self.state == State.LOGON_SENT:
            self._drop(f"MsgType {msg_type} before Logon")
            return
        if msg_type == "4" and m.get(123) != b"Y":  # SequenceReset-Reset: ignores 34
            new = int(m.get(36))
            if new >= expected:
                self.store.set_next_in(new)
            self._gap_refilled()
            return
        if seq > expected and self.dialect is not None:  # Binance resends nothing
            self._fatal(f"inbound gap: expected MsgSeqNum {expected}, received {seq}; "
                        "reconnecting to reconcile", now_ns)
            return
        if seq > expected:
            if msg_type == "2":  # answer the peer's resend first, or both sides wait forever
                self._answer_resend(int(m.get(7)), int(m.get(16)), now_ns)
            self._request_resend(expected, seq, now_ns)
            return
        if seq < expected:
            if poss_dup:
                self.counters.duplicates_ignored += 1
                return
            self._fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}",
                        now_ns)
            return
        self.store.set_next_in(seq + 1)
        if msg_type == "0":
            if m.get(112) is not None:
                self._test_req_at = 0
        elif msg_type == "1":
            self._send_admin("0", [(112, m.get(112).decode())], now_ns)
        elif msg_type == "2":
            self._answer_resend(int(m.get(7)), int(m.get(16)), now_ns)
        elif msg_type == "4":  # GapFill
            self.store.set_next_in(max(int(m.get(36)), seq + 1))
        elif msg_type == "3":
            self.counters.rejects_received += 1
            self.events.append(("reject", (m.get(58) or b"").decode(errors="replace")))
            if self.dialect is not None:  # which request, and Binance's ErrorCode
                self.events.append(("request_rejected", (
                    int(m.get(45) or 0), int(m.get(25016) or 0),
                    (m.get(58) or b"").decode(errors="replace"))))
        elif msg_type in self.app_types and on_app is not None:  # PossDup, XAR, r
            on_app(self.fields, self.inbuf)
        elif msg_type == "XLR" and self.dialect is not None:
            self.events.append(("limits", binance_spot.parse_limits(m)))
        elif msg_type == "B":
            self.events.append(("news", (m.get(148) or b"").decode(errors="replace")))
        self._gap_refilled()

    def _on_logon(self, m, seq: int, expected: int, now_ns: int) -> None:
        if self.state != State.LOGON_SENT:
            self._fatal("unexpected Logon", now_ns)
            return
        if seq < expected:
            self._fatal(f"MsgSeqNum too low on Logon, expecting {expected} but received {seq}",
                        now_ns)
            return
        self._set_state(State.ACTIVE, now_ns)
        self.counters.logons += 1
        self.events.append(("logon", ""))
        if self.dialect is not None:  # the reply (XLR) sizes the gateway's rate limits
            out_seq = self.next_seq()
            self.store.record(out_seq, None)
            self._out.append(self.dialect.limit_query(
                self.sender, out_seq, binance_spot.sending_time(time.time_ns())))
        if seq > expected and self.dialect is not None:
            self._fatal(f"inbound gap on Logon: expected MsgSeqNum {expected}, received "
                        f"{seq}", now_ns)
        elif seq > expected:
            self._request_resend(expected, seq, now_ns)
        else:
            self.store.set_next_in(seq + 1)

    def _on_logout(self, m, now_ns: int) -> None:
        text = (m.get(58) or b"").decode(errors="replace")
        if self.state == State.LOGON_SENT:
            self.events.append(("refused", text))
            self._drop(f"logon refused: {text}")
            return
        seq = int(m.get(34) or 0)
        if seq == self.next_in:
            self.store.set_next_in(seq + 1)
        if self.state == State.ACTIVE:
            self._send_admin("5", [], now_ns)
        self.events.append(("logout", text))
        self._drop(f"logout: {text}" if text else "logout")

    # ------------------------------------------------------------------ resend
    def _request_resend(self, begin: int, seen: int, now_ns: int) -> None:
        if self._resend_until >= begin:
            return  # already asked; the peer is refilling the gap
        self._resend_until = seen
        self.counters.resend_requests_sent += 1
        self._send_admin("2", [(7, begin), (16, 0)], now_ns)

    def _gap_refilled(self) -> None:
        if self._resend_until and self.next_in > self._resend_until:
            self._resend_until = 0

    def _answer_resend(self, begin: int, end: int, now_ns: int) -> None:
        """Resend journaled application messages (PossDupFlag=Y, OrigSendingTime) and
        replace everything else (admin messages, or all if ``resend_app`` is off) with
        SequenceReset-GapFill runs."""
        self.counters.resend_requests_answered += 1
        last = self.next_out - 1
        end = last if end == 0 or end > last else end
        gap_from = 0
        for seq in range(begin, end + 1):
            raw = self.store.lookup(seq) if self.cfg.resend_app else None
            if raw is None:
                gap_from = gap_from or seq
                continue
            if gap_from:
                self._gap_fill(gap_from, seq, now_ns)
                gap_from = 0
            self._out.append(self._possdup(raw, now_ns))
            self.counters.messages_resent += 1
        if gap_from:
            self._gap_fill(gap_from, end + 1, now_ns)
        self.io[0]["last_sent"] = now_ns

    def _gap_fill(self, seq: int, new_seq: int, now_ns: int) -> None:
        self.counters.gap_fills_sent += 1
        self._out.append(self._build("4", [(123, "Y"), (36, new_seq)], seq, now_ns,
                                     poss_dup=True))

    def _possdup(self, raw: bytes, now_ns: int) -> bytes:
        parser = simplefix.FixParser()
        parser.append_buffer(raw)
        old = parser.get_message()
        m = simplefix.FixMessage()
        for tag, value in old.pairs:
            t = int(tag)
            if t in (9, 10, 43, 52, 122):
                continue
            m.append_pair(t, value, header=t in (8, 35, 49, 56, 34))
        m.append_pair(43, "Y", header=True)
        m.append_pair(52, utc_timestamp(time.time_ns()), header=True)
        m.append_pair(122, old.get(52), header=True)
        return m.encode()

    # ------------------------------------------------------------------ timers
    def on_timer(self, now_ns: int) -> None:
        st = self.state
        if st == State.LOGON_SENT and now_ns - self._state_since > \
                self.cfg.logon_timeout_s * SECOND:
            self._drop("logon timeout")
        elif st == State.LOGOUT_SENT and now_ns - self._state_since > \
                self.cfg.logout_timeout_s * SECOND:
            self._drop("logout timeout")
        elif st == State.ACTIVE:
            if self._test_req_at and now_ns - self._test_req_at > self._hb_ns:
                self._drop("heartbeat timeout: no answer to TestRequest")
                return
            if not self._test_req_at and \
                    now_ns - int(self.io[0]["last_recv"]) > self._hb_ns * 6 // 5:
                self._test_req_at = now_ns
                self.counters.test_requests_sent += 1
                self._send_admin("1", [(112, f"TEST{now_ns}")], now_ns)
            elif now_ns - int(self.io[0]["last_sent"]) >= self._hb_ns:
                self._send_admin("0", [], now_ns)
            if self._test_req_at and int(self.io[0]["last_recv"]) > self._test_req_at:
                self._test_req_at = 0  # anything received proves the peer is alive

    # ------------------------------------------------------------------ helpers
    def _build(self, msg_type: str, pairs, seq: int, now_ns: int,
               poss_dup: bool = False) -> bytes:
        if self.dialect is not None:
            return self.dialect.build(msg_type, pairs, self.sender, seq,
                                      binance_spot.sending_time(time.time_ns()))
        m = simplefix.FixMessage()
        m.append_pair(8, "FIX.4.4", header=True)
        m.append_pair(35, msg_type, header=True)
        m.append_pair(49, self.sender, header=True)
        m.append_pair(56, self.cfg.target, header=True)
        m.append_pair(34, seq, header=True)
        if poss_dup:
            m.append_pair(43, "Y", header=True)
        m.append_pair(52, utc_timestamp(time.time_ns()), header=True)  # wall clock, not now_ns
        for tag, value in pairs:
            m.append_pair(tag, value)
        return m.encode()

    def _send_admin(self, msg_type: str, pairs, now_ns: int) -> None:
        seq = self.next_seq()
        self.store.record(seq, None)  # admin: answered with a gap fill, never resent
        self._out.append(self._build(msg_type, pairs, seq, now_ns))
        self.io[0]["last_sent"] = now_ns

    def _fatal(self, reason: str, now_ns: int) -> None:
        log.error("FIX %s->%s: %s", self.cfg.sender, self.cfg.target, reason)
        self.events.append(("error", reason))
        self._send_admin("5", [(58, reason)], now_ns)
        self._drop(reason)

    def _drop(self, reason: str) -> None:
        if self.want_disconnect is None:
            self.want_disconnect = reason

    def _binance_logon(self, now_ns: int) -> None:
        """Binance: the clock check, a fresh SenderCompID (a restarted or reconnecting
        gateway is never locked out by the last one), sequence numbers reset, the signed
        Logon."""
        refusal = self.dialect.pre_logon() if self.dialect.pre_logon is not None else None
        if refusal:
            log.error("FIX: not logging on to Binance: %s", refusal)
            self.events.append(("refused", refusal))
            self._drop(refusal)
            return
        self.sender = self.dialect.new_comp_id()
        self.comp_ids[:] = C.comp_id_block(self.sender, self.cfg.target)
        self.store.reset()
        seq = self.next_seq()
        self.store.record(seq, None)
        self._out.append(self.dialect.logon(self.sender, seq,
                                            binance_spot.sending_time(time.time_ns()),
                                            self.cfg.heartbeat_s))
        self.io[0]["last_sent"] = now_ns
        self._set_state(State.LOGON_SENT, now_ns)

    def _set_state(self, state: State, now_ns: int) -> None:
        self.state = state
        self._state_since = now_ns
