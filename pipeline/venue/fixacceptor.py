"""The venue's FIX 4.4 order entry: the host of the acceptor sessions and its application.

Sessions are Sans-I/O (``session.AcceptorSession``); the sockets are ``fixserver``'s. This
module holds what is the venue's rather than the session's: accounts and credentials, the
registry of logged-on sessions, one ``SessionStore`` per client (keyed by its
SenderCompID; reports for an account whose session is not connected are sequenced and
journaled there, so after reconnecting the client's ResendRequest brings them back), and
the application:

NewOrderSingle D, OrderCancelRequest F, OrderCancelReplaceRequest G, OrderStatusRequest H
-> ExecutionReport 8 / OrderCancelReject 9; OrderMassCancelRequest q -> one
ExecutionReport per cancelled order, then OrderMassCancelReport r.

``[sim] dialect = "binance"``: Binance Spot's session rules and order entry instead
(``binance_session.BinanceDialect``, ``binance_orders.BinanceOrders``), consulted through
``self.dialect``; the standard path below is untouched by it.
"""

from __future__ import annotations

import hmac
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.fix.store import NEXT_OUT, SessionStore
from pipeline.instruments import Instrument, OffGrid
from pipeline.venue.binance_session import BinanceDialect, Limits
from pipeline.venue.fixcodec import Message, encode, sending_time
from pipeline.venue.fixserver import FixServer
from pipeline.venue.matching import BUY, SELL, Reject, Report
from pipeline.venue.session import AcceptorSession, SessionReject, garble, sequence
from shm_layouts.records import ExecType, OrderType, OrdStatus, TimeInForce

if TYPE_CHECKING:
    from pipeline.venue.simulator import Account

log = logging.getLogger("venue.fix")

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
            "H": (11, 55, 54), "q": (11, 530)}


def carry_over(old: Path, store: SessionStore) -> None:
    """Sequence numbers from a store of the venue's former format (text "next_out
    next_in"), so a client's session goes on after an upgrade; its sent messages are not
    carried over (a resend request for them is answered with a gap fill)."""
    text = old.read_text().split() if old.exists() else []
    if len(text) == 2 and all(t.isdigit() for t in text):
        store.words[NEXT_OUT] = int(text[0])
        store.set_next_in(int(text[1]))
        log.info("FIX store %s: sequence numbers carried over from %s", store.dir, old)


