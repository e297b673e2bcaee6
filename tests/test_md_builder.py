"""The book builder core's own checks: crossed books, id re-check, unsynced books never
published as synced; and tick/lot inference for unconfigured symbols."""

from __future__ import annotations

import numpy as np

from pipeline.instruments import SymbolTable
from pipeline.marketdata import apply as A
from pipeline.marketdata import book as B
from pipeline.marketdata import files
from pipeline.marketdata.events import (
    BBO,
    DIFF_END,
    DIFF_LEVEL,
    INVALIDATE,
    SNAPSHOT_BEGIN,
    SNAPSHOT_END,
    SNAPSHOT_LEVEL,
    TRADE,
    Head,
    put,
)
from pipeline.marketdata.infer import infer_symbols
from shm_layouts.records import BOOK_UPDATE, MD_EVENT


def records(rows) -> np.ndarray:
    out = np.zeros(len(rows), MD_EVENT)
    for k, (kind, side, price, qty, first, last, prev) in enumerate(rows):
        put(out, k, Head(kind, 0, first, last, prev, 1000 + k, 0), side, price, qty)
    return out


def run(rows, futures=0, ticker_overlay=True):
    books = B.Books(1, window=256)
    bst = A.new_state(np.array([futures]), ticker_overlay)
    upd = np.zeros(64, BOOK_UPDATE)
    recs = records(rows)
    used, k = A.apply_records(recs, 0, len(recs), -1, books.view(), bst, upd, 0)
    assert used == len(recs)
    return bst[0], upd[:k]


SNAP = [(SNAPSHOT_BEGIN, 0, 0, 0, 10, 10, -1), (SNAPSHOT_LEVEL, 0, 100, 5, 10, 10, -1),
        (SNAPSHOT_LEVEL, 1, 101, 7, 10, 10, -1), (SNAPSHOT_END, 0, 0, 0, 10, 10, -1)]


def test_snapshot_and_diffs_publish_synced_books():
    s, upd = run(SNAP + [(DIFF_LEVEL, 0, 100, 0, 11, 12, -1), (DIFF_LEVEL, 0, 99, 3, 11, 12, -1),
                         (DIFF_END, 0, 0, 0, 11, 12, -1)])
    assert upd["state"].tolist() == [A.SYNCED, A.SYNCED]
    assert upd["flags"].tolist() == [A.F_SNAPSHOT, A.F_DIFF]
    last = upd[-1]
    assert (last["update_id"], last["bid_px"][0], last["bid_qty"][0]) == (12, 99, 3)
    assert (last["ask_px"][0], last["n_bids"], last["n_asks"]) == (101, 1, 1)
    assert last["t_origin_ns"] == 1006


def test_crossed_book_is_invalidated_and_counted():
    s, upd = run(SNAP + [(DIFF_LEVEL, 0, 102, 1, 11, 11, -1), (DIFF_END, 0, 0, 0, 11, 11, -1),
                         (DIFF_LEVEL, 0, 90, 1, 12, 12, -1), (DIFF_END, 0, 0, 0, 12, 12, -1)])
    assert s["crossed"] == 1 and s["state"] == A.UNSYNCED
    assert upd[-1]["flags"] & A.F_CROSSED and upd[-1]["state"] == A.UNSYNCED
    assert upd[-1]["n_bids"] == 0 and upd[-1]["bid_px"][0] == 0  # no levels when unsynced
    assert len(upd) == 2  # nothing published for the diff after the invalidation


def test_id_recheck_spot_and_futures():
    s, upd = run(SNAP + [(DIFF_END, 0, 0, 0, 13, 14, -1)])  # spot: 11 <= U required
    assert s["id_errors"] == 1 and upd[-1]["state"] == A.UNSYNCED
    s, _ = run(SNAP + [(DIFF_END, 0, 0, 0, 9, 12, 8), (DIFF_END, 0, 0, 0, 13, 13, 12)],
               futures=1)
    assert s["id_errors"] == 0 and s["update_id"] == 13
    s, _ = run(SNAP + [(DIFF_END, 0, 0, 0, 9, 12, 8), (DIFF_END, 0, 0, 0, 14, 14, 13)],
               futures=1)
    assert s["id_errors"] == 1


