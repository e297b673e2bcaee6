"""The numba parser against json.loads + Decimal on real captures, generated messages and
a malformed corpus."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from md_reference import ours, reference_parse

from pipeline.marketdata import files
from pipeline.marketdata import parser as P

CAPTURES = ["BINANCE.ws.1.0", "BINANCE_FUTURES.ws.1.0", "BINANCE_DELIVERY.ws.1.0"]


@pytest.mark.parametrize("name", CAPTURES)
def test_every_captured_message_matches_reference(binance_data, name):
    cap = files.load([binance_data / name])
    kinds = set()
    for i in range(len(cap)):
        raw = cap.raw(i)
        got = ours(raw)
        assert got == reference_parse(raw), raw[:200]
        kinds.add(got["kind"])
    assert {P.K_DEPTH, P.K_SNAPSHOT, P.K_BOOKTICKER, P.K_AGGTRADE, P.K_OTHER} <= kinds


def test_raw_stream_and_spot_bookticker_forms():
    spot_bt = b'{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",' \
              b'"a":"25.36520000","A":"40.66000000"}'
    got = ours(spot_bt)
    assert got["kind"] == P.K_BOOKTICKER and got["b"] == Decimal("25.3519")
    assert got["u"] == 400900217
    trade = b'{"e":"trade","E":1,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","b":88,' \
            b'"a":50,"T":2,"m":true,"M":true}'
    got = ours(trade)
    assert got == reference_parse(trade) and got["id"] == 12345
    # data before stream in the wrapper, whitespace everywhere
    wrapped = b' { "data" : {"e":"aggTrade","E":1,"s":"X","a":7,"p":"1.5","q":"2","f":1,' \
              b'"l":2,"T":3,"m":false} , "stream":"x@aggTrade" } '
    assert ours(wrapped) == reference_parse(wrapped)
    futures_snapshot = b'{"lastUpdateId":10,"E":1,"T":2,"bids":[["1.0","2"]],"asks":[]}'
    assert ours(futures_snapshot)["levels"] == [(0, Decimal(1), Decimal(2))]
    old_trade = trade.replace(b'"a":50', b'"a":50,"x":[]')
    assert ours(old_trade)["id"] == 12345


def _depth(bids, asks, order_seed: int, spaces: bool) -> bytes:
    fields = [("e", "depthUpdate"), ("E", 1626992741037), ("s", "BTCUSDT"), ("U", 100),
              ("u", 105), ("pu", 99), ("b", bids), ("a", asks), ("x", {"nested": [1, [2]]})]
    random.Random(order_seed).shuffle(fields)
    sep = (", ", ": ") if spaces else (",", ":")
    return json.dumps({"stream": "btcusdt@depth", "data": dict(fields)}, separators=sep).encode()


_decimal_text = st.builds(
    lambda whole, frac, pad: f"{whole}.{frac}{'0' * pad}" if frac else str(whole),
    st.integers(0, 10**9), st.one_of(st.just(""), st.from_regex(r"[0-9]{1,8}", fullmatch=True)),
    st.integers(0, 8))
_levels = st.lists(st.tuples(_decimal_text, _decimal_text), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_levels, _levels, st.integers(0, 1000), st.booleans())
def test_generated_depth_matches_reference(bids, asks, seed, spaces):
    raw = _depth([list(x) for x in bids], [list(x) for x in asks], seed, spaces)
    assert ours(raw) == reference_parse(raw)


# ---------------------------------------------------------------- malformed corpus
GOOD = (b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,'
        b'"u":7,"b":[["61837.63000000","1.5"]],"a":[["61837.64","0.25"]]}}')
MALFORMED = [
    (GOOD.replace(b'"U":5', b'"U":"5"'), P.R_WRONG_TYPE),
    (GOOD.replace(b'"U":5', b'"U":5.5'), P.R_WRONG_TYPE),
    (GOOD.replace(b'"E":1', b'"E":null'), P.R_WRONG_TYPE),
    (GOOD.replace(b'"b":[[', b'"b":{"x":[['), P.R_WRONG_TYPE),
    (GOOD.replace(b'"61837.63000000"', b'61837.63'), P.R_WRONG_TYPE),
    (GOOD.replace(b'"61837.63000000"', b'"61837.6.3"'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"61837.63000000"', b'"-1"'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"61837.63000000"', b'"1e5"'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"61837.63000000"', b'""'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"61837.63000000"', b'"1."'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"61837.63000000"', b'"99999999999999999999"'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"U":5', b'"U":99999999999999999999'), P.R_BAD_NUMBER),
    (GOOD.replace(b'"s":"BTCUSDT",', b""), P.R_MISSING_FIELD),
    (GOOD.replace(b'"a":[[', b'"z":[['), P.R_MISSING_FIELD),
    (GOOD.replace(b'"E":1', b'"E":1 "x":2'), P.R_SYNTAX),
    (GOOD + b"}", P.R_SYNTAX),
    (b"[1,2]", P.R_SYNTAX),
    (b"", P.R_TRUNCATED),
    (GOOD.replace(b'"E":1', b'"E":1,"deep":' + b"[" * 100 + b"]" * 100), P.R_TOO_DEEP),
    (GOOD.replace(b'"a":[', b'"a":[' + b'["1","1"],' * 50), P.R_TOO_MANY_LEVELS),
    # a key twice in the event, an alias of one ("b" and "bids"), two "data" members
    (GOOD.replace(b'"u":7', b'"u":7,"u":8'), P.R_DUPLICATE_KEY),
    (GOOD.replace(b'"b":[[', b'"b":[["1","1"]],"b":[['), P.R_DUPLICATE_KEY),
    (GOOD.replace(b'"b":[[', b'"bids":[["1","1"]],"b":[['), P.R_DUPLICATE_KEY),
    (GOOD.replace(b'"s":"BTCUSDT"', b'"s":"BTCUSDT","symbol":"ETHUSDT"'), P.R_DUPLICATE_KEY),
    (GOOD[:-1] + b',"data":{"e":"depthUpdate"}}', P.R_DUPLICATE_KEY),
    (GOOD.replace(b'"stream":"btcusdt@depth"', b'"stream":"a","stream":"b"'),
     P.R_DUPLICATE_KEY),
]


@pytest.mark.parametrize("raw,reason", MALFORMED)
def test_malformed_rejected_with_reason(raw, reason):
    assert ours(raw, max_levels=40) == -reason, P.REASON_NAMES[reason]


def test_every_truncation_is_rejected():
    for cut in range(len(GOOD)):
        got = ours(GOOD[:cut])
        assert isinstance(got, int) and got < 0, GOOD[:cut]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1,
                max_size=4))
def test_mutations_never_yield_a_wrong_level(mutations):
    raw = bytearray(GOOD)
    for pos, byte in mutations:
        raw[pos] = byte
    got = ours(bytes(raw))
    if isinstance(got, int):
        assert got < 0
        return
    ref = reference_parse(bytes(raw))
    lenient = reference_parse(bytes(raw).decode("utf-8", "replace").encode())
    if ref is not None:
        assert got == ref
    elif lenient is not None:  # json.loads refuses invalid UTF-8; string bytes are opaque
        # to us, so only a symbol's spelling may differ (and is then unknown downstream)
        assert {k: v for k, v in got.items() if k != "s"} == \
            {k: v for k, v in lenient.items() if k != "s"}
    elif got["kind"] != P.K_OTHER:  # json.loads rejects, we accept: the damage was in a
        good = ours(GOOD)  # skipped place or the symbol (then unknown downstream)
        keep = ("kind", "levels", "U", "u", "pu")  # a renamed key is an unknown one: skipped
        assert {k: got.get(k) for k in keep} == {k: good.get(k) for k in keep}


def test_wrapper_members_beside_data_never_reach_the_event():
    """``{"stream":..,"data":{..},"u":123,"s":"ETHUSDT"}`` once became an ETHUSDT event with
    u=123: only the data object's own members count, wherever the others stand."""
    event = ours(GOOD)
    after = GOOD[:-1] + b',"u":123,"s":"ETHUSDT","b":[["1","1"]],"e":"trade"}'
    before = GOOD.replace(b'{"stream"', b'{"u":123,"s":"ETHUSDT","pu":3,"b":[["1","1"]],'
                          b'"stream"')
    for raw in (after, before):
        assert ours(raw) == event == reference_parse(raw), raw


