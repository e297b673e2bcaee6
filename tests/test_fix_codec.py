"""FIX codec conformance against simplefix, both directions, and stream framing."""

from __future__ import annotations

import time

import numpy as np
import simplefix
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.fix import codec as C
from pipeline.instruments import SymbolTable, symbol_matrix
from shm_layouts.records import ORDER_INTENT

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"},
    {"symbol": "ETHUSDT", "tick_size": "0.05", "lot_size": "0.0001"},
    {"symbol": "DOGE", "tick_size": "10", "lot_size": "1"},
])
GRID = TABLE.table()
SYMS = C.symbols(symbol_matrix([i.symbol for i in TABLE]), GRID)
SPANS = np.zeros(C.SPAN_WORDS, np.int64)  # parse's scratch
IDS = C.comp_id_block("CLIENT1", "VENUE")

ids = st.integers(1, 2**62)
sym_ids = st.integers(0, len(TABLE) - 1)
units = st.integers(1, 10**12)
sides = st.sampled_from([0, 1])
tifs = st.sampled_from([1, 2, 3, 4])
times = st.integers(0, 4102444800 * 10**9)  # 1970 .. 2100


def sym_bytes(sid: int) -> np.ndarray:
    return np.frombuffer(TABLE[sid].symbol.encode(), np.uint8).copy()


def order(**fields) -> np.void:
    """An ORDER_INTENT record (what the encoders take)."""
    r = np.zeros(1, ORDER_INTENT)[0]
    for k, v in fields.items():
        r[k] = v
    return r


def simple_parse(raw: bytes) -> simplefix.FixMessage:
    p = simplefix.FixParser()
    p.append_buffer(raw)
    m = p.get_message()
    assert m is not None
    return m


def fix_time(ns: int) -> str:
    secs, rem = divmod(ns, 10**9)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)) + f".{rem // 1000:06d}"


def check_header(m, raw: bytes, msg_type: bytes, seq: int, now: int) -> None:
    assert m.get(8) == b"FIX.4.4"
    assert m.get(35) == msg_type
    assert m.get(49) == b"CLIENT1" and m.get(56) == b"VENUE"
    assert int(m.get(34)) == seq
    assert m.get(52).decode() == fix_time(now)
    # simplefix recomputes both: our BodyLength and CheckSum must match its
    body_at = raw.index(b"\x0135=") + 1
    assert int(m.get(9)) == raw.rindex(b"10=") - body_at
    assert int(m.get(10)) == sum(raw[: raw.rindex(b"10=")]) % 256


@settings(max_examples=200, deadline=None)
@given(seq=ids, now=times, cl=ids, sid=sym_ids, side=sides, px=units, qty=units, tif=tifs,
       market=st.booleans())
def test_new_order_single_parses_in_simplefix(seq, now, cl, sid, side, px, qty, tif, market):
    buf = np.zeros(512, np.uint8)
    inst = TABLE[sid]
    o = order(cl_ord_id=cl, side=side, price=px, qty=qty, ord_type=2 if market else 1, tif=tif)
    s, e = C.encode_new_order(buf, IDS, seq, now, o, sym_bytes(sid), GRID[sid])
    raw = bytes(buf[s:e])
    m = simple_parse(raw)
    check_header(m, raw, b"D", seq, now)
    assert int(m.get(11)) == cl
    assert m.get(55).decode() == inst.symbol
    assert m.get(54) == (b"1" if side == 0 else b"2")
    assert inst.lots(m.get(38).decode()) == qty
    if market:
        assert m.get(40) == b"1" and m.get(44) is None
    else:
        assert m.get(40) == b"2" and inst.ticks(m.get(44).decode()) == px
    assert m.get(59) == {1: b"1", 2: b"3", 3: b"4", 4: b"1"}[tif]
    assert (m.get(18) == b"6") == (tif == 4)
    assert m.get(60).decode() == fix_time(now)
    assert C.frame(buf, s, e) == e - s


