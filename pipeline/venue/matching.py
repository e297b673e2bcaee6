"""Price-time priority limit order book in int ticks/lots (the simulator's matching engine).

One ``Book`` per instrument. Everything is integers and deterministic: order ids, trade ids
and update ids are sequential, time comes from the caller. The engine is synchronous and
I/O-free; whoever drives it drains three outputs after each call:

- ``reports``: ``Report`` per order-state change of an order (new, fill, cancel, reject ...)
- ``trades``: ``Trade`` per match (maker and taker order, price, qty, trade id)
- ``changed``: (side, price) of every level whose total changed, in order, each change
  stamped by ``update_id`` (one id per book-changing call, as Binance's depth stream).

Rules: limit orders GTC/IOC/FOK/post-only, market orders (IOC at any price), cancel,
cancel/replace (priority kept only when the quantity decreases at the same price),
self-trade prevention per account (the incoming order's remainder is cancelled; account 0,
the anonymous background flow, is exempt), rejects with reasons.

Speed: a level is an insertion-ordered dict (O(1) append, cancel and head), the sorted
price list of a side is maintained with ``bisect`` (a book holds a few thousand levels).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from shm_layouts.records import ExecType, OrderType, OrdStatus, Side, TimeInForce

BUY = int(Side.BID)
SELL = int(Side.ASK)
HOUSE = 0  # the background flow's account: exempt from self-trade prevention


class Reject:
    """Reject reasons (text goes to FIX tag 58; ``code`` to OrdRejReason 103)."""

    UNKNOWN_ORDER = (5, "unknown order")
    TOO_LATE = (0, "too late to cancel")
    PRICE_OFF_TICK = (99, "price not on tick")
    QTY_OFF_LOT = (99, "qty not on lot")
    POST_ONLY_CROSS = (99, "post-only would cross")
    DUPLICATE_CLORDID = (6, "duplicate ClOrdID")
    OVER_LIMIT = (3, "over limits")
    BAD_QTY = (99, "qty must be positive")
    BAD_PRICE = (99, "price must be positive")
    UNKNOWN_SYMBOL = (1, "unknown symbol")
    FOK_UNFILLED = (99, "FOK could not be filled")
    REPLACE_TOO_SMALL = (99, "replace qty not above filled qty")
    SELF_TRADE = (99, "self-trade prevented")
    NO_LIQUIDITY = (99, "no liquidity")
    AMEND_NOT_DOWN = (99, "amend must decrease the quantity")
    FAULT = (0, "rejected by fault injection")


class Order:
    __slots__ = ("oid", "account", "cl_ord_id", "side", "price", "qty", "leaves", "cum",
                 "tif", "ord_type", "status", "notional", "time_ms")

    def __init__(self, oid: int, account: int, cl_ord_id: str, side: int, price: int,
                 qty: int, tif: int, ord_type: int):
        self.oid = oid
        self.account = account
        self.cl_ord_id = cl_ord_id
        self.side = side
        self.price = price
        self.qty = qty  # total ordered (after replaces)
        self.leaves = qty
        self.cum = 0
        self.notional = 0  # sum of fill price * qty, for the average price
        self.tif = tif
        self.ord_type = ord_type
        self.status = int(OrdStatus.NEW)
        self.time_ms = 0  # when the book took it (the caller's clock)


@dataclass(slots=True)
class Report:
    """One execution report (or OrderCancelReject): the order's state when it happened."""

    exec_type: int  # ExecType
    account: int
    cl_ord_id: str
    orig_cl_ord_id: str = ""
    oid: int = 0  # 0: the request never became an order
    side: int = 0
    price: int = 0
    qty: int = 0
    leaves: int = 0
    cum: int = 0
    notional: int = 0
    status: int = int(OrdStatus.REJECTED)
    tif: int = int(TimeInForce.GTC)
    ord_type: int = int(OrderType.LIMIT)
    last_px: int = 0
    last_qty: int = 0
    trade_id: int = 0
    reject_code: int = 0
    text: str = ""
    cancel_reject_to: int = 0  # 1 cancel, 2 replace: an OrderCancelReject, not an 8
    liquidity: int = 0  # fills: 1 added (maker), 2 removed (taker), as FIX LastLiquidityInd