_wrapper_keys = st.sampled_from(["u", "U", "s", "b", "a", "e", "E", "pu", "bids", "asks",
                                 "lastUpdateId", "x", "symbol"])
_wrapper_values = st.one_of(st.integers(0, 10**12), st.sampled_from(["ETHUSDT", "trade"]),
                            st.just([["1.5", "2"]]), st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_wrapper_keys, _wrapper_values, max_size=4),
       st.dictionaries(_wrapper_keys, _wrapper_values, max_size=4),
       st.dictionaries(_wrapper_keys, _wrapper_values, max_size=4), st.booleans())
def test_generated_wrapper_members_do_not_change_the_event(before, between, after, spaces):
    """Members between "stream" and "data" or after "data" are skipped, whatever they hold;
    ones before "stream" either vanish with the data object or (a wrong type for the key
    they name) reject the frame: never another event."""
    sep = (", ", ": ") if spaces else (",", ":")
    data = json.loads(GOOD)["data"]
    event = ours(GOOD)

    def frame(*parts):
        body = {}
        for part in parts:
            body.update((k, v) for k, v in part.items() if k not in body)
        return json.dumps(body, separators=sep).encode()

    raw = frame({"stream": "btcusdt@depth"}, between, {"data": data}, after)
    assert ours(raw) == event == reference_parse(raw), raw
    raw = frame(before, {"stream": "btcusdt@depth", "data": data}, after)
    got = ours(raw)
    assert got == event or (isinstance(got, int) and got < 0), raw