@settings(max_examples=100, deadline=None)
@given(seq=ids, now=times, cl=ids, orig=ids, sid=sym_ids, side=sides, px=units, qty=units)
def test_cancel_and_replace_parse_in_simplefix(seq, now, cl, orig, sid, side, px, qty):
    inst = TABLE[sid]
    buf = np.zeros(512, np.uint8)
    s, e = C.encode_cancel(buf, IDS, seq, now, cl, orig, sym_bytes(sid), side, qty, GRID[sid])
    raw = bytes(buf[s:e])
    m = simple_parse(raw)
    check_header(m, raw, b"F", seq, now)
    assert (int(m.get(11)), int(m.get(41))) == (cl, orig)
    assert inst.lots(m.get(38).decode()) == qty
    o = order(cl_ord_id=cl, orig_cl_ord_id=orig, side=side, price=px, qty=qty, ord_type=1,
              tif=1)
    s, e = C.encode_replace(buf, IDS, seq, now, o, sym_bytes(sid), GRID[sid])
    raw = bytes(buf[s:e])
    m = simple_parse(raw)
    check_header(m, raw, b"G", seq, now)
    assert (int(m.get(11)), int(m.get(41))) == (cl, orig)
    assert inst.ticks(m.get(44).decode()) == px and inst.lots(m.get(38).decode()) == qty


def exec_report(seq, sid, cl, order_id, exec_id, exec_type, status, px, last_px, last_qty,
                cum, leaves, now_ns, extra_zeros="") -> bytes:
    inst = TABLE[sid]
    m = simplefix.FixMessage()
    m.append_pair(8, "FIX.4.4")
    m.append_pair(35, "8")
    m.append_pair(49, "VENUE")
    m.append_pair(56, "CLIENT1")
    m.append_pair(34, seq)
    m.append_pair(52, fix_time(now_ns))
    m.append_pair(37, order_id)
    m.append_pair(11, cl)
    m.append_pair(17, exec_id)
    m.append_pair(150, exec_type)
    m.append_pair(39, status)
    # tag order is free: price fields before the symbol must still convert
    price = inst.price_str(px)
    if extra_zeros and "." not in price:
        price += "."
    m.append_pair(44, price + extra_zeros)
    m.append_pair(55, inst.symbol)
    m.append_pair(54, "2")
    m.append_pair(31, inst.price_str(last_px))
    m.append_pair(32, inst.qty_str(last_qty))
    m.append_pair(14, inst.qty_str(cum))
    m.append_pair(151, inst.qty_str(leaves))
    m.append_pair(60, fix_time(now_ns))
    return m.encode()


@settings(max_examples=200, deadline=None)
@given(seq=ids, sid=sym_ids, cl=ids, oid=st.one_of(ids.map(str), st.text(
    "ABCXYZ-_0123456789", min_size=1, max_size=20)), px=units, lpx=units, lq=units,
       cum=units, leaves=st.integers(0, 10**12), now=times, zeros=st.sampled_from(["", "0", "00"]))
def test_simplefix_exec_report_decodes_to_same_values(seq, sid, cl, oid, px, lpx, lq, cum,
                                                      leaves, now, zeros):
    if TABLE[sid].price_decimals == 0:
        zeros = ""
    raw = exec_report(seq, sid, cl, oid, 77, "F", "1", px, lpx, lq, cum, leaves, now, zeros)
    buf = np.frombuffer(raw, np.uint8).copy()
    assert C.frame(buf, 0, len(buf)) == len(buf)
    f = np.zeros(C.N_FIELDS, np.int64)
    assert C.parse(buf, 0, len(buf), SYMS, f, SPANS) == C.E_NONE
    assert f[C.F_MSG_TYPE] == C.MSG_EXEC_REPORT and f[C.F_SEQ] == seq
    assert f[C.F_CL_ORD_ID] == cl and f[C.F_EXEC_ID] == 77 and f[C.F_SYMBOL_ID] == sid
    assert f[C.F_EXEC_TYPE] == ord("F") and f[C.F_ORD_STATUS] == ord("1")
    assert f[C.F_SIDE] == ord("2")
    assert (f[C.F_PRICE], f[C.F_LAST_PX], f[C.F_LAST_QTY], f[C.F_CUM_QTY],
            f[C.F_LEAVES_QTY]) == (px, lpx, lq, cum, leaves)
    assert f[C.F_SENDING_TIME] == f[C.F_TRANSACT_TIME] == now // 1000 * 1000
    if oid.isdigit():
        assert f[C.F_ORDER_ID] == int(oid)
    else:  # hashed, stable, and never colliding with a numeric id space below 2**62
        assert f[C.F_ORDER_ID] >= 2**62
        f2 = np.zeros(C.N_FIELDS, np.int64)
        C.parse(buf, 0, len(buf), SYMS, f2, SPANS)
        assert f2[C.F_ORDER_ID] == f[C.F_ORDER_ID]


