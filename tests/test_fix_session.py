"""FIX initiator session scenarios over loopback against the venue's acceptor."""

from __future__ import annotations

import logging
import time

import pytest

from pipeline.fix import codec as C
from pipeline.fix.session import Session, SessionConfig, State
from pipeline.fix.wire import Initiator
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.venue.testing import VenueThread, quiet_venue, run_until
from pipeline.venue.testing import send_order as _send_order

TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.00001"}])
GRID = TABLE.table()
SYMS = symbol_matrix(["BTCUSDT"])
SECRET = "s3cr3t-Pa55"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def acceptor(tmp_path):
    acc = VenueThread(quiet_venue(tmp_path, TABLE, password=SECRET))
    yield acc
    acc.stop()


def make(tmp_path, port: int, **kw) -> Initiator:
    cfg = SessionConfig(sender="CLIENT", target="VENUE", store_dir=str(tmp_path / "store"),
                        password=SECRET, **kw)
    return Initiator(Session(cfg, SYMS, GRID), "127.0.0.1", port, backoff_min_s=0.05)


def send_order(init: Initiator, cl: int, px: int = 6183763, qty: int = 150) -> None:
    _send_order(init, cl, b"BTCUSDT", GRID[0], px, qty)


def types(acc) -> list[str]:
    return [m.get(35).decode() for m in acc.received]


def test_logon_order_exec_report_logout(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port)
    run_until(init, lambda: init.active)
    apps = []
    send_order(init, 42)
    run_until(init, lambda: len(apps) == 1, apps=apps)
    f = apps[0]
    assert f[C.F_MSG_TYPE] == C.MSG_EXEC_REPORT and f[C.F_CL_ORD_ID] == 42
    assert f[C.F_EXEC_TYPE] == ord("0") and f[C.F_PRICE] == 6183763
    assert f[C.F_LEAVES_QTY] == 150
    acceptor.fill("42", "0.0005", "61837.6")
    run_until(init, lambda: len(apps) == 2, apps=apps)
    assert apps[1][C.F_LAST_QTY] == 50 and apps[1][C.F_LAST_PX] == 6183760
    init.session.logout(time.monotonic_ns())
    run_until(init, lambda: init.session.state == State.DISCONNECTED)
    assert types(acceptor) == ["A", "D", "5"]
    logon = acceptor.received[0]
    assert logon.get(554) == SECRET.encode() and logon.get(108) == b"30"


