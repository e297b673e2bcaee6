"""FIX framing/parsing without sockets: chunking, garbage, bad lengths and checksums."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.venue.fixcodec import Framer, Garbled, Message, encode, parse_fields


def msg(seq: int, body=((112, "x"),)) -> bytes:
    return encode("1", "A", "B", seq, list(body), stime="20260101-00:00:00.000")


def test_roundtrip_and_byte_by_byte_chunks():
    data = msg(1) + msg(2, [(58, "a=b")])
    out = []
    f = Framer()
    for i in range(len(data)):
        out += f.feed(data[i:i + 1])
    assert [m.get(34) for m in out] == ["1", "2"]
    assert out[1].get(58) == "a=b" and out[0].msg_type == "1"
    assert out[0].raw == msg(1)


def test_garbage_bad_checksum_and_bad_length_are_skipped():
    good = msg(3)
    bad_sum = good[:-4] + b"999\x01"
    bad_len = good.replace(b"9=", b"9=1", 1)
    f = Framer()
    # a too-large BodyLength is only found out once that many bytes have arrived
    out = f.feed(b"junk" + bad_sum + bad_len + good + msg(4))
    assert [m.get(34) for m in out if isinstance(m, Message)] == ["3", "4"]
    (garbled,) = [x for x in out if isinstance(x, Garbled)]  # one run of bad bytes
    assert garbled.raw == b"junk" + bad_sum + bad_len and out[0] is garbled
    assert f.buf == b""
    # each alone, and a garbled last message is reported at once, not with the next one
    for bad in (b"junk", bad_sum, bad_len + good):
        out = Framer().feed(bad)
        assert isinstance(out[0], Garbled) and out[0].raw.startswith(bad[:4])
    f = Framer()
    assert isinstance(f.feed(bad_sum)[0], Garbled) and f.buf == b""
    assert f.feed(good[:5]) == [] and f.buf == good[:5]  # a begin string may follow


def test_malformed_fields_are_reported_not_raised():
    assert parse_fields(b"35=0\x0134=1\x01").fields == [(35, b"0"), (34, b"1")]
    for body in (b"35=0\x01abc\x01", b"35=0\x01x=1\x01", b"0=1\x01", b"35=0\x01=5\x01"):
        m = parse_fields(body)
        assert isinstance(m, Message) and m.error, body
    m = parse_fields(b"35=D\x0134=7\x01bad\x01")
    assert m.get(34) == "7" and m.error  # the sequence number is still usable


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9999).filter(lambda t: t not in (8, 9, 10, 35, 34,
                                                                         49, 52, 56)),
                          st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                  min_size=1, max_size=20)), max_size=15),
       st.integers(1, 10**9), st.integers(1, 40))
def test_encode_parse_roundtrip_any_chunking(fields, seq, chunk):
    raw = encode("D", "S", "T", seq, fields, stime="20260101-00:00:00.000")
    f = Framer()
    out = []
    for i in range(0, len(raw), chunk):
        out += f.feed(raw[i:i + chunk])
    assert len(out) == 1 and isinstance(out[0], Message) and not out[0].error
    m = out[0]
    assert m.msg_type == "D" and m.get(34) == str(seq)
    assert [(t, v.decode()) for t, v in m.fields[5:]] == [(t, str(v)) for t, v in fields]