def test_cancel_reject_fields():
    m = simplefix.FixMessage()
    for tag, v in ((8, "FIX.4.4"), (35, "9"), (49, "VENUE"), (56, "CLIENT1"), (34, 3),
                   (52, "20240101-00:00:00.000"), (37, "NONE"), (11, 12), (41, 10),
                   (39, "0"), (434, 1), (102, 1), (58, "Unknown order")):
        m.append_pair(tag, v)
    raw = m.encode()
    buf = np.frombuffer(raw, np.uint8).copy()
    f = np.zeros(C.N_FIELDS, np.int64)
    assert C.parse(buf, 0, C.frame(buf, 0, len(buf)), SYMS, f, SPANS) == C.E_NONE
    assert f[C.F_MSG_TYPE] == C.MSG_CANCEL_REJECT
    assert (f[C.F_CL_ORD_ID], f[C.F_ORIG_CL_ORD_ID]) == (12, 10)
    assert (f[C.F_CXL_REJ_RESPONSE_TO], f[C.F_CXL_REJ_REASON]) == (1, 1)
    assert bytes(buf[f[C.F_TEXT_AT]: f[C.F_TEXT_AT] + f[C.F_TEXT_LEN]]) == b"Unknown order"


def _report(seq: int) -> bytes:
    return exec_report(seq, 0, seq, str(seq), seq, "0", "0", 100, 0, 0, 0, 5, 10**18)


def drain(stream: bytes, cuts: list[int]) -> tuple[list[int], int]:
    """Feed ``stream`` in pieces split at ``cuts``; return decoded seqs and garbled count."""
    buf = np.zeros(len(stream) + 16, np.uint8)
    start = end = 0
    seqs, garbled = [], 0
    f = np.zeros(C.N_FIELDS, np.int64)
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        buf[end: end + b - a] = np.frombuffer(stream[a:b], np.uint8)
        end += b - a
        while start < end:
            n = C.frame(buf, start, end)
            if n == C.NEED_MORE:
                break
            if n == C.GARBLED:
                garbled += 1
                start = C.resync(buf, start, end)
                continue
            C.parse(buf, start, n, SYMS, f, SPANS)
            seqs.append(int(f[C.F_SEQ]))
            start += n
    return seqs, garbled


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 6), data=st.data())
def test_split_and_concatenated_reads(n, data):
    stream = b"".join(_report(s) for s in range(1, n + 1))
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=20))
    assert drain(stream, cuts) == (list(range(1, n + 1)), 0)


def test_bad_checksum_is_dropped_and_stream_resyncs():
    bad = bytearray(_report(2))
    i = bad.rindex(b"10=") + 3
    bad[i:i + 3] = b"%03d" % ((int(bad[i:i + 3]) + 1) % 256)
    stream = _report(1) + bytes(bad) + _report(3)
    for cuts in ([], [5], [len(_report(1)) + 10, len(stream) - 3]):
        assert drain(stream, cuts) == ([1, 3], 1)


def test_corrupted_byte_fails_checksum():
    bad = bytearray(_report(2))
    bad[bad.index(b"55=") + 3] ^= 0x20  # lower-case one symbol letter
    assert drain(_report(1) + bytes(bad) + _report(3), []) == ([1, 3], 1)


def test_bad_body_length():
    good = _report(2)
    for wrong in (b"9=5\x01", b"9=999\x01", b"9=x1\x01", b"9=\x01"):
        bad = good.replace(good[good.index(b"9="): good.index(b"\x01", 10) + 1], wrong)
        seqs, garbled = drain(_report(1) + bad + _report(3), [])
        assert seqs[0] == 1 and seqs[-1] == 3 and 2 not in seqs and garbled >= 1, wrong


def test_garbage_between_messages():
    seqs, garbled = drain(b"xx8=FIY" + _report(1) + b"\x01\x01garbage" + _report(2), [3, 40])
    assert seqs == [1, 2] and garbled >= 1