def test_parser_buffers_are_reused_without_leaking_state():
    hdr, lv = P.new_buffers()
    b = np.frombuffer(GOOD, np.uint8)
    assert P.parse_message(b, 0, len(b), hdr, lv) == P.K_DEPTH
    other = np.frombuffer(b'{"result":null,"id":1}', np.uint8)
    assert P.parse_message(other, 0, len(other), hdr, lv) == P.K_OTHER
    assert hdr[P.H_NLEV] == 0 and hdr[P.H_PREV] == -1


_ids = st.integers(0, 2**62)


@settings(max_examples=200, deadline=None)
@given(_decimal_text, _decimal_text, _decimal_text, _decimal_text, _ids, st.integers(0, 1000),
       st.booleans())
def test_generated_book_ticker_and_trades_match_reference(b, bq, a, aq, uid, seed, futures):
    fields = [("u", uid), ("s", "ETHUSDT"), ("b", b), ("B", bq), ("a", a), ("A", aq)]
    if futures:
        fields += [("e", "bookTicker"), ("E", 1), ("T", 2)]
    random.Random(seed).shuffle(fields)
    raw = json.dumps(dict(fields)).encode()
    assert ours(raw) == reference_parse(raw)
    trade = [("e", "aggTrade" if futures else "trade"), ("E", 1), ("s", "ETHUSDT"),
             ("a" if futures else "t", uid), ("p", b), ("q", bq), ("m", seed % 2 == 0)]
    random.Random(seed).shuffle(trade)
    raw = json.dumps({"stream": "x", "data": dict(trade)}).encode()
    assert ours(raw) == reference_parse(raw)


@settings(max_examples=100, deadline=None)
@given(_levels, _levels, _ids, st.booleans())
def test_generated_snapshots_match_reference(bids, asks, last_id, futures):
    body = {"lastUpdateId": last_id, "bids": [list(x) for x in bids],
            "asks": [list(x) for x in asks]}
    if futures:
        body = {"lastUpdateId": last_id, "E": 1, "T": 2, "symbol": "BTCUSD_PERP",
                "pair": "BTCUSD", "bids": body["bids"], "asks": body["asks"]}
    raw = json.dumps(body).encode()
    assert ours(raw) == reference_parse(raw)


def test_a_duplicate_key_frame_is_counted_by_the_feed():
    """The reject reaches the feed's counters by name (``feed.reject_duplicate_key``)."""
    from pipeline.instruments import SymbolTable
    from pipeline.marketdata.normalize import FeedCore
    core = FeedCore(SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                              "lot_size": "0.00001"}]))
    assert len(core.feed(GOOD.replace(b'"u":7', b'"u":7,"u":8'), 1)) == 0
    s = core.summary()
    assert (s["rejected"], s["reject_duplicate_key"], s["applied"]) == (1, 1, 0)
