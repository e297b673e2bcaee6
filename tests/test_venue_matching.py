"""Matching engine: hypothesis properties and the rule cases one by one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.venue.matching import BUY, HOUSE, SELL, Book, Reject
from shm_layouts.records import ExecType, OrderType, OrdStatus, TimeInForce

TIFS = [TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY]

op = st.one_of(
    st.tuples(st.just("new"), st.integers(0, 2), st.sampled_from([BUY, SELL]),
              st.integers(95, 105), st.integers(1, 12), st.sampled_from(TIFS),
              st.sampled_from([OrderType.LIMIT] * 4 + [OrderType.MARKET])),
    st.tuples(st.just("cancel"), st.integers(0, 60)),
    st.tuples(st.just("replace"), st.integers(0, 60), st.integers(95, 105),
              st.integers(1, 12)),
)


def priority_queue(book: Book, side: int) -> list[int]:
    """Resting order ids of one side in matching order."""
    return [o.oid for price, _ in book.depth(side) for o in book.queue(side, price)]


def check_invariants(book: Book) -> None:
    bid, ask = book.best(BUY), book.best(SELL)
    assert bid is None or ask is None or bid < ask, "crossed book"
    for side in (BUY, SELL):
        assert book.prices[side] == sorted(book.levels[side])
        for price, level in book.levels[side].items():
            assert level, "empty level kept"
            assert book.totals[side][price] == sum(o.leaves for o in level.values())
            for o in level.values():
                assert o.leaves > 0 and o.side == side and o.price == price
                assert o.qty == o.cum + o.leaves
                assert book.orders[o.oid] is o
    assert len(book.orders) == sum(len(v) for s in book.levels for v in s.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=1, max_size=80))
def test_properties(ops):
    book = Book()
    clids: list[tuple[int, str]] = []
    n = 0
    for item in ops:
        n += 1
        book.trades.clear()
        book.reports.clear()
        before = {s: priority_queue(book, s) for s in (BUY, SELL)}
        resting_before = {oid: (o.leaves, o.side) for oid, o in book.orders.items()}
        if item[0] == "new":
            _, acct, side, price, qty, tif, otype = item
            clid = f"c{n}"
            order = book.new_order(acct, clid, side, qty, price, tif, otype)
            if acct != HOUSE and order is not None:
                clids.append((acct, clid))
            taker_side = side
            if order is not None and book.trades:
                # price-time priority: the makers are a prefix of the opposite queue
                makers = [t.maker_oid for t in book.trades]
                dedup = list(dict.fromkeys(makers))
                assert dedup == before[1 - side][:len(dedup)]
                prices = [t.price for t in book.trades]
                assert prices == sorted(prices, reverse=side == SELL)
                if otype == OrderType.LIMIT:
                    assert all(p <= price if side == BUY else p >= price for p in prices)
                assert sum(t.qty for t in book.trades) == order.cum
                assert tif != TimeInForce.POST_ONLY
        elif item[0] == "cancel" and clids:
            acct, clid = clids[item[1] % len(clids)]
            book.cancel(acct, f"x{n}", clid)
            taker_side = None
        elif item[0] == "replace" and clids:
            acct, clid = clids[item[1] % len(clids)]
            order = book.order(acct, clid)
            old = (order.price, order.leaves, priority_queue(book, order.side))
            live = order.oid in book.orders
            ok = book.replace(acct, f"r{n}", order.cl_ord_id, item[3], item[2])
            if ok:
                clids.append((acct, f"r{n}"))
            taker_side = order.side
            if ok and live and order.oid in book.orders and not book.trades:
                q = priority_queue(book, order.side)
                if item[2] == old[0] and order.leaves <= old[1]:
                    assert q == old[2], "priority lost on a size decrease"
                else:
                    others = [x for x in old[2] if x != order.oid]
                    assert [x for x in q if x != order.oid] == others, "others' priority moved"
                    same = [book.orders[x] for x in q if book.orders[x].price == item[2]]
                    assert same[-1] is order, "replaced order did not go to the back"
            assert ok or not live or book.reports[-1].cancel_reject_to == 2
        else:
            continue
        # every fill has a counterparty: distinct orders on opposite sides, qty conserved
        for t in book.trades:
            assert t.taker_oid != t.maker_oid and t.qty > 0
            assert t.maker_oid in resting_before
            assert resting_before[t.maker_oid][1] == 1 - taker_side
            assert t.taker_side == taker_side
        taken: dict[int, int] = {}
        for t in book.trades:
            taken[t.maker_oid] = taken.get(t.maker_oid, 0) + t.qty
        for oid, q in taken.items():
            leaves_before = resting_before[oid][0]
            o = book.orders.get(oid)
            assert (o.leaves if o else 0) == leaves_before - q
        fills = [r for r in book.reports if r.exec_type in (ExecType.FILL, ExecType.PARTIAL_FILL)]
        acct_trade_qty = sum(t.qty for t in book.trades if t.taker_account != HOUSE) + sum(
            t.qty for t in book.trades if t.maker_account != HOUSE)
        assert sum(r.last_qty for r in fills) == acct_trade_qty
        check_invariants(book)
    # positions: each account's net equals its buys minus sells over all fills
    total = sum(p[0] for p in book.positions.values())
    assert isinstance(total, int)


def fresh() -> Book:
    b = Book(first_update_id=100)
    b.new_order(HOUSE, "", SELL, 5, 101)
    b.new_order(HOUSE, "", SELL, 5, 102)
    b.new_order(HOUSE, "", BUY, 5, 99)
    b.reports.clear()
    b.trades.clear()
    return b


def test_partial_fill_then_rest_and_reports():
    b = fresh()
    o = b.new_order(1, "a", BUY, 8, 101)
    assert [r.exec_type for r in b.reports] == [ExecType.NEW, ExecType.PARTIAL_FILL]
    assert o.cum == 5 and o.leaves == 3 and b.best(BUY) == 101 and b.best(SELL) == 102
    assert b.reports[-1].last_px == 101 and b.reports[-1].last_qty == 5
    assert b.positions[1] == [5, -505]


def test_ioc_fok_market_post_only():
    b = fresh()
    o = b.new_order(1, "ioc", BUY, 8, 101, TimeInForce.IOC)
    assert o.cum == 5 and o.status == OrdStatus.EXPIRED and b.best(BUY) == 99
    b = fresh()
    o = b.new_order(1, "fok", BUY, 11, 102, TimeInForce.FOK)
    assert o.cum == 0 and o.status == OrdStatus.EXPIRED and not b.trades
    o = b.new_order(1, "fok2", BUY, 10, 102, TimeInForce.FOK)
    assert o.status == OrdStatus.FILLED and b.best(SELL) is None
    b = fresh()
    o = b.new_order(1, "mkt", SELL, 7, 0, TimeInForce.IOC, OrderType.MARKET)
    assert o.cum == 5 and o.status == OrdStatus.EXPIRED and b.best(BUY) is None
    b = fresh()
    assert b.new_order(1, "po", BUY, 1, 101, TimeInForce.POST_ONLY) is None
    assert b.reports[-1].text == Reject.POST_ONLY_CROSS[1]
    assert b.new_order(1, "po2", BUY, 1, 100, TimeInForce.POST_ONLY) is not None


def test_rejects():
    b = Book(max_order_lots=100, max_open_orders=1)
    b.new_order(1, "a", BUY, 1, 10)
    for args, reason in [(("a", BUY, 1, 9), Reject.DUPLICATE_CLORDID),
                         (("b", BUY, 0, 9), Reject.BAD_QTY),
                         (("c", BUY, 1, 0), Reject.BAD_PRICE),
                         (("d", BUY, 101, 9), Reject.OVER_LIMIT),
                         (("e", BUY, 1, 9), Reject.OVER_LIMIT)]:
        assert b.new_order(1, *args) is None
        assert b.reports[-1].exec_type == ExecType.REJECTED and b.reports[-1].text == reason[1]
    assert not b.cancel(1, "z", "nope")
    assert b.reports[-1].cancel_reject_to == 1 and b.reports[-1].text == "unknown order"


def test_self_trade_prevention_cancels_taker():
    b = fresh()
    b.new_order(1, "maker", SELL, 2, 100)
    o = b.new_order(1, "taker", BUY, 3, 101)
    assert o.status == OrdStatus.CANCELED and o.cum == 0 and not b.trades
    assert b.reports[-1].text == Reject.SELF_TRADE[1]
    assert b.level_qty(SELL, 100) == 2


def test_execute_fills_a_named_order_at_a_named_price():
    b = Book()
    b.new_order(1, "a", BUY, 5, 10)
    b.new_order(1, "b", BUY, 5, 10)
    b.reports.clear()
    assert b.execute(1, "b", 2, 9)  # behind "a" in the queue, below its limit: still "b"
    (r,) = b.reports
    assert (r.cl_ord_id, r.last_qty, r.last_px, r.exec_type) == ("b", 2, 9,
                                                                  ExecType.PARTIAL_FILL)
    assert b.level_qty(BUY, 10) == 8 and b.positions[1] == [2, -18]
    assert b.trades[-1].maker_account == 1 and b.trades[-1].taker_account == HOUSE
    assert b.execute(1, "b", 9, 10)  # more than it has left: fills the rest
    assert b.order(1, "b").status == OrdStatus.FILLED and b.level_qty(BUY, 10) == 5
    assert [o.cl_ord_id for o in b.queue(BUY, 10)] == ["a"]
    assert not b.execute(1, "b", 1, 10) and not b.execute(1, "nope", 1, 10)
    check_invariants(b)


def test_replace_priority_rules():
    b = Book()
    b.new_order(1, "a", BUY, 5, 10)
    b.new_order(2, "b", BUY, 5, 10)
    a = b.order(1, "a")
    assert b.replace(1, "a2", "a", 3, 10)  # decrease at same price: keeps priority
    assert [o.cl_ord_id for o in b.queue(BUY, 10)] == ["a2", "b"]
    assert b.replace(1, "a3", "a2", 4, 10)  # increase: back of the queue
    assert [o.cl_ord_id for o in b.queue(BUY, 10)] == ["b", "a3"]
    assert b.replace(1, "a4", "a3", 4, 11)  # new price
    assert b.best(BUY) == 11 and a.cl_ord_id == "a4" and b.level_qty(BUY, 10) == 5
    assert not b.replace(1, "a5", "a", 4, 11)  # orig is the old id: too late
    assert b.reports[-1].cancel_reject_to == 2
    b.new_order(HOUSE, "", SELL, 2, 11)
    assert a.cum == 2
    assert not b.replace(1, "a6", "a4", 2, 11)  # not above filled
    assert b.reports[-1].text == Reject.REPLACE_TOO_SMALL[1]


def test_cancel_and_update_ids():
    b = fresh()
    u0 = b.update_id
    b.new_order(1, "a", BUY, 1, 98)
    assert b.update_id == u0 + 1
    b.new_order(2, "b", SELL, 1, 99)  # fills the house bid at 99
    assert b.update_id == u0 + 2
    assert b.cancel(1, "c", "a")
    assert b.update_id == u0 + 3 and b.level_qty(BUY, 98) == 0
    b.reject(1, "x", Reject.FAULT)
    assert b.update_id == u0 + 3
    assert not b.cancel(1, "d", "a") and b.reports[-1].text == "too late to cancel"


def test_order_status():
    b = fresh()
    b.new_order(1, "a", BUY, 1, 100)
    b.status(1, "a")
    assert b.reports[-1].exec_type == ExecType.ORDER_STATUS
    assert b.reports[-1].status == OrdStatus.NEW
    b.status(1, "zz")
    assert b.reports[-1].exec_type == ExecType.ORDER_STATUS and b.reports[-1].oid == 0
