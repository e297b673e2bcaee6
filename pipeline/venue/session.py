"""FIX 4.4 acceptor session layer, Sans-I/O: bytes and a clock in, bytes out, no socket.

The venue's counterpart of ``pipeline.fix.session`` (the initiator). The owner (the
asyncio edge in ``fixserver``, or a test) calls ``receive_data(data, now)`` with what the
socket read and ``timer(now)`` when ``next_timer(now)`` seconds have passed, writes what
``take_output()`` returns, and closes the connection once ``want_close`` is set (after
writing that output); ``connection_lost()`` when the socket goes. ``now`` is
``time.monotonic()`` seconds, always passed in.

Session rules: Logon with Username(553)/Password(554) per account (wrong -> Logout with
Text), Heartbeat/TestRequest timing from HeartBtInt, a Logon timeout, ResendRequest
answered by resending journaled application messages (PossDupFlag 43=Y, OrigSendingTime
122) and gap-filling the rest (SequenceReset 123=Y), inbound gaps -> ResendRequest with
later messages queued until the gap fills, SequenceReset (gap fill and reset), Reject(3)
for malformed messages, Logout. Garbled frames are ignored and counted, as the spec says.

Sequence numbers and the sent journal are the initiator's store
(``pipeline.fix.store.SessionStore``; admin messages are journaled as gaps). What is not
session logic is the host's (``fixacceptor.FixAcceptor``): accounts, the registry of live
sessions, one store per client, and the order-entry application that application messages
are handed to. The ``fix_*`` knobs of ``faults.Faults`` act here, on messages the session
sequences (see ``_emit``).

A host may carry a ``dialect`` (``binance_session.BinanceDialect``: Binance Spot's session
rules); the session then hands it the Logon, sequence errors, message types and timers it
rules on, and keeps the standard FIX 4.4 behaviour for everything else. Without one
(``dialect`` None) the session is the standard acceptor above, unchanged.
"""

from __future__ import annotations

import collections
import logging
from typing import Protocol

from pipeline.fix.store import NEXT_OUT, SessionStore, take_seq
from pipeline.venue.faults import Faults
from pipeline.venue.fixcodec import Framer, Garbled, Message, encode, sending_time

log = logging.getLogger("venue.fix")

ADMIN_TYPES = frozenset("0 1 2 3 4 5 A".split())
LOGON_TIMEOUT_S = 10.0
HEADER_TAGS = (8, 9, 10, 35, 49, 56, 34, 52, 43, 97, 122)  # rebuilt when a message is resent


class SessionReject(Exception):
    """Answer the message being handled with a session-level Reject(3)."""

    def __init__(self, reason: int, text: str, tag: int = 0, code: int = 0):
        super().__init__(text)
        self.reason, self.text, self.tag = reason, text, tag
        self.code = code  # a venue error code (Binance ErrorCode 25016); 0: none


class Host(Protocol):
    """What a session needs from the venue around it."""

    comp_id: str
    stats: collections.Counter
    faults: Faults

    def store(self, client: str) -> SessionStore: ...

    def authenticate(self, username: str, password: str): ...  # the account, or None

    def live(self, client: str) -> bool: ...  # a session of ``client`` is logged on

    def session_open(self, s: AcceptorSession) -> None: ...

    def session_closed(self, s: AcceptorSession) -> None: ...

    def application(self, s: AcceptorSession, msg: Message) -> None: ...  # may raise

    def store_only(self, client: str, msg_type: str, body: list) -> None: ...


def sequence(store: SessionStore, faults: Faults, sender: str, target: str, msg_type: str,
             body: list, extra: list = (), stime: str | None = None) -> tuple[int, bytes]:
    """Take the next outbound MsgSeqNum, encode and journal the message (admin messages as
    a gap: a resend answers them with a gap fill). ``fix_skip_seq`` jumps here."""
    skip = faults.take_all("fix_skip_seq")
    if skip:
        store.words[NEXT_OUT] += skip  # the skipped numbers have no journal entry: gap-filled
    seq = int(take_seq(store.words))
    raw = encode(msg_type, sender, target, seq, body, extra, stime)
    store.record(seq, None if msg_type in ADMIN_TYPES else raw)
    return seq, raw


def possdup(raw: bytes) -> bytes:
    """``raw`` (one whole message) again, as a resend: PossDupFlag, OrigSendingTime."""
    (orig,) = Framer().feed(raw)
    body = [(t, v.decode("latin-1")) for t, v in orig.fields if t not in HEADER_TAGS]
    return encode(orig.msg_type, orig.get(49), orig.get(56), int(orig.get(34)), body,
                  [(43, "Y"), (122, orig.get(52))])


def garble(raw: bytes) -> bytes:
    """``raw`` with a CheckSum that does not match."""
    return raw[:-4] + b"%03d" % ((int(raw[-4:-1]) + 1) % 256) + b"\x01"


