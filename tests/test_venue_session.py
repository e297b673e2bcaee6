"""The venue's FIX acceptor session without a socket: bytes and a clock in, bytes out."""

from __future__ import annotations

import collections
from types import SimpleNamespace

from pipeline.fix.store import SessionStore
from pipeline.venue.faults import Faults
from pipeline.venue.fixcodec import Framer, encode
from pipeline.venue.session import AcceptorSession, SessionReject


class FakeHost:
    """The least a session needs: one account, one store, an application that echoes."""

    comp_id = "VENUE"

    def __init__(self, tmp_path):
        self.stats = collections.Counter()
        self.faults = Faults()
        self.st = SessionStore(tmp_path / "store")
        self.open: list = []
        self.stored: list = []
        self.apps: list = []

    def store(self, client):
        return self.st

    def authenticate(self, username, password):
        return SimpleNamespace(account_id=1) if (username, password) == ("u", "pw") else None

    def live(self, client):
        return False

    def session_open(self, s):
        self.open.append(s.client)

    def session_closed(self, s):
        self.open.remove(s.client) if s.client in self.open else None

    def application(self, s, msg):
        if msg.msg_type != "D":
            raise SessionReject(11, "Invalid MsgType", 35)
        self.apps.append(msg.get(11))
        s.send_report("8", [(11, msg.get(11))], 0.0)

    def store_only(self, client, msg_type, body):
        self.stored.append((msg_type, body))


def out(s: AcceptorSession) -> list:
    return Framer().feed(s.take_output())


def client(msg_type: str, seq: int, body=(), extra=()) -> bytes:
    return encode(msg_type, "C", "VENUE", seq, list(body), list(extra))


def test_logon_gap_resend_timers_and_delayed_reports(tmp_path):
    host = FakeHost(tmp_path)
    s = AcceptorSession(host, now=100.0)
    s.timer(105.0)
    assert out(s) == [] and s.want_close is None  # no Logon yet, but not timed out
    s.receive_data(client("A", 1, [(98, 0), (108, 2), (553, "u"), (554, "pw")]), 101.0)
    (logon,) = out(s)
    assert logon.msg_type == "A" and logon.get(108) == "2" and host.open == ["C"]
    # an order ahead of a gap waits; the gap fill releases it
    s.receive_data(client("D", 3, [(11, "x")]), 101.5)
    (rr,) = out(s)
    assert (rr.msg_type, rr.get(7), rr.get(16)) == ("2", "2", "0") and host.apps == []
    s.receive_data(client("4", 2, [(123, "Y"), (36, 3)], [(43, "Y")]), 101.6)
    (er,) = out(s)
    assert host.apps == ["x"] and er.msg_type == "8" and er.get(34) == "3"
    # a resend request: the report again (PossDup), admin messages as one gap fill
    s.receive_data(client("2", 4, [(7, 1), (16, 0)]), 101.7)
    gap, again = out(s)
    assert (gap.msg_type, gap.get(34), gap.get(36)) == ("4", "1", "3")
    assert (again.get(34), again.get(43), again.get(11)) == ("3", "Y", "x")
    assert again.get(122) == er.get(52)
    # quiet for a beat: Heartbeat; for 1.2 beats without input: TestRequest; then give up
    s.timer(103.7)
    assert [m.msg_type for m in out(s)] == ["0"]
    s.timer(104.2)
    assert [m.msg_type for m in out(s)] == ["1"]
    s.timer(106.3)
    (bye,) = out(s)
    assert bye.msg_type == "5" and s.want_close == "heartbeat timeout"


def test_delayed_report_leaves_on_timer_or_is_stored_when_the_socket_goes(tmp_path):
    host = FakeHost(tmp_path)
    host.faults.update({"exec_delay_ms": 500})
    s = AcceptorSession(host, now=0.0)
    s.receive_data(client("A", 1, [(98, 0), (108, 30), (553, "u"), (554, "pw")]), 0.0)
    out(s)
    s.receive_data(client("D", 2, [(11, "a")]) + client("D", 3, [(11, "b")]), 0.0)
    assert out(s) == [] and s.next_timer(0.1) < 0.5
    s.timer(0.5)
    assert [m.get(11) for m in out(s)] == ["a", "b"]
    s.receive_data(client("D", 4, [(11, "c")]), 1.0)
    s.connection_lost()
    assert host.stored == [("8", [(11, "c")])] and host.open == []


def test_bad_credentials_wrong_type_and_garbage(tmp_path):
    host = FakeHost(tmp_path)
    s = AcceptorSession(host, now=0.0)
    s.receive_data(b"8=FIX.4.4\x019=5\x01junk" + client("A", 1, [(553, "u"), (554, "no")]),
                   0.0)
    (bye,) = out(s)
    assert bye.get(58) == "invalid username or password" and s.want_close
    assert host.stats["fix_garbled_in"] == 1 and host.stats["fix_bad_credentials"] == 1
    s = AcceptorSession(host, now=0.0)
    s.receive_data(client("A", 1, [(108, 30), (553, "u"), (554, "pw")]) + client("Z", 2), 0.0)
    logon, reject = out(s)
    assert reject.msg_type == "3" and reject.get(373) == "11" and reject.get(45) == "2"


def test_sequence_numbers_carried_over_from_the_former_store_format(tmp_path):
    from pipeline.venue.fixacceptor import carry_over

    old = tmp_path / "SIMVENUE-C" / "seqnums"
    old.parent.mkdir()
    old.write_text("17 9".ljust(43) + "\n")
    st = SessionStore(tmp_path / "sessions" / "SIMVENUE-C")
    carry_over(old, st)
    assert (st.next_out, st.next_in) == (17, 9) and st.lookup(16) is None
    carry_over(tmp_path / "nothing-here", st)  # no former store: nothing changes
    assert (st.next_out, st.next_in) == (17, 9)
