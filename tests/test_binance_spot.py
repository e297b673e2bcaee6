"""The binance-spot FIX dialect: the fix-api.md Logon byte for byte, every outbound message
against the schema (spot-fix-oe.xml, parsed), and the session rules Sans-I/O (fresh
SenderCompID and sequence reset per logon, gap -> Logout (never a resend), XLQ at logon,
XLR limits, News, the pre-logon refusal)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import simplefix
from binance_schema import load, violations

from pipeline import config as cfgmod
from pipeline.binance.keys import load_public_key, load_signer, verify_b64, write_key_pair
from pipeline.fix import binance_spot as B
from pipeline.fix import codec as C
from pipeline.fix.session import Session, SessionConfig, State
from pipeline.instruments import SymbolTable, symbol_matrix
from shm_layouts.records import ORDER_INTENT, OrderType, ReplaceMode, Side, TimeInForce

DOC_KEY = ("-----BEGIN PRIVATE KEY-----\n"
           "MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u\n"
           "-----END PRIVATE KEY-----\n")
DOC_API_KEY = "sBRXrJx2DsOraMXOaUovEhgVRcjOvCtQwnWj8VxkOh1xqboS02SPGfKi2h8spZJb"
# fix-api.md "Resulting Logon <A> message", | for SOH
DOC_LOGON = ("8=FIX.4.4|9=247|35=A|34=1|49=EXAMPLE|52=20240627-11:17:25.223|56=SPOT|95=88|"
             "96=4MHXelVVcpkdwuLbl6n73HQUXUf1dse2PCgT1DYqW9w8AVZ1RACFGM+5UdlGPrQHrgtS3CvsRURC1"
             "oj73j8gCA==|98=0|108=30|141=Y|553=sBRXrJx2DsOraMXOaUovEhgVRcjOvCtQwnWj8VxkOh1xqb"
             "oS02SPGfKi2h8spZJb|25035=2|10=227|")
TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.00001"}])
GRID = TABLE.table()
SYM = np.frombuffer(b"BTCUSDT", np.uint8).copy()
COMP = C.comp_id_block("ABCD1234", "SPOT")
T = 1_718_000_000_123_456_000


def doc_dialect(tmp_path, **kw) -> B.BinanceSpot:
    (tmp_path / "doc.pem").write_text(DOC_KEY)
    return B.BinanceSpot(api_key=DOC_API_KEY, signer=load_signer(tmp_path / "doc.pem"), **kw)


def test_logon_reproduces_the_documented_message_byte_for_byte(tmp_path):
    d = doc_dialect(tmp_path, message_handling=B.MESSAGE_HANDLING["sequential"])
    raw = d.logon("EXAMPLE", 1, "20240627-11:17:25.223", 30)
    assert raw == DOC_LOGON.replace("|", "\x01").encode()
    assert violations(raw) == []
    assert DOC_API_KEY not in repr(d) and "PRIVATE" not in repr(d)


def test_response_mode_only_acks_and_a_recv_window_go_in_the_logon(tmp_path):
    d = doc_dialect(tmp_path, response_mode=B.RESPONSE_MODE["only_acks"],
                    recv_window_ms=8000)
    raw = d.logon("X", 1, "20240627-11:17:25.223", 30)
    assert b"\x0125036=2\x01" in raw and b"\x0156=SPOT\x0125000=8000\x01" in raw
    assert violations(raw) == []


def intent(**kw) -> np.ndarray:
    r = np.zeros(1, ORDER_INTENT)
    base = dict(cl_ord_id=1718096506197867067, orig_cl_ord_id=1718096506197860000,
                symbol_id=0, side=int(Side.BID), price=6_000_012, qty=150,
                tif=int(TimeInForce.GTC), ord_type=int(OrderType.LIMIT))
    for k, v in (base | kw).items():
        r[0][k] = v
    return r


def pairs(raw: bytes) -> dict[int, bytes]:
    p = simplefix.FixParser()
    p.append_buffer(raw)
    m = p.get_message()
    return {int(t): v for t, v in m.pairs}


def encoded(fn, *args) -> bytes:
    buf = np.zeros(4096, np.uint8)
    s, e = fn(buf, COMP, 7, T, *args)
    return bytes(buf[s:e])


@pytest.mark.parametrize("tif,ord_type,expect", [
    (TimeInForce.GTC, OrderType.LIMIT, {40: b"2", 59: b"1", 44: b"60000.12"}),
    (TimeInForce.IOC, OrderType.LIMIT, {40: b"2", 59: b"3"}),
    (TimeInForce.FOK, OrderType.LIMIT, {40: b"2", 59: b"4"}),
    (TimeInForce.POST_ONLY, OrderType.LIMIT, {40: b"2", 18: b"6"}),  # LIMIT_MAKER
    (TimeInForce.GTC, OrderType.MARKET, {40: b"1"}),
])
def test_new_order_single_has_exactly_the_schema_tags(tif, ord_type, expect):
    raw = encoded(B.encode_new_order, intent(tif=int(tif), ord_type=int(ord_type))[0],
                  SYM, GRID[0])
    assert violations(raw) == []
    f = pairs(raw)
    assert f[35] == b"D" and f[11] == b"1718096506197867067" and f[38] == b"0.0015"
    assert f[54] == b"1" and f[55] == b"BTCUSDT" and f[49] == b"ABCD1234" and f[56] == b"SPOT"
    for tag, value in expect.items():
        assert f[tag] == value
    if tif == TimeInForce.POST_ONLY:
        assert 59 not in f  # LIMIT_MAKER takes no TimeInForce
    if ord_type == OrderType.MARKET:
        assert 44 not in f and 59 not in f
    assert 60 not in f  # NewOrderSingle has no TransactTime at Binance
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,36}", f[11].decode())


def test_cancel_cancel_new_amend_mass_cancel_have_exactly_the_schema_tags():
    cancel = encoded(B.encode_cancel, 11, 10, 8765, SYM)
    cancel_unacked = encoded(B.encode_cancel, 11, 10, 0, SYM)
    xcn = [encoded(B.encode_cancel_new, intent(tif=int(t))[0], 120, 8765, int(mode), SYM,
                   GRID[0])
           for mode in (ReplaceMode.STOP_ON_FAILURE, ReplaceMode.ALLOW_FAILURE)
           for t in (TimeInForce.GTC, TimeInForce.POST_ONLY)]
    xak = encoded(B.encode_amend, 12, 10, 8765, 90, SYM, GRID[0])
    q = encoded(B.encode_mass_cancel, 13, SYM)
    for raw in [cancel, cancel_unacked, *xcn, xak, q]:
        assert violations(raw) == [], raw
    assert pairs(cancel)[37] == b"8765" and 37 not in pairs(cancel_unacked)
    assert pairs(cancel)[41] == b"10" and 54 not in pairs(cancel)  # no Side at Binance
    x = pairs(xcn[0])
    assert x[35] == b"XCN" and x[25033] == b"1" and x[41] == b"1718096506197860000"
    assert x[11] == b"1718096506197867067" and x[38] == b"0.0012" and x[37] == b"8765"
    assert pairs(xcn[2])[25033] == b"2" and pairs(xcn[1])[18] == b"6"
    a = pairs(xak)
    assert a[35] == b"XAK" and a[38] == b"0.0009" and a[41] == b"10" and a[11] == b"12"
    m = pairs(q)
    assert m[35] == b"q" and m[530] == b"1" and m[55] == b"BTCUSDT" and m[11] == b"13"


def test_schema_check_catches_a_foreign_tag():
    """The checker is not vacuous: the FIX 4.4 cancel (Side, OrderQty, TransactTime) fails."""
    buf = np.zeros(4096, np.uint8)
    s, e = C.encode_cancel(buf, COMP, 7, T, 11, 10, SYM, int(Side.BID), 5, GRID[0])
    problems = violations(bytes(buf[s:e]))
    assert any("tag 54" in p for p in problems) and any("tag 60" in p for p in problems)
    assert "XCN" in load().messages and "XAK" in load().messages


# ------------------------------------------------------------------------------ session
@pytest.fixture
def keyed(tmp_path):
    private, public = write_key_pair(tmp_path / "keys")
    d = B.BinanceSpot(api_key="K" * 64, signer=load_signer(private), comp_id_prefix="hf")
    return d, load_public_key(public)


def session(tmp_path, d) -> Session:
    cfg = SessionConfig("hf", "SPOT", str(tmp_path / "fix"), heartbeat_s=30)
    return Session(cfg, symbol_matrix(["BTCUSDT"]), GRID, dialect=d)


def msgs(raw: bytes) -> list[dict[int, bytes]]:
    p = simplefix.FixParser()
    p.append_buffer(raw)
    out = []
    while (m := p.get_message()) is not None:
        out.append({int(t): v for t, v in m.pairs})
    return out


def server(d, s, msg_type: str, seq: int, fields=()) -> bytes:
    """A message from the venue (49=SPOT, 56= our current CompID)."""
    body = f"35={msg_type}\x0134={seq}\x0149=SPOT\x0152=20240627-11:17:25.223456\x01" \
           f"56={s.sender}\x01" + "".join(f"{t}={v}\x01" for t, v in fields)
    return B.frame(body)


def test_every_logon_has_a_fresh_comp_id_reset_sequence_and_a_valid_signature(tmp_path,
                                                                             keyed):
    d, pub = keyed
    s = session(tmp_path, d)
    seen = set()
    for _ in range(3):
        s.on_connected(1)
        (logon,) = msgs(s.take_output())
        assert logon[35] == b"A" and logon[34] == b"1" and logon[141] == b"Y"
        assert logon[56] == b"SPOT" and logon[553] == b"K" * 64 and logon[98] == b"0"
        sender = logon[49].decode()
        assert re.fullmatch(r"hf[A-Za-z0-9]{6}", sender) and sender not in seen
        seen.add(sender)
        payload = b"\x01".join([b"A", logon[49], b"SPOT", b"1", logon[52]])
        assert verify_b64(pub, payload, logon[96].decode())
        assert int(logon[95]) == len(logon[96])
        assert bytes(s.comp_ids).startswith(f"49={sender}\x01".encode())
        s.on_disconnected(2, "test")
    assert len(seen) == 3


def test_logon_then_limit_query_then_gap_is_a_logout_not_a_resend(tmp_path, keyed):
    d, _ = keyed
    s = session(tmp_path, d)
    s.on_connected(1)
    s.take_output()
    s.feed(server(d, s, "A", 1, [(98, 0), (108, 30), (25037, "uuid")]))
    s.process(2)
    assert s.state == State.ACTIVE and ("logon", "") in s.events
    raw = s.take_output()
    (xlq,) = msgs(raw)
    assert xlq[35] == b"XLQ" and xlq[34] == b"2" and 6136 in xlq and violations(raw) == []
    s.on_timer(2 + 37 * 10**9)  # nothing heard for > 1.2 x HeartBtInt: TestRequest
    s.on_timer(2 + 38 * 10**9)
    admin = s.take_output()
    assert [m[35] for m in msgs(admin)] == [b"1"] and violations(admin) == []
    s.feed(server(d, s, "XLR", 2, [(6136, "1"), (25003, 2), (25004, 2), (25005, 1),
                                   (25006, 10000), (25007, 10), (25008, "s"), (25004, 1),
                                   (25005, 0), (25006, 200), (25007, 10), (25008, "s")]))
    s.feed(server(d, s, "B", 3, [(148, "You'll be disconnected in 50 seconds. Please "
                                      "reconnect.")]))
    s.process(3)
    limits = dict(s.events)["limits"]
    assert [(x.kind, x.max, x.interval_s) for x in limits] == [("2", 10000, 10),
                                                               ("1", 200, 10)]
    assert B.per_second(limits, B.MESSAGE_LIMIT) == 1000
    assert B.per_second(limits, B.ORDER_LIMIT) == 20
    assert B.countdown_s(dict(s.events)["news"]) == 50
    s.feed(server(d, s, "0", 6))  # 4 and 5 never arrive
    s.process(4)
    out = msgs(s.take_output())
    assert [m[35] for m in out] == [b"5"] and b"gap" in out[0][58]
    assert s.want_disconnect and "gap" in s.want_disconnect
    assert s.counters.resend_requests_sent == 0


def test_pre_logon_refusal_sends_nothing(tmp_path, keyed):
    d, _ = keyed
    d.pre_logon = lambda: "clock skew: our clock is 7000.0 ms behind"
    s = session(tmp_path, d)
    s.on_connected(1)
    assert s.take_output() == b"" and "clock skew" in s.want_disconnect
    assert s.events[-1] == ("refused", "clock skew: our clock is 7000.0 ms behind")


def test_config_refuses_what_binance_would(tmp_path, monkeypatch):
    private, _ = write_key_pair(tmp_path / "k")
    gw = {"port": 1, "sender_comp_id": "hft", "target_comp_id": "SPOT",
          "dialect": "binance-spot"}
    bn = {"private_key_file": str(private), "api_key_env": "HFT_TEST_BN_KEY"}
    with pytest.raises(cfgmod.ConfigError, match="HFT_TEST_BN_KEY"):
        B.BinanceSpot.from_config(gw, bn)
    monkeypatch.setenv("HFT_TEST_BN_KEY", "secret-api-key")
    d = B.BinanceSpot.from_config(gw, bn)
    assert d.api_key == "secret-api-key" and "secret-api-key" not in repr(d)
    with pytest.raises(cfgmod.ConfigError, match="SPOT"):
        B.BinanceSpot.from_config(gw | {"target_comp_id": "VENUE"}, bn)
    with pytest.raises(cfgmod.ConfigError, match="prefix"):
        B.BinanceSpot.from_config(gw | {"sender_comp_id": "TOOLONG"}, bn)
    with pytest.raises(cfgmod.ConfigError, match="replace_mode"):
        B.BinanceSpot.from_config(gw | {"replace_mode": "sometimes"}, bn)
    with pytest.raises(cfgmod.ConfigError, match="private_key_file"):
        B.BinanceSpot.from_config(gw, {"api_key_env": "HFT_TEST_BN_KEY"})


def test_inbound_comp_ids_follow_the_fresh_comp_id_and_the_reject_is_schema_valid(tmp_path,
                                                                                keyed):
    """The hostile-venue CompID check under binance-spot: inbound 56 must be this
    connection's fresh SenderCompID (checked in the jitted path too); a report sent to the
    last connection's CompID is Rejected (373=9, valid per the schema), then a Logout."""
    d, _ = keyed
    s = session(tmp_path, d)
    logon = [(98, 0), (108, 30), (25037, "uuid")]
    s.on_connected(1)
    s.feed(server(d, s, "A", 1, logon))
    s.process(2)
    old = s.sender
    s.on_disconnected(3, "test")
    s.on_connected(4)
    assert s.sender != old
    s.feed(server(d, s, "A", 1, logon))
    s.process(5)
    s.take_output()
    got: list[int] = []
    ack = [(11, 7), (14, "0"), (17, 1), (37, 9), (38, "0.001"), (39, "0"), (54, 1),
           (55, "BTCUSDT"), (150, "0")]
    s.feed(server(d, s, "8", 2, ack))
    s.process(6, lambda f, _b: got.append(int(f[C.F_CL_ORD_ID])))
    assert got == [7] and int(s.io[0]["app_in"]) == 1  # the jitted path took it
    stale = B.frame(f"35=8\x0134=3\x0149=SPOT\x0152=20240627-11:17:25.223456\x0156={old}\x01"
                    + "".join(f"{t}={v}\x01" for t, v in ack))
    s.feed(stale)
    s.process(7, lambda f, _b: got.append(int(f[C.F_CL_ORD_ID])))
    raw = s.take_output()
    out = msgs(raw)
    assert [m[35] for m in out] == [b"3", b"5"] and out[0][373] == b"9"
    reject = raw[: raw.index(b"\x0110=") + 8]  # the first message, to its CheckSum
    assert out[0][45] == b"3" and violations(reject) == [] and got == [7]
    assert s.counters.bad["comp_id"] == 1
