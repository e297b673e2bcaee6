"""Binance Spot order entry on the Binance-strict simulator: filters with their error codes,
LIMIT_MAKER, XCN in both modes with each leg succeeding and failing, XAK, q, XLQ/XLR."""

from __future__ import annotations

import pytest
from binance_sim import BOB_API_KEY, accounts, logged_on, new_signer, run

from pipeline.venue.matching import BUY
from pipeline.venue.testing import (
    TEST_API_KEY,
    BinanceFixClient,
    binance_test_config,
    running,
)

ALICE, BOB = new_signer(), new_signer()
P = "60000.00"


def order(clid: str, side: str, qty: str, price: str | None = P, maker: bool = False,
          symbol: str = "BTCUSDT", tif: str = "1") -> list:
    body = [(11, clid), (38, qty), (40, "2" if price else "1")]
    if maker:
        body.append((18, "6"))
    if price:
        body.append((44, price))
    body += [(54, side), (55, symbol)]
    if price and not maker:
        body.append((59, tif))
    return body


def xcn(clid: str, mode: int, side: str, qty: str, price: str, orig: str | None = None,
        oid: str | None = None, cancel_id: str | None = None, maker: bool = False) -> list:
    body = [(25033, mode)] + ([(37, oid)] if oid else []) + ([(41, orig)] if orig else [])
    body += [(25034, cancel_id)] if cancel_id else []
    return body + order(clid, side, qty, price, maker)


def rejected(m, clid: str, code: int, text: str) -> None:
    assert m.msg_type == "8" and m.get(150) == "8" and m.get(39) == "8", m.raw
    assert m.get(11) == clid and m.get(25016) == str(code) and m.get(58) == text, m.raw
    assert m.get(17) is None  # ExecID is omitted on rejected orders


def config(tmp_path, max_orders: int = 3, **kw):
    filters = {"BTCUSDT": {"min_qty": "0.0001", "max_num_orders": max_orders}}
    return binance_test_config(tmp_path, accounts(ALICE, BOB), filters=filters, **kw)


