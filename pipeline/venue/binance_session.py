"""Binance Spot's FIX session rules for the simulator's acceptor (``hft sim --dialect binance``).

The Sans-I/O ``session.AcceptorSession`` consults this dialect (``host.dialect``) where
Binance differs from FIX 4.4 (fix-api.md); everything else stays the standard session:

- Logon: ``56=SPOT``; SenderCompID ``^[A-Za-z0-9-_]{1,8}$``, unique among the account's live
  sessions, locked for 2 x HeartBtInt after a session ended without a Logout; the API key
  (553) registered; RawData(96) an Ed25519 signature of ``A␁49␁56␁34␁52`` by its public
  key, RawDataLength(95) its length; ``141=Y`` and ``34=1`` (sequences reset every logon);
  MessageHandling(25035) 1 or 2; HeartBtInt in [5, 60]; SendingTime within RecvWindow
  (25000, default 5000 ms, max 60000) and at most 1 s ahead of the server; connection
  attempts per account (15 per 30 s) and concurrent sessions (10). A refused Logon gets a
  Reject(3) with ErrorCode(25016) and Text(58) as errors.md words them, then a Logout,
  and a log line saying why.
- After logon: a MsgSeqNum that is not the next one is rejected (-1179; no resend, no gap
  fill); ResendRequest(2), SequenceReset(4), OrderCancelReplaceRequest(G) and
  OrderStatusRequest(H) are rejected (-1020); a second Logon (-1176); SendingTime is
  checked when the message carries a RecvWindow; more than ``message_limit`` messages in
  ``message_window_s`` (10,000 per 10 s) -> an immediate Logout.
- Maintenance (the ``fix_maintenance_s`` fault): every session live at that moment gets a
  News(B) every ``news_interval_s`` (10 s) counting down, "Your connection is about to be
  closed. Please reconnect." at the last interval, then a Logout and the close. Sessions
  that log on afterwards (the client's new ones) are not affected.

The order-entry messages are ``binance_orders.BinanceOrders``'s.
"""

from __future__ import annotations

import collections
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.binance.keys import verify_b64
from pipeline.config import SCHEMA
from pipeline.venue.binance_orders import BinanceOrders, utc_us
from pipeline.venue.binance_rules import err
from pipeline.venue.fixcodec import Message, encode
from pipeline.venue.session import AcceptorSession, SessionReject

log = logging.getLogger("venue.fix.binance")

COMP_ID = "SPOT"  # the venue's CompID: TargetCompID(56) of every client message
COMP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,8}$")
API_KEY_RE = re.compile(r"^[A-Za-z0-9]{64}$")
DEFAULT_RECV_WINDOW_MS = 5000.0
MAX_RECV_WINDOW_MS = 60000.0
AHEAD_MS = 1000.0  # SendingTime may be this far ahead of the server's clock
HEARTBEAT_RANGE = (5, 60)
UNSUPPORTED = {"2": "Resend requests are currently not supported.",
               "4": "This operation is not supported.",
               "G": "This operation is not supported.",
               "H": "This operation is not supported."}
# SessionRejectReason(373), fix-api.md Reject<3>
REQUIRED_TAG_MISSING, VALUE_INCORRECT, SIGNATURE_PROBLEM, SENDINGTIME_PROBLEM, OTHER = \
    1, 5, 8, 10, 99
LOGON_REQUIRED = (98, 108, 95, 96, 141, 553, 25035)


_LIMITS = SCHEMA["sim"]["binance"]


@dataclass
class Limits:
    """``[sim.binance]``: the venue's limits (fix-api.md "Limits"; smaller in tests)."""

    message_limit: int = _LIMITS["message_limit"]  # per session per message window
    message_window_s: float = _LIMITS["message_window_s"]
    connect_limit: int = _LIMITS["connect_limit"]  # Logon attempts per account per window
    connect_window_s: float = _LIMITS["connect_window_s"]
    max_connections: int = _LIMITS["max_connections"]  # live sessions per account
    order_limit: int = _LIMITS["order_limit"]  # new orders per account per order window
    order_window_s: int = _LIMITS["order_window_s"]
    news_interval_s: float = _LIMITS["news_interval_s"]  # maintenance News period

    @staticmethod
    def window(seconds: float) -> str:
        return f"{seconds:g}s"


@dataclass
class State:
    """Per connection: the message-limit window and a maintenance countdown."""

    messages: collections.deque = field(default_factory=collections.deque)
    close_at: float = 0.0  # monotonic; 0: no maintenance countdown
    next_news: float = 0.0
    response_mode: int = 1


