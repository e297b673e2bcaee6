"""Binance Spot FIX order entry on the simulator's books (fix-api.md "Order Entry Messages").

NewOrderSingle D (LIMIT ``40=2`` + ``59``, LIMIT_MAKER ``40=2|18=6``, MARKET ``40=1``),
OrderCancelRequest F, OrderCancelRequestAndNewOrderSingle XCN (cancel, then a brand-new
order with a new OrderID; ``25033`` 1 STOP_ON_FAILURE: a failed cancel means no new order,
2 ALLOW_FAILURE: the new order is attempted anyway; the new order's filters are evaluated
before either leg), OrderAmendKeepPriorityRequest XAK (quantity down only, queue place
kept; failures are OrderAmendReject XAR), OrderMassCancelRequest q (``530=1``, one symbol)
-> one ExecutionReport per order and OrderMassCancelReport r, LimitQuery XLQ ->
LimitResponse XLR.

Every denial carries Binance's ErrorCode(25016) and Text(58): exchange filters -1013
"Filter failure: ..." (``binance_rules``), matching-engine refusals -2010 (new order),
-2011 (cancel), -2038 (amend) with errors.md's messages, malformed requests a Reject(3).
Reports go to every logged-on session of the account (ResponseMode(25036) 1 EVERYTHING);
a session that logged on with 2 ONLY_ACKS gets only the answers to its own requests (the
NEW, CANCELED, REPLACED or REJECTED report, the 9, XAR, r, XLR), no pushed fills or
expiries. With no session they are not kept (Binance has no resend: a client reconciles
through REST).
"""

from __future__ import annotations

import collections
import logging
import re
import time
from decimal import Decimal

from pipeline.instruments import Instrument
from pipeline.venue.binance_rules import (
    AMEND_UP,
    CANCEL_INVALID,
    DUPLICATE_ORDER,
    MARKET,
    NO_CHANGE,
    UNKNOWN_ORDER,
    WOULD_TAKE,
    SymbolRules,
    err,
    split_symbol,
    starting_balances,
)
from pipeline.venue.fixcodec import Message
from pipeline.venue.matching import BUY, SELL, Book, Order, Reject, Report
from pipeline.venue.session import AcceptorSession, SessionReject
from shm_layouts.records import ExecType, OrderType, OrdStatus, TimeInForce

log = logging.getLogger("venue.fix.binance")

CL_ORD_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,36}$")
CL_ORD_ID_TAGS = ((11, "ClOrdID"), (41, "OrigClOrdID"), (25034, "CancelClOrdID"))
REQUIRED = {"D": (11, 40, 54, 55), "F": (11, 55), "XCN": (11, 40, 54, 55, 25033),
            "XAK": (11, 55, 38), "q": (11, 55, 530), "XLQ": (6136,)}
TIF = {"1": TimeInForce.GTC, "3": TimeInForce.IOC, "4": TimeInForce.FOK}
TIF_OUT = {TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}
EXEC_TYPE = {ExecType.NEW: "0", ExecType.PARTIAL_FILL: "F", ExecType.FILL: "F",
             ExecType.CANCELED: "4", ExecType.REPLACED: "5", ExecType.REJECTED: "8",
             ExecType.EXPIRED: "C"}
ORD_STATUS = {OrdStatus.NEW: "0", OrdStatus.PARTIALLY_FILLED: "1", OrdStatus.FILLED: "2",
              OrdStatus.CANCELED: "4", OrdStatus.REJECTED: "8", OrdStatus.EXPIRED: "C"}
# the matching engine's reasons in Binance's words: (new order, cancel, amend) messages
ME_TEXT = {Reject.UNKNOWN_ORDER[1]: UNKNOWN_ORDER, Reject.TOO_LATE[1]: UNKNOWN_ORDER,
           Reject.DUPLICATE_CLORDID[1]: DUPLICATE_ORDER, Reject.POST_ONLY_CROSS[1]: WOULD_TAKE,
           Reject.AMEND_NOT_DOWN[1]: AMEND_UP, Reject.REPLACE_TOO_SMALL[1]: AMEND_UP}