class AcceptorSession:
    """One connection; it becomes a logged-on session after a valid Logon."""

    def __init__(self, host: Host, now: float):
        self.host = host
        self.faults = host.faults
        self.stats = host.stats
        self.framer = Framer()
        self.client = ""
        self.store: SessionStore | None = None
        self.account = None
        self.logged_on = False
        self.hb = 30.0
        self.opened = self.last_recv = self.last_sent = now
        self.test_req_at = 0.0
        self.pending: dict[int, Message | None] = {}  # ahead of a gap, by MsgSeqNum
        self.resend_until = 0
        self.delayed: collections.deque = collections.deque()  # (due, msg_type, body)
        self.want_close: str | None = None
        self.tap = None  # optional callable(Message): sees every well-framed inbound one
        self.clean_logout = False  # a Logout was exchanged (either side sent one)
        self.dialect = getattr(host, "dialect", None)  # None: standard FIX 4.4
        self.rules = self.dialect.new_state(now) if self.dialect is not None else None
        self._out: list[bytes] = []

    # ------------------------------------------------------------------ owner interface
    def receive_data(self, data: bytes, now: float) -> None:
        if self.want_close is not None:
            return
        self.last_recv = now
        self.test_req_at = 0.0
        for item in self.framer.feed(data):
            if isinstance(item, Garbled):
                self.stats["fix_garbled_in"] += 1
                log.warning("%s: garbled FIX frame ignored: %s", self.client or "?",
                            item.reason)
                continue
            if self.tap is not None:
                self.tap(item)
            try:
                self._on_message(item, now)
            except Exception:  # a bug must cost one message, not the venue
                log.exception("%s: failed to handle %r", self.client, item.raw[:200])
                self.stats["fix_errors"] += 1
            if self.want_close is not None:
                break

    def timer(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now and self.want_close is None:
            _, msg_type, body = self.delayed.popleft()
            self.send(msg_type, body, now)
        if self.want_close is not None:
            return
        if not self.logged_on:
            if now - self.opened >= LOGON_TIMEOUT_S:
                self.stats["fix_logon_timeouts"] += 1
                self.close("no Logon in time")
            return
        if self._silent():
            return
        if self.dialect is not None:
            self.dialect.timer(self, now)
            if self.want_close is not None:
                return
        if self.test_req_at and now - self.test_req_at >= self.hb:
            self.stats["fix_heartbeat_timeouts"] += 1
            self.logout("heartbeat timeout", now)
            return
        if now - self.last_sent >= self.hb:
            self.send("0", [], now)
        if not self.test_req_at and now - self.last_recv >= self.hb * 1.2:
            self.test_req_at = now
            self.send("1", [(112, f"TEST{int(now * 1000)}")], now)

    def next_timer(self, now: float) -> float:
        """Seconds until ``timer`` has something to do (at the latest a quarter beat)."""
        wait = min(self.hb / 4, 0.5)
        if self.delayed:
            wait = min(wait, max(self.delayed[0][0] - now, 0.0))
        if self.dialect is not None:
            wait = min(wait, self.dialect.next_due(self, now))
        return wait

    def take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def connection_lost(self) -> None:
        """The socket is gone: reports still delayed are journaled for a resend."""
        self.want_close = self.want_close or "connection lost"
        if self.store is not None:
            for _, msg_type, body in self.delayed:
                self.host.store_only(self.client, msg_type, body)
        self.delayed.clear()
        self._out.clear()
        self.host.session_closed(self)

    # ------------------------------------------------------------------ output
    def send(self, msg_type: str, body: list, now: float, extra: list = ()) -> int:
        """Sequence, journal and send one message; returns its MsgSeqNum."""
        stime = self.dialect.sending_time() if self.dialect is not None else None
        seq, raw = sequence(self.store, self.faults, self.host.comp_id, self.client,
                            msg_type, body, extra, stime)
        self._emit(raw, now)
        return seq

    def send_report(self, msg_type: str, body: list, now: float) -> None:
        """An application message from the engine; ``exec_delay_ms`` holds it back (it is
        sequenced when it leaves, so a later heartbeat may overtake it)."""
        delay = self.faults.exec_delay_ms
        if not delay and not self.delayed:
            self.send(msg_type, body, now)
        else:
            self.delayed.append((now + delay / 1000, msg_type, body))

    def send_unsequenced(self, raw: bytes, now: float) -> None:
        """Bytes as they are: no sequence number taken, nothing journaled (tests)."""
        self._write(raw, now)

    def set_next_out(self, seq: int) -> None:
        """Move the outbound MsgSeqNum (tests: a venue that skips or goes back in time)."""
        self.store.words[NEXT_OUT] = seq

    def logout(self, text: str, now: float) -> None:
        if self.store is not None:
            self.send("5", [(58, text)], now)
            self.clean_logout = True
        self.close(text)

    def close(self, reason: str) -> None:
        if self.want_close is None:
            self.want_close = reason

    def _emit(self, raw: bytes, now: float) -> None:
        """A freshly sequenced message to the wire, through the output faults."""
        f = self.faults
        if f.take("fix_drop_next"):
            self.stats["fault_fix_dropped"] += 1
            return
        garbled = f.take("fix_garble_next")
        if garbled:
            self.stats["fault_fix_garbled"] += 1
        self._write(garble(raw) if garbled else raw, now)
        if f.take("fix_duplicate_next"):
            self.stats["fault_fix_duplicated"] += 1
            self._write(possdup(raw), now)
        if f.take("fix_disconnect_after") and f.fix_disconnect_after == 0:
            self.stats["fault_fix_disconnects"] += 1
            self.close("fault: disconnect after N messages")

    def _write(self, raw: bytes, now: float) -> None:
        if self.want_close is not None or self._silent():
            return
        self._out.append(raw)
        self.last_sent = now
        self.stats["fix_sent"] += 1

    def _silent(self) -> bool:
        return self.logged_on and self.faults.fix_silent

    # ------------------------------------------------------------------ input
    def _on_message(self, msg: Message, now: float) -> None:
        self.stats["fix_received"] += 1
        seq_text = msg.get(34) or ""
        if self.dialect is not None:
            if not self.dialect.inbound(self, msg, now):
                return
            if not self.logged_on:
                self.dialect.logon(self, msg, now)
                return
        if not self.logged_on:
            if msg.msg_type != "A" or msg.error or not seq_text.isdigit():
                self.stats["fix_bad_logon"] += 1
                log.warning("first message is not a valid Logon: disconnecting")
                self.close("first message is not a valid Logon")
                return
            self._logon(msg, int(seq_text), now)
            return
        if self._silent():
            return
        if not seq_text.isdigit():
            self._reject(msg, 0, msg.error or "MsgSeqNum missing or not a number", now, 34)
            return
        self._sequenced(msg, int(seq_text), now)

    def _sequenced(self, msg: Message, seq: int, now: float) -> None:
        store = self.store
        mt = msg.msg_type
        if self.dialect is not None and seq != store.next_in:
            self.dialect.bad_seq(self, msg, seq, now)
            return
        if mt == "4" and msg.get(123, "N") != "Y" and self.dialect is None:  # seq ignored
            self._sequence_reset(msg, now)
            return
        expected = store.next_in
        if seq > expected:
            if mt == "5":
                self.logout("logout", now)
                return
            if mt == "2":  # answer resend requests at once, then ask for our gap
                self._process(msg, seq, now)
                self.pending[seq] = None
            else:
                self.pending[seq] = msg
            if self.resend_until < expected:
                self.resend_until = seq
                self.send("2", [(7, expected), (16, 0)], now)
            return
        if seq < expected:
            if msg.get(43) == "Y":
                self.stats["fix_possdup_ignored"] += 1
                return
            self.logout(f"MsgSeqNum too low, expecting {expected} but received {seq}", now)
            return
        store.set_next_in(seq + 1)
        self._process(msg, seq, now)
        while store.next_in in self.pending and self.want_close is None:
            nxt = self.pending.pop(store.next_in)
            store.set_next_in(store.next_in + 1)
            if nxt is not None:
                self._process(nxt, int(nxt.get(34)), now)

    def _process(self, msg: Message, seq: int, now: float) -> None:
        mt = msg.msg_type
        try:
            if msg.error:
                raise SessionReject(0, f"Invalid tag number: {msg.error}")
            if self.dialect is not None:
                self.dialect.check(self, msg, now)  # raises SessionReject to refuse it
            if mt == "1":
                self.send("0", [(112, msg.get(112, ""))], now)
            elif mt == "2":
                self._resend(msg, now)
            elif mt == "3":
                self.stats["fix_reject_received"] += 1
            elif mt == "4":
                self._gap_fill(msg)
            elif mt == "5":
                self.clean_logout = True
                self.send("5", getattr(self.dialect, "logout_ack", []), now)
                self.close("logout")
            elif mt == "A":
                raise SessionReject(99, "already logged on", 35)
            elif mt != "0":
                self.host.application(self, msg)
        except SessionReject as e:
            self._reject(msg, seq, e.text, now, e.tag, e.reason, e.code)

    def _reject(self, msg: Message, seq: int, text: str, now: float, tag: int = 0,
                reason: int = 99, code: int = 0) -> None:
        self.stats["fix_rejects_sent"] += 1
        body = [(45, seq), (371, tag)] if tag else [(45, seq)]
        body += [(372, msg.msg_type or "?"), (373, reason)]
        body += [(25016, code), (58, text)] if code else [(58, text)]
        self.send("3", body, now)

    def reject(self, msg: Message, e: SessionReject, now: float) -> None:
        """Answer ``msg`` with a Reject(3) built from ``e`` (a dialect's refusals)."""
        seq = msg.get(34) or "0"
        self._reject(msg, int(seq) if seq.isdigit() else 0, e.text, now, e.tag, e.reason,
                     e.code)

    def accept_logon(self, account, hb: float, seq: int, body: list, now: float) -> None:
        """Log on ``account`` with sequences reset and answer the Logon with ``body``
        (a dialect's Logon, after its own checks)."""
        self.account, self.hb = account, hb
        self.store.reset()
        self.logged_on = True
        self.stats["fix_logons"] += 1
        self.host.session_open(self)
        self.send("A", body, now)
        self.store.set_next_in(seq + 1)

    # ------------------------------------------------------------------ session messages
    def _logon(self, msg: Message, seq: int, now: float) -> None:
        host = self.host
        self.client = msg.get(49, "")
        if not self.client or msg.get(56) != host.comp_id:
            self.stats["fix_bad_logon"] += 1
            log.warning("logon from %r to %r: wrong CompIDs", self.client, msg.get(56))
            self.close("wrong CompIDs")
            return
        self.store = host.store(self.client)
        if self.faults.fix_refuse_logon:
            self.stats["fault_fix_refused_logons"] += 1
            self.logout(self.faults.fix_refuse_logon, now)
            return
        user = msg.get(553, "")
        account = host.authenticate(user, msg.get(554, ""))
        if account is None:
            self.stats["fix_bad_credentials"] += 1
            log.warning("logon %s: invalid username or password for %r", self.client, user)
            self.logout("invalid username or password", now)
            return
        if host.live(self.client):  # like QuickFIX: drop it, keep the live sequences
            self.stats["fix_duplicate_logon"] += 1
            log.warning("logon %s: session already logged on; disconnecting", self.client)
            self.close("already logged on")
            return
        try:
            hb = float(int(msg.get(108, "30")))
        except ValueError:
            hb = 0.0
        if hb <= 0:
            self.logout("bad HeartBtInt", now)
            return
        reset = msg.get(141) == "Y"
        expected = 1 if reset else self.store.next_in
        if seq < expected:
            self.logout(f"MsgSeqNum too low, expecting {expected} but received {seq}", now)
            return
        self.account, self.hb = account, hb
        if reset:  # only an authenticated client may reset the sequences
            self.store.reset()
        self.logged_on = True
        self.stats["fix_logons"] += 1
        host.session_open(self)
        body = [(98, 0), (108, int(self.hb))] + ([(141, "Y")] if reset else [])
        self.send("A", body, now)
        if seq == expected:
            self.store.set_next_in(seq + 1)
        else:
            self.resend_until = seq
            self.send("2", [(7, expected), (16, 0)], now)

    def _resend(self, msg: Message, now: float) -> None:
        try:
            begin, end = int(msg.get(7, "")), int(msg.get(16, ""))
        except ValueError:
            raise SessionReject(6, "bad BeginSeqNo/EndSeqNo", 7) from None
        store = self.store
        last = store.next_out - 1
        end = last if end == 0 or end > last else end
        self.stats["fix_resend_requests"] += 1
        gap_only = self.faults.fix_resend_gap_fill
        gap_start = 0
        for s in range(begin, end + 1):
            raw = None if gap_only else store.lookup(s)
            if raw is None:
                gap_start = gap_start or s
                continue
            if gap_start:
                self._gap(gap_start, s, now)
                gap_start = 0
            self._write(possdup(raw), now)
        if gap_start:
            self._gap(gap_start, end + 1, now)

    def _gap(self, seq: int, new_seq: int, now: float) -> None:
        self._write(encode("4", self.host.comp_id, self.client, seq,
                           [(123, "Y"), (36, new_seq)], [(43, "Y"), (122, sending_time())]),
                    now)

    def _gap_fill(self, msg: Message) -> None:
        try:
            new = int(msg.get(36, ""))
        except ValueError:
            raise SessionReject(6, "NewSeqNo missing or not a number", 36) from None
        if new > self.store.next_in:
            self.store.set_next_in(new)

    def _sequence_reset(self, msg: Message, now: float) -> None:
        seq = int(msg.get(34, "0") or 0)
        try:
            new = int(msg.get(36, ""))
        except ValueError:
            self._reject(msg, seq, "NewSeqNo missing", now, 36, 1)
            return
        if new < self.store.next_in:
            self._reject(msg, seq, f"NewSeqNo {new} below expected {self.store.next_in}",
                         now, 36, 5)
            return
        self.store.set_next_in(new)
        self.pending = {k: v for k, v in self.pending.items() if k >= new}