def test_off_grid_price_and_unknown_symbol_are_errors_not_crashes():
    raw = exec_report(1, 0, 1, "1", 1, "0", "0", 100, 0, 0, 0, 5, 10**18)
    for needle, repl, err in ((b"44=1\x01", b"44=1.001\x01", C.E_OFF_GRID),
                              (b"44=1\x01", b"44=1.x\x01", C.E_BAD_NUMBER),
                              (b"55=BTCUSDT", b"55=XRPUSDT", C.E_UNKNOWN_SYMBOL)):
        body = raw[raw.index(b"35="): raw.rindex(b"10=")].replace(needle, repl)
        msg = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
        msg += b"10=%03d\x01" % (sum(msg) % 256)
        buf = np.frombuffer(msg, np.uint8).copy()
        f = np.zeros(C.N_FIELDS, np.int64)
        assert C.parse(buf, 0, C.frame(buf, 0, len(buf)), SYMS, f, SPANS) == err


@settings(max_examples=50, deadline=None)
@given(seq=ids, now=times, cl=ids, sid=sym_ids, px=units, qty=units, cum=units)
def test_exec_report_encoder_round_trips(seq, now, cl, sid, px, qty, cum):
    buf = np.zeros(512, np.uint8)
    er = np.zeros(1, C.EXEC_FIELDS)[0]
    for k, v in dict(order_id=9, cl_ord_id=cl, exec_id=10, exec_type=ord("F"),
                     ord_status=ord("1"), side=1, price=px, qty=qty, last_px=px, last_qty=qty,
                     cum_qty=cum, leaves_qty=qty).items():
        er[k] = v
    s, e = C.encode_exec_report(buf, IDS, seq, now, er, sym_bytes(sid), GRID[sid])
    m = simple_parse(bytes(buf[s:e]))
    assert m.get(35) == b"8" and TABLE[sid].lots(m.get(14).decode()) == cum
    f = np.zeros(C.N_FIELDS, np.int64)
    assert C.parse(buf, s, C.frame(buf, s, e), SYMS, f, SPANS) == C.E_NONE
    assert (f[C.F_CL_ORD_ID], f[C.F_PRICE], f[C.F_LAST_QTY], f[C.F_CUM_QTY]) == (cl, px, qty, cum)
    assert f[C.F_SIDE] == ord("2") and f[C.F_EXEC_TYPE] == ord("F")


# ---------------------------------------------------------------- hostile input (issue 18)
def _with_body(raw: bytes, body: bytes) -> np.ndarray:
    msg = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    return np.frombuffer(msg + b"10=%03d\x01" % (sum(msg) % 256), np.uint8).copy()


def _parse_edited(needle: bytes, repl: bytes) -> tuple[int, int]:
    """(error, its tag) of a valid ExecutionReport with ``needle`` replaced."""
    raw = exec_report(1, 0, 1, "1", 1, "F", "1", 100, 100, 5, 5, 5, 10**18)
    body = raw[raw.index(b"35="): raw.rindex(b"10=")]
    assert needle in body
    buf = _with_body(raw, body.replace(needle, repl, 1))
    f = np.zeros(C.N_FIELDS, np.int64)
    n = C.frame(buf, 0, len(buf))
    assert n == len(buf)
    return C.parse(buf, 0, n, SYMS, f, SPANS), int(f[C.F_ERROR_TAG])


def test_tag_aliasing_and_malformed_fields_are_errors():
    """A tag beyond 2**64 or with a leading zero would alias a real tag; a repeat makes
    the value ambiguous; a NUL would let "BTCUSDT\\0" match: each is refused, by tag."""
    s = b"\x0155=BTCUSDT\x01"
    cases = [(s, b"\x0118446744073709551627=5" + s, C.E_BAD_TAG, 0),
             (s, b"\x01011=5" + s, C.E_BAD_TAG, 0),
             (s, b"\x01x1=5" + s, C.E_BAD_TAG, 0),
             (s, b"\x01=5" + s, C.E_BAD_TAG, 0),
             (s, b"\x01junk" + s, C.E_BAD_TAG, 0),  # a field without '='
             (s, s + b"55=ETHUSDT\x01", C.E_REPEATED_TAG, 55),
             (s, b"\x0155=BTCUSDT\x00\x01", C.E_BAD_CHAR, 55),
             (s, b"\x0155=\x01", C.E_EMPTY_VALUE, 55),
             (b"\x0131=", b"\x0131=-", C.E_OUT_OF_RANGE, 31),  # a negative LastPx
             (b"\x0131=1\x01", b"\x0131=0\x01", C.E_OUT_OF_RANGE, 31),
             (b"\x0114=0.00005\x01", b"\x0114=576460752303423489\x01", C.E_OUT_OF_RANGE,
              14),
             (b"\x0131=1\x01", b"\x01", C.E_MISSING_FIELD, 31),  # a fill without LastPx
             (b"\x0114=0.00005\x01", b"\x01", C.E_MISSING_FIELD, 14),  # ... or CumQty
             (b"\x01150=F\x01", b"\x01", C.E_MISSING_FIELD, 150),
             (b"\x0160=", b"\x0160=2026-", C.E_BAD_TIME, 60)]
    for needle, repl, err, tag in cases:
        assert _parse_edited(needle, repl) == (err, tag), repl


