"""FIX 4.4 acceptor for order entry (asyncio TCP), interoperable with standard engines.

Session layer: Logon with Username(553)/Password(554) per account (wrong -> Logout with
Text, then disconnect), Heartbeat/TestRequest timing from HeartBtInt, ResendRequest
answered by resending application messages (PossDupFlag 43=Y, OrigSendingTime 122) and
gap-filling administrative ones (SequenceReset 123=Y), incoming gaps -> ResendRequest
with later messages queued until the gap fills, SequenceReset (gap fill and reset),
Reject(3) for malformed messages, Logout. Garbled frames (bad BodyLength/CheckSum) are
ignored and counted, as the spec says.

Application: NewOrderSingle D, OrderCancelRequest F, OrderCancelReplaceRequest G,
OrderStatusRequest H -> ExecutionReport 8 / OrderCancelReject 9.

State per session (keyed by the client's SenderCompID) lives in a ``FixStore``; reports
for an account whose session is not connected are stored with their sequence numbers, so
after reconnecting the client's ResendRequest brings them back.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import logging
import time
from decimal import Decimal

from pipeline.instruments import Instrument, OffGrid
from pipeline.venue.fixcodec import Framer, Garbled, Message, encode, sending_time
from pipeline.venue.fixstore import FixStore
from pipeline.venue.matching import BUY, SELL, Reject, Report
from shm_layouts.records import ExecType, OrderType, OrdStatus, TimeInForce

log = logging.getLogger("venue.fix")

ADMIN_TYPES = frozenset("0 1 2 3 4 5 A".split())
EXEC_TYPE = {ExecType.NEW: "0", ExecType.PARTIAL_FILL: "F", ExecType.FILL: "F",
             ExecType.CANCELED: "4", ExecType.REPLACED: "5", ExecType.REJECTED: "8",
             ExecType.EXPIRED: "C", ExecType.ORDER_STATUS: "I"}
ORD_STATUS = {OrdStatus.NEW: "0", OrdStatus.PARTIALLY_FILLED: "1", OrdStatus.FILLED: "2",
              OrdStatus.CANCELED: "4", OrdStatus.REJECTED: "8", OrdStatus.EXPIRED: "C"}
CXL_REASON = {Reject.TOO_LATE[1]: 0, Reject.UNKNOWN_ORDER[1]: 1,
              Reject.DUPLICATE_CLORDID[1]: 6}
TIF = {"0": TimeInForce.GTC, "1": TimeInForce.GTC, "3": TimeInForce.IOC,
       "4": TimeInForce.FOK}
TIF_OUT = {TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4",
           TimeInForce.POST_ONLY: "1"}
REQUIRED = {"D": (11, 55, 54, 38, 40), "F": (11, 41, 55, 54), "G": (11, 41, 55, 54, 38, 40, 44),
            "H": (11, 55, 54)}
LOGON_TIMEOUT_S = 10.0


class SessionReject(Exception):
    def __init__(self, reason: int, text: str, tag: int = 0):
        super().__init__(text)
        self.reason, self.text, self.tag = reason, text, tag


class FixSession:
    """One TCP connection; becomes a logged-on session after a valid Logon."""

    def __init__(self, acceptor: FixAcceptor, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.acc = acceptor
        self.reader, self.writer = reader, writer
        self.client = ""
        self.store: FixStore | None = None
        self.account = None
        self.logged_on = False
        self.hb = 30.0
        self.last_recv = self.last_sent = time.monotonic()
        self.test_req_at = 0.0
        self.pending: dict[int, Message] = {}
        self.resend_until = 0
        self.delayed: collections.deque = collections.deque()
        self.delay_task: asyncio.Task | None = None
        self.closing = False

    # ------------------------------------------------------------------ output
    def send(self, msg_type: str, body: list, extra: list = ()) -> None:
        store = self.store
        raw = encode(msg_type, self.acc.comp_id, self.client, store.next_out, body, extra)
        store.record_sent(store.next_out, raw)
        self._write(raw)

    def send_report(self, msg_type: str, body: list) -> None:
        delay = self.acc.sim.faults.exec_delay_ms
        if not delay and not self.delayed:
            self.send(msg_type, body)
            return
        self.delayed.append((time.monotonic() + delay / 1000, msg_type, body))
        if self.delay_task is None or self.delay_task.done():
            self.delay_task = asyncio.ensure_future(self._pump_delayed())

    async def _pump_delayed(self) -> None:
        while self.delayed:
            due, msg_type, body = self.delayed[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not self.delayed:
                return  # the session closed meanwhile and stored them
            self.delayed.popleft()
            if self.closing:
                self.acc.store_only(self.client, msg_type, body)
            else:
                self.send(msg_type, body)

    def _write(self, raw: bytes) -> None:
        if self.closing:
            return
        self.writer.write(raw)
        self.last_sent = time.monotonic()
        self.acc.stats["fix_sent"] += 1

    def send_raw_garbled(self) -> None:
        """A message with a broken CheckSum (does not consume a sequence number)."""
        raw = encode("0", self.acc.comp_id, self.client, self.store.next_out, [])
        self._write(raw[:-4] + (b"%03d" % ((int(raw[-4:-1]) + 1) % 256)) + b"\x01")

    def logout(self, text: str) -> None:
        if self.store is not None:
            self.send("5", [(58, text)])
        self.close()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.writer.close()

    # ------------------------------------------------------------------ input
    async def run(self) -> None:
        framer = Framer()
        timer = asyncio.ensure_future(self._timer())
        try:
            while not self.closing:
                timeout = None if self.logged_on else LOGON_TIMEOUT_S
                try:
                    data = await asyncio.wait_for(self.reader.read(65536), timeout)
                except (TimeoutError, ConnectionError):
                    break
                if not data:
                    break
                self.last_recv = time.monotonic()
                self.test_req_at = 0.0
                for item in framer.feed(data):
                    if isinstance(item, Garbled):
                        self.acc.stats["fix_garbled_in"] += 1
                        log.warning("%s: garbled FIX frame ignored: %s", self.client or "?",
                                    item.reason)
                        continue
                    self._on_message(item)
                    if self.closing:
                        break
                await self.writer.drain()
        finally:
            timer.cancel()
            self.closing = True
            self.writer.close()
            self.acc.session_closed(self)

    async def _timer(self) -> None:
        while not self.closing:
            await asyncio.sleep(min(self.hb / 4, 0.5))
            if not self.logged_on:
                continue
            now = time.monotonic()
            if now - self.last_sent >= self.hb:
                self.send("0", [])
            if self.test_req_at:
                if now - self.test_req_at >= self.hb:
                    self.acc.stats["fix_heartbeat_timeouts"] += 1
                    self.logout("heartbeat timeout")
            elif now - self.last_recv >= self.hb * 1.2:
                self.test_req_at = now
                self.send("1", [(112, f"TEST{int(now * 1000)}")])

    def _on_message(self, msg: Message) -> None:
        self.acc.stats["fix_received"] += 1
        seq_text = msg.get(34)
        if not self.logged_on:
            if msg.msg_type != "A" or msg.error or not (seq_text or "").isdigit():
                self.acc.stats["fix_bad_logon"] += 1
                log.warning("first message is not a valid Logon: disconnecting")
                self.close()
                return
            self._logon(msg, int(seq_text))
            return
        if not (seq_text or "").isdigit():
            self._reject(msg, 0, msg.error or "MsgSeqNum missing or not a number", 34)
            return
        self._sequenced(msg, int(seq_text))

    def _sequenced(self, msg: Message, seq: int) -> None:
        store = self.store
        mt = msg.msg_type
        if mt == "4" and msg.get(123, "N") != "Y":  # SequenceReset-Reset: seq ignored
            self._sequence_reset(msg)
            return
        expected = store.next_in
        if seq > expected:
            if mt == "5":
                self.logout("logout")
                return
            if mt == "2":  # answer resend requests at once, then ask for our gap
                self._process(msg, seq)
                self.pending[seq] = None
            else:
                self.pending[seq] = msg
            if self.resend_until < expected:
                self.resend_until = seq
                self.send("2", [(7, expected), (16, 0)])
            return
        if seq < expected:
            if msg.get(43) == "Y":
                self.acc.stats["fix_possdup_ignored"] += 1
                return
            self.logout(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        store.set_next_in(seq + 1)
        self._process(msg, seq)
        while store.next_in in self.pending and not self.closing:
            nxt = self.pending.pop(store.next_in)
            store.set_next_in(store.next_in + 1)
            if nxt is not None:
                self._process(nxt, int(nxt.get(34)))

    def _process(self, msg: Message, seq: int) -> None:
        mt = msg.msg_type
        try:
            if msg.error:
                raise SessionReject(0, f"Invalid tag number: {msg.error}")
            if mt == "0":
                pass
            elif mt == "1":
                self.send("0", [(112, msg.get(112, ""))])
            elif mt == "2":
                self._resend(msg)
            elif mt == "3":
                self.acc.stats["fix_reject_received"] += 1
            elif mt == "4":
                self._gap_fill(msg)
            elif mt == "5":
                self.send("5", [])
                self.close()
            elif mt == "A":
                raise SessionReject(99, "already logged on", 35)
            elif mt in REQUIRED:
                for tag in REQUIRED[mt]:
                    if msg.get(tag) is None:
                        raise SessionReject(1, f"Required tag missing: {tag}", tag)
                self.acc.application(self, msg)
            else:
                raise SessionReject(11, f"Invalid MsgType {mt!r}", 35)
        except SessionReject as e:
            self._reject(msg, seq, e.text, e.tag, e.reason)

    def _reject(self, msg: Message, seq: int, text: str, tag: int = 0, reason: int = 99) -> None:
        self.acc.stats["fix_rejects_sent"] += 1
        body = [(45, seq), (371, tag)] if tag else [(45, seq)]
        body += [(372, msg.msg_type or "?"), (373, reason), (58, text)]
        self.send("3", body)

    # ------------------------------------------------------------------ session messages
    def _logon(self, msg: Message, seq: int) -> None:
        acc = self.acc
        self.client = msg.get(49, "")
        if not self.client or msg.get(56) != acc.comp_id:
            acc.stats["fix_bad_logon"] += 1
            log.warning("logon from %r to %r: wrong CompIDs", self.client, msg.get(56))
            self.close()
            return
        self.store = acc.store(self.client)
        user, password = msg.get(553, ""), msg.get(554, "")
        account = acc.accounts.get(user)
        if account is None or account.password is None or not hmac.compare_digest(
                account.password.encode(), password.encode()):
            acc.stats["fix_bad_credentials"] += 1
            log.warning("logon %s: invalid username or password for %r", self.client, user)
            self.logout("invalid username or password")
            return
        if self.client in acc.sessions:  # like QuickFIX: drop it, keep the live sequences
            acc.stats["fix_duplicate_logon"] += 1
            log.warning("logon %s: session already logged on; disconnecting", self.client)
            self.close()
            return
        try:
            self.hb = float(int(msg.get(108, "30")))
        except ValueError:
            self.logout("bad HeartBtInt")
            return
        if self.hb <= 0:
            self.logout("bad HeartBtInt")
            return
        if msg.get(141) == "Y":  # only an authenticated client may reset the sequences
            self.store.reset()
        expected = self.store.next_in
        if seq < expected:
            self.logout(f"MsgSeqNum too low, expecting {expected} but received {seq}")
            return
        self.account = account
        self.logged_on = True
        acc.session_open(self)
        body = [(98, 0), (108, int(self.hb))]
        if msg.get(141) == "Y":
            body.append((141, "Y"))
        self.send("A", body)
        if seq == expected:
            self.store.set_next_in(seq + 1)
        else:
            self.resend_until = seq
            self.send("2", [(7, expected), (16, 0)])

    def _resend(self, msg: Message) -> None:
        try:
            begin, end = int(msg.get(7, "")), int(msg.get(16, ""))
        except ValueError:
            raise SessionReject(6, "bad BeginSeqNo/EndSeqNo", 7) from None
        store = self.store
        last = store.next_out - 1
        end = last if end == 0 or end > last else end
        self.acc.stats["fix_resend_requests"] += 1
        gap_start = 0
        for s in range(begin, end + 1):
            raw = store.sent.get(s)
            old = Framer().feed(raw) if raw is not None else []
            orig = old[0] if old and isinstance(old[0], Message) else None
            if orig is None or orig.msg_type in ADMIN_TYPES:
                gap_start = gap_start or s
                continue
            if gap_start:
                self._gap(gap_start, s)
                gap_start = 0
            body = [(t, v.decode("latin-1")) for t, v in orig.fields
                    if t not in (35, 49, 56, 34, 52, 43, 97, 122)]
            self._write(encode(orig.msg_type, self.acc.comp_id, self.client, s, body,
                               [(43, "Y"), (122, orig.get(52))]))
        if gap_start:
            self._gap(gap_start, end + 1)

    def _gap(self, seq: int, new_seq: int) -> None:
        self._write(encode("4", self.acc.comp_id, self.client, seq,
                           [(123, "Y"), (36, new_seq)], [(43, "Y"), (122, sending_time())]))

    def _gap_fill(self, msg: Message) -> None:
        try:
            new = int(msg.get(36, ""))
        except ValueError:
            raise SessionReject(6, "NewSeqNo missing or not a number", 36) from None
        if new > self.store.next_in:
            self.store.set_next_in(new)

    def _sequence_reset(self, msg: Message) -> None:
        try:
            new = int(msg.get(36, ""))
        except ValueError:
            self._reject(msg, int(msg.get(34, "0") or 0), "NewSeqNo missing", 36, 1)
            return
        if new < self.store.next_in:
            self._reject(msg, int(msg.get(34, "0") or 0),
                         f"NewSeqNo {new} below expected {self.store.next_in}", 36, 5)
            return
        self.store.set_next_in(new)
        self.pending = {k: v for k, v in self.pending.items() if k >= new}


class FixAcceptor:
    def __init__(self, sim, cfg):
        self.sim = sim
        self.cfg = cfg
        self.comp_id = cfg.comp_id
        self.stats = sim.stats
        self.accounts = {a.username: a for a in cfg.accounts}
        self.names = {a.account_id: a.username for a in cfg.accounts}
        self.stores: dict[str, FixStore] = {}
        self.sessions: dict[str, FixSession] = {}
        self.by_account: dict[int, str] = {}
        self.conns: set[FixSession] = set()
        self.exec_id = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._client, host, port)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader, writer) -> None:
        session = FixSession(self, reader, writer)
        self.conns.add(session)
        self.stats["fix_connections"] += 1
        try:
            await session.run()
        finally:
            self.conns.discard(session)

    def store(self, client: str) -> FixStore:
        s = self.stores.get(client)
        if s is None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client)
            s = self.stores[client] = FixStore(self.cfg.state_dir / f"{self.comp_id}-{safe}")
        return s

    def session_open(self, s: FixSession) -> None:
        self.sessions[s.client] = s
        self.by_account[s.account.account_id] = s.client
        log.info("FIX logon %s (account %s)", s.client, s.account.username)

    def session_closed(self, s: FixSession) -> None:
        if self.sessions.get(s.client) is s:
            del self.sessions[s.client]
            for _, msg_type, body in s.delayed:
                self.store_only(s.client, msg_type, body)
            s.delayed.clear()

    def store_only(self, client: str, msg_type: str, body: list) -> None:
        """Sequence and persist a message for a disconnected session (resent on request)."""
        store = self.store(client)
        raw = encode(msg_type, self.comp_id, client, store.next_out, body)
        store.record_sent(store.next_out, raw)

    # ------------------------------------------------------------------ application
    def application(self, s: FixSession, msg: Message) -> None:
        mt = msg.msg_type
        sym = msg.get(55, "").upper()
        acct = s.account.account_id
        clid = msg.get(11)
        if sym not in self.sim.books:
            if mt in ("F", "G"):
                self._send(s.client, "9", self._cancel_reject_body(
                    Report(int(ExecType.CANCEL_REJECTED), acct, clid, msg.get(41, ""),
                           text=Reject.UNKNOWN_SYMBOL[1], cancel_reject_to=1 if mt == "F" else 2)))
            else:
                rep = Report(int(ExecType.REJECTED if mt == "D" else ExecType.ORDER_STATUS),
                             acct, clid, reject_code=Reject.UNKNOWN_SYMBOL[0],
                             text=Reject.UNKNOWN_SYMBOL[1])
                self._send(s.client, "8", self._exec_body(None, rep, sym))
            self.stats["fix_unknown_symbol"] += 1
            return
        inst = self.sim.cfg.symbols[sym]
        book = self.sim.books[sym]
        book.now_ms = time.time_ns() // 1_000_000
        side = {"1": BUY, "2": SELL}.get(msg.get(54))
        if side is None:
            raise SessionReject(5, "Value is incorrect (out of range) for this tag", 54)
        if mt == "D":
            self._new_order(msg, inst, book, acct, clid, side)
        elif mt == "F":
            book.cancel(acct, clid, msg.get(41))
        elif mt == "G":
            qty, price, problem = self._qty_price(msg, inst)
            if problem is None:
                book.replace(acct, clid, msg.get(41), qty, price)
            else:
                book.reports.append(Report(int(ExecType.CANCEL_REJECTED), acct, clid,
                                           msg.get(41), reject_code=problem[0], text=problem[1],
                                           cancel_reject_to=2))
        elif mt == "H":
            book.status(acct, clid)
        self.sim.after(sym)

    def _new_order(self, msg, inst, book, acct, clid, side) -> None:
        ord_type = {"1": OrderType.MARKET, "2": OrderType.LIMIT}.get(msg.get(40))
        if ord_type is None:
            raise SessionReject(5, "OrdType must be 1 (market) or 2 (limit)", 40)
        tif = TIF.get(msg.get(59, "1"))
        if tif is None:
            raise SessionReject(5, "TimeInForce must be 0, 1, 3 or 4", 59)
        if "6" in msg.get(18, "").split():
            tif = TimeInForce.POST_ONLY
        if ord_type == OrderType.LIMIT and msg.get(44) is None:
            raise SessionReject(1, "Required tag missing: 44", 44)
        qty, price, problem = self._qty_price(msg, inst, ord_type == OrderType.LIMIT)
        if problem is None and self.sim.faults.take_reject():
            problem = Reject.FAULT
            self.stats["fault_rejected_orders"] += 1
        if problem is not None:
            book.reject(acct, clid, problem)
            return
        book.new_order(acct, clid, side, qty, price, tif, ord_type)

    @staticmethod
    def _qty_price(msg: Message, inst: Instrument, need_price: bool = True):
        for tag in (38, 44) if need_price else (38,):
            try:
                finite = Decimal(msg.get(tag)).is_finite()
            except ArithmeticError:
                finite = False
            if not finite:
                raise SessionReject(6, f"Incorrect data format for tag {tag}", tag)
        try:
            qty = inst.lots(msg.get(38))
        except OffGrid:
            return 0, 0, Reject.QTY_OFF_LOT
        if not need_price:
            return qty, 0, None
        try:
            return qty, inst.ticks(msg.get(44)), None
        except OffGrid:
            return qty, 0, Reject.PRICE_OFF_TICK

    def route(self, inst: Instrument, r: Report) -> None:
        """Send one engine report to its account's session (or store it for a resend)."""
        client = self.by_account.get(r.account)
        if client is None:
            self.stats["fix_reports_unrouted"] += 1
            return
        if r.cancel_reject_to:
            self._send(client, "9", self._cancel_reject_body(r))
        else:
            self._send(client, "8", self._exec_body(inst, r, inst.symbol))

    def _send(self, client: str, msg_type: str, body: list) -> None:
        s = self.sessions.get(client)
        if s is not None and not s.closing:
            s.send_report(msg_type, body)
        else:
            self.store_only(client, msg_type, body)

    def _exec_body(self, inst: Instrument | None, r: Report, symbol: str) -> list:
        self.exec_id += 1
        status = ORD_STATUS.get(r.status, "8") if r.oid else "8"
        body = [(37, r.oid or "NONE"), (11, r.cl_ord_id)]
        if r.orig_cl_ord_id:
            body.append((41, r.orig_cl_ord_id))
        body += [(17, f"E{self.exec_id}"), (150, EXEC_TYPE[r.exec_type]), (39, status),
                 (1, self.names.get(r.account, "")), (55, symbol)]
        if r.oid:
            q = inst.qty_str
            avg = (Decimal(r.notional) / r.cum * Decimal(inst.tick_size)).normalize() \
                if r.cum else Decimal(0)
            body += [(54, "1" if r.side == BUY else "2"), (38, q(r.qty)),
                     (40, "2" if r.ord_type == OrderType.LIMIT else "1")]
            if r.ord_type == OrderType.LIMIT:
                body.append((44, inst.price_str(r.price)))
            body.append((59, TIF_OUT.get(r.tif, "1")))
            if r.tif == TimeInForce.POST_ONLY:
                body.append((18, "6"))
            if r.last_qty:
                body += [(32, q(r.last_qty)), (31, inst.price_str(r.last_px))]
            leaves = r.leaves if r.status in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED) else 0
            body += [(151, q(leaves)), (14, q(r.cum)), (6, format(avg, "f"))]
        else:
            body += [(151, 0), (14, 0), (6, 0)]
        if r.exec_type == ExecType.REJECTED or (not r.oid and r.text):
            body.append((103, r.reject_code))
        if r.text:
            body.append((58, r.text))
        body.append((60, sending_time()))
        return body

    def _cancel_reject_body(self, r: Report) -> list:
        status = ORD_STATUS.get(r.status, "8") if r.oid else "8"
        return [(37, r.oid or "NONE"), (11, r.cl_ord_id), (41, r.orig_cl_ord_id),
                (39, status), (434, r.cancel_reject_to), (102, CXL_REASON.get(r.text, 99)),
                (58, r.text)]

    # ------------------------------------------------------------------ faults, shutdown
    def drop_all(self) -> int:
        n = 0
        for s in list(self.conns):
            s.closing = True
            s.writer.transport.abort()
            n += 1
        return n

    def garble_all(self) -> int:
        live = [s for s in self.sessions.values() if not s.closing]
        for s in live:
            s.send_raw_garbled()
        return len(live)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for s in list(self.conns):
            if s.logged_on:
                s.logout("venue shutting down")
            s.close()
        if self.server is not None:
            await self.server.wait_closed()
        for st in self.stores.values():
            st.close()
