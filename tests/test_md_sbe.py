"""The SBE decoder against an independent reader built from the schema XML, the encoder
round trip, a fuzz corpus (every bad frame counted under its reason, nothing read past the
frame), exact grid conversion, and the same records as the JSON path for the same events."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sbe_reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.instruments import Instrument, SymbolTable
from pipeline.marketdata import sbe
from pipeline.marketdata import sync as S
from pipeline.marketdata.normalize import FeedCore
from pipeline.venue import sbe_encode as E
from shm_layouts.records import MD_EVENT, MdKind

SCHEMA = ref.load()
SYMBOLS = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                       Instrument("ETHBTC", "spot", "0.000001", "0.0001"),
                       Instrument("HALFUSDT", "spot", "0.5", "10")])
RECV = 123_456_789
REASONS = [r.name.lower() for r in sbe.Reject]


def run(frame: bytes, out_size: int = 0, dec: sbe.SbeDecoder | None = None):
    """Decode one frame from a buffer of exactly its length: (result, decoder)."""
    dec = dec or sbe.new_decoder(SYMBOLS)
    out = np.zeros(out_size or 8 + len(frame) // 8, MD_EVENT)  # records need >= 16 bytes
    n, template = sbe.decode_bytes(dec, np.frombuffer(frame, np.uint8).copy(), RECV, out)
    return (ref.as_tuples(out[:n]) if n >= 0 else sbe.Reject(-n).name.lower()), dec


def check(frame: bytes) -> list[tuple] | str:
    """The decoder agrees with the reference on ``frame`` (records or reason), and counted
    it exactly once under the right field."""
    want = ref.expected(SCHEMA, frame, SYMBOLS, RECV)
    got, dec = run(frame)
    assert got == want
    s = sbe.summary(dec)
    assert s["frames"] == 1 and s["bytes"] == len(frame)
    if isinstance(want, str):
        assert s["rejected"] == 1 and s[want] == 1
        assert sum(s[r] for r in REASONS) == 1 and s["records"] == 0
    else:
        assert s["rejected"] == 0 and s["records"] == len(want)
    return want


# ---------------------------------------------------------------- frames, by the XML writer
def trades(n: int, exp=(-2, -5), **layout) -> bytes:
    rows = [{"id": 10_000 + i, "price": 6_183_763 + i, "qty": 150_000 + i,
             "isBuyerMaker": i % 2} for i in range(n)]
    return ref.write(SCHEMA, "TradesStreamEvent",
                     {"eventTime": 1_700_000_000_123_456, "transactTime": 1_700_000_000_123_400,
                      "priceExponent": exp[0], "qtyExponent": exp[1]}, {"trades": rows},
                     b"BTCUSDT", **layout)


def bba(**layout) -> bytes:
    return ref.write(SCHEMA, "BestBidAskStreamEvent",
                     {"eventTime": 1_700_000_000_000_001, "bookUpdateId": 77, "priceExponent": -8,
                      "qtyExponent": -8, "bidPrice": 6_183_763_000_000, "bidQty": 150_000_000,
                      "askPrice": 6_183_764_000_000, "askQty": 1_000}, {}, b"BTCUSDT", **layout)


def depth(name: str, nb: int, na: int, symbol=b"ETHBTC", **layout) -> bytes:
    root = {"eventTime": 1_700_000_000_000_002, "priceExponent": -8, "qtyExponent": -8}
    if name == "DepthDiffStreamEvent":
        root |= {"firstBookUpdateId": 1000, "lastBookUpdateId": 1010}
    else:
        root |= {"bookUpdateId": 999}
    bids = [{"price": (TOP - i) * 100, "qty": (i % 7) * 10_000} for i in range(nb)]
    asks = [{"price": (TOP + 1 + i) * 100, "qty": (i % 5 + 1) * 10_000} for i in range(na)]
    return ref.write(SCHEMA, name, root, {"bids": bids, "asks": asks}, symbol, **layout)


TOP = 10**7  # best bid of the depth frames, in ticks
DIFF, SNAP = "DepthDiffStreamEvent", "DepthSnapshotStreamEvent"
SAMPLES = {"trades": trades(3), "bba": bba(), "diff": depth(DIFF, 2, 3),
           "snapshot": depth(SNAP, 3, 2)}


def test_schema_is_what_the_decoder_was_written_for():
    assert (SCHEMA.id, SCHEMA.version) == (sbe.SCHEMA_ID, sbe.SCHEMA_VERSION)
    assert {m.id: m.name for m in SCHEMA.messages.values()} == {
        int(t): n for t, n in zip(sbe.Template, ("TradesStreamEvent", "BestBidAskStreamEvent",
                                                  "DepthSnapshotStreamEvent",
                                                  "DepthDiffStreamEvent"), strict=True)}
    blocks = {m.name: m.block_length for m in SCHEMA.messages.values()}
    assert blocks == {"TradesStreamEvent": sbe.TRADES_BLOCK,
                      "BestBidAskStreamEvent": sbe.BBA_BLOCK,
                      "DepthSnapshotStreamEvent": sbe.SNAPSHOT_BLOCK,
                      "DepthDiffStreamEvent": sbe.DIFF_BLOCK}
    assert SCHEMA.by_name("TradesStreamEvent").groups[0].entry_size == sbe.TRADE_ENTRY
    assert SCHEMA.by_name(DIFF).groups[0].entry_size == sbe.LEVEL_ENTRY
    assert [g.dimension for g in SCHEMA.by_name(DIFF).groups] == ["groupSize16Encoding"] * 2
    assert SCHEMA.by_name("TradesStreamEvent").groups[0].dimension == "groupSizeEncoding"


# ---------------------------------------------------------------- (a) every field and shape
SHAPES = [
    ("trades none", trades(0)),
    ("trades one", trades(1)),
    ("trades many", trades(7)),
    ("trades coarser qty exponent", trades(2, exp=(-2, -3))),
    ("trades > 65535 (uint32 numInGroup)", trades(70_000)),
    ("bba", bba()),
    ("diff empty", depth(DIFF, 0, 0)),
    ("diff bids only", depth(DIFF, 4, 0)),
    ("diff asks only", depth(DIFF, 0, 4)),
    ("diff max group", depth(DIFF, 0xFFFF, 1)),
    ("snapshot empty", depth(SNAP, 0, 0)),
    ("snapshot depth20", depth(SNAP, 20, 20)),
    ("snapshot max groups", depth(SNAP, 0xFFFF, 0xFFFF)),
    ("diff longer blocks", depth(DIFF, 3, 2, extra_block=5, extra_entry=3)),
    ("trades longer blocks", trades(4, extra_block=1, extra_entry=7)),
    ("bba longer block", bba(extra_block=64)),
    ("snapshot newer version", depth(SNAP, 2, 2, version=3, extra_entry=8, trailer=b"new")),
    ("trades newer version", trades(2, version=1, trailer=b"\x03abc")),
]


@pytest.mark.parametrize("frame", [f for _, f in SHAPES], ids=[n for n, _ in SHAPES])
def test_decoder_matches_the_schema_reader(frame):
    want = check(frame)
    assert isinstance(want, list)
    m = ref.read(SCHEMA, frame)
    n_entries = sum(len(g) for g in m["groups"].values())
    extra = {"TradesStreamEvent": 0, "BestBidAskStreamEvent": 2, DIFF: 1, SNAP: 1}
    assert len(want) == n_entries + extra[m["message"]]


def test_every_field_lands_where_the_schema_says():
    (got, _), (bbo, _) = run(depth(DIFF, 1, 1)), run(bba())
    bid, ask, end = got
    assert bid[:7] == (int(MdKind.DIFF_LEVEL), 0, TOP, 0, 1000, 1010, -1)
    assert ask[:4] == (int(MdKind.DIFF_LEVEL), 1, TOP + 1, 1)
    assert end[:7] == (int(MdKind.DIFF_END), 0, 0, 0, 1000, 1010, -1)
    assert bid[7:] == (1, 1_700_000_000_000_002_000, RECV)
    assert bbo == [(int(MdKind.BBO), 0, 6_183_763, 150_000, 77, 77, -1, 0,
                    1_700_000_000_000_001_000, RECV),
                   (int(MdKind.BBO), 1, 6_183_764, 1, 77, 77, -1, 0,
                    1_700_000_000_000_001_000, RECV)]
    (t0, t1), _ = run(trades(2))
    assert t0[:6] == (int(MdKind.TRADE), 0, 6_183_763, 150_000, 10_000, 10_000)
    assert t1[:6] == (int(MdKind.TRADE), 1, 6_183_764, 150_001, 10_001, 10_001)


_i64 = st.integers(0, 2**63 - 1)


@st.composite
def events(draw):
    """A random frame: template, symbol, exponents, values mostly on the grid, layout."""
    ins = draw(st.sampled_from(list(SYMBOLS)))
    pexp = draw(st.integers(-ins.price_decimals - 9, 3))
    qexp = draw(st.integers(-ins.qty_decimals - 9, 3))

    def mant(exp, dec, units):
        if draw(st.integers(0, 9)) == 0:
            return draw(st.integers(-5, 2**63 - 1))  # anything, often off the grid
        n = draw(st.integers(0, 10**8)) * units
        return n * 10 ** (-dec - exp) if exp <= -dec else n

    def px():
        return mant(pexp, ins.price_decimals, ins.tick_units)

    def qty():
        return mant(qexp, ins.qty_decimals, ins.lot_units)

    name = draw(st.sampled_from(sorted(m.name for m in SCHEMA.messages.values())))
    root = {"eventTime": draw(_i64), "transactTime": draw(_i64), "priceExponent": pexp,
            "qtyExponent": qexp, "bookUpdateId": draw(_i64), "firstBookUpdateId": draw(_i64),
            "lastBookUpdateId": draw(_i64), "bidPrice": px(), "bidQty": qty(),
            "askPrice": px(), "askQty": qty()}
    sizes = st.integers(0, 30)
    groups = {"trades": [{"id": draw(_i64), "price": px(), "qty": qty(),
                          "isBuyerMaker": draw(st.sampled_from([0, 1, 1, 0, 2]))}
                         for _ in range(draw(sizes))],
              "bids": [{"price": px(), "qty": qty()} for _ in range(draw(sizes))],
              "asks": [{"price": px(), "qty": qty()} for _ in range(draw(sizes))]}
    version = draw(st.sampled_from([0, 0, 0, 1]))
    layout = {"version": version, "extra_block": draw(st.sampled_from([0, 0, 1, 9])),
              "extra_entry": draw(st.sampled_from([0, 0, 2])),
              "trailer": draw(st.sampled_from([b"", b"\x00\x01"])) if version else b""}
    symbol = ins.symbol.encode() if draw(st.integers(0, 19)) else b"XRPUSDT"
    return ref.write(SCHEMA, name, root, groups, symbol, **layout)


@settings(max_examples=200, deadline=None)
@given(events())
def test_generated_frames_match_the_reader(frame):
    check(frame)


# ---------------------------------------------------------------- (b) encoder round trip
ENCODED = [
    (E.TradesEvent("BTCUSDT", 1_700_000_000_123_456, 1_700_000_000_123_400, -2, -5,
                   [E.Trade(10_000 + i, 6_183_763 + i, 150_000 + i, bool(i % 2))
                    for i in range(3)]), trades(3)),
    (E.BestBidAskEvent("BTCUSDT", 1_700_000_000_000_001, 77, -8, -8,
                       (6_183_763_000_000, 150_000_000), (6_183_764_000_000, 1_000)), bba()),
    (E.DepthDiffEvent("ETHBTC", 1_700_000_000_000_002, 1000, 1010, -8, -8,
                      [((TOP - i) * 100, (i % 7) * 10_000) for i in range(2)],
                      [((TOP + 1 + i) * 100, (i % 5 + 1) * 10_000) for i in range(3)]),
     depth(DIFF, 2, 3)),
    (E.DepthSnapshotEvent("ETHBTC", 1_700_000_000_000_002, 999, -8, -8,
                          [((TOP - i) * 100, (i % 7) * 10_000) for i in range(3)],
                          [((TOP + 1 + i) * 100, (i % 5 + 1) * 10_000) for i in range(2)]),
     depth(SNAP, 3, 2)),
]


@pytest.mark.parametrize("event,frame", ENCODED, ids=["trades", "bba", "diff", "snapshot"])
def test_encoder_writes_the_schema_bytes_and_decodes_back(event, frame):
    assert E.encode(event) == frame
    assert isinstance(check(E.encode(event)), list)
    newer = E.Layout(version=2, extra_block=4, extra_entry=4, trailer=b"\x00")
    got = check(E.encode(event, newer))
    assert got == check(frame)


def test_encoder_exponents_are_exact():
    assert E.common_exponent(["61837.63000000", "0.5", "0"]) == (-2, [6183763, 50, 0])
    assert E.common_exponent(["100", "20"]) == (0, [100, 20])
    assert E.common_exponent([]) == (0, [])
    with pytest.raises(ValueError):
        E.common_exponent(["-1"])
    with pytest.raises(ValueError):
        E.encode(E.DepthDiffEvent("X", 0, 0, 0, 0, 0, [(1, 1)] * 0x10000))


# ---------------------------------------------------------------- (c) fuzz
@pytest.mark.parametrize("name", SAMPLES)
def test_every_truncation_is_counted(name):
    frame = SAMPLES[name]
    spans = ref.read(SCHEMA, frame)["spans"]
    dec = sbe.new_decoder(SYMBOLS)
    for cut in range(len(frame)):
        got, _ = run(frame[:cut], dec=dec)
        inside = any(s < e and s <= cut < e for s, e in spans)
        assert got == ("group_overrun" if inside else "truncated"), cut
    s = sbe.summary(dec)
    assert s["frames"] == s["rejected"] == len(frame)
    assert s["truncated"] + s["group_overrun"] == len(frame) and s["records"] == 0


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(SAMPLES)), st.lists(st.tuples(st.integers(0, 10**6),
                                                             st.integers(0, 255)),
                                                   min_size=1, max_size=4))
def test_flipped_bytes_agree_with_the_reader(name, flips):
    frame = bytearray(SAMPLES[name])
    for pos, byte in flips:
        frame[pos % len(frame)] = byte
    check(bytes(frame))


def _patch(frame: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(frame)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


DIFF_GROUP = 8 + sbe.DIFF_BLOCK  # the bids group header of a diff
BAD = [
    ("huge numInGroup (uint32)", _patch(SAMPLES["trades"], 8 + sbe.TRADES_BLOCK + 2, "<I",
                                        0xFFFF_FFFF), "group_overrun"),
    ("huge numInGroup (uint16)", _patch(SAMPLES["diff"], DIFF_GROUP + 2, "<H", 0xFFFF),
     "group_overrun"),
    ("numInGroup past the frame", _patch(SAMPLES["snapshot"], 8 + sbe.SNAPSHOT_BLOCK + 2,
                                         "<H", 100), "group_overrun"),
    ("zero blockLength", _patch(SAMPLES["bba"], 0, "<H", 0), "short_block"),
    ("blockLength one short", _patch(SAMPLES["diff"], 0, "<H", sbe.DIFF_BLOCK - 1),
     "short_block"),
    ("blockLength past the frame", _patch(SAMPLES["bba"], 0, "<H", 0xFFFF), "truncated"),
    ("zero group blockLength", _patch(SAMPLES["diff"], DIFF_GROUP, "<H", 0), "short_entry"),
    ("zero group blockLength, empty group", _patch(depth(DIFF, 0, 1), DIFF_GROUP, "<H", 0),
     "short_entry"),
    ("wrong schemaId", _patch(SAMPLES["trades"], 4, "<H", 2), "bad_schema"),
    ("unknown template", _patch(SAMPLES["bba"], 2, "<H", 10004), "unknown_template"),
    ("template 0", _patch(SAMPLES["bba"], 2, "<H", 0), "unknown_template"),
    ("symbol length past the frame", SAMPLES["bba"][:-8] + b"\x08BTCUSDT", "truncated"),
    ("trailing byte at version 0", SAMPLES["diff"] + b"\x00", "trailing"),
    ("unknown symbol", depth(DIFF, 1, 1, symbol=b"btcusdt"), "unknown_symbol"),
    ("isBuyerMaker 2", _patch(SAMPLES["trades"], 8 + sbe.TRADES_BLOCK + 6 + 24, "<B", 2),
     "bad_value"),
    ("empty frame", b"", "truncated"),
    ("header only", SAMPLES["diff"][:8], "truncated"),
]


@pytest.mark.parametrize("frame,reason", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_frames_are_counted_under_their_reason(frame, reason):
    assert check(frame) == reason


def test_out_too_small_is_counted_and_nothing_reported():
    got, dec = run(SAMPLES["diff"], out_size=5)  # 2 + 3 levels + DIFF_END
    assert got == "out_full" and sbe.summary(dec)["out_full"] == 1
    got, _ = run(SAMPLES["diff"], out_size=6)
    assert len(got) == 6


def test_frames_inside_a_larger_buffer_end_at_end():
    """Concatenated frames (a capture file): each decodes from its own extent only."""
    frames = list(SAMPLES.values())
    buf = np.frombuffer(b"".join(frames), np.uint8).copy()
    dec, out, pos = sbe.new_decoder(SYMBOLS), np.zeros(64, MD_EVENT), 0
    for f in frames:
        n, template = sbe.decode(buf, pos, pos + len(f), RECV, dec, out, 0)
        assert ref.as_tuples(out[:n]) == ref.expected(SCHEMA, f, SYMBOLS, RECV)
        assert template == ref.read(SCHEMA, f)["header"]["templateId"]
        pos += len(f)
    n, _ = sbe.decode(buf, 0, len(buf) + 1, RECV, dec, out, 0)  # an extent past the buffer
    assert n == -sbe.R_TRUNCATED


BOUNDS_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
import test_md_sbe as t
from numba.core import config
assert config.BOUNDSCHECK, "NUMBA_BOUNDSCHECK not in effect"
rng = np.random.default_rng(7)
n = 0
for frame in t.SAMPLES.values():
    corpus = [frame[:cut] for cut in range(len(frame) + 1)]
    for _ in range(300):
        f = bytearray(frame)
        for pos in rng.integers(0, len(f), 3):
            f[pos] = int(rng.integers(0, 256))
        corpus.append(bytes(f))
    for f in corpus:
        t.run(f)  # an out-of-bounds read raises IndexError under NUMBA_BOUNDSCHECK
        n += 1
print(n)
"""


