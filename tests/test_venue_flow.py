"""Synthetic flow: deterministic per seed, deep book, busy, and it fills resting orders."""

from __future__ import annotations

from pipeline.venue.flow import Flow, FlowParams
from pipeline.venue.matching import BUY, SELL, Book
from pipeline.venue.simulator import Simulator
from pipeline.venue.testing import sim_test_config


def run_flow(seed: int, events: int) -> tuple[Book, Flow]:
    book = Book()
    flow = Flow(book, FlowParams(), seed)
    flow.seed_book()
    flow.step(events)
    return book, flow


def test_same_seed_same_book_different_seed_different_book():
    a, _ = run_flow(3, 20_000)
    b, _ = run_flow(3, 20_000)
    c, _ = run_flow(4, 20_000)
    assert a.depth(BUY) == b.depth(BUY) and a.depth(SELL) == b.depth(SELL)
    assert a.update_id == b.update_id and a.next_trade_id == b.next_trade_id
    assert a.depth(BUY) != c.depth(BUY)


def test_book_is_deep_busy_and_trades():
    book, flow = run_flow(1, 0)
    assert len(book.prices[BUY]) >= 200 and len(book.prices[SELL]) >= 200
    book.changed.clear()
    u0, t0 = book.update_id, book.next_trade_id
    flow.step(10_000)
    assert book.update_id - u0 > 8_000  # almost every event changes the book
    assert book.next_trade_id - t0 > 200  # market orders and crossing adds trade
    assert len(book.prices[BUY]) >= 200 and len(book.prices[SELL]) >= 200
    bid, ask = book.best(BUY), book.best(SELL)
    assert bid < ask
    # depth decays away from the touch: the 20 levels nearest hold more than 20 far ones
    near = sum(q for _, q in book.depth(BUY, 20))
    far = sum(q for _, q in book.depth(BUY)[-20:])
    assert near > far


def test_resting_account_orders_get_filled_by_the_flow(tmp_path):
    sim = Simulator(sim_test_config(tmp_path))
    book = sim.books["BTCUSDT"]
    bid, ask = book.best(BUY), book.best(SELL)
    book.new_order(1, "join-bid", BUY, 5, bid)
    book.new_order(1, "join-ask", SELL, 5, ask)
    orders = [book.order(1, "join-bid"), book.order(1, "join-ask")]
    for _ in range(200):
        sim.step_flow(100)
        if all(o.cum > 0 for o in orders):
            break
    assert all(o.cum > 0 for o in orders)
    assert sim.positions()["alice"]["BTCUSDT"]["lots"] == orders[0].cum - orders[1].cum