def sending_time_ms(text: str) -> float | None:
    """UTCTIMESTAMP (seconds, milliseconds or microseconds) -> epoch milliseconds."""
    head, _, frac = text.partition(".")
    try:
        t = datetime.strptime(head, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    if frac and (not frac.isdigit() or len(frac) not in (3, 6)):
        return None
    return t.timestamp() * 1000 + (int(frac) / 10 ** (len(frac) - 3) if frac else 0)


def signature_payload(msg: Message) -> bytes:
    """What a Logon's RawData(96) signs: MsgType, SenderCompID, TargetCompID, MsgSeqNum,
    SendingTime joined by SOH (fix-api.md "How to sign Logon<A> request")."""
    return "\x01".join(msg.get(t, "") for t in (35, 49, 56, 34, 52)).encode("latin-1")


class BinanceDialect:
    """The session rules of Binance Spot FIX order entry, for one ``FixAcceptor``."""

    logout_ack = [(58, "Logout acknowledgment.")]

    def __init__(self, acceptor, limits: Limits):
        self.acceptor = acceptor
        self.limits = limits
        self.stats = acceptor.stats
        self.by_key = {a.api_key: a for a in acceptor.cfg.accounts if a.api_key}
        self.locked: dict[str, float] = {}  # CompID -> monotonic time it is free again
        self.attempts: dict[int, collections.deque] = collections.defaultdict(
            collections.deque)
        self.orders = BinanceOrders(acceptor, self)
        self.uuid = str(uuid.uuid4())
        self.clock = time.time  # the server's wall clock (seconds) for SendingTime checks

    # ------------------------------------------------------------------ session hooks
    @staticmethod
    def sending_time() -> str:
        """SendingTime(52) of the venue's messages: microseconds, as Binance writes it."""
        return utc_us()

    def new_state(self, now: float) -> State:
        return State()

    def inbound(self, s: AcceptorSession, msg: Message, now: float) -> bool:
        """Count ``msg`` against the message limit; False (and a Logout) when over it."""
        q, lim = s.rules.messages, self.limits
        q.append(now)
        while q and now - q[0] >= lim.message_window_s:
            q.popleft()
        if len(q) <= lim.message_limit:
            return True
        self.stats["binance_message_limit_logouts"] += 1
        _, text = err("TOO_MANY_MESSAGES", lim.message_limit,
                      lim.window(lim.message_window_s))
        log.warning("%s: message limit: %d messages in %gs; logging out", s.client or "?",
                    len(q), lim.message_window_s)
        if s.logged_on:
            s.logout(text, now)
        else:
            s.close(text)
        return False

    def logon(self, s: AcceptorSession, msg: Message, now: float) -> None:
        problem = self._logon_problem(s, msg, now)
        if problem is not None:
            self.stats["binance_logons_refused"] += 1
            self._refuse(s, msg, problem, now)
            return
        account, hb = s.account, s.hb
        s.store = self.acceptor.store(s.client)
        s.rules.response_mode = int(msg.get(25036, "1") or 1)
        log.info("FIX logon %s (account %s, HeartBtInt %ds, MessageHandling %s)", s.client,
                 account.username, hb, msg.get(25035))
        s.accept_logon(account, float(hb), 1,
                       [(98, 0), (108, hb), (25037, self.uuid)], now)

    def bad_seq(self, s: AcceptorSession, msg: Message, seq: int, now: float) -> None:
        code, text = err("BAD_SEQ_NUM", s.store.next_in)
        self.stats["binance_bad_seq"] += 1
        log.warning("%s: MsgSeqNum %d, expected %d: rejected (no resend on Binance)",
                    s.client, seq, s.store.next_in)
        s.reject(msg, SessionReject(VALUE_INCORRECT, text, 34, code), now)

    def check(self, s: AcceptorSession, msg: Message, now: float) -> None:
        """Refuse (SessionReject) what Binance does not take once logged on."""
        mt = msg.msg_type
        if mt in UNSUPPORTED:
            self.stats[f"binance_unsupported_{mt}"] += 1
            raise SessionReject(OTHER, UNSUPPORTED[mt], 35, err("UNSUPPORTED_OPERATION")[0])
        if mt == "A":
            raise SessionReject(OTHER, err("ALREADY_LOGGED_IN")[1], 35,
                                err("ALREADY_LOGGED_IN")[0])
        if msg.get(49) != s.client:
            raise SessionReject(VALUE_INCORRECT, err("BAD_SENDER_COMPID")[1], 49,
                                err("BAD_SENDER_COMPID")[0])
        if msg.get(25000) is not None:
            problem = self._time_problem(msg, now)
            if problem is not None:
                raise problem

    def timer(self, s: AcceptorSession, now: float) -> None:
        st = s.rules
        if not st.close_at or now < st.next_news:
            return
        left = st.close_at - now
        if left <= 0.001:
            self.stats["binance_maintenance_closed"] += 1
            log.warning("%s: maintenance: closing the session", s.client)
            s.logout("Maintenance: the session is closed. Please reconnect.", now)
            return
        interval = self.limits.news_interval_s
        if left <= interval + 0.001:
            headline = "Your connection is about to be closed. Please reconnect."
            st.next_news = st.close_at
        else:
            headline = f"You'll be disconnected in {round(left)} seconds. Please reconnect."
            st.next_news = now + interval
        self.stats["binance_news_sent"] += 1
        s.send("B", [(148, headline)], now)

    def next_due(self, s: AcceptorSession, now: float) -> float:
        st = s.rules
        return max(st.next_news - now, 0.0) if st.close_at else 3600.0

    def closed(self, s: AcceptorSession) -> None:
        """A logged-on session gone without a Logout locks its CompID for 2 x HeartBtInt."""
        if s.logged_on and not s.clean_logout:
            self.locked[s.client] = time.monotonic() + 2 * s.hb
            self.stats["binance_compid_locked"] += 1
            log.warning("%s: disconnected without Logout: SenderCompID locked for %gs",
                        s.client, 2 * s.hb)

    # ------------------------------------------------------------------ venue actions
    def start_maintenance(self, seconds: float) -> int:
        """The News countdown to every session live now; returns how many."""
        now = time.monotonic()
        live = [s for s in self.acceptor.sessions.values() if s.want_close is None]
        for s in live:
            s.rules.close_at = now + seconds
            s.rules.next_news = now
            s.timer(now)
            self.acceptor.server.flush(s)
        log.warning("maintenance: %d session(s) close in %gs", len(live), seconds)
        return len(live)

    # ------------------------------------------------------------------ logon checks
    def _logon_problem(self, s: AcceptorSession, msg: Message, now: float):
        """None (and ``s.account``, ``s.hb`` set) or the SessionReject that refuses it."""
        if msg.msg_type != "A":
            return SessionReject(OTHER, err("EXPECTED_LOGON")[1], 35, err("EXPECTED_LOGON")[0])
        client = msg.get(49, "")
        s.client = client
        if msg.error:
            return SessionReject(0, f"Invalid tag number: {msg.error}", 0, -1169)
        if not COMP_ID_RE.match(client):
            return SessionReject(VALUE_INCORRECT, err("BAD_SENDER_COMPID")[1], 49,
                                 err("BAD_SENDER_COMPID")[0])
        if msg.get(56) != COMP_ID:
            return SessionReject(VALUE_INCORRECT, err("INVALID_PARAMETER", "TargetCompID")[1],
                                 56, err("INVALID_PARAMETER")[0])
        for tag in LOGON_REQUIRED:
            if not msg.get(tag):
                return SessionReject(REQUIRED_TAG_MISSING, err("REQUIRED_TAG", tag)[1], tag,
                                     err("REQUIRED_TAG")[0])
        if msg.get(141) != "Y":
            return SessionReject(VALUE_INCORRECT, err("RESET_SEQ_NUM")[1], 141,
                                 err("RESET_SEQ_NUM")[0])
        if msg.get(34) != "1":
            return SessionReject(VALUE_INCORRECT, err("BAD_SEQ_NUM", 1)[1], 34,
                                 err("BAD_SEQ_NUM")[0])
        for tag, name, ok in ((98, "EncryptMethod", {"0"}), (25035, "MessageHandling",
                                                             {"1", "2"}),
                              (25036, "ResponseMode", {"1", "2"})):
            value = msg.get(tag)
            if value is not None and value not in ok:
                return SessionReject(VALUE_INCORRECT, err("INVALID_PARAMETER", name)[1], tag,
                                     err("INVALID_PARAMETER")[0])
        hb = msg.get(108, "")
        if not hb.isdigit() or not HEARTBEAT_RANGE[0] <= int(hb) <= HEARTBEAT_RANGE[1]:
            return SessionReject(VALUE_INCORRECT, err("INVALID_PARAMETER", "HeartBtInt")[1],
                                 108, err("INVALID_PARAMETER")[0])
        problem = self._time_problem(msg, now, DEFAULT_RECV_WINDOW_MS)
        if problem is not None:
            return problem
        key = msg.get(553, "")
        if not API_KEY_RE.match(key):
            return SessionReject(VALUE_INCORRECT, err("BAD_API_KEY_FMT")[1], 553,
                                 err("BAD_API_KEY_FMT")[0])
        account = self.by_key.get(key)
        if account is None or account.public_key is None:
            return SessionReject(VALUE_INCORRECT, err("REJECTED_MBX_KEY")[1], 553,
                                 err("REJECTED_MBX_KEY")[0])
        lim = self.limits
        q = self.attempts[account.account_id]  # every attempt counts, refused ones too
        q.append(now)
        while q and now - q[0] >= lim.connect_window_s:
            q.popleft()
        if len(q) > lim.connect_limit:
            self.stats["binance_connect_limit"] += 1
            return SessionReject(OTHER, err("TOO_MANY_ATTEMPTS", lim.connect_limit,
                                            lim.window(lim.connect_window_s))[1], 0,
                                 err("TOO_MANY_ATTEMPTS")[0])
        sig = msg.get(96, "")
        if msg.get(95) != str(len(sig)) or not verify_b64(account.public_key,
                                                          signature_payload(msg), sig):
            self.stats["binance_bad_signature"] += 1
            return SessionReject(SIGNATURE_PROBLEM, err("INVALID_SIGNATURE")[1], 96,
                                 err("INVALID_SIGNATURE")[0])
        live = [x for x in self.acceptor.sessions.values() if x.account is account]
        if len(live) >= lim.max_connections:
            return SessionReject(OTHER, err("TOO_MANY_CONNECTIONS", lim.max_connections)[1],
                                 0, err("TOO_MANY_CONNECTIONS")[0])
        until = self.locked.get(client, 0.0)
        if self.acceptor.live(client) or until > time.monotonic():
            why = "in use" if self.acceptor.live(client) else \
                f"locked for {until - time.monotonic():.1f}s more (no Logout last time)"
            log.warning("logon %s: SenderCompID %s", client, why)
            return SessionReject(VALUE_INCORRECT, err("COMP_ID_IN_USE")[1], 49,
                                 err("COMP_ID_IN_USE")[0])
        self.locked.pop(client, None)
        s.account, s.hb = account, int(hb)
        return None

    def _time_problem(self, msg: Message, now: float, default: float | None = None):
        """SendingTime against RecvWindow (fix-api.md "Timing Security")."""
        text = msg.get(25000)
        try:
            window = float(text) if text is not None else default
        except ValueError:
            window = -1.0
        if window is None:
            return None
        if not 0 < window <= MAX_RECV_WINDOW_MS:
            return SessionReject(VALUE_INCORRECT, err("INVALID_PARAMETER", "RecvWindow")[1],
                                 25000, err("INVALID_PARAMETER")[0])
        sent = sending_time_ms(msg.get(52, ""))
        if sent is None:
            return SessionReject(SENDINGTIME_PROBLEM, err("INVALID_PARAMETER",
                                                          "SendingTime")[1], 52,
                                 err("INVALID_PARAMETER")[0])
        server = self.clock() * 1000
        if sent >= server + AHEAD_MS:
            self.stats["binance_sending_time_ahead"] += 1
            return SessionReject(SENDINGTIME_PROBLEM, err("TIMESTAMP_AHEAD")[1], 52,
                                 err("TIMESTAMP_AHEAD")[0])
        if server - sent > window:
            self.stats["binance_sending_time_stale"] += 1
            return SessionReject(SENDINGTIME_PROBLEM, err("INVALID_TIMESTAMP")[1], 52,
                                 err("INVALID_TIMESTAMP")[0])
        return None

    def _refuse(self, s: AcceptorSession, msg: Message, e: SessionReject, now: float) -> None:
        """Reject(3) + Logout(5) on a connection that never got a session (its own
        sequence numbers 1 and 2: a live session of the same CompID keeps its own)."""
        client = s.client or "?"
        log.warning("logon %s refused: %s (ErrorCode %d)", client, e.text, e.code)
        seq = msg.get(34) or "0"
        body = [(45, int(seq) if seq.isdigit() else 0)] + ([(371, e.tag)] if e.tag else [])
        body += [(372, msg.msg_type or "?"), (373, e.reason), (25016, e.code), (58, e.text)]
        target = client if COMP_ID_RE.match(client) else "UNKNOWN"
        s.send_unsequenced(encode("3", COMP_ID, target, 1, body, stime=utc_us()), now)
        s.send_unsequenced(encode("5", COMP_ID, target, 2, [(58, e.text)], stime=utc_us()),
                           now)
        s.account = None
        s.close(f"logon refused: {e.text}")