def test_no_read_past_the_frame_under_numba_boundscheck(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    script = BOUNDS_SCRIPT.format(tests=str(Path(__file__).parent))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=280, cwd=Path(__file__).parents[1])
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) == sum(len(f) + 1 + 300 for f in SAMPLES.values())


# ---------------------------------------------------------------- (d) exactness
def _bba_at(pexp: int, bid: int, qexp: int = -5, qty: int = 1, symbol=b"BTCUSDT") -> bytes:
    return ref.write(SCHEMA, "BestBidAskStreamEvent",
                     {"eventTime": 1, "bookUpdateId": 1, "priceExponent": pexp,
                      "qtyExponent": qexp, "bidPrice": bid, "bidQty": qty, "askPrice": 0,
                      "askQty": 0}, {}, symbol)


EXACT = [
    ("finer exponent, zero digits", _bba_at(-8, 6_183_763_000_000), 6_183_763),
    ("exponent of the grid", _bba_at(-2, 6_183_763), 6_183_763),
    ("coarser exponent", _bba_at(1, 5), 5_000),
    ("18 extra zero digits", _bba_at(-20, 6 * 10**18), 6),
    ("zero at any exponent", _bba_at(-100, 0), 0),
    ("half tick grid", _bba_at(-1, 15, 1, 1, symbol=b"HALFUSDT"), 3),
]
OFF = [
    ("a digit finer than the tick", _bba_at(-3, 61_837_631)),
    ("a nonzero digit 17 places down", _bba_at(-19, 6_183_763 * 10**11 + 1)),
    ("more decimals than any int64", _bba_at(-40, 10**18)),
    ("lot finer than the grid", _bba_at(-2, 1, qexp=-6, qty=1_500_001)),
    ("negative price", _bba_at(-2, -1)),
    ("too large for int64 ticks", _bba_at(10, 10**9)),
    ("not a multiple of the tick", _bba_at(-1, 12, 1, 1, symbol=b"HALFUSDT")),
]