def test_invalidate_and_levels_before_a_snapshot_are_not_published():
    s, upd = run([(DIFF_LEVEL, 0, 100, 1, 1, 1, -1), (DIFF_END, 0, 0, 0, 1, 1, -1)] + SNAP
                 + [(INVALIDATE, 0, 0, 0, 0, 10, -1), (DIFF_LEVEL, 0, 100, 9, 11, 11, -1),
                    (DIFF_END, 0, 0, 0, 11, 11, -1)])
    assert upd["state"].tolist() == [A.SYNCED, A.UNSYNCED]
    assert upd[0]["bid_qty"][0] == 5 and s["invalidations"] == 1


def test_tick_and_lot_inferred_for_unconfigured_symbols(binance_data):
    cap = files.load([binance_data / "BINANCE_DELIVERY.ws.1.0"])
    configured = SymbolTable.from_config([{"symbol": "BTCUSD_211231", "venue": "coinm",
                                           "tick_size": "0.1", "lot_size": "1"}])
    table = infer_symbols(cap, configured)
    assert table["BTCUSD_211231"].symbol_id == 0  # configured ones keep their ids
    assert len(table) == 10
    assert (table["ETHUSD_210924"].tick_size, table["ETHUSD_210924"].lot_size) == ("0.01", "1")
    assert table["TRXUSD_PERP"].venue == "coinm" and table["TRXUSD_PERP"].tick_size == "0.00001"
    spot = infer_symbols(files.load([binance_data / "BINANCE.ws.1.0"]))
    assert spot["BLZETH"].venue == "spot" and spot["BLZETH"].tick_size == "0.00000001"
    usdm = infer_symbols(files.load([binance_data / "BINANCE_FUTURES.ws.1.0"]))
    assert usdm["SUSHIUSDT"].venue == "usdm" and usdm["SUSHIUSDT"].tick_size == "0.001"


# a book 98/99/100 x 101/102/103, update id 10; tickers are (BID, ASK) record pairs
DEEP = [(SNAPSHOT_BEGIN, 0, 0, 0, 10, 10, -1)] + [
    (SNAPSHOT_LEVEL, side, px, 5, 10, 10, -1)
    for side, px in ((0, 100), (0, 99), (0, 98), (1, 101), (1, 102), (1, 103))] + [
    (SNAPSHOT_END, 0, 0, 0, 10, 10, -1)]


def ticker(bid, bq, ask, aq, u):
    return [(BBO, 0, bid, bq, u, u, -1), (BBO, 1, ask, aq, u, u, -1)]


def test_fresh_book_ticker_is_published_over_the_book_levels_behind_it():
    s, upd = run(DEEP + ticker(99, 4, 101, 6, 12))
    assert upd["flags"].tolist() == [A.F_SNAPSHOT, A.F_BBO]
    u = upd[-1]
    assert (u["update_id"], u["state"], u["t_origin_ns"]) == (12, A.SYNCED, 1000 + 9)
    # the ticker says 100 is gone: its best first, then the book's levels strictly behind
    assert list(u["bid_px"][: u["n_bids"]]) == [99, 98]
    assert list(u["bid_qty"][: u["n_bids"]]) == [4, 5]
    assert list(u["ask_px"][: u["n_asks"]]) == [101, 102, 103]
    assert list(u["ask_qty"][: u["n_asks"]]) == [6, 5, 5]
    assert u["bid_px"][2] == 0 and u["bid_qty"][2] == 0
    assert s["bbo_published"] == 1 and s["update_id"] == 10  # the book is not changed


def test_ticker_inside_the_spread_keeps_every_book_level():
    _, upd = run(DEEP + ticker(100, 1, 100 + 1, 2, 10))  # same update id as the book
    u = upd[-1]
    assert list(u["bid_px"][: u["n_bids"]]) == [100, 99, 98]
    assert list(u["bid_qty"][: u["n_bids"]]) == [1, 5, 5]