class FixAcceptor:
    """The ``session.Host`` of every FIX connection of one simulator."""

    def __init__(self, sim, cfg):
        self.sim = sim
        self.cfg = cfg
        self.comp_id = cfg.comp_id
        self.stats = sim.stats
        self.faults = sim.faults
        self.accounts = {a.username: a for a in cfg.accounts}
        self.names = {a.account_id: a.username for a in cfg.accounts}
        self.stores: dict[str, SessionStore] = {}
        self.sessions: dict[str, AcceptorSession] = {}  # logged on, by client CompID
        self.by_account: dict[int, str] = {}
        self.exec_id = 0
        self.dialect = BinanceDialect(self, Limits(**cfg.binance)) \
            if cfg.dialect == "binance" else None
        self.server = FixServer(self)

    async def start(self, host: str, port: int, ssl=None) -> int:
        return await self.server.start(host, port, ssl=ssl)

    async def close(self) -> None:
        await self.server.close("venue shutting down")
        for st in self.stores.values():
            st.flush()

    # ------------------------------------------------------------------ session host
    def store(self, client: str) -> SessionStore:
        s = self.stores.get(client)
        if s is None:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client)
            name = f"{self.comp_id}-{safe}"
            path = self.cfg.state_dir / "sessions" / name
            fresh = not path.exists()
            s = self.stores[client] = SessionStore(path)
            if fresh:
                carry_over(self.cfg.state_dir / name / "seqnums", s)
        return s

    def authenticate(self, username: str, password: str) -> Account | None:
        account = self.accounts.get(username)
        if account is None or account.password is None or not hmac.compare_digest(
                account.password.encode(), password.encode()):
            return None
        return account

    def live(self, client: str) -> bool:
        return client in self.sessions

    def session_open(self, s: AcceptorSession) -> None:
        self.sessions[s.client] = s
        self.by_account[s.account.account_id] = s.client
        log.info("FIX logon %s (account %s)", s.client, s.account.username)

    def session_closed(self, s: AcceptorSession) -> None:
        if self.sessions.get(s.client) is s:
            del self.sessions[s.client]
            if self.dialect is not None:
                self.dialect.closed(s)

    def store_only(self, client: str, msg_type: str, body: list) -> None:
        """Sequence and journal a message for a disconnected session (resent on request)."""
        sequence(self.store(client), self.faults, self.comp_id, client, msg_type, body)

    # ------------------------------------------------------------------ application
    def application(self, s: AcceptorSession, msg: Message) -> None:
        if self.dialect is not None:
            self.dialect.orders.application(s, msg)
            return
        mt = msg.msg_type
        if mt not in REQUIRED:
            raise SessionReject(11, f"Invalid MsgType {mt!r}", 35)
        for tag in REQUIRED[mt]:
            if msg.get(tag) is None:
                raise SessionReject(1, f"Required tag missing: {tag}", tag)
        sym = msg.get(55, "").upper()
        acct = s.account.account_id
        clid = msg.get(11)
        if mt == "q":
            self._mass_cancel(s, msg, acct, clid, sym)
            return
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

    def _mass_cancel(self, s: AcceptorSession, msg: Message, acct: int, clid: str, sym: str):
        """OrderMassCancelRequest: 530=1 one symbol (55), 530=7 everything; one 8 per
        cancelled order, then the OrderMassCancelReport (r)."""
        kind = msg.get(530)
        if kind not in ("1", "7"):
            raise SessionReject(5, "MassCancelRequestType must be 1 or 7", 530)
        body = [(11, clid), (37, f"M{self.exec_id}"), (530, kind)]
        if kind == "1" and sym not in self.sim.books:
            self._send(s.client, "r", body + [(531, 0), (532, 1), (58, "unknown symbol")])
            return
        n = 0
        for name in ([sym] if kind == "1" else list(self.sim.books)):
            n += self.sim.books[name].cancel_all(acct)
            self.sim.after(name)
        if kind == "1":
            body.append((55, sym))
        self._send(s.client, "r", body + [(531, kind), (533, n)])

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
        if self.dialect is not None:
            self.dialect.orders.route(inst, r)
            return
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
        if s is not None and s.want_close is None:
            s.send_report(msg_type, body, time.monotonic())
            self.server.flush(s)
        else:
            self.store_only(client, msg_type, body)

    def _exec_body(self, inst: Instrument | None, r: Report, symbol: str) -> list:
        self.exec_id += 1
        status = ORD_STATUS.get(r.status, "8") if r.oid else "8"
        body = [(37, r.oid or "NONE"), (11, r.cl_ord_id)]
        if r.orig_cl_ord_id:
            body.append((41, r.orig_cl_ord_id))
        body += [(17, f"E{self.exec_id}"), (150, EXEC_TYPE[r.exec_type]), (39, status)]
        name = self.names.get(r.account)
        if name:  # a FIX field is never empty
            body.append((1, name))
        body.append((55, symbol))
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
                body += [(32, q(r.last_qty)), (31, inst.price_str(r.last_px)),
                         (851, r.liquidity)]
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

    # ------------------------------------------------------------------ faults
    def drop_all(self) -> int:
        return self.server.abort_all("dropped by fault injection")

    def garble_all(self) -> int:
        """A heartbeat with a broken CheckSum to every session (no sequence number spent)."""
        live = [s for s in self.sessions.values() if s.want_close is None]
        now = time.monotonic()
        for s in live:
            s.send_unsequenced(garble(encode("0", self.comp_id, s.client, s.store.next_out,
                                             [])), now)
            self.server.flush(s)
        return len(live)