@pytest.mark.timeout(60)
def test_each_filter_denial_has_its_error_code(tmp_path):
    async def main():
        async with running(config(tmp_path)) as sim:
            c = await logged_on(sim, "OE1", ALICE)
            failures = [
                ("p1", "1", "0.001", "60000.001", "PRICE_FILTER"),  # off tick
                ("p2", "1", "0.001", "2000000", "PRICE_FILTER"),  # above maxPrice
                ("l1", "1", "0.00005", P, "LOT_SIZE"),  # below minQty 0.0001
                ("l2", "1", "0.000105", P, "LOT_SIZE"),  # off the step
                ("l3", "1", "9001", P, "LOT_SIZE"),  # above maxQty
                ("n1", "1", "0.0001", "1.00", "NOTIONAL"),  # 0.0001 x 1 < minNotional 5
            ]
            for clid, side, qty, price, name in failures:
                c.send("D", order(clid, side, qty, price))
                m = await c.recv("8")
                rejected(m, clid, -1013, f"Filter failure: {name}")
                assert m.get(55) == "BTCUSDT" and m.get(54) == side and m.get(40) == "2"
            # PERCENT_PRICE_BY_SIDE: around the last trade (5x up, 0.2x down)
            c.send("D", order("t1", "1", "0.001", P))
            assert (await c.recv("8")).get(150) == "0"
            assert sim.fill(1, "t1", "0.001", P)
            assert (await c.recv("8")).get(150) == "F"
            c.send("D", order("pp1", "2", "0.001", "300000.01"))
            rejected(await c.recv("8"), "pp1", -1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
            c.send("D", order("pp2", "1", "0.001", "11999.99"))
            rejected(await c.recv("8"), "pp2", -1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
            # MAX_NUM_ORDERS 3 open on the symbol
            for i in range(3):
                c.send("D", order(f"m{i}", "1", "0.001", f"5900{i}.00"))
                assert (await c.recv("8")).get(150) == "0"
            c.send("D", order("m3", "1", "0.001", "59003.00"))
            rejected(await c.recv("8"), "m3", -1013, "Filter failure: MAX_NUM_ORDERS")
            c.send("D", order("e1", "1", "0.01", "3000.00", symbol="ETHUSDT"))
            assert (await c.recv("8")).get(150) == "0"  # another symbol: its own count
            # duplicate ClOrdID (filters come first: BTCUSDT would fail MAX_NUM_ORDERS)
            c.send("D", order("e1", "1", "0.01", "2990.00", symbol="ETHUSDT"))
            rejected(await c.recv("8"), "e1", -2010, "Duplicate order sent.")
            # LIMIT_MAKER that would take
            bob = await logged_on(sim, "BOB1", BOB, api_key=BOB_API_KEY)
            bob.send("D", order("b1", "2", "0.001", "61000.00", symbol="ETHUSDT"))
            assert (await bob.recv("8")).get(150) == "0"
            c.send("D", order("mk1", "1", "0.01", "61000.00", maker=True, symbol="ETHUSDT"))
            m = await c.recv("8")
            rejected(m, "mk1", -2010, "Order would immediately match and take.")
            assert m.get(18) == "6" and m.get(59) is None
            c.send("D", order("mk2", "1", "0.01", "2999.00", maker=True, symbol="ETHUSDT"))
            m = await c.recv("8")
            assert m.get(150) == "0" and m.get(18) == "6" and m.get(59) is None
            assert sim.stats["binance_filter_rejects"] == 9
            # malformed requests are a Reject(3), not an order reject
            c.send("D", [(11, "bad id!"), (38, "1"), (40, "2"), (44, P), (54, "1"),
                         (55, "BTCUSDT"), (59, "1")])
            r = await c.recv("3")
            assert r.get(25016) == "-1100" and r.get(371) == "11"
            c.send("D", [(11, "nt"), (38, "0.001"), (40, "2"), (44, P), (54, "1"),
                         (55, "BTCUSDT")])
            r = await c.recv("3")
            assert r.get(25016) == "-1102" and r.get(58) == "Required tag '59' missing."
            c.send("D", order("u1", "1", "0.001", symbol="DOGEUSDT"))
            r = await c.recv("3")
            assert r.get(25016) == "-1121" and r.get(58) == "Invalid symbol."
    run(main())


@pytest.mark.timeout(60)
def test_xcn_both_modes_each_leg_succeeding_and_failing(tmp_path):
    async def main():
        async with running(config(tmp_path)) as sim:
            c = await logged_on(sim, "OE1", ALICE)
            bob = await logged_on(sim, "BOB1", BOB, api_key=BOB_API_KEY)
            bob.send("D", order("ask", "2", "0.001", "60100.00"))  # so a maker bid can cross
            assert (await bob.recv("8")).get(150) == "0"
            c.send("D", order("o1", "1", "0.001", "59000.00"))
            new = await c.recv("8")
            oid1 = new.get(37)

            # 1 STOP_ON_FAILURE, both legs succeed: cancel (new ClOrdID), then a new OrderID
            c.send("XCN", xcn("o2", 1, "1", "0.002", "59100.00", orig="o1", cancel_id="c1"))
            cxl, placed = await c.recv("8"), await c.recv("8")
            assert cxl.get(150) == "4" and cxl.get(11) == "c1" and cxl.get(41) == "o1"
            assert cxl.get(37) == oid1
            assert placed.get(150) == "0" and placed.get(11) == "o2"
            assert placed.get(37) != oid1 and placed.get(38) == "0.002"

            # 1 STOP_ON_FAILURE, cancel fails: a 9, and the new order is not attempted
            c.send("XCN", xcn("o3", 1, "1", "0.001", "59200.00", orig="nope"))
            rej = await c.recv("9")
            assert rej.get(25016) == "-2011" and rej.get(58) == "Unknown order sent."
            assert rej.get(434) == "1" and rej.get(41) == "nope" and rej.get(11) == "o3"
            c.send("1", [(112, "fence")])
            assert (await c.recv()).msg_type == "0"  # no report for o3 came before it
            assert sim.books["BTCUSDT"].order(1, "o3") is None

            # 2 ALLOW_FAILURE, cancel fails, new succeeds
            c.send("XCN", xcn("o4", 2, "1", "0.001", "59300.00", oid="999999"))
            rej = await c.recv("9")
            assert rej.get(25016) == "-2011" and rej.get(37) == "999999"
            placed = await c.recv("8")
            assert placed.get(150) == "0" and placed.get(11) == "o4"

            # 2 ALLOW_FAILURE, both fail: the new order is a LIMIT_MAKER that would take
            c.send("XCN", xcn("o5", 2, "1", "0.001", "60100.00", orig="nope", maker=True))
            assert (await c.recv("9")).get(25016) == "-2011"
            rejected(await c.recv("8"), "o5", -2010, "Order would immediately match and take.")

            # 1 STOP_ON_FAILURE, cancel succeeds, new fails (would take): o4 is cancelled
            c.send("XCN", xcn("o6", 1, "1", "0.001", "60100.00", orig="o4", cancel_id="c6",
                              maker=True))
            cxl = await c.recv("8")
            assert cxl.get(150) == "4" and cxl.get(41) == "o4"
            rejected(await c.recv("8"), "o6", -2010, "Order would immediately match and take.")

            # filters first: a new order that fails one leaves the old order alone
            c.send("XCN", xcn("o7", 2, "1", "0.001", "59300.005", orig="o2"))
            rejected(await c.recv("8"), "o7", -1013, "Filter failure: PRICE_FILTER")
            resting = sim.books["BTCUSDT"].order(1, "o2")
            assert resting is not None and resting.oid in sim.books["BTCUSDT"].orders
            # by OrderID and OrigClOrdID together: both must match the same order
            c.send("XCN", xcn("o8", 1, "1", "0.001", "59000.00", orig="o1",
                              oid=placed.get(37)))
            assert (await c.recv("9")).get(58) == "Unknown order sent."
            assert sim.stats["binance_xcn_cancel_failed"] == 4
    run(main())


@pytest.mark.timeout(60)
def test_xak_reduces_quantity_keeping_priority_and_rejects_increases(tmp_path):
    async def main():
        async with running(config(tmp_path)) as sim:
            c = await logged_on(sim, "OE1", ALICE)
            bob = await logged_on(sim, "BOB1", BOB, api_key=BOB_API_KEY)
            c.send("D", order("a1", "1", "0.003", "59000.00"))
            a1 = await c.recv("8")
            bob.send("D", order("b1", "1", "0.001", "59000.00"))
            await bob.recv("8")
            book = sim.books["BTCUSDT"]
            price = book.best(BUY)
            c.send("XAK", [(11, "a1"), (41, "a1"), (55, "BTCUSDT"), (38, "0.002")])
            m = await c.recv("8")
            assert m.get(150) == "5" and m.get(39) == "0" and m.get(38) == "0.002"
            assert m.get(37) == a1.get(37) and m.get(151) == "0.002" and m.get(11) == "a1"
            assert [o.cl_ord_id for o in book.queue(BUY, price)] == ["a1", "b1"]  # kept
            assert book.level_qty(BUY, price) == 300
            c.send("XAK", [(11, "a1b"), (37, a1.get(37)), (55, "BTCUSDT"), (38, "0.001")])
            m = await c.recv("8")
            assert m.get(11) == "a1b" and m.get(41) == "a1" and m.get(38) == "0.001"
            for qty, text in (("0.002", "Order amend (quantity increase) is not supported."),
                              ("0.001", "The requested action would change no state; "
                                        "rejecting.")):
                c.send("XAK", [(11, "x"), (41, "a1b"), (55, "BTCUSDT"), (38, qty)])
                r = await c.recv("XAR")
                assert r.get(25016) == "-2038" and r.get(58) == text and r.get(38) == qty
            c.send("XAK", [(11, "x"), (41, "gone"), (55, "BTCUSDT"), (38, "0.0001")])
            r = await c.recv("XAR")
            assert r.get(25016) == "-2038" and r.get(58) == "Unknown order sent."
            c.send("XAK", [(11, "x"), (41, "a1b"), (55, "BTCUSDT"), (38, "0.000015")])
            r = await c.recv("XAR")
            assert r.get(25016) == "-1013" and r.get(58) == "Filter failure: LOT_SIZE"
            assert [o.cl_ord_id for o in book.queue(BUY, price)] == ["a1b", "b1"]
    run(main())


@pytest.mark.timeout(60)
def test_mass_cancel_and_limit_query(tmp_path):
    async def main():
        cfg = config(tmp_path, max_orders=10, binance={"order_limit": 4})
        async with running(cfg) as sim:
            c = await logged_on(sim, "OE1", ALICE)
            other = await logged_on(sim, "OE2", ALICE)  # the account's second session
            for i in range(3):
                c.send("D", order(f"q{i}", "1", "0.001", f"5800{i}.00"))
                await c.recv("8")
                assert (await other.recv("8")).get(11) == f"q{i}"  # EVERYTHING: both get it
            c.send("XLQ", [(6136, "lim1")])
            lr = await c.recv("XLR")
            groups = [f for f in lr.fields if f[0] in (25004, 25005, 25006, 25007, 25008)]
            assert lr.get(6136) == "lim1" and lr.get(25003) == "2"
            assert [v.decode() for _, v in groups] == ["2", "5", "10000", "10", "s",
                                                       "1", "3", "4", "10", "s"]
            c.send("D", order("q3", "1", "0.001", "58003.00"))
            assert (await c.recv("8")).get(150) == "0"
            c.send("D", order("q4", "1", "0.001", "58004.00"))
            rejected(await c.recv("8"), "q4", -1015,
                     "Too many new orders; current limit is 4 orders per 10 SECOND.")
            c.send("q", [(11, "mc1"), (55, "BTCUSDT"), (530, "1")])
            cancels = [await c.recv("8") for _ in range(4)]
            assert sorted(m.get(41) for m in cancels) == ["q0", "q1", "q2", "q3"]
            assert all(m.get(150) == "4" and m.get(39) == "4" for m in cancels)
            r = await c.recv("r")
            assert (r.get(11), r.get(55), r.get(530), r.get(531), r.get(533)) == \
                ("mc1", "BTCUSDT", "1", "1", "4")
            assert not sim.books["BTCUSDT"].orders
            c.send("q", [(11, "mc2"), (55, "BTCUSDT"), (530, "7")])
            assert (await c.recv("3")).get(371) == "530"
            assert not [m for m in other.inbox if m.msg_type == "r"]  # the reply is c's
    run(main())


@pytest.mark.timeout(60)
def test_response_mode_only_acks_gets_answers_to_its_own_requests_only(tmp_path):
    async def main():
        async with running(config(tmp_path, max_orders=10)) as sim:
            port = sim.endpoints()["fix_port"]
            acks = BinanceFixClient(port, "ACKS", TEST_API_KEY, ALICE)
            await acks.connect()
            assert (await acks.logon(extra=[(25036, 2)])).msg_type == "A"
            every = await logged_on(sim, "EVERY", ALICE)
            acks.send("D", order("k1", "1", "0.001", "59000.00"))
            assert (await acks.recv("8")).get(150) == "0"  # its own order's ack
            assert (await every.recv("8")).get(11) == "k1"  # EVERYTHING sees it too
            every.send("D", order("e1", "1", "0.001", "58000.00"))
            assert (await every.recv("8")).get(11) == "e1"
            assert sim.fill(1, "k1", "0.001", "59000.00")  # a pushed fill
            assert (await every.recv("8")).get(150) == "F"
            acks.send("F", [(11, "kc"), (41, "e1"), (55, "BTCUSDT")])
            m = await acks.recv("8")  # the answer to its cancel: the first thing it gets
            assert m.get(150) == "4" and m.get(41) == "e1"
            acks.send("1", [(112, "fence")])
            await acks.recv("0")
            assert not [x for x in acks.inbox if x.msg_type == "8"]  # no e1 NEW, no fill
    run(main())


@pytest.mark.timeout(60)
def test_max_position_counts_the_base_asset_held_and_open_buys(tmp_path):
    """filters.md MAX_POSITION: free + locked base asset + open BUY quantity + the order;
    SELLs are never refused by it; exchangeInfo publishes it."""
    from pipeline.venue.binance_orders import symbol_rules

    cfg = binance_test_config(tmp_path, accounts(ALICE, BOB), balances={"ETH": "0.5"},
                              filters={"ETHUSDT": {"max_position": "1.0"}})
    rules = symbol_rules(cfg)
    assert {"filterType": "MAX_POSITION", "maxPosition": "1.00000000"} in \
        rules["ETHUSDT"].filters()
    assert all(f["filterType"] != "MAX_POSITION" for f in rules["BTCUSDT"].filters())

    async def main():
        async with running(cfg) as sim:
            c = await logged_on(sim, "OE1", ALICE)
            c.send("D", order("a1", "1", "0.4", "2990.00", symbol="ETHUSDT"))
            assert (await c.recv("8")).get(150) == "0"  # 0.5 held + 0.4 open = 0.9
            c.send("D", order("a2", "1", "0.2", "2980.00", symbol="ETHUSDT"))
            rejected(await c.recv("8"), "a2", -1013, "Filter failure: MAX_POSITION")
            c.send("D", order("a3", "1", "0.1", "2980.00", symbol="ETHUSDT"))
            assert (await c.recv("8")).get(150) == "0"  # exactly 1.0: allowed
            c.send("D", order("s1", "2", "0.3", "3010.00", symbol="ETHUSDT"))
            assert (await c.recv("8")).get(150) == "0"  # a SELL: not this filter's
            assert sim.fill(1, "a1", "0.4", "2990.00")  # held 0.9, open buys 0.1: still 1.0
            assert (await c.recv("8")).get(150) == "F"
            c.send("D", order("a4", "1", "0.002", "2970.00", symbol="ETHUSDT"))
            rejected(await c.recv("8"), "a4", -1013, "Filter failure: MAX_POSITION")
            c.send("D", order("b1", "1", "0.001", P))  # BTCUSDT has no MAX_POSITION
            assert (await c.recv("8")).get(150) == "0"
    run(main())