def test_stale_crossed_or_unsynced_tickers_are_counted_not_published():
    s, upd = run(DEEP + ticker(99, 1, 101, 1, 9))  # the book (id 10) is past it
    assert len(upd) == 1 and s["bbo_stale"] == 1
    s, upd = run(DEEP + ticker(101, 1, 101, 1, 11) + ticker(100, 0, 101, 1, 12))
    assert len(upd) == 1 and s["bbo_bad"] == 2  # crossed, then an empty bid
    s, upd = run(ticker(99, 1, 101, 1, 11))  # no snapshot yet
    assert len(upd) == 0 and s["bbo"] == 2 and s["bbo_published"] == 0
    s, upd = run(DEEP + [(BBO, 1, 101, 1, 12, 12, -1)])  # an ASK half without its BID
    assert len(upd) == 1 and s["bbo_published"] == 0
    s, upd = run(DEEP + ticker(99, 4, 101, 6, 12), ticker_overlay=False)  # replays
    assert len(upd) == 1 and s["bbo"] == 2 and s["bbo_published"] == 0


def test_md_hop_is_sampled_once_per_batch_even_under_backpressure(instance):
    """A batch held back by a full book ring is not consumed, and its frame -> builder hop
    is sampled once, when it goes through: not once per blocked cycle."""
    from pipeline.marketdata.builder import BookBuilderAgent
    from pipeline.marketdata.segments import BOOK_CONSUMER, create_md_segments
    from shm_layouts.histogram import H_COUNT

    segs = create_md_segments(instance, 64, 1, book_capacity=2)
    builder = BookBuilderAgent(segs, batch=2)
    builder.on_start()
    strategy = segs.book.join(BOOK_CONSUMER)
    for _ in range(2):  # the book ring is full: its reader has not read these
        assert segs.book.offer(np.zeros(1, BOOK_UPDATE))
    for rec in records([(TRADE, 0, 100, 1, 1, 1, -1), (TRADE, 1, 101, 1, 2, 2, -1)]):
        assert segs.md.offer(rec)
    fn, args = builder.hot_duty()
    for _ in range(5):
        assert fn(*args) == 0  # backpressure: nothing consumed ...
    assert builder.hop[H_COUNT] == 0  # ... and nothing sampled
    assert len(segs.book.take(strategy)) == 2  # the reader catches up
    assert fn(*args) == 2 and builder.hop[H_COUNT] == 1
    assert fn(*args) == 0 and builder.hop[H_COUNT] == 1
    assert builder.bst[0]["trades"] == 2


def test_warm_pass_overlays_the_kept_ticker_on_shadow_state_only():
    """The builder's dry pass: the first BBO pair it saw, applied to a copy of its state
    into a private update; the same update a real ticker gave, and nothing shared moves.
    A book that has moved past the kept ticker still takes the publishing branch."""
    from pipeline.marketdata import warm as MW

    books = B.Books(1, window=256)
    bst = A.new_state(np.array([0]), True)
    upd = np.zeros(64, BOOK_UPDATE)
    recs = records(DEEP + ticker(99, 4, 101, 6, 12))
    _, k = A.apply_records(recs, 0, len(recs), -1, books.view(), bst, upd, 0)
    warm = MW.builder_state(1, bst)
    MW.keep_pair(warm, recs, 0, len(recs), -1)
    assert warm.clock[0]["ready"] == 1 and list(warm.pair["price"]) == [99, 101]
    bst[0]["update_id"] = 20  # a later depth event: the kept ticker is stale for real
    before = [a.copy() for a in (bst, *books.arrays())]
    assert MW.overlay_again(warm, books.view(), bst) == 1
    for a, b in zip(before, (bst, *books.arrays()), strict=True):
        assert np.array_equal(a, b)
    u, real = warm.upd[0], upd[k - 1]
    assert u["flags"] == A.F_BBO
    for field in ("bid_px", "bid_qty", "ask_px", "ask_qty", "n_bids", "n_asks"):
        assert np.array_equal(u[field], real[field])