def test_logon_refused_backs_off_and_never_logs_password(acceptor, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    acceptor.faults(fix_refuse_logon="not today")
    init = make(tmp_path, acceptor.port)
    run_until(init, lambda: ("refused", "not today") in init.session.events)
    run_until(init, lambda: acceptor.logons == 0 and len(types(acceptor)) >= 3)
    assert not init.active and init.connects >= 3
    assert init.backoff > init.backoff_min  # exponential backoff between attempts
    assert SECRET not in caplog.text and SECRET not in repr(init.session.cfg)
    for f in (tmp_path / "store").iterdir():  # the journal never holds the Logon
        assert SECRET.encode() not in f.read_bytes()


def test_wrong_password_is_refused(acceptor, tmp_path):
    cfg = SessionConfig(sender="CLIENT", target="VENUE", store_dir=str(tmp_path / "s"),
                        password="wrong")
    init = Initiator(Session(cfg, SYMS, GRID), "127.0.0.1", acceptor.port)
    run_until(init, lambda: ("refused", "invalid username or password") in init.session.events)


def test_password_comes_from_environment_only(monkeypatch, tmp_path):
    section = {"sender_comp_id": "A", "target_comp_id": "B", "store_dir": str(tmp_path),
               "password_env": "HFT_TEST_FIX_PW"}
    monkeypatch.setenv("HFT_TEST_FIX_PW", SECRET)
    assert SessionConfig.from_config(section).password == SECRET
    with pytest.raises(ValueError, match="environment"):
        SessionConfig.from_config(section | {"password": "x"})
    monkeypatch.delenv("HFT_TEST_FIX_PW")
    with pytest.raises(KeyError, match="HFT_TEST_FIX_PW"):
        SessionConfig.from_config(section)


def test_heartbeat_timeout_disconnects(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port, heartbeat_s=1)
    run_until(init, lambda: init.active)
    acceptor.faults(fix_silent=True)
    run_until(init, lambda: any("heartbeat timeout" in d for _, d in init.session.events))
    assert "1" in types(acceptor)  # a TestRequest went out before giving up
    assert init.session.counters.test_requests_sent == 1


def test_heartbeat_sent_and_test_request_answered(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port, heartbeat_s=1)
    run_until(init, lambda: init.active)
    acceptor.send("1", [(112, "PING")])
    run_until(init, lambda: any(m.get(112) == b"PING" for m in acceptor.received))
    run_until(init, lambda: types(acceptor).count("0") >= 2, timeout=4)
    assert init.active


def test_inbound_gap_requests_resend_and_gets_lost_report(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port)
    run_until(init, lambda: init.active)
    apps = []
    acceptor.send("8", [(37, "V9"), (11, 7), (17, 99), (150, "0"), (39, "0"), (55, "BTCUSDT"),
                        (54, "1"), (38, "1"), (44, "100"), (14, 0), (151, "1")], lose=True)
    acceptor.skip_seq(1)  # and an admin message lost too
    acceptor.send("0", [])
    run_until(init, lambda: init.session.next_in == acceptor.next_out, apps=apps)
    rr = [m for m in acceptor.received if m.get(35) == b"2"]
    assert len(rr) == 1 and int(rr[0].get(7)) == 2 and rr[0].get(16) == b"0"
    assert len(apps) == 1 and apps[0][C.F_CL_ORD_ID] == 7 and apps[0][C.F_POSS_DUP] == 1


def test_our_gap_answered_with_resend_and_gap_fill(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port, resend_app=True)
    run_until(init, lambda: init.active)
    send_order(init, 5)  # seq 2
    run_until(init, lambda: "D" in types(acceptor))
    acceptor.send("2", [(7, 1), (16, 0)])
    run_until(init, lambda: len(acceptor.received) >= 4)
    got = acceptor.received[-2:]
    gap, resent = got
    assert gap.get(35) == b"4" and gap.get(123) == b"Y" and gap.get(43) == b"Y"
    assert (int(gap.get(34)), int(gap.get(36))) == (1, 2)  # Logon gap-filled, never resent
    assert resent.get(35) == b"D" and int(resent.get(34)) == 2 and resent.get(43) == b"Y"
    assert resent.get(11) == b"5" and resent.get(122) is not None
    assert init.session.counters.gap_fills_sent == 1


def test_gap_fill_only_policy(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port, resend_app=False)
    run_until(init, lambda: init.active)
    send_order(init, 5)
    run_until(init, lambda: "D" in types(acceptor))
    acceptor.send("2", [(7, 1), (16, 2)])
    run_until(init, lambda: types(acceptor)[-1] == "4")
    gap = acceptor.received[-1]
    assert (int(gap.get(34)), int(gap.get(36))) == (1, 3) and types(acceptor).count("D") == 1


def test_restart_resumes_sequence_numbers(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port)
    run_until(init, lambda: init.active)
    send_order(init, 1)
    send_order(init, 2)
    run_until(init, lambda: types(acceptor).count("D") == 2)
    seq_before = init.session.next_out
    in_before = init.session.next_in
    init.close(time.monotonic_ns(), "simulated crash")  # no Logout: as if killed
    again = make(tmp_path, acceptor.port)
    assert again.session.next_out == seq_before and again.session.next_in == in_before
    run_until(again, lambda: again.active)
    logons = [m for m in acceptor.received if m.get(35) == b"A"]
    assert int(logons[-1].get(34)) == seq_before
    assert ("error", "") not in again.session.events and acceptor.logons == 2


def test_garbled_message_dropped_counted_and_recovered(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port)
    run_until(init, lambda: init.active)
    acceptor.send_raw(b"8=FIX.4.4\x019=5\x01garbage")
    acceptor.send_garbled()
    acceptor.send("0", [])
    run_until(init, lambda: init.session.next_in == acceptor.next_out)
    assert init.session.counters.garbled >= 2
    assert "2" in types(acceptor) and init.active


def test_sequence_reset_and_too_low(acceptor, tmp_path):
    init = make(tmp_path, acceptor.port)
    run_until(init, lambda: init.active)
    acceptor.send("4", [(36, 50)], seq=999)  # SequenceReset-Reset ignores MsgSeqNum
    acceptor.next_out = 50
    acceptor.send("0", [])
    run_until(init, lambda: init.session.next_in == 51)
    acceptor.next_out = 10  # a venue that went back in time without PossDup: fatal
    acceptor.send("0", [])
    run_until(init, lambda: any("too low" in d for _, d in init.session.events))
    run_until(init, lambda: types(acceptor)[-1] == "5" or not init.active)


def test_sans_io_core_without_a_socket(tmp_path):
    """The session core is bytes in, bytes out: drive it by hand."""
    import simplefix

    from pipeline.fix.session import utc_timestamp

    def venue(msg_type, seq, *pairs, poss_dup=False):
        m = simplefix.FixMessage()
        for tag, v in ((8, "FIX.4.4"), (35, msg_type), (49, "VENUE"), (56, "CLIENT"),
                       (34, seq), *([(43, "Y")] if poss_dup else []),
                       (52, utc_timestamp(time.time_ns())), *pairs):
            m.append_pair(tag, v)
        return m.encode()

    def out_types(s):
        p = simplefix.FixParser()
        p.append_buffer(s.take_output())
        msgs = []
        while (m := p.get_message()) is not None:
            msgs.append(m)
        return msgs

    s = Session(SessionConfig("CLIENT", "VENUE", str(tmp_path / "st"), heartbeat_s=5),
                SYMS, GRID)
    t = 10**12
    s.on_connected(t)
    (logon,) = out_types(s)
    assert logon.get(35) == b"A" and logon.get(34) == b"1" and s.state == State.LOGON_SENT
    s.feed(venue("A", 1, (98, 0), (108, 5)))
    s.process(t)
    assert s.state == State.ACTIVE and s.next_in == 2
    s.feed(venue("0", 4))  # 2 and 3 missing
    s.process(t)
    (rr,) = out_types(s)
    assert (rr.get(35), rr.get(7), rr.get(16)) == (b"2", b"2", b"0")
    s.feed(venue("4", 2, (123, "Y"), (36, 5), poss_dup=True))
    s.process(t)
    assert s.next_in == 5 and out_types(s) == []
    s.on_timer(t + 5 * 10**9)  # quiet for a heartbeat interval: we send a Heartbeat
    assert [m.get(35) for m in out_types(s)] == [b"0"]
    s.on_timer(t + 7 * 10**9)  # nothing heard for 1.2 intervals: TestRequest
    assert [m.get(35) for m in out_types(s)] == [b"1"]
    s.on_timer(t + 13 * 10**9)  # and no answer within another interval: give up
    assert s.want_disconnect and "heartbeat timeout" in s.want_disconnect


def test_store_journal_wraps_around_its_end_byte_for_byte(tmp_path):
    """Messages appended across the end of the store's ring come back whole; one that the
    ring has since overwritten is gap-filled (None), never returned torn."""
    from pipeline.fix.store import SessionStore

    store = SessionStore(tmp_path, journal_bytes=256)
    msgs = {seq: bytes((seq * 31 + i) % 251 for i in range(40 + seq % 13))
            for seq in range(1, 40)}
    for seq, raw in msgs.items():
        store.record(seq, raw)
    end = int(store.words[2])  # JOURNAL_END
    assert end == sum(len(m) for m in msgs.values())
    kept = [seq for seq in msgs if store.lookup(seq) is not None]
    assert kept and kept == list(range(kept[0], 40))  # the newest ones, up to 256 bytes
    for seq in kept:
        assert store.lookup(seq) == msgs[seq]
    assert sum(len(msgs[s]) for s in kept) <= 256
