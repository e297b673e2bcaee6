"""FIX 4.4 acceptor scenarios over real loopback sockets."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.venue.fixcodec import Garbled, encode
from pipeline.venue.testing import TEST_PASSWORD, FixClient, running, sim_test_config

P = "50000.00"


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def order(clid: str, side: str, qty: str, price: str | None = P, tif: str = "1",
          ord_type: str = "2", symbol: str = "BTCUSDT", extra: list = ()) -> list:
    body = [(11, clid), (55, symbol), (54, side), (38, qty), (40, ord_type), (59, tif),
            (60, "20260101-00:00:00.000")]
    if price is not None:
        body.insert(4, (44, price))
    return body + list(extra)


async def logged_on(sim, sender="CLIENT1", user="alice", pw=None, **kw) -> FixClient:
    c = await FixClient(sim.endpoints()["fix_port"], sender).connect()
    await c.logon(user, pw or ("bobpw" if user == "bob" else TEST_PASSWORD), **kw)
    return c


def cfg(tmp_path, **kw):
    """No background flow and an empty book: every fill comes from the test's orders."""
    return sim_test_config(tmp_path, rate=0, flow={"target_orders": 0}, **kw)


@pytest.mark.timeout(60)
def test_logon_heartbeat_testrequest_logout(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            c = await FixClient(sim.endpoints()["fix_port"]).connect()
            reply = await c.logon(hb=1)
            assert reply.get(108) == "1" and reply.get(98) == "0" and reply.get(34) == "1"
            assert reply.get(49) == "SIMVENUE" and reply.get(56) == "CLIENT1"
            c.send("1", [(112, "ping-1")])
            hb = await c.recv("0")
            assert hb.get(112) == "ping-1"
            # stay silent: the venue sends Heartbeats, then a TestRequest we must answer
            tr = await c.recv("1", timeout=10)
            c.send("0", [(112, tr.get(112))])
            await c.recv("0", timeout=10)
            c.send("5", [])
            assert (await c.recv("5")).msg_type == "5"
            assert await c.closed()
    run(main())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("user,pw", [("alice", "wrong"), ("mallory", "x"), ("alice", "")])
def test_bad_credentials_logout_with_text_and_disconnect(tmp_path, user, pw):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            c = await FixClient(sim.endpoints()["fix_port"]).connect()
            c.send("A", [(98, 0), (108, 30), (553, user), (554, pw)])
            out = await c.recv()
            assert out.msg_type == "5" and "invalid username or password" in out.get(58)
            assert pw not in out.raw.decode() or not pw
            assert await c.closed()
            assert sim.stats["fix_bad_credentials"] == 1
    run(main())


@pytest.mark.timeout(60)
def test_first_message_not_logon_and_wrong_target_disconnect(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            c = await FixClient(sim.endpoints()["fix_port"]).connect()
            c.send("0", [])
            assert await c.closed()
            c = await FixClient(sim.endpoints()["fix_port"], target="OTHER").connect()
            c.send("A", [(98, 0), (108, 30), (553, "alice"), (554, "x")])
            assert await c.closed()
            assert sim.stats["fix_bad_logon"] == 2
    run(main())


@pytest.mark.timeout(60)
def test_order_types_end_to_end(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            b = await logged_on(sim, "CLIENT2", "bob")
            # limit GTC rests
            a.send("D", order("a1", "1", "0.003"))
            er = await a.recv("8")
            assert (er.get(150), er.get(39), er.get(151), er.get(11)) == ("0", "0", "0.003", "a1")
            oid = er.get(37)
            # partial fill by a counterparty, then the rest
            b.send("D", order("b1", "2", "0.001"))
            er = await a.recv("8")
            assert (er.get(150), er.get(39), er.get(32), er.get(31), er.get(151), er.get(14)) \
                == ("F", "1", "0.001", "50000", "0.002", "0.001")
            bn, bf = await b.recv("8"), await b.recv("8")
            assert bn.get(150) == "0" and bf.get(39) == "2" and bf.get(6) == "50000"
            assert er.get(851) == "1" and bf.get(851) == "2"  # maker added, taker removed
            # status
            a.send("H", [(11, "a1"), (55, "BTCUSDT"), (54, "1")])
            er = await a.recv("8")
            assert (er.get(150), er.get(39), er.get(37)) == ("I", "1", oid)
            # replace: new price, new ClOrdID
            a.send("G", [(11, "a2"), (41, "a1"), (55, "BTCUSDT"), (54, "1"), (38, "0.003"),
                         (40, "2"), (44, "49999.00")])
            er = await a.recv("8")
            assert (er.get(150), er.get(11), er.get(41), er.get(44)) == ("5", "a2", "a1", "49999")
            assert sim.books["BTCUSDT"].level_qty(0, 4999900) == 200
            # cancel
            a.send("F", [(11, "a3"), (41, "a2"), (55, "BTCUSDT"), (54, "1")])
            er = await a.recv("8")
            assert (er.get(150), er.get(39), er.get(11), er.get(41)) == ("4", "4", "a3", "a2")
            # cancel of a gone order -> OrderCancelReject
            a.send("F", [(11, "a4"), (41, "a2"), (55, "BTCUSDT"), (54, "1")])
            cr = await a.recv("9")
            assert (cr.get(434), cr.get(102), cr.get(39)) == ("1", "0", "4")
            a.send("G", [(11, "a5"), (41, "zzz"), (55, "BTCUSDT"), (54, "1"), (38, "1"),
                         (40, "2"), (44, "1.00")])
            cr = await a.recv("9")
            assert (cr.get(434), cr.get(102), cr.get(37)) == ("2", "1", "NONE")
            # IOC: takes what is there, the rest expires
            b.send("D", order("b2", "2", "0.001", "50001.00"))
            await b.recv("8")
            a.send("D", order("a6", "1", "0.002", "50001.00", tif="3"))
            types = [(await a.recv("8")).get(150) for _ in range(3)]
            assert types == ["0", "F", "C"]
            # FOK that cannot fill expires untouched
            b.send("D", order("b3", "2", "0.001", "50002.00"))
            await b.recv("8")
            a.send("D", order("a7", "1", "0.002", "50002.00", tif="4"))
            assert [(await a.recv("8")).get(150) for _ in range(2)] == ["0", "C"]
            assert sim.books["BTCUSDT"].level_qty(1, 5000200) == 100
            # post-only that would cross is rejected
            a.send("D", order("a8", "1", "0.001", "50002.00", extra=[(18, "6")]))
            er = await a.recv("8")
            assert er.get(150) == "8" and er.get(58) == "post-only would cross"
            # market order
            a.send("D", order("a9", "1", "0.001", None, tif="3", ord_type="1"))
            assert [(await a.recv("8")).get(150) for _ in range(2)] == ["0", "F"]
            # business rejects
            for clid, body, text in [
                    ("a10", order("a10", "1", "0.001", "50000.001"), "price not on tick"),
                    ("a11", order("a11", "1", "0.0000001"), "qty not on lot"),
                    ("a12", order("a12", "1", "0.001", symbol="NOPE"), "unknown symbol"),
                    ("a9", order("a9", "1", "0.001"), "duplicate ClOrdID")]:
                a.send("D", body)
                er = await a.recv("8")
                assert (er.get(150), er.get(39), er.get(11), er.get(58)) == ("8", "8", clid, text)
            # self-trade prevention
            a.send("D", order("a13", "2", "0.001", "49000.00"))
            await a.recv("8")
            a.send("D", order("a14", "1", "0.001", "49000.00"))
            assert (await a.recv("8")).get(150) == "0"
            er = await a.recv("8")
            assert er.get(150) == "4" and er.get(58) == "self-trade prevented"
            pos = sim.positions()
            assert pos["alice"]["BTCUSDT"]["lots"] == 100 + 100 + 100  # 3 fills of 0.001
            assert pos["bob"]["BTCUSDT"]["lots"] == -300
    run(main())


@pytest.mark.timeout(60)
def test_malformed_messages_get_reject_and_garbled_are_ignored(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            # a field that is not tag=value -> Reject, and the sequence number is consumed
            raw = encode("D", "CLIENT1", "SIMVENUE", a.next_out, [(11, "x")])
            raw = raw.replace(b"11=x\x01", b"11=x\x01garbage\x01")
            head, _, _ = raw.rpartition(b"10=")
            body = head.split(b"\x01", 2)[2]
            fixed = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
            a.send_raw(fixed + b"10=%03d\x01" % (sum(fixed) & 0xFF))
            seq = a.next_out
            a.next_out += 1
            rej = await a.recv("3")
            assert rej.get(45) == str(seq) and rej.get(373) == "0"
            # required tag missing -> Reject 373=1 naming the tag
            seq = a.send("D", [(11, "x2"), (55, "BTCUSDT"), (54, "1"), (40, "2")])
            rej = await a.recv("3")
            assert (rej.get(45), rej.get(371), rej.get(373)) == (str(seq), "38", "1")
            # bad value format -> Reject 373=6
            a.send("D", order("x3", "1", "abc"))
            assert (await a.recv("3")).get(373) == "6"
            a.send("D", order("x3b", "7", "1"))
            assert (await a.recv("3")).get(373) == "5"
            a.send("Z", [])
            assert (await a.recv("3")).get(373) == "11"
            # bad checksum: ignored, no sequence number consumed
            raw = encode("D", "CLIENT1", "SIMVENUE", a.next_out, order("x4", "1", "0.001"))
            a.send_raw(raw[:-4] + b"000\x01")
            a.send("D", order("x5", "1", "0.001"))  # same seq number as the garbled one
            er = await a.recv("8")
            assert er.get(11) == "x5" and er.get(150) == "0"
            assert sim.stats["fix_garbled_in"] == 1
            # the venue sends a garbled message on demand; it does not consume a seq
            await sim.set_faults({"garble_fix": True})
            a.send("1", [(112, "after-garble")])
            hb = await a.recv("0")
            assert hb.get(112) == "after-garble"
            assert len(a.garbled) == 1 and isinstance(a.garbled[0], Garbled)
            assert a.garbled[0].raw.endswith(b"\x01") and "CheckSum" in a.garbled[0].reason
    run(main())


@pytest.mark.timeout(60)
def test_inbound_gap_resend_request_and_gap_fill(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            expected = a.next_out
            a.send("D", order("g1", "1", "0.001"), seq=expected + 3)  # skip 3 numbers
            rr = await a.recv("2")
            assert (rr.get(7), rr.get(16)) == (str(expected), "0")
            assert not [m for m in a.inbox if m.msg_type == "8"]  # queued, not processed
            a.send("4", [(123, "Y"), (36, expected + 3)], seq=expected, extra=[(43, "Y")])
            er = await a.recv("8")
            assert er.get(11) == "g1"
            a.send("D", order("g2", "1", "0.001"))
            assert (await a.recv("8")).get(11) == "g2"
            # too low without PossDupFlag -> Logout and disconnect
            a.send("0", [], seq=2)
            lo = await a.recv("5")
            assert "MsgSeqNum too low" in lo.get(58)
            assert await a.closed()
    run(main())


@pytest.mark.timeout(60)
def test_outbound_resend_request_resends_app_and_gap_fills_admin(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)  # venue seq 1 = Logon
            a.send("D", order("r1", "1", "0.001"))  # venue seq 2 = ER
            first = await a.recv("8")
            a.send("1", [(112, "t")])  # venue seq 3 = Heartbeat
            await a.recv("0")
            a.send("D", order("r2", "1", "0.001"))  # venue seq 4 = ER
            await a.recv("8")
            a.send("2", [(7, 1), (16, 0)])
            msgs = [await a.recv() for _ in range(4)]
            kinds = [(m.msg_type, m.get(34), m.get(43)) for m in msgs]
            assert kinds == [("4", "1", "Y"), ("8", "2", "Y"), ("4", "3", "Y"), ("8", "4", "Y")]
            assert msgs[0].get(123) == "Y" and msgs[0].get(36) == "2"
            assert msgs[2].get(36) == "4"
            assert msgs[1].get(122) == first.get(52) and msgs[1].get(11) == "r1"
            assert msgs[1].get(17) == first.get(17)
            # SequenceReset-Reset moves our expected number without a gap
            a.send("4", [(36, 100)], seq=1)
            a.next_out = 100
            a.send("1", [(112, "after-reset")])
            assert (await a.recv("0")).get(112) == "after-reset"
    run(main())


@pytest.mark.timeout(90)
def test_reconnect_resumes_with_persisted_sequence_numbers(tmp_path):
    """Fills that happen while disconnected (and across a venue restart) are resent."""
    async def main():
        config = cfg(tmp_path)
        async with running(config) as sim:
            a = await logged_on(sim)
            a.send("D", order("p1", "1", "0.002"))
            await a.recv("8")
            a.send("5", [])
            await a.recv("5")
            await a.closed()
            b = await logged_on(sim, "CLIENT2", "bob")
            b.send("D", order("pb", "2", "0.002"))  # fills alice while she is away
            await b.recv("8")
            await b.recv("8")
            books = sim.books
        # the venue restarts; its books are fresh, the FIX stores are on disk
        async with running(config) as sim2:
            assert sim2.books is not books
            a2 = await FixClient(sim2.endpoints()["fix_port"]).connect()
            a2.next_out = a.next_out
            reply = await a2.logon()
            assert int(reply.get(34)) > 4  # Logon, ER, Logout, then the stored fill
            a2.send("2", [(7, 4), (16, 0)])  # what we missed: 4 = Logout reply onward
            fill = await a2.recv("8")
            assert (fill.get(150), fill.get(39), fill.get(11), fill.get(43)) == \
                ("F", "2", "p1", "Y")
            a2.send("D", order("p1", "1", "0.001"))  # ClOrdIDs are per venue run here
            er = await a2.recv("8")
            assert er.get(150) == "0"
    run(main())


@pytest.mark.timeout(60)
def test_faults_reject_delay_and_drop_session(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            await sim.set_faults({"reject_next": 1})
            a.send("D", order("f1", "1", "0.001"))
            er = await a.recv("8")
            assert er.get(150) == "8" and "fault" in er.get(58)
            a.send("D", order("f2", "1", "0.001"))
            assert (await a.recv("8")).get(150) == "0"
            await sim.set_faults({"exec_delay_ms": 1500})
            a.send("D", order("f3", "1", "0.001"))
            a.send("1", [(112, "probe")])
            first = await a.recv("0", "8")
            assert first.msg_type == "0"  # the heartbeat overtook the delayed report
            er = await a.recv("8")
            assert er.get(11) == "f3" and int(er.get(34)) > int(first.get(34))
            await sim.set_faults({"exec_delay_ms": 0, "drop_fix": True})
            assert await a.closed()
            again = await FixClient(sim.endpoints()["fix_port"]).connect()
            again.next_out = a.next_out
            reply = await again.logon()
            assert reply.msg_type == "A"
            assert sim.stats["fault_drop_fix"] == 1
    run(main())


@pytest.mark.timeout(60)
def test_unauthenticated_reset_and_second_logon_are_refused(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            a.send("1", [(112, "x")])
            await a.recv("0")
            store = sim.fix.stores["CLIENT1"]
            seqs = (store.next_in, store.next_out)
            evil = await FixClient(sim.endpoints()["fix_port"]).connect()
            evil.send("A", [(98, 0), (108, 30), (141, "Y"), (553, "alice"), (554, "nope")])
            assert (await evil.recv("5")).get(58) == "invalid username or password"
            assert store.next_in == seqs[0]  # no reset without credentials
            twin = await FixClient(sim.endpoints()["fix_port"]).connect()
            twin.next_out = a.next_out
            twin.send("A", [(98, 0), (108, 30), (553, "alice"), (554, TEST_PASSWORD)])
            assert await twin.closed() and not twin.inbox
            assert sim.stats["fix_duplicate_logon"] == 1
            assert store.next_out == seqs[1] + 1  # only the refused Logout to "evil"
            a.send("1", [(112, "still-here")])
            assert (await a.recv("0")).get(112) == "still-here"
    run(main())


@pytest.mark.timeout(60)
def test_unanswered_test_request_ends_the_session(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            c = await FixClient(sim.endpoints()["fix_port"]).connect()
            await c.logon(hb=1)
            await c.recv("1", timeout=10)  # and we do not answer
            lo = await c.recv("5", timeout=10)
            assert lo.get(58) == "heartbeat timeout"
            assert await c.closed()
            assert sim.stats["fix_heartbeat_timeouts"] == 1
    run(main())


@pytest.mark.timeout(60)
def test_mass_cancel(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            for clid, sym, qty in [("m1", "BTCUSDT", "0.001"), ("m2", "BTCUSDT", "0.002"),
                                   ("m3", "ETHUSDT", "0.01")]:
                a.send("D", order(clid, "1", qty, symbol=sym))
                await a.recv("8")
            a.send("q", [(11, "mc1"), (530, 1), (55, "BTCUSDT")])
            cancelled = {(await a.recv("8")).get(11) for _ in range(2)}
            rep = await a.recv("r")
            assert cancelled == {"m1", "m2"}
            assert (rep.get(531), rep.get(533), rep.get(11)) == ("1", "2", "mc1")
            assert sim.books["ETHUSDT"].order(1, "m3").oid in sim.books["ETHUSDT"].orders
            a.send("q", [(11, "mc2"), (530, 7)])
            assert (await a.recv("8")).get(11) == "m3"
            assert (await a.recv("r")).get(533) == "1"
            a.send("q", [(11, "mc3"), (530, 1), (55, "NOPE")])
            assert (await a.recv("r")).get(531) == "0"
            a.send("q", [(11, "mc4"), (530, 9)])
            assert (await a.recv("3")).get(371) == "530"
    run(main())


@pytest.mark.timeout(60)
def test_fix_fault_knobs_gap_duplicate_gap_fill_refuse_disconnect(tmp_path):
    async def main():
        async with running(cfg(tmp_path)) as sim:
            a = await logged_on(sim)
            # a dropped report and skipped numbers: the client sees a gap and gets the
            # report back as a PossDup resend, the skipped numbers as a gap fill
            await sim.set_faults({"fix_drop_next": 1})
            a.send("D", order("k1", "1", "0.001"))
            a.send("1", [(112, "after-drop")])
            hb1 = int((await a.recv("0")).get(34))
            await sim.set_faults({"fix_skip_seq": 2})
            a.send("1", [(112, "after-skip")])
            hb2 = int((await a.recv("0")).get(34))
            assert hb2 == hb1 + 3 and not [m for m in a.inbox if m.msg_type == "8"]
            a.send("2", [(7, hb1 - 1), (16, 0)])
            resent = await a.recv("8")
            assert resent.get(11) == "k1" and resent.get(43) == "Y"
            assert int(resent.get(34)) == hb1 - 1
            gap = await a.recv("4")
            assert (int(gap.get(34)), int(gap.get(36))) == (hb1, hb2 + 1)
            assert sim.stats["fault_fix_dropped"] == 1
            # a duplicate: the same message again as a PossDup copy
            await sim.set_faults({"fix_duplicate_next": 1})
            a.send("D", order("k2", "1", "0.001"))
            first, copy = await a.recv("8"), await a.recv("8")
            assert first.get(34) == copy.get(34) and copy.get(43) == "Y"
            assert first.get(43) is None and copy.get(11) == "k2"
            # gap fill only: a resend request brings no report back
            await sim.set_faults({"fix_resend_gap_fill": True})
            a.send("2", [(7, first.get(34)), (16, 0)])
            gap = await a.recv("4", "8")
            assert gap.msg_type == "4" and gap.get(34) == first.get(34)
            # disconnect after N messages: the second answer is the last thing sent
            await sim.set_faults({"fix_resend_gap_fill": False, "fix_disconnect_after": 2})
            a.send("1", [(112, "one")])
            a.send("1", [(112, "two")])
            a.send("1", [(112, "three")])
            assert [(await a.recv("0")).get(112) for _ in range(2)] == ["one", "two"]
            assert await a.closed() and not [m for m in a.inbox if m.get(112) == "three"]
            assert sim.stats["fault_fix_disconnects"] == 1
            # every logon refused while the knob is set, with its text
            await sim.set_faults({"fix_refuse_logon": "maintenance"})
            b = await FixClient(sim.endpoints()["fix_port"]).connect()
            b.next_out = a.next_out
            b.send("A", [(98, 0), (108, 30), (553, "alice"), (554, TEST_PASSWORD)])
            assert (await b.recv("5")).get(58) == "maintenance" and await b.closed()
            await sim.set_faults({"fix_refuse_logon": ""})
            c = await FixClient(sim.endpoints()["fix_port"]).connect()
            c.next_out = b.next_out
            assert (await c.logon()).msg_type == "A"
    run(main())
