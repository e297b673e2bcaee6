"""FIX framing/parsing without sockets: chunking, garbage, bad lengths and checksums."""

from __future__ import annotations

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
    reasons = [x.reason for x in out if isinstance(x, Garbled)]
    assert reasons[0] == "does not start with 8=FIX.4.4"
    assert "bad CheckSum" in reasons
    assert any("BodyLength" in r for r in reasons)
    assert f.buf == b""


def test_malformed_fields_are_reported_not_raised():
    assert parse_fields(b"35=0\x0134=1\x01").fields == [(35, b"0"), (34, b"1")]
    for body in (b"35=0\x01abc\x01", b"35=0\x01x=1\x01", b"0=1\x01", b"35=0\x01=5\x01"):
        m = parse_fields(body)
        assert isinstance(m, Message) and m.error, body
    m = parse_fields(b"35=D\x0134=7\x01bad\x01")
    assert m.get(34) == "7" and m.error  # the sequence number is still usable