STOP_ON_FAILURE, ALLOW_FAILURE = "1", "2"
EVERYTHING = 1  # ResponseMode(25036); 2 ONLY_ACKS
ACK_TYPES = (ExecType.NEW, ExecType.CANCELED, ExecType.REPLACED, ExecType.REJECTED)
# SessionRejectReason(373)
REQUIRED_TAG_MISSING, VALUE_INCORRECT = 1, 5


def utc_us(ns: int | None = None) -> str:
    """UTCTIMESTAMP with microseconds, as the exchange writes them."""
    ns = time.time_ns() if ns is None else ns
    s, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(s)) + f".{rem // 1000:06d}"


def _refuse(name: str, tag: int, *args, reason: int = VALUE_INCORRECT) -> SessionReject:
    code, text = err(name, *args)
    return SessionReject(reason, text, tag, code)


class BinanceOrders:
    """The application of a Binance-dialect ``FixAcceptor``."""

    def __init__(self, acceptor, dialect):
        self.acceptor = acceptor
        self.sim = acceptor.sim
        self.dialect = dialect
        self.stats = acceptor.stats
        self.rules = symbol_rules(self.sim.cfg)
        self.start_balances = starting_balances(self.sim.cfg.balances)  # for MAX_POSITION
        self.exec_id = 0
        self.order_times: dict[int, collections.deque] = collections.defaultdict(
            collections.deque)
        # what a request asked for, for the reports the book writes without it (rejects)
        self.requests: dict[tuple[int, str], dict] = {}
        # the session that sent the request a report answers (ResponseMode ONLY_ACKS)
        self.origin: dict[tuple[int, str], AcceptorSession] = {}

    # ------------------------------------------------------------------ entry point
    def application(self, s: AcceptorSession, msg: Message) -> None:
        mt = msg.msg_type
        if mt not in REQUIRED:
            raise _refuse("UNSUPPORTED_OPERATION", 35, reason=11)
        for tag in REQUIRED[mt]:
            if not msg.get(tag):
                raise _refuse("REQUIRED_TAG", tag, tag, reason=REQUIRED_TAG_MISSING)
        for tag, name in CL_ORD_ID_TAGS:
            value = msg.get(tag)
            if value is not None and not CL_ORD_ID_RE.match(value):
                raise _refuse("ILLEGAL_CHARS", tag, name, CL_ORD_ID_RE.pattern)
        acct = s.account.account_id
        if mt in ("D", "F", "XCN", "XAK"):  # the reports that answer it go back to s
            self.origin[(acct, msg.get(11))] = s
        if mt == "XLQ":
            self._limits(s, msg, acct)
            return
        sym = msg.get(55, "")
        if sym not in self.sim.books:
            raise _refuse("BAD_SYMBOL", 55)
        inst, book = self.sim.cfg.symbols[sym], self.sim.books[sym]
        book.now_ms = time.time_ns() // 1_000_000
        handler = {"D": self._new_order, "F": self._cancel, "XCN": self._cancel_new,
                   "XAK": self._amend, "q": self._mass_cancel}[mt]
        handler(s, msg, inst, book, acct)
        self.sim.after(sym)

    # ------------------------------------------------------------------ messages
    def _new_order(self, s, msg, inst, book, acct) -> None:
        req = self._order_request(msg)
        self.stats["binance_orders"] += 1
        problem = self._order_problem(req, inst, book, acct)
        if problem is None and self.sim.faults.take_reject():
            self.stats["fault_rejected_orders"] += 1
            problem = err("NEW_ORDER_REJECTED")[0], Reject.FAULT[1]
        if problem is not None:
            self._reject_new(s, req, inst, problem)
            return
        self._place(req, inst, book, acct)

    def _cancel(self, s, msg, inst, book, acct) -> None:
        clid = msg.get(11)
        order, problem = self._find(book, acct, msg.get(37), msg.get(41))
        if order is None:
            self._send_cancel_reject(s, msg, inst, clid, problem)
            return
        self.stats["binance_cancels"] += 1
        book.cancel(acct, clid, order.cl_ord_id)

    def _cancel_new(self, s, msg, inst, book, acct) -> None:
        """XCN: filters first, then the cancel leg, then (by 25033) the new order."""
        mode = msg.get(25033)
        if mode not in (STOP_ON_FAILURE, ALLOW_FAILURE):
            raise _refuse("INVALID_PARAMETER", 25033, "OrderCancelRequestAndNewOrderSingleMode")
        req = self._order_request(msg)
        self.stats["binance_cancel_replaces"] += 1
        problem = self._order_problem(req, inst, book, acct, replacing=True)
        if problem is not None:  # evaluated before either leg: nothing is cancelled
            self._reject_new(s, req, inst, problem)
            return
        cancel_id = msg.get(25034) or f"x{self._next_exec()}"
        self.origin[(acct, cancel_id)] = s
        order, why = self._find(book, acct, msg.get(37), msg.get(41))
        cancelled = order is not None and book.cancel(acct, cancel_id, order.cl_ord_id)
        if order is None:
            self._send_cancel_reject(s, msg, inst, msg.get(25034) or msg.get(11), why)
        if not cancelled:
            self.stats["binance_xcn_cancel_failed"] += 1
            if mode == STOP_ON_FAILURE:
                return  # newOrderResult NOT_ATTEMPTED
        self._place(req, inst, book, acct)  # the engine refuses a duplicate or a taker

    def _amend(self, s, msg, inst, book, acct) -> None:
        """XAK: a smaller quantity, the queue place kept; anything else is an XAR."""
        clid, qty = msg.get(11), msg.get(38)
        rules = self.rules[inst.symbol]
        self._decimal(msg, 38)
        order, problem = self._find(book, acct, msg.get(37), msg.get(41))
        if order is None:
            self._send_amend_reject(s, msg, inst, problem)
            return
        filt = rules.check_amend_qty(qty)
        if filt is not None:
            self._send_amend_reject(s, msg, inst, filt)
            return
        lots = inst.lots(qty)
        if lots >= order.qty:
            self._send_amend_reject(s, msg, inst, (err("AMEND_REJECTED")[0],
                                                   NO_CHANGE if lots == order.qty else AMEND_UP))
            return
        if clid != order.cl_ord_id and (acct, clid) in book.clids:
            self._send_amend_reject(s, msg, inst, (err("AMEND_REJECTED")[0], DUPLICATE_ORDER))
            return
        self.stats["binance_amends"] += 1
        self.requests[(acct, clid)] = {"qty": qty, "symbol": inst.symbol}
        book.amend(acct, clid, order.cl_ord_id, lots)

    def _mass_cancel(self, s, msg, inst, book, acct) -> None:
        if msg.get(530) != "1":
            raise _refuse("INVALID_PARAMETER", 530, "MassCancelRequestType")
        for o in book.orders.values():  # their cancels answer this request
            if o.account == acct:
                self.origin[(acct, o.cl_ord_id)] = s
        n = book.cancel_all(acct)
        self.stats["binance_mass_cancels"] += 1
        self._send(acct, "r", [(55, inst.symbol), (11, msg.get(11)), (530, "1"), (531, "1"),
                               (533, n)], only=s)

    def _limits(self, s, msg, acct) -> None:
        lim = self.dialect.limits
        orders = self._window(acct, time.monotonic())
        body = [(6136, msg.get(6136)), (25003, 2),
                (25004, 2), (25005, len(s.rules.messages)), (25006, lim.message_limit),
                (25007, f"{lim.message_window_s:g}"), (25008, "s"),
                (25004, 1), (25005, len(orders)), (25006, lim.order_limit),
                (25007, lim.order_window_s), (25008, "s")]
        self._send(acct, "XLR", body, only=s)

    # ------------------------------------------------------------------ orders
    def _order_request(self, msg: Message) -> dict:
        """The new order of a D or XCN, validated as a Reject(3) would refuse it."""
        ord_type, exec_inst, tif = msg.get(40), msg.get(18), msg.get(59)
        side = {"1": BUY, "2": SELL}.get(msg.get(54))
        if side is None:
            raise _refuse("INVALID_SIDE", 54)
        if ord_type not in ("1", "2"):
            raise _refuse("INVALID_ORDER_TYPE", 40)
        if exec_inst is not None and exec_inst != "6":
            raise _refuse("INVALID_PARAMETER", 18, "ExecInst")
        maker = ord_type == "2" and exec_inst == "6"
        if tif is not None and tif not in TIF:
            raise _refuse("INVALID_TIF", 59)
        for tag in (38,) + ((44,) if ord_type == "2" else ()) + (
                (59,) if ord_type == "2" and not maker else ()):
            if not msg.get(tag):
                raise _refuse("REQUIRED_TAG", tag, tag, reason=REQUIRED_TAG_MISSING)
        for tag in (38, 44):
            if msg.get(tag) is not None:
                self._decimal(msg, tag)
        if ord_type == "1" and msg.get(44) is not None:
            raise SessionReject(VALUE_INCORRECT, "A tag '44' was sent when not required.",
                                44, -1106)
        return {"clid": msg.get(11), "side": side, "type": MARKET if ord_type == "1" else
                "LIMIT_MAKER" if maker else "LIMIT", "qty": msg.get(38),
                "price": msg.get(44) if ord_type == "2" else None,
                "tif": TimeInForce.POST_ONLY if maker else
                TIF.get(tif or "1", TimeInForce.GTC), "symbol": msg.get(55)}

    @staticmethod
    def _decimal(msg: Message, tag: int) -> None:
        try:
            ok = Decimal(msg.get(tag)).is_finite() and Decimal(msg.get(tag)) > 0
        except ArithmeticError:
            ok = False
        if not ok:
            raise SessionReject(6, f"Field value was empty or malformed: tag {tag}", tag, -1102)

    def _order_problem(self, req: dict, inst: Instrument, book: Book, acct: int,
                       replacing: bool = False) -> tuple[int, str] | None:
        """Rate limit, filters, then (a plain new order) duplicate ClOrdID and LIMIT_MAKER
        crossing; an XCN's new order meets those two in the engine, after its cancel (which
        also frees one open-order slot)."""
        lim = self.dialect.limits
        now = time.monotonic()
        q = self._window(acct, now)
        q.append(now)  # an XCN whose new order is not attempted still counts (fix-api.md)
        if len(q) > lim.order_limit:
            self.stats["binance_order_rate_rejects"] += 1
            return err("TOO_MANY_ORDERS", lim.order_limit, f"{lim.order_window_s} SECOND")
        rules = self.rules[inst.symbol]
        open_orders = book.open_count.get(acct, 0) - (1 if replacing else 0)
        last = Decimal(inst.price_str(book.last_px)) if book.last_px else None
        filt = rules.check(req["side"] == BUY, req["type"], req["qty"], req["price"],
                           open_orders, last, self._base_position(inst, book, acct))
        if filt is not None:
            self.stats["binance_filter_rejects"] += 1
            return filt
        if replacing:
            return None
        dup = self._duplicate(book, acct, req["clid"])
        if dup is not None:
            return dup
        if req["type"] == "LIMIT_MAKER" and book.crosses(req["side"], inst.ticks(req["price"])):
            self.stats["binance_limit_maker_rejects"] += 1
            return err("NEW_ORDER_REJECTED")[0], WOULD_TAKE
        return None

    def _base_position(self, inst: Instrument, book: Book, acct: int) -> Decimal:
        """MAX_POSITION's position (filters.md): the base asset held, free and locked, plus
        the quantity of every open BUY of the account. Like every filter it is judged
        before an XCN's cancel leg, so the order being replaced still counts."""
        start = self.start_balances.get(split_symbol(inst.symbol)[0], Decimal(0))
        lots = book.positions.get(acct, (0, 0))[0] + sum(
            o.leaves for o in book.orders.values() if o.account == acct and o.side == BUY)
        return start + Decimal(lots) * Decimal(inst.lot_size)

    @staticmethod
    def _duplicate(book: Book, acct: int, clid: str) -> tuple[int, str] | None:
        if (acct, clid) in book.clids:
            return err("NEW_ORDER_REJECTED")[0], DUPLICATE_ORDER
        return None

    def _window(self, acct: int, now: float) -> collections.deque:
        q = self.order_times[acct]
        while q and now - q[0] >= self.dialect.limits.order_window_s:
            q.popleft()
        return q

    def _place(self, req: dict, inst: Instrument, book: Book, acct: int) -> None:
        self.requests[(acct, req["clid"])] = req
        ord_type = OrderType.MARKET if req["type"] == MARKET else OrderType.LIMIT
        book.new_order(acct, req["clid"], req["side"], inst.lots(req["qty"]),
                       inst.ticks(req["price"]) if req["price"] else 0, req["tif"], ord_type)

    def _find(self, book: Book, acct: int, oid: str | None,
              orig: str | None) -> tuple[Order | None, tuple[int, str]]:
        """The account's resting order by OrderID, then OrigClOrdID checked against it."""
        unknown = err("CANCEL_REJECTED")[0], UNKNOWN_ORDER
        if not oid and not orig:
            return None, (err("CANCEL_REJECTED")[0], CANCEL_INVALID)
        if oid:
            order = book.resting(acct, int(oid)) if oid.isdigit() else None
            if order is None or (orig and order.cl_ord_id != orig):
                return None, unknown
            return order, unknown
        order = book.order(acct, orig)
        if order is None or order.oid not in book.orders or order.cl_ord_id != orig:
            return None, unknown
        return order, unknown

    # ------------------------------------------------------------------ replies
    def _reject_new(self, s, req: dict, inst: Instrument, problem: tuple[int, str]) -> None:
        self.stats["binance_orders_rejected"] += 1
        log.info("%s: order %s rejected: %s (%d)", s.client, req["clid"], problem[1],
                 problem[0])
        rep = Report(int(ExecType.REJECTED), s.account.account_id, req["clid"],
                     side=req["side"], reject_code=problem[0], text=problem[1])
        self._send(s.account.account_id, "8", self._exec_body(inst, rep, req), ack_to=s)
        self.origin.pop((s.account.account_id, req["clid"]), None)

    def _send_cancel_reject(self, s, msg, inst, clid, problem) -> None:
        self.stats["binance_cancel_rejects"] += 1
        body = [(11, clid)]
        body += [(t, msg.get(t)) for t in (41, 37) if msg.get(t)]
        body += [(55, inst.symbol), (434, 1), (25016, problem[0]), (58, problem[1])]
        self._send(s.account.account_id, "9", body, ack_to=s)
        if msg.msg_type == "F":  # an XCN's new order is still to be answered
            self.origin.pop((s.account.account_id, clid), None)

    def _send_amend_reject(self, s, msg, inst, problem) -> None:
        self.stats["binance_amend_rejects"] += 1
        code = problem[0] if problem[0] == err("INVALID_MESSAGE")[0] else \
            err("AMEND_REJECTED")[0]
        body = [(11, msg.get(11))] + [(t, msg.get(t)) for t in (41, 37) if msg.get(t)]
        body += [(55, inst.symbol), (38, msg.get(38)), (25016, code), (58, problem[1])]
        self._send(s.account.account_id, "XAR", body, ack_to=s)
        self.origin.pop((s.account.account_id, msg.get(11)), None)

    def route(self, inst: Instrument, r: Report) -> None:
        """One engine report to the account's sessions."""
        key = (r.account, r.cl_ord_id)
        req = self.requests.get(key, {})
        ack = r.cancel_reject_to or r.exec_type in ACK_TYPES
        ack_to = self.origin.get(key) if ack else None
        if r.cancel_reject_to == 2:
            code = err("AMEND_REJECTED")[0]
            body = [(11, r.cl_ord_id), (41, r.orig_cl_ord_id), (55, inst.symbol),
                    (38, req.get("qty", "0")), (25016, code),
                    (58, ME_TEXT.get(r.text, r.text))]
            self._send(r.account, "XAR", body, ack_to=ack_to)
        elif r.cancel_reject_to:
            body = [(11, r.cl_ord_id), (41, r.orig_cl_ord_id), (55, inst.symbol), (434, 1),
                    (25016, err("CANCEL_REJECTED")[0]), (58, ME_TEXT.get(r.text, r.text))]
            self._send(r.account, "9", body, ack_to=ack_to)
        else:
            if not r.oid:  # the engine refused the new order
                r.reject_code = err("NEW_ORDER_REJECTED")[0]
            self._send(r.account, "8", self._exec_body(inst, r, req), ack_to=ack_to)
        if ack:
            self.origin.pop(key, None)  # answered
        if r.status not in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED) or r.cancel_reject_to:
            self.requests.pop(key, None)
            self.origin.pop(key, None)

    def _next_exec(self) -> int:
        self.exec_id += 1
        return self.exec_id

    def _exec_body(self, inst: Instrument, r: Report, req: dict) -> list:
        """An ExecutionReport with the tags of spot-fix-oe.xml."""
        q, px = inst.qty_str, inst.price_str
        rejected = not r.oid
        body = [(11, r.cl_ord_id)]
        if r.orig_cl_ord_id:
            body.append((41, r.orig_cl_ord_id))
        if rejected:
            side, limit = req.get("side", r.side), req.get("type", "LIMIT") != MARKET
            maker = req.get("type") == "LIMIT_MAKER"
            body += [(38, req.get("qty", "0")), (40, "2" if limit else "1"),
                     (54, "1" if side == BUY else "2"), (55, inst.symbol)]
            if maker:
                body.append((18, "6"))
            if req.get("price"):
                body.append((44, req["price"]))
            body += [(60, utc_us()), (150, "8"), (14, "0"), (151, "0"), (32, "0"),
                     (39, "8"), (103, 99), (25016, r.reject_code),
                     (58, ME_TEXT.get(r.text, r.text))]
            return body
        exec_type, status = EXEC_TYPE[r.exec_type], ORD_STATUS.get(r.status, "8")
        if r.exec_type == ExecType.CANCELED and r.text == Reject.SELF_TRADE[1]:
            exec_type = status = "C"  # STP EXPIRE_TAKER: the taker expires
        limit = r.ord_type == OrderType.LIMIT
        body += [(17, self._next_exec()), (37, r.oid), (38, q(r.qty)),
                 (40, "2" if limit else "1"), (54, "1" if r.side == BUY else "2"),
                 (55, inst.symbol)]
        if r.tif == TimeInForce.POST_ONLY:
            body.append((18, "6"))
        if limit:
            body.append((44, px(r.price)))
        if r.tif != TimeInForce.POST_ONLY and limit:
            body.append((59, TIF_OUT.get(r.tif, "1")))
        leaves = r.leaves if r.status in (OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED) else 0
        quote = Decimal(r.notional) * Decimal(inst.tick_size) * Decimal(inst.lot_size)
        body += [(60, utc_us()), (150, exec_type), (14, q(r.cum)), (151, q(leaves)),
                 (25017, format(quote.normalize(), "f"))]
        if r.last_qty:
            body += [(1057, "Y" if r.liquidity == 2 else "N"), (1003, r.trade_id),
                     (31, px(r.last_px)), (32, q(r.last_qty))]
        else:
            body.append((32, "0"))
        body.append((39, status))
        return body

    def _send(self, acct: int, msg_type: str, body: list,
              only: AcceptorSession | None = None,
              ack_to: AcceptorSession | None = None) -> None:
        """To every live EVERYTHING session of ``acct``, and to ``ack_to`` (the session
        whose request this answers) whatever its ResponseMode; ``only``: to that one."""
        acceptor = self.acceptor
        targets = [only] if only is not None else [
            x for x in acceptor.sessions.values() if x.account is not None
            and x.account.account_id == acct
            and (x.rules.response_mode == EVERYTHING or x is ack_to)]
        now = time.monotonic()
        sent = 0
        for x in targets:
            if x.want_close is None:
                x.send_report(msg_type, body, now)
                acceptor.server.flush(x)
                sent += 1
        if not sent:
            self.stats["binance_reports_no_session"] += 1


def symbol_rules(cfg) -> dict[str, SymbolRules]:
    """Every instrument's filters from ``[sim.filters]`` (``SimConfig.filters``)."""
    return {i.symbol: SymbolRules.make(i, cfg.filters.get(i.symbol)) for i in cfg.symbols}