@dataclass(slots=True)
class Trade:
    trade_id: int
    price: int
    qty: int
    taker_side: int
    taker_oid: int
    maker_oid: int
    taker_account: int
    maker_account: int
    time_ms: int


class Book:
    """The order book of one instrument."""

    def __init__(self, symbol_id: int = 0, first_update_id: int = 1, max_order_lots: int = 0,
                 max_open_orders: int = 0):
        self.symbol_id = symbol_id
        self.levels: tuple[dict[int, dict[int, Order]], dict[int, dict[int, Order]]] = ({}, {})
        self.totals: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.prices: tuple[list[int], list[int]] = ([], [])  # ascending, both sides
        self.orders: dict[int, Order] = {}  # resting orders
        self.clids: dict[tuple[int, str], Order] = {}  # every account order, by any ClOrdID
        self.open_count: dict[int, int] = {}
        self.positions: dict[int, list[int]] = {}  # account -> [lots (signed), cash ticks*lots]
        self.update_id = first_update_id - 1
        self.next_oid = 1
        self.next_trade_id = 1
        self.max_order_lots = max_order_lots
        self.max_open_orders = max_open_orders
        self.reports: list[Report] = []
        self.trades: list[Trade] = []
        self.changed: list[tuple[int, int]] = []
        self.now_ms = 0
        self.last_px = 0  # price of the last trade (0: none yet)
        self._touched = False

    # ------------------------------------------------------------------ queries
    def best(self, side: int) -> int | None:
        p = self.prices[side]
        if not p:
            return None
        return p[-1] if side == BUY else p[0]

    def level_qty(self, side: int, price: int) -> int:
        return self.totals[side].get(price, 0)

    def depth(self, side: int, limit: int = 0) -> list[tuple[int, int]]:
        """(price, total lots) best first; all levels when ``limit`` is 0."""
        p = self.prices[side]
        seq = reversed(p) if side == BUY else iter(p)
        tot = self.totals[side]
        out = []
        for price in seq:
            out.append((price, tot[price]))
            if limit and len(out) >= limit:
                break
        return out

    def queue(self, side: int, price: int) -> list[Order]:
        return list(self.levels[side].get(price, {}).values())

    def order(self, account: int, cl_ord_id: str) -> Order | None:
        return self.clids.get((account, cl_ord_id))

    # ------------------------------------------------------------------ requests
    def new_order(self, account: int, cl_ord_id: str, side: int, qty: int, price: int = 0,
                  tif: int = TimeInForce.GTC, ord_type: int = OrderType.LIMIT) -> Order | None:
        """Submit an order; returns the order (maybe already done) or None if rejected."""
        self._touched = False
        house = account == HOUSE
        reason = None
        if not house and (account, cl_ord_id) in self.clids:
            reason = Reject.DUPLICATE_CLORDID
        elif qty <= 0:
            reason = Reject.BAD_QTY
        elif ord_type == OrderType.LIMIT and price <= 0:
            reason = Reject.BAD_PRICE
        elif self.max_order_lots and qty > self.max_order_lots:
            reason = Reject.OVER_LIMIT
        elif (not house and self.max_open_orders
              and self.open_count.get(account, 0) >= self.max_open_orders):
            reason = Reject.OVER_LIMIT
        elif tif == TimeInForce.POST_ONLY and (ord_type != OrderType.LIMIT
                                               or self._crosses(side, price)):
            reason = Reject.POST_ONLY_CROSS
        if reason is not None:
            self.reject(account, cl_ord_id, reason)
            return None
        order = Order(self.next_oid, account, cl_ord_id, side,
                      price if ord_type == OrderType.LIMIT else 0, qty, int(tif), int(ord_type))
        self.next_oid += 1
        order.time_ms = self.now_ms
        if not house:
            self.clids[(account, cl_ord_id)] = order
            self._report(ExecType.NEW, order)
        if tif == TimeInForce.FOK and self._fillable(order) < qty:
            order.status = int(OrdStatus.EXPIRED)
            if not house:
                self._report(ExecType.EXPIRED, order, text=Reject.FOK_UNFILLED[1])
            return order
        self._match(order)
        self._rest_or_finish(order)
        return order

    def cancel(self, account: int, cl_ord_id: str, orig_cl_ord_id: str) -> bool:
        """Cancel by OrigClOrdID; a failure is reported as an OrderCancelReject."""
        self._touched = False
        order = self.clids.get((account, orig_cl_ord_id))
        reason = self._cancel_problem(account, cl_ord_id, orig_cl_ord_id, order)
        if reason is not None:
            self._cancel_reject(1, account, cl_ord_id, orig_cl_ord_id, order, reason)
            return False
        self._unlink(order)
        order.status = int(OrdStatus.CANCELED)
        orig = order.cl_ord_id
        if cl_ord_id and cl_ord_id != orig:
            order.cl_ord_id = cl_ord_id
            self.clids[(account, cl_ord_id)] = order
        self._report(ExecType.CANCELED, order, orig=orig)
        return True

    def replace(self, account: int, cl_ord_id: str, orig_cl_ord_id: str, qty: int,
                price: int) -> bool:
        """Cancel/replace to a new total ``qty`` and ``price``."""
        self._touched = False
        order = self.clids.get((account, orig_cl_ord_id))
        reason = self._cancel_problem(account, cl_ord_id, orig_cl_ord_id, order)
        if reason is None:
            if price <= 0 or order.ord_type != OrderType.LIMIT:
                reason = Reject.BAD_PRICE
            elif qty <= order.cum:
                reason = Reject.REPLACE_TOO_SMALL
            elif self.max_order_lots and qty > self.max_order_lots:
                reason = Reject.OVER_LIMIT
            elif order.tif == TimeInForce.POST_ONLY and price != order.price and \
                    self._crosses(order.side, price):
                reason = Reject.POST_ONLY_CROSS
        if reason is not None:
            self._cancel_reject(2, account, cl_ord_id, orig_cl_ord_id, order, reason)
            return False
        new_leaves = qty - order.cum
        keep = price == order.price and new_leaves <= order.leaves
        if keep:
            self.totals[order.side][price] += new_leaves - order.leaves
            order.leaves = new_leaves
            self._mark(order.side, price)
        else:
            self._unlink(order)
            order.price = price
            order.leaves = new_leaves
        order.qty = qty
        orig = order.cl_ord_id
        order.cl_ord_id = cl_ord_id
        self.clids[(account, cl_ord_id)] = order
        self._report(ExecType.REPLACED, order, orig=orig)
        if not keep:
            self._match(order)
            self._rest_or_finish(order)
        return True

    def amend(self, account: int, cl_ord_id: str, orig_cl_ord_id: str, qty: int) -> bool:
        """Reduce a resting order's total ``qty`` keeping its queue priority (Binance's
        amend keep priority); ``cl_ord_id`` may equal the order's own. A REPLACED report,
        or a cancel reject (to 2) with the reason."""
        self._touched = False
        order = self.clids.get((account, orig_cl_ord_id))
        same = cl_ord_id == orig_cl_ord_id
        reason = self._cancel_problem(account, "" if same else cl_ord_id, orig_cl_ord_id,
                                      order)
        if reason is None and not order.cum < qty < order.qty:
            reason = Reject.REPLACE_TOO_SMALL if qty <= order.cum else Reject.AMEND_NOT_DOWN
        if reason is not None:
            self._cancel_reject(2, account, cl_ord_id, orig_cl_ord_id, order, reason)
            return False
        new_leaves = qty - order.cum
        self.totals[order.side][order.price] += new_leaves - order.leaves
        order.leaves, order.qty = new_leaves, qty
        self._mark(order.side, order.price)
        if not same:
            order.cl_ord_id = cl_ord_id
            self.clids[(account, cl_ord_id)] = order
        self._report(ExecType.REPLACED, order, orig=orig_cl_ord_id)
        return True

    def resting(self, account: int, oid: int) -> Order | None:
        """The account's resting order with venue id ``oid``."""
        order = self.orders.get(oid)
        return order if order is not None and order.account == account else None

    def status(self, account: int, cl_ord_id: str) -> Order | None:
        self._touched = False
        order = self.clids.get((account, cl_ord_id))
        if order is None:
            self.reject(account, cl_ord_id, Reject.UNKNOWN_ORDER, ExecType.ORDER_STATUS)
        else:
            self._report(ExecType.ORDER_STATUS, order)
        return order

    def execute(self, account: int, cl_ord_id: str, qty: int, price: int) -> bool:
        """Fill up to ``qty`` of a resting account order at ``price`` against the house: a
        trade the book did not match (how tests make the venue fill a named order at a
        named price, as a venue's hidden or off-book liquidity would)."""
        self._touched = False
        order = self.clids.get((account, cl_ord_id))
        if order is None or order.oid not in self.orders or qty <= 0:
            return False
        qty = min(qty, order.leaves)
        self._fill(order, price, qty, 1)
        self.totals[order.side][order.price] -= qty
        self._mark(order.side, order.price)
        self.trades.append(Trade(self.next_trade_id, price, qty, 1 - order.side, 0, order.oid,
                                 HOUSE, account, self.now_ms))
        self.last_px = price
        self.next_trade_id += 1
        if order.leaves == 0:
            self._unlink(order)
        return True

    def reject(self, account: int, cl_ord_id: str, reason: tuple[int, str],
               exec_type: int = ExecType.REJECTED) -> None:
        self.reports.append(Report(int(exec_type), account, cl_ord_id,
                                   reject_code=reason[0], text=reason[1]))

    def cancel_all(self, account: int) -> int:
        live = [o for o in self.orders.values() if o.account == account]
        return sum(self.cancel(account, "", o.cl_ord_id) for o in live)

    def cancel_oid(self, oid: int) -> bool:
        """Cancel a resting order by venue id without a report (the background flow)."""
        order = self.orders.get(oid)
        if order is None:
            return False
        self._touched = False
        self._unlink(order)
        order.status = int(OrdStatus.CANCELED)
        return True

    # ------------------------------------------------------------------ internals
    def _cancel_problem(self, account: int, cl_ord_id: str, orig: str,
                        order: Order | None):
        if order is None:
            return Reject.UNKNOWN_ORDER
        if order.oid in self.orders and order.cl_ord_id != orig:
            return Reject.UNKNOWN_ORDER
        if cl_ord_id and (account, cl_ord_id) in self.clids:
            return Reject.DUPLICATE_CLORDID
        if order.oid not in self.orders:
            return Reject.TOO_LATE
        return None

    def _cancel_reject(self, to: int, account: int, cl_ord_id: str, orig: str,
                       order: Order | None, reason: tuple[int, str]) -> None:
        rep = Report(int(ExecType.CANCEL_REJECTED), account, cl_ord_id, orig,
                     reject_code=reason[0], text=reason[1], cancel_reject_to=to)
        if order is not None:
            rep.oid, rep.status = order.oid, order.status
        self.reports.append(rep)

    def crosses(self, side: int, price: int) -> bool:
        """An order of ``side`` at ``price`` would trade against the book now."""
        return self._crosses(side, price)

    def _crosses(self, side: int, price: int) -> bool:
        opp = self.best(1 - side)
        return opp is not None and (price >= opp if side == BUY else price <= opp)

    def _fillable(self, order: Order) -> int:
        """Lots the order could take now, stopping at its own account's orders (STP)."""
        side = 1 - order.side
        got = 0
        for price, _ in self.depth(side):
            if order.ord_type == OrderType.LIMIT and (
                    price > order.price if order.side == BUY else price < order.price):
                break
            for maker in self.levels[side][price].values():
                if maker.account == order.account and order.account != HOUSE:
                    return got
                got += maker.leaves
                if got >= order.qty:
                    return got
        return got

    def _match(self, order: Order) -> None:
        side = 1 - order.side
        prices = self.prices[side]
        levels = self.levels[side]
        totals = self.totals[side]
        orders = self.orders
        is_buy = order.side == BUY
        limit = order.ord_type == OrderType.LIMIT
        stp = order.account != HOUSE
        while order.leaves > 0 and prices:
            price = prices[0] if is_buy else prices[-1]
            if limit and (price > order.price if is_buy else price < order.price):
                break
            level = levels[price]
            while order.leaves > 0 and level:
                maker = next(iter(level.values()))
                if stp and maker.account == order.account:
                    order.status = int(OrdStatus.CANCELED)
                    self._report(ExecType.CANCELED, order, text=Reject.SELF_TRADE[1])
                    return
                qty = min(order.leaves, maker.leaves)
                self._fill(maker, price, qty, 1)
                self._fill(order, price, qty, 2)
                totals[price] -= qty
                self._mark(side, price)
                self.trades.append(Trade(self.next_trade_id, price, qty, order.side,
                                         order.oid, maker.oid, order.account, maker.account,
                                         self.now_ms))
                self.last_px = price
                self.next_trade_id += 1
                if maker.leaves == 0:
                    del level[maker.oid]
                    del orders[maker.oid]
                    if maker.account != HOUSE:
                        self.open_count[maker.account] -= 1
            if not level:
                del levels[price]
                del totals[price]
                if is_buy:
                    del prices[0]
                else:
                    prices.pop()

    def _fill(self, order: Order, price: int, qty: int, liquidity: int) -> None:
        order.leaves -= qty
        order.cum += qty
        order.notional += price * qty
        done = order.leaves == 0
        order.status = int(OrdStatus.FILLED if done else OrdStatus.PARTIALLY_FILLED)
        if order.account != HOUSE:
            self._report(ExecType.FILL if done else ExecType.PARTIAL_FILL, order,
                         last_px=price, last_qty=qty, trade_id=self.next_trade_id)
            self.reports[-1].liquidity = liquidity
            pos = self.positions.setdefault(order.account, [0, 0])
            signed = qty if order.side == BUY else -qty
            pos[0] += signed
            pos[1] -= signed * price

    def _rest_or_finish(self, order: Order) -> None:
        if order.leaves == 0 or order.status == OrdStatus.CANCELED:
            return
        if order.ord_type == OrderType.MARKET or order.tif in (TimeInForce.IOC,
                                                               TimeInForce.FOK):
            order.status = int(OrdStatus.EXPIRED)
            if order.account != HOUSE:
                self._report(ExecType.EXPIRED, order)
            return
        self._link(order)

    def _link(self, order: Order) -> None:
        side, price = order.side, order.price
        level = self.levels[side].get(price)
        if level is None:
            level = self.levels[side][price] = {}
            self.totals[side][price] = 0
            bisect.insort(self.prices[side], price)
        level[order.oid] = order
        self.totals[side][price] += order.leaves
        self.orders[order.oid] = order
        if order.account != HOUSE:
            self.open_count[order.account] = self.open_count.get(order.account, 0) + 1
        self._mark(side, price)

    def _unlink(self, order: Order) -> None:
        side, price = order.side, order.price
        level = self.levels[side][price]
        del level[order.oid]
        del self.orders[order.oid]
        if order.account != HOUSE:
            self.open_count[order.account] -= 1
        self.totals[side][price] -= order.leaves
        if not level:
            del self.levels[side][price]
            del self.totals[side][price]
            prices = self.prices[side]
            del prices[bisect.bisect_left(prices, price)]
        self._mark(side, price)

    def _mark(self, side: int, price: int) -> None:
        if not self._touched:
            self._touched = True
            self.update_id += 1
        self.changed.append((side, price))

    def _report(self, exec_type: int, order: Order, orig: str = "", last_px: int = 0,
                last_qty: int = 0, text: str = "", trade_id: int = 0) -> None:
        self.reports.append(Report(int(exec_type), order.account, order.cl_ord_id, orig,
                                   order.oid, order.side, order.price, order.qty,
                                   order.leaves, order.cum, order.notional, order.status,
                                   order.tif, order.ord_type, last_px, last_qty, trade_id,
                                   text=text))