def test_units_range_checks():
    """'.', '-.', a sign and values beyond int64 are refused, never read as a number."""
    for text, err in ((b".", C.E_BAD_NUMBER), (b"-.", C.E_OUT_OF_RANGE),
                      (b"-1", C.E_OUT_OF_RANGE), (b"-0", C.E_OUT_OF_RANGE),
                      (b"99999999999999", C.E_OUT_OF_RANGE),
                      (b"576460752303423489", C.E_OUT_OF_RANGE), (b"1e5", C.E_BAD_NUMBER),
                      (b"", C.E_BAD_NUMBER), (b"1.000001", C.E_OFF_GRID)):
        b = np.frombuffer(text, np.uint8).copy()
        assert C.parse_units(b, 0, len(b), 1, 5) == (0, err), text
    b = np.frombuffer(b"9999999999999.99999", np.uint8).copy()  # 18 digits: exact
    assert C.parse_units(b, 0, len(b), 1, 5) == (10**18 - 1, C.E_NONE)


def test_parse_time_refuses_signs_and_non_digits():
    for text in (b"20260101--1:00:00", b"20260101-0-:00:00", b"20260101-00:00:00.-1",
                 b"-0260101-00:00:00", b"20260101-00:00:00.+1"):
        b = np.frombuffer(text, np.uint8).copy()
        assert C.parse_time(b, 0, len(b)) == -1, text
    b = np.frombuffer(b"20260101-23:59:60.5", np.uint8).copy()
    assert C.parse_time(b, 0, len(b)) > 0


def test_begin_string_in_text_split_across_reads_is_not_garbled():
    """A Text(58) quoting "8=FIX.4.4|9=" cut by a read is no reason to declare the message
    garbled; a real message that began inside a too-long body still is."""
    raw = _report(1)
    body = raw[raw.index(b"35="): raw.rindex(b"10=")] + b"58=see 8=FIX.4.4\x019=12\x0135=0\x01"
    buf = _with_body(raw, body)
    cut = bytes(buf).index(b"9=12") + 6
    assert C.frame(buf, 0, cut) == C.NEED_MORE
    assert C.frame(buf, 0, len(buf)) == len(buf)
    liar = bytearray(_report(1))
    liar[liar.index(b"9=") + 2] = ord("9")  # BodyLength far too long
    stream = np.frombuffer(bytes(liar[:-10]) + _report(2), np.uint8).copy()
    assert C.frame(stream, 0, len(stream)) == C.GARBLED


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_reports_never_crash_and_errors_name_a_tag(data):
    """Any byte of a valid report replaced by any byte: parse returns a known error (or
    none), and a valid report's fields are never read from outside the message."""
    raw = bytearray(exec_report(1, 0, 1, "1", 1, "F", "1", 100, 100, 5, 5, 5, 10**18))
    body_at = raw.index(b"35=")
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(body_at, raw.rindex(b"10=") - 1))
        raw[i] = data.draw(st.integers(0, 255))
    body = bytes(raw[body_at: raw.rindex(b"10=")])
    buf = _with_body(bytes(raw), body)
    pad = np.concatenate([buf, np.frombuffer(b"55=ETHUSDT\x01", np.uint8)])
    n = C.frame(pad, 0, len(buf))
    f = np.zeros(C.N_FIELDS, np.int64)
    if n > 0:
        err = C.parse(pad, 0, n, SYMS, f, SPANS)
        assert E_MIN <= err <= C.E_OUT_OF_RANGE
        assert f[C.F_SYMBOL_ID] != 1  # the ETHUSDT after the message is never read


E_MIN = C.E_NONE
