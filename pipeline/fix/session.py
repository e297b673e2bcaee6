"""FIX 4.4 initiator session layer: a Sans-I/O core (bytes in, bytes out, no socket).

The owner (``wire.Initiator`` or a test) appends received bytes to ``inbuf`` (advancing
``io[0]["end"]``), calls ``process(now_ns, on_app)`` and ``on_timer(now_ns)``, and writes
whatever ``take_output()`` returns to the wire; ``want_disconnect`` tells it to drop the
connection. Application messages (ExecutionReport, OrderCancelReject) in sequence are
framed and parsed by the jitted ``next_inbound`` with no Python object per message, so a
jitted gateway loop can consume them directly; everything else (admin messages, gaps,
duplicates, and any message with a field problem) comes back to Python, which answers
what it cannot use as FIX says (``pipeline.fix.rejects``) and never raises.

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
from pipeline.fix import rejects as RJ
from pipeline.fix.binance_spot import BinanceSpot
from pipeline.fix.rejects import RejectReason as RR
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
               ("app_in", "<i8"),  # application messages consumed by the jitted path
               ("skipping", "<i8")])  # 1 while dropping one garbled run (counted once)
# next_inbound() results
K_NONE, K_GARBLED, K_APP, K_OTHER = 0, 1, 2, 3
INBUF_BYTES = 1 << 20
SECOND = 1_000_000_000


class Inbound(NamedTuple):
    """The inbound side as one argument: the receive buffer, its ``IO`` record, the parsed
    field vector, ``codec.parse``'s scratch and ``peer``: the CompIDs every inbound message
    must carry (``SENDER\x01TARGET``, the venue's then ours; empty: not checked)."""

    buf: np.ndarray
    io: np.ndarray
    fields: np.ndarray
    spans: np.ndarray
    peer: np.ndarray


def inbound(size: int = INBUF_BYTES, sender: str = "", target: str = "") -> Inbound:
    """The inbound side; ``sender``/``target``: the venue's CompID and ours, as inbound
    messages carry them in 49/56 (empty: not checked)."""
    peer = f"{sender}\x01{target}".encode() if sender else b""
    return Inbound(np.zeros(size, np.uint8), np.zeros(1, IO), np.zeros(C.N_FIELDS, np.int64),
                   np.zeros(C.SPAN_WORDS, np.int64), np.frombuffer(peer, np.uint8).copy())


class State(enum.IntEnum):
    DISCONNECTED = 0
    LOGON_SENT = 1
    ACTIVE = 2
    LOGOUT_SENT = 3


@njit(cache=True, _nrt=False)
def comp_ids_match(buf, f, peer):
    """49 and 56 of the parsed message equal ``peer`` (``SENDER\x01TARGET``)."""
    if peer.shape[0] == 0:
        return True
    ls = 0
    while peer[ls] != C.SOH:
        ls += 1
    lt = peer.shape[0] - ls - 1
    if f[C.F_SENDER_LEN] != ls or f[C.F_TARGET_LEN] != lt:
        return False
    a, b = f[C.F_SENDER_AT], f[C.F_TARGET_AT]
    for i in range(ls):
        if buf[a + i] != peer[i]:
            return False
    for i in range(lt):
        if buf[b + i] != peer[ls + 1 + i]:
            return False
    return True


@njit(cache=True, _nrt=False)
def next_inbound(inb, seqs, syms, now_ns):
    """Frame the next inbound message of ``inb`` (``Inbound``); see K_*.

    K_APP: an in-sequence ExecutionReport/OrderCancelReject, every field usable and the
    CompIDs ours, parsed into ``inb.fields`` and consumed (NEXT_IN advanced). K_OTHER:
    parsed but left for the Python session (length in ``io.msg_len``): admin messages,
    gaps, and any report with a problem (the session rejects it and reconciles).
    K_GARBLED: bytes dropped up to the next begin string, counted once per garbled run;
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
        # one count per message: a run's tail (kept for a resync) is not another one, but a
        # second bad message right after the first is
        if io.skipping == 0 or C.at_begin(inb.buf, start, end):
            io.garbled += 1
        io.start = C.resync(inb.buf, start, end)
        io.skipping = 1
        return K_GARBLED
    io.skipping = 0
    io.last_recv = now_ns
    err = C.parse(inb.buf, start, n, syms, f, inb.spans)
    if err == C.E_NONE and not comp_ids_match(inb.buf, f, inb.peer):
        f[C.F_ERROR] = C.E_COMP_ID
        err = C.E_COMP_ID
    mt = f[C.F_MSG_TYPE]
    if (mt == C.MSG_EXEC_REPORT or mt == C.MSG_CANCEL_REJECT) and err == C.E_NONE and \
            f[C.F_SEQ] == load_relaxed(seqs, NEXT_IN):
        store_relaxed(seqs, NEXT_IN, f[C.F_SEQ] + 1)
        io.start = start + n
        io.app_in += 1
        return K_APP
    io.msg_len = n
    return K_OTHER


APP_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A", "8", "9", "j"})
# Binance Spot's own: AmendReject, MassCancelReport, LimitResponse, News
BINANCE_TYPES = frozenset({"XAR", "r", "XLR", "B"})


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
    rejects_sent: int = 0  # our session Rejects (35=3) of unusable inbound messages
    fatal: int = 0  # Logouts we sent because the venue's input broke the session
    bad_reports: int = 0  # application messages rejected (each also asks for a reconcile)
    reconciles_asked: int = 0  # reconciles asked for by unusable reports or gap fills
    gap_fills_received: int = 0  # GapFills (and Resets skipping ahead): each may hide reports
    order_rejects: int = 0  # session/business Rejects (35=3, 35=j) of our orders
    bad: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RJ.KINDS, 0))


class Session:
    def __init__(self, cfg: SessionConfig, symbols: np.ndarray, grid: np.ndarray,
                 store: SessionStore | None = None, dialect: BinanceSpot | None = None):
        """``dialect``: Binance Spot's session rules (``pipeline.fix.binance_spot``); None
        is standard FIX 4.4."""
        self.cfg = cfg
        self.dialect = dialect
        self.sender = dialect.new_comp_id() if dialect is not None else cfg.sender
        # application messages the owner's ``on_app`` books (the OMS's reports)
        self.report_types = ("8", "9", "XAR", "r") if dialect is not None else ("8", "9")
        self.store = store or SessionStore(cfg.store_dir)
        self.syms = C.symbols(symbols, grid)
        self.inb = inbound(sender=cfg.target, target=self.sender)
        self.inbuf, self.io, self.fields = self.inb.buf, self.inb.io, self.inb.fields
        self.comp_ids = C.comp_id_block(self.sender, cfg.target)
        self.state = State.DISCONNECTED
        self.counters = SessionCounters()
        self.events: list[tuple[str, str]] = []  # ("logon"|"refused"|"logout"|..., detail)
        self.want_disconnect: str | None = None
        self.pump: Callable[[int], int] | None = None
        # called at once when input may have hidden a fill (unusable report, gap fill): the
        # owner stops trading and reconciles; also queued as a ("reconcile", why) event
        self.on_reconcile: Callable[[str], None] | None = None
        # MsgTypes handled here (a dialect adds its own)
        self.app_types = APP_TYPES | BINANCE_TYPES if dialect is not None else APP_TYPES
        # a reconcile (OrderStatusRequests) started after inbound seq N was seen covers
        # whatever messages up to N hid: the owner sets ``reconciled_upto`` when it starts one
        self.reconciled_upto = 0
        self.reconcile_wanted_upto = 0
        self._high_seen = 0
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
        self.reconciled_upto = self.reconcile_wanted_upto = self._high_seen = 0
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
        """One framed message the jitted path left to Python. Whatever the venue sent, this
        answers as FIX says (Reject, Logout, resend) and never raises."""
        try:
            self._dispatch(raw, now_ns, on_app)
        except Exception as e:  # a bug here must not kill the gateway: count, log, drop
            log.exception("FIX %s->%s: error handling an inbound message",
                          self.cfg.sender, self.cfg.target)
            self._problem("internal", str(e))
            self._fatal(f"internal error handling an inbound message: {e}", now_ns)

    def _dispatch(self, raw: bytes, now_ns: int, on_app) -> None:
        fields = RJ.pairs(raw)
        m = RJ.first_of(fields)
        if len(fields) < 3 or fields[2][0] != 35 or not fields[2][1]:
            self._problem("no_msg_type", "message without MsgType(35) as its third field: "
                          "dropped as garbled")
            self.io[0]["garbled"] += 1  # FIX: garbled, ignored; a resend recovers the seq
            return
        msg_type = fields[2][1].decode(errors="replace")
        err, err_tag = int(self.fields[C.F_ERROR]), int(self.fields[C.F_ERROR_TAG])
        seq = RJ.whole(m.get(34))
        if seq is None:
            self._problem("bad_seq_num", f"MsgSeqNum(34) missing or invalid in {msg_type}")
            self._fatal("MsgSeqNum(34) missing or invalid", now_ns)
            return
        poss_dup = m.get(43) == b"Y"
        expected = self.next_in
        self._high_seen = max(self._high_seen, seq)
        comp_ok = m.get(49) == self.cfg.target.encode() and \
            m.get(56) == self.sender.encode()
        if msg_type == "A":
            if not comp_ok:
                err, err_tag = C.E_COMP_ID, 49
            if err:
                self._problem(RJ.OF_ERROR[err][1], f"Logon: {self._what(err, err_tag)}")
                self._fatal(f"Logon: {self._what(err, err_tag)}", now_ns)
                return
            self._on_logon(m, seq, expected, now_ns)
            return
        if msg_type == "5":
            self._on_logout(m, now_ns)
            return
        if self.state == State.LOGON_SENT:
            self._drop(f"MsgType {msg_type} before Logon")
            return
        if not comp_ok:  # FIX: Reject, consume, then Logout
            if seq == expected:
                self.store.set_next_in(seq + 1)
            self._reject(seq, RR.COMP_ID_PROBLEM, 49, "comp_id",
                         f"CompID problem: expected 49={self.cfg.target} 56={self.sender}",
                         now_ns)
            self._fatal("CompID problem", now_ns)
            return
        if msg_type == "4" and m.get(123) != b"Y":  # SequenceReset-Reset: ignores 34
            self._on_reset(seq, m, err, err_tag, expected, now_ns)
            return
        if seq > expected and self.dialect is not None:  # Binance resends nothing
            self._fatal(f"inbound gap: expected MsgSeqNum {expected}, received {seq}; "
                        "reconnecting to reconcile", now_ns)
            return
        if seq > expected:
            if msg_type == "2" and not err and self._resend_range(m) is not None:
                # answer the peer's resend first, or both sides wait forever
                self._answer_resend(*self._resend_range(m), now_ns)
            self._request_resend(expected, seq, now_ns)
            return
        if seq < expected:
            if poss_dup:
                self.counters.duplicates_ignored += 1
                return
            self._fatal(f"MsgSeqNum too low, expecting {expected} but received {seq}",
                        now_ns)
            return
        self.store.set_next_in(seq + 1)  # in sequence: consumed, usable or not
        if err and msg_type in self.app_types:
            reason, kind = RJ.OF_ERROR[err]
            self._reject(seq, reason, err_tag, kind, f"{self._what(err, err_tag)} in "
                         f"MsgType {msg_type}", now_ns)
            if msg_type in self.report_types:  # it may have carried a fill (or an order's
                # state): never just dropped
                self.counters.bad_reports += 1
                self._want_reconcile(f"unusable report {seq} ({kind})", seq)
        elif msg_type == "0":
            if m.get(112) is not None:
                self._test_req_at = 0
        elif msg_type == "1":
            if m.get(112) is None:
                self._reject_admin(seq, 112, "TestRequest without TestReqID(112)", now_ns,
                                   RR.REQUIRED_TAG_MISSING)
            else:
                self._send_admin("0", [(112, m[112].decode(errors="replace"))], now_ns)
        elif msg_type == "2":
            rng = self._resend_range(m)
            if rng is None:
                tag = 7 if RJ.whole(m.get(7)) is None else 16
                self._reject_admin(seq, tag, "ResendRequest needs BeginSeqNo(7) >= 1 and "
                                   "EndSeqNo(16) 0 or >= it", now_ns, self._bad_value(m, tag))
            else:
                self._answer_resend(*rng, now_ns)
        elif msg_type == "4":  # GapFill
            new = RJ.whole(m.get(36))
            if new is None or new <= seq:
                self._reject_admin(seq, 36, f"GapFill NewSeqNo(36) must be above {seq}",
                                   now_ns, self._bad_value(m, 36))
            else:
                self.store.set_next_in(new)
                self.counters.gap_fills_received += 1
                self._want_reconcile(f"gap fill over {seq}..{new - 1}", new - 1)
        elif msg_type == "3":
            self.counters.rejects_received += 1
            text = (m.get(58) or b"").decode(errors="replace")
            self.events.append(("reject", text))
            if self.dialect is not None:  # the gateway owns it: it traces RefSeqNum to the
                # request (XCN, XAK, q too) with Binance's ErrorCode (orders.refusals)
                self.events.append(("request_rejected", (
                    RJ.whole(m.get(45)) or 0, int(self.fields[C.F_ERROR_CODE]), text)))
            else:
                self._order_rejected(m, None, on_app, text)
        elif msg_type == "j":  # BusinessMessageReject
            text = (m.get(58) or b"").decode(errors="replace")
            self.events.append(("business_reject", text))
            self._order_rejected(m, m.get(372), on_app, text)
        elif msg_type in self.report_types and on_app is not None:  # PossDup, XAR, r
            on_app(self.fields, self.inbuf)
        elif msg_type == "XLR" and self.dialect is not None:
            self.events.append(("limits", binance_spot.parse_limits(fields)))
        elif msg_type == "B":
            self.events.append(("news", (m.get(148) or b"").decode(errors="replace")))
        self._gap_refilled()

    @staticmethod
    def _what(err: int, tag: int) -> str:
        return f"{RJ.OF_ERROR[err][1].replace('_', ' ')}" + (f" (tag {tag})" if tag else "")

    @staticmethod
    def _bad_value(m: dict, tag: int) -> RR:
        """Why ``m``'s ``tag`` is unusable: missing, not a number, or out of range."""
        v = m.get(tag)
        if v is None:
            return RR.REQUIRED_TAG_MISSING
        return RR.VALUE_OUT_OF_RANGE if v.isdigit() else RR.INCORRECT_DATA_FORMAT

    @staticmethod
    def _resend_range(m: dict) -> tuple[int, int] | None:
        begin, end = RJ.whole(m.get(7)), RJ.whole(m.get(16), low=0)
        if begin is None or end is None or (end and end < begin):
            return None
        return begin, end

    def _on_reset(self, seq: int, m: dict, err: int, err_tag: int, expected: int,
                  now_ns: int) -> None:
        """SequenceReset-Reset: NewSeqNo below the expected one is refused (Reject, 373=5,
        NEXT_IN kept); above it, the skipped messages may have been reports: reconcile."""
        new = RJ.whole(m.get(36))
        if err or new is None:
            self._reject_admin(seq, 36, "SequenceReset needs NewSeqNo(36)", now_ns,
                               self._bad_value(m, 36))
            return
        if new < expected:
            self._reject(seq, RR.VALUE_OUT_OF_RANGE, 36, "seq_reset_lower",
                         f"SequenceReset NewSeqNo {new} below the expected {expected}", now_ns)
            return
        if new > expected:
            self.counters.gap_fills_received += 1
            self._want_reconcile(f"sequence reset skipped {expected}..{new - 1}", new - 1)
        self.store.set_next_in(new)
        self._gap_refilled()

    def _order_rejected(self, m: dict, ref_type: bytes | None, on_app, text: str) -> None:
        """A session or business Reject of one of our orders: the order goes to the state
        a venue reject would give it, and the strategy gets the report."""
        ref = RJ.whole(m.get(45))
        ours = self.store.lookup(ref) if ref is not None else None
        by_id = RJ.whole(m.get(379)) if ours is None and ref_type == b"D" else None
        reason = RJ.whole(m.get(380 if ref_type is not None else 373), low=0)
        f = RJ.order_reject(ours, by_id or 0, RR.OTHER if reason is None else reason)
        if f is None:
            return
        self.counters.order_rejects += 1
        log.info("FIX %s->%s: order %d rejected by the venue's session: %s", self.cfg.sender,
                 self.cfg.target, f[C.F_CL_ORD_ID], text)
        if on_app is not None:
            on_app(f, self.inbuf)

    def _problem(self, kind: str, text: str) -> None:
        """Count one unusable input of ``kind``; log the first of each kind (then debug)."""
        n = self.counters.bad.get(kind, 0)
        self.counters.bad[kind] = n + 1
        (log.warning if n == 0 else log.debug)(
            "FIX %s->%s: %s%s", self.cfg.sender, self.cfg.target, text,
            "" if n else f" (first '{kind}'; counted as fix.bad.{kind}, logged once)")

    def _reject(self, ref_seq: int, reason: int, tag: int, kind: str, text: str,
                now_ns: int) -> None:
        """Session Reject (35=3) of inbound message ``ref_seq``."""
        self._problem(kind, f"rejected message {ref_seq}: {text}")
        self.counters.rejects_sent += 1
        pairs: list[tuple[int, str | int]] = [(45, ref_seq)]
        if tag > 0:
            pairs.append((371, tag))
        pairs += [(373, int(reason)), (58, text)]
        self._send_admin("3", pairs, now_ns)

    def _reject_admin(self, seq: int, tag: int, text: str, now_ns: int,
                      reason: int = RR.VALUE_OUT_OF_RANGE) -> None:
        self._reject(seq, reason, tag, "bad_admin", text, now_ns)

    @property
    def seen_upto(self) -> int:
        """The highest inbound MsgSeqNum seen: the venue had sent all up to it."""
        return max(self._high_seen, self.next_in - 1)

    def _want_reconcile(self, why: str, upto: int) -> None:
        """Messages up to ``upto`` may have hidden a fill: ask the owner to reconcile,
        unless a reconcile started after they were sent covers them already."""
        if upto <= self.reconciled_upto:
            return
        self.reconcile_wanted_upto = max(self.reconcile_wanted_upto, upto)
        self.counters.reconciles_asked += 1
        log.info("FIX %s->%s: %s: reconcile", self.cfg.sender, self.cfg.target, why)
        self.events.append(("reconcile", why))
        if self.on_reconcile is not None:
            self.on_reconcile(why)

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
        seq = RJ.whole(m.get(34))
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
        self.counters.fatal += 1
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
        self.inb.peer[:] = np.frombuffer(f"{self.cfg.target}\x01{self.sender}".encode(),
                                         np.uint8)  # inbound 56 is the fresh CompID
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
