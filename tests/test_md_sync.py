"""The sync state machine rule by rule, through the feed core (parse -> ticks -> sync)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.instruments import SymbolTable
from pipeline.marketdata import sync as S
from pipeline.marketdata.events import (
    DIFF_END,
    DIFF_LEVEL,
    INVALIDATE,
    SNAPSHOT_BEGIN,
    SNAPSHOT_END,
    SNAPSHOT_LEVEL,
)
from pipeline.marketdata.normalize import FeedCore

ROWS = [{"symbol": "BTCUSDT", "venue": "spot", "tick_size": "0.01", "lot_size": "0.001"},
        {"symbol": "BTCUSDT_PERP", "venue": "usdm", "tick_size": "0.1", "lot_size": "0.001"}]


def core(pending: int = 1024) -> FeedCore:
    return FeedCore(SymbolTable.from_config(ROWS), max_levels=64, pending_capacity=pending)


def diff(U: int, u: int, pu: int | None = None, symbol="BTCUSDT", price="100.00") -> bytes:
    data = {"e": "depthUpdate", "E": 1, "s": symbol, "U": U, "u": u,
            "b": [[price, "1.000"]], "a": []}
    if pu is not None:
        data["pu"] = pu
    return json.dumps({"stream": "x", "data": data}).encode()


def snapshot(lid: int) -> bytes:
    return json.dumps({"lastUpdateId": lid, "bids": [["99.00", "2"]],
                       "asks": [["101.00", "3"]]}).encode()


def kinds(recs) -> list[int]:
    return recs["kind"].tolist()


def ends(recs) -> list[int]:
    return recs["last_id"][recs["kind"] == DIFF_END].tolist()


def word(c: FeedCore, sid: int, name: str) -> int:
    return int(c.sync[sid][name])


def test_spot_drop_straddle_continuity_and_gap():
    c = core()
    assert len(c.feed(diff(95, 100), 1)) == 0  # no book yet: buffered
    assert word(c, 0, "state") == S.PENDING and word(c, 0, "need_snapshot") == S.SNAP_WANTED
    recs = c.feed(snapshot(100), 2, "BTCUSDT")
    assert kinds(recs) == [SNAPSHOT_BEGIN, SNAPSHOT_LEVEL, SNAPSHOT_LEVEL, SNAPSHOT_END]
    assert word(c, 0, "dropped") == 1  # u <= lastUpdateId
    assert word(c, 0, "state") == S.SYNCED and word(c, 0, "need_snapshot") == S.SNAP_IDLE
    assert len(c.feed(diff(99, 100), 3)) == 0 and word(c, 0, "dropped") == 2
    recs = c.feed(diff(100, 103), 4)  # U <= lastUpdateId+1 <= u: the first applied event
    assert kinds(recs) == [DIFF_LEVEL, DIFF_END] and ends(recs) == [103]
    assert recs["price"][0] == 10000 and recs["qty"][0] == 1000 and recs["t_origin_ns"][0] == 4
    assert ends(c.feed(diff(104, 104), 5)) == [104]  # U == previous u + 1
    recs = c.feed(diff(106, 107), 6)  # 105 missing: gap
    assert kinds(recs) == [INVALIDATE]
    assert word(c, 0, "gaps") == 1 and word(c, 0, "state") == S.PENDING
    assert word(c, 0, "need_snapshot") == S.SNAP_WANTED and word(c, 0, "pend_n") == 2


def test_spot_first_event_must_straddle():
    c = core()
    c.feed(snapshot(100), 1, "BTCUSDT")
    recs = c.feed(diff(102, 105), 2)  # U > lastUpdateId+1: events were missed
    assert kinds(recs) == [INVALIDATE] and word(c, 0, "gaps") == 1


def test_futures_rules_use_pu():
    c = core()
    c.feed(snapshot(100), 1, "BTCUSDT_PERP")
    assert len(c.feed(diff(90, 99, 89, "BTCUSDT_PERP"), 2)) == 0  # u < lastUpdateId: drop
    recs = c.feed(diff(95, 100, 94, "BTCUSDT_PERP"), 3)  # U <= lastUpdateId <= u: applied
    assert ends(recs) == [100] and recs["prev_id"][-1] == 94  # (spot would drop u == id)
    assert ends(c.feed(diff(101, 110, 100, "BTCUSDT_PERP"), 4)) == [110]  # pu == prev u
    assert kinds(c.feed(diff(111, 120, 109, "BTCUSDT_PERP"), 5)) == [INVALIDATE]
    assert word(c, 1, "gaps") == 1 and word(c, 0, "gaps") == 0


def test_buffered_events_are_applied_in_order_after_the_snapshot():
    c = core()
    for U, u in ((90, 95), (96, 101), (102, 104), (105, 110)):
        assert len(c.feed(diff(U, u, price=f"{U}.00"), U)) == 0
    recs = c.feed(snapshot(100), 200, "BTCUSDT")
    assert kinds(recs)[:4] == [SNAPSHOT_BEGIN, SNAPSHOT_LEVEL, SNAPSHOT_LEVEL, SNAPSHOT_END]
    assert ends(recs) == [101, 104, 110]  # (90, 95) dropped, the rest in order
    levels = recs[recs["kind"] == DIFF_LEVEL]
    assert levels["price"].tolist() == [9600, 10200, 10500]
    assert word(c, 0, "last") == 110 and word(c, 0, "pend_n") == 0


def test_reconnect_invalidates_synced_symbols_and_asks_for_snapshots():
    c = core()
    c.feed(snapshot(100), 1, "BTCUSDT")
    n = S.invalidate_all(c.sync, c.out, 0, 5)
    assert n == 1 and c.out[0]["kind"] == INVALIDATE and c.out[0]["symbol_id"] == 0
    assert (c.sync["need_snapshot"] == S.SNAP_WANTED).all()
    assert (c.sync["state"] == S.PENDING).all()
    assert len(c.feed(diff(101, 101), 6)) == 0  # buffered until the new snapshot
    recs = c.feed(snapshot(100), 7, "BTCUSDT")
    assert ends(recs) == [101]


def test_stale_snapshot_while_synced_is_ignored():
    c = core()
    c.feed(snapshot(100), 1, "BTCUSDT")
    c.feed(diff(101, 105), 2)
    assert len(c.feed(snapshot(103), 3, "BTCUSDT")) == 0
    assert word(c, 0, "stale_snapshots") == 1 and word(c, 0, "last") == 105


def test_buffer_overflow_then_snapshot_resyncs_again():
    c = core(pending=4)  # two events fit (level + end each)
    for U in (101, 102, 103):
        c.feed(diff(U, U), U)
    assert word(c, 0, "pending_overflow") == 1
    recs = c.feed(snapshot(100), 9, "BTCUSDT")  # the oldest buffered events were lost
    assert INVALIDATE in kinds(recs) and word(c, 0, "gaps") == 1


@pytest.mark.parametrize("raw,reason", [
    (diff(1, 2, price="100.001"), "off_grid"),  # more decimals than the tick
    (diff(1, 2).replace(b'"1.000"', b'"1.0005"'), "off_grid"),
    (diff(1, 2, symbol="ETHUSDT"), "unknown_symbol"),
    (snapshot(5), "unknown_symbol"),  # a snapshot nobody claimed
])
def test_rejects_are_counted_and_change_nothing(raw, reason):
    c = core()
    assert len(c.feed(raw, 1)) == 0
    s = c.summary()
    assert s["rejected"] == 1 and s[f"reject_{reason}"] == 1
    assert (c.sync["state"] == S.UNSYNCED).all() and (c.sync["pend_n"] == 0).all()


def test_trades_and_book_tickers_become_records():
    c = core()
    t = c.feed(b'{"e":"trade","E":5,"s":"BTCUSDT","t":77,"p":"100.01","q":"0.5","m":true}', 1)
    assert t["kind"].tolist() == [6] and t["price"][0] == 10001 and t["qty"][0] == 500
    assert t["side"][0] == 1 and t["first_id"][0] == 77 and t["exch_time_ns"][0] == 5_000_000
    b = c.feed(b'{"u":9,"s":"BTCUSDT","b":"1.00","B":"2","a":"1.01","A":"3"}', 2)
    assert b["kind"].tolist() == [7, 7] and b["side"].tolist() == [0, 1]
    assert b["price"].tolist() == [100, 101] and b["last_id"].tolist() == [9, 9]
    assert np.all(b["t_origin_ns"] == 2)