@pytest.mark.parametrize("frame,ticks", [x[1:] for x in EXACT], ids=[x[0] for x in EXACT])
def test_exact_prices_convert(frame, ticks):
    assert check(frame)[0][2] == ticks


@pytest.mark.parametrize("frame", [x[1] for x in OFF], ids=[x[0] for x in OFF])
def test_prices_the_grid_cannot_hold_are_rejected_not_rounded(frame):
    assert check(frame) == "off_grid"


@settings(max_examples=1000, deadline=None)
@given(st.integers(-10, 2**63 - 1), st.integers(-128, 127), st.integers(0, 12),
       st.sampled_from([1, 2, 5, 25, 1000]))
def test_to_grid_is_decimal_exact(mant, exp, decimals, units):
    got = sbe.to_grid(mant, exp, decimals, units)
    scaled = Decimal(mant).scaleb(exp + decimals)  # in units of 10**-decimals: an int64
    value = scaled / units
    exact = mant >= 0 and value == value.to_integral_value() and scaled <= 2**63 - 1
    assert got == (int(value) if exact else -1)


# ---------------------------------------------------------------- (e) same records as JSON
def test_records_equal_the_json_paths_for_the_same_events():
    """One event stream as JSON (through the feed core: parser, normalize, sync) and as SBE
    (decoder, then the same sync calls normalize makes): identical records."""
    ins = SYMBOLS["BTCUSDT"]
    e_ms = 1_700_000_000_123

    def lv(levels):
        return [[ins.price_str(p), ins.qty_str(q)] for p, q in levels]

    def mant(levels):  # exponent -8, Binance spot's padding
        return [(p * 10**6, q * 10**3) for p, q in levels]

    snap_b, snap_a = [(6_183_763, 5), (6_183_700, 7)], [(6_183_764, 9)]
    diffs = [(101, 103, [(6_183_763, 0), (6_183_762, 4)], [(6_183_765, 1)]),
             (104, 104, [], [(6_183_764, 0)]),
             (110, 112, [(6_183_760, 2)], [])]  # a gap: 105..109 missing
    events = [("snapshot", json.dumps({"lastUpdateId": 100, "E": e_ms, "bids": lv(snap_b),
                                       "asks": lv(snap_a)}).encode(),
               E.DepthSnapshotEvent("BTCUSDT", e_ms * 1000, 100, -8, -8, mant(snap_b),
                                    mant(snap_a)))]
    for first, last, b, a in diffs:
        events.append(("diff", json.dumps(
            {"stream": "btcusdt@depth", "data": {"e": "depthUpdate", "E": e_ms, "s": "BTCUSDT",
                                                 "U": first, "u": last, "b": lv(b),
                                                 "a": lv(a)}}).encode(),
            E.DepthDiffEvent("BTCUSDT", e_ms * 1000, first, last, -8, -8, mant(b), mant(a))))
    for tid, maker in ((555, True), (556, False)):
        events.append(("trade", json.dumps(
            {"e": "trade", "E": e_ms, "s": "BTCUSDT", "t": tid, "p": "61837.63",
             "q": "0.00150000", "T": e_ms, "m": maker, "M": True}).encode(),
            E.TradesEvent("BTCUSDT", e_ms * 1000, e_ms * 1000, -2, -8,
                          [E.Trade(tid, 6_183_763, 150_000, maker)])))
    events.append(("bbo", json.dumps(
        {"e": "bookTicker", "u": 400, "E": e_ms, "s": "BTCUSDT", "b": "61837.63",
         "B": "0.5", "a": "61837.64", "A": "1.25"}).encode(),
        E.BestBidAskEvent("BTCUSDT", e_ms * 1000, 400, -2, -2, (6_183_763, 50),
                          (6_183_764, 125))))

    core, twin = FeedCore(SYMBOLS), FeedCore(SYMBOLS)  # twin: the sync state for SBE
    dec, out = sbe.new_decoder(SYMBOLS), np.zeros(64, MD_EVENT)
    kinds = set()
    for kind, raw_json, event in events:
        want = core.feed(raw_json, RECV, snap_symbol="BTCUSDT" if kind == "snapshot" else "")
        n, template = sbe.decode_bytes(dec, E.encode(event), RECV, out)
        assert n >= 0, sbe.Reject(-n)
        sid = int(out[0]["symbol_id"])
        if template == sbe.T_DIFF:
            k, _ = S.on_diff(twin.sync, twin.pend, sid, out, 0, n, twin.out, 0)
            got = twin.out[:k]
        elif template == sbe.T_SNAPSHOT:
            k = S.on_snapshot(twin.sync, twin.pend, sid, int(out[0]["first_id"]), out, n, RECV)
            got = out[:k]
        else:
            got = out[:n]
        assert ref.as_tuples(got) == ref.as_tuples(want), kind
        kinds.update(int(k) for k in want["kind"])
    assert {int(k) for k in MdKind} - kinds == set()  # every kind, INVALIDATE by the gap
