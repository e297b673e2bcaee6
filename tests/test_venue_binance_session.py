"""``hft sim --dialect binance``: Binance Spot's FIX session rules over real loopback sockets,
driven by a bare client (fix-api.md is the spec: every refusal is checked field by field)."""

from __future__ import annotations

import logging
import time

import pytest
from binance_sim import (
    DOC_API_KEY,
    DOC_LOGON,
    DOC_SENDING_TIME,
    DOC_SIGNATURE,
    accounts,
    doc_signer,
    logged_on,
    new_signer,
    run,
)

from pipeline.venue.binance_session import sending_time_ms
from pipeline.venue.fixcodec import sending_time
from pipeline.venue.simulator import Account
from pipeline.venue.testing import (
    TEST_API_KEY,
    BinanceFixClient,
    binance_test_config,
    http_json,
    running,
)


def refused(msg, code: int, text: str, reason: int, tag: int | None = None) -> None:
    """A Reject(3) exactly as fix-api.md's Reject<3> lays it out."""
    assert msg.msg_type == "3", msg.raw
    assert msg.get(25016) == str(code) and msg.get(58) == text, msg.raw
    assert msg.get(373) == str(reason), msg.raw
    if tag is not None:
        assert msg.get(371) == str(tag), msg.raw


async def refused_logon(sim, sender="C1", signer=None, api_key=TEST_API_KEY, **kw):
    """Logon -> the Reject, then the Logout with the same text, then the close."""
    c = BinanceFixClient(sim.endpoints()["fix_port"], sender, api_key, signer or ALICE)
    await c.connect()
    reply = await c.logon(**kw)
    bye = await c.recv("5")
    assert bye.get(58) == reply.get(58) and reply.get(34) == "1" and bye.get(34) == "2"
    assert reply.get(49) == "SPOT"
    assert await c.closed()
    return reply


ALICE, BOB = new_signer(), new_signer()


def config(tmp_path, **kw):
    return binance_test_config(tmp_path, accounts(ALICE, BOB), **kw)


@pytest.mark.timeout(60)
def test_the_fix_api_logon_vector_is_accepted_with_its_public_key_registered(tmp_path):
    signer = doc_signer()
    payload = "\x01".join(["A", "EXAMPLE", "SPOT", "1", DOC_SENDING_TIME]).encode()
    assert signer.sign_b64(payload) == DOC_SIGNATURE  # the vector, byte for byte
    acct = [Account("example", 1, None, DOC_API_KEY, signer.key.public_key())]

    async def main():
        async with running(binance_test_config(tmp_path, acct)) as sim:
            vector_s = sending_time_ms(DOC_SENDING_TIME) / 1000
            sim.fix.dialect.clock = lambda: vector_s + 0.05  # the vector's moment
            c = await BinanceFixClient(sim.endpoints()["fix_port"], "EXAMPLE", DOC_API_KEY,
                                       signer).connect()
            c.send_raw(DOC_LOGON)
            c.next_out = 2
            reply = await c.recv()
            assert reply.msg_type == "A" and reply.get(49) == "SPOT"
            assert reply.get(56) == "EXAMPLE" and reply.get(108) == "30"
            assert reply.get(98) == "0" and len(reply.get(25037)) == 36  # UUID
            assert reply.get(141) is None and reply.get(34) == "1"
            assert len(reply.get(52).split(".")[1]) == 6  # the exchange writes microseconds
            c.send("5", [])
            assert (await c.recv("5")).get(58) == "Logout acknowledgment."
            assert await c.closed()
            # the same bytes at the real time: SendingTime is years outside RecvWindow
            sim.fix.dialect.clock = time.time
            c = await BinanceFixClient(sim.endpoints()["fix_port"], "EXAMPLE", DOC_API_KEY,
                                       signer).connect()
            c.send_raw(DOC_LOGON)
            refused(await c.recv("3"), -1021, "Timestamp for this request is outside of the "
                    "recvWindow.", 10, 52)
            assert await c.closed()
    run(main())


@pytest.mark.timeout(60)
def test_logon_refusals_carry_binance_codes_and_a_log_line(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "venue.fix.binance")

    async def main():
        async with running(config(tmp_path)) as sim:
            # signed by a key that is not the one registered for the API key
            r = await refused_logon(sim, sign_with=BOB)
            refused(r, -1022, "Signature for this request is not valid.", 8, 96)
            r = await refused_logon(sim, override={95: "87"})  # RawDataLength wrong
            assert r.get(25016) == "-1022"
            r = await refused_logon(sim, stime=sending_time(time.time_ns() - 6_000_000_000))
            refused(r, -1021, "Timestamp for this request is outside of the recvWindow.",
                    10, 52)
            r = await refused_logon(sim, stime=sending_time(time.time_ns() + 3_000_000_000))
            refused(r, -1021, "Timestamp for this request was 1000ms ahead of the server's "
                    "time.", 10, 52)
            # a RecvWindow of its own widens the window (max 60000)
            c = await BinanceFixClient(sim.endpoints()["fix_port"], "RW1", TEST_API_KEY,
                                       ALICE).connect()
            ok = await c.logon(stime=sending_time(time.time_ns() - 6_000_000_000),
                               extra=[(25000, 20000)])
            assert ok.msg_type == "A"
            await c.close()
            r = await refused_logon(sim, extra=[(25000, 60001)])
            refused(r, -1130, "Data sent for parameter 'RecvWindow' is not valid.", 5, 25000)
            r = await refused_logon(sim, drop=(141,))
            refused(r, -1102, "Required tag '141' missing.", 1, 141)
            r = await refused_logon(sim, override={141: "N"})
            refused(r, -1175, "Continuation of sequence numbers to new session is currently "
                    "unsupported. Sequence numbers must be reset for each new session.", 5,
                    141)
            r = await refused_logon(sim, drop=(25035,))
            refused(r, -1102, "Required tag '25035' missing.", 1, 25035)
            r = await refused_logon(sim, hb=4)
            refused(r, -1130, "Data sent for parameter 'HeartBtInt' is not valid.", 5, 108)
            r = await refused_logon(sim, sender="TOOLONG12")
            assert r.get(25016) == "-1178" and r.get(371) == "49"
            r = await refused_logon(sim, api_key="X" * 64)
            refused(r, -2015, "Invalid API-key, IP, or permissions for action.", 5, 553)
            r = await refused_logon(sim, api_key="short")
            refused(r, -2014, "API-key format invalid.", 5, 553)
            # 56 must be SPOT
            c = BinanceFixClient(sim.endpoints()["fix_port"], "C1", TEST_API_KEY, ALICE)
            c.target = "SIMVENUE"
            await c.connect()
            r = await c.logon()
            assert r.get(25016) == "-1130" and r.get(371) == "56"
            assert await c.closed()
            # first message not a Logon
            c = await BinanceFixClient(sim.endpoints()["fix_port"], "C1", TEST_API_KEY,
                                       ALICE).connect()
            c.send("0", [])
            refused(await c.recv("3"), -1180, "Logon<A> must be the first message in the "
                    "session.", 99)
            assert await c.closed()
            assert sim.stats["binance_logons_refused"] == 14
            assert sim.stats["binance_bad_signature"] == 2
    run(main())
    text = caplog.text
    assert "logon C1 refused: Signature for this request is not valid. (ErrorCode -1022)" \
        in text
    assert "refused: Timestamp for this request was 1000ms ahead" in text


@pytest.mark.timeout(60)
def test_compid_unique_among_live_sessions_and_locked_after_no_logout(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "venue.fix.binance")
    in_use = ("SenderCompId(49) is currently in use. Concurrent use of the same SenderCompId "
              "within one account is not allowed.")

    async def main():
        async with running(config(tmp_path)) as sim:
            first = await logged_on(sim, "OE1", ALICE, hb=5)
            refused(await refused_logon(sim, "OE1"), -1033, in_use, 5, 49)
            other = await logged_on(sim, "OE2", ALICE)  # another CompID is fine meanwhile
            await first.close()  # gone without a Logout: OE1 is locked for 2 x 5 s
            await wait_for(lambda: "OE1" not in sim.fix.sessions)
            refused(await refused_logon(sim, "OE1"), -1033, in_use, 5, 49)
            left = sim.fix.dialect.locked["OE1"] - time.monotonic()
            assert 0 < left <= 10
            # a session that logs out leaves its CompID free at once
            other.send("5", [])
            await other.recv("5")
            assert await other.closed()
            again = await logged_on(sim, "OE2", ALICE)
            assert sim.stats["binance_compid_locked"] == 1  # the Logout left no lock
            await again.close()
    run(main())
    assert "OE1: disconnected without Logout: SenderCompID locked for 10s" in caplog.text
    assert "SenderCompID locked for" in caplog.text and "no Logout last time" in caplog.text


async def wait_for(cond, timeout: float = 10.0) -> None:
    import asyncio
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.timeout(60)
def test_no_resend_no_sequence_reset_no_replace_no_status(tmp_path):
    async def main():
        async with running(config(tmp_path)) as sim:
            c = await logged_on(sim, "OE1", ALICE)
            for mt, text in (("2", "Resend requests are currently not supported."),
                             ("4", "This operation is not supported."),
                             ("G", "This operation is not supported."),
                             ("H", "This operation is not supported.")):
                body = {"2": [(7, 1), (16, 0)], "4": [(123, "N"), (36, 1)],
                        "G": [(11, "a"), (41, "b"), (55, "BTCUSDT"), (54, "1")],
                        "H": [(11, "a"), (55, "BTCUSDT"), (54, "1")]}[mt]
                seq = c.send(mt, body)
                r = await c.recv("3")
                refused(r, -1020, text, 99, 35)
                assert r.get(372) == mt and r.get(45) == str(seq)
            # a gap is rejected (no ResendRequest): the expected number is named
            c.send("1", [(112, "x")], seq=c.next_out + 3)
            r = await c.recv("3")
            refused(r, -1179, "MsgSeqNum(34) contains an unexpected value. Expected: '6'.",
                    5, 34)
            c.next_out = 6
            c.send("1", [(112, "after-gap")])
            assert (await c.recv("0")).get(112) == "after-gap"  # the session goes on
            c.writer.write(c.logon_message(seq=c.next_out))
            c.next_out += 1
            refused(await c.recv("3"), -1176, "Logon<A> should only be sent once.", 99)
            assert not [m for m in c.inbox if m.msg_type == "2"]  # never asks for a resend
    run(main())


@pytest.mark.timeout(60)
def test_message_limit_logs_out_at_once(tmp_path):
    async def main():
        async with running(config(tmp_path, binance={"message_limit": 5})) as sim:
            c = await logged_on(sim, "OE1", ALICE)  # the Logon is message 1
            for i in range(4):
                c.send("1", [(112, f"t{i}")])
                await c.recv("0")
            c.send("1", [(112, "over")])
            bye = await c.recv("5", "0")
            assert bye.msg_type == "5"
            assert bye.get(58) == "Too many messages; current limit is '5' messages per '10s'."
            assert await c.closed()
            assert sim.stats["binance_message_limit_logouts"] == 1
            assert sim.stats["binance_compid_locked"] == 0  # the venue logged it out
    run(main())


@pytest.mark.timeout(60)
def test_connection_attempts_and_concurrent_sessions_are_limited(tmp_path):
    async def main():
        cfg = config(tmp_path, binance={"connect_limit": 3, "max_connections": 2})
        async with running(cfg) as sim:
            a = await logged_on(sim, "S1", ALICE)
            b = await logged_on(sim, "S2", ALICE)
            r = await refused_logon(sim, "S3")
            refused(r, -1034, "Too many concurrent connections; current limit is '2'.", 99)
            r = await refused_logon(sim, "S4")  # the fourth attempt in the window
            refused(r, -1034, "Too many connection attempts for account; current limit is 3 "
                    "per '30s'.", 99)
            bob = await logged_on(sim, "B1", BOB, api_key="B" * 64)  # per account
            for c in (a, b, bob):
                await c.close()
    run(main())


@pytest.mark.timeout(60)
def test_maintenance_news_countdown_then_logout_new_sessions_unaffected(tmp_path):
    async def main():
        async with running(config(tmp_path, binance={"news_interval_s": 1.0})) as sim:
            old = await logged_on(sim, "OLD", ALICE)
            status, body = await http_json(f"{sim.endpoints()['rest']}/admin/faults",
                                           {"fix_maintenance_s": 3}, token=sim.admin_token)
            assert status == 200 and body["actions"]["maintenance"] == 1
            first = await old.recv("B")
            assert first.get(148) == "You'll be disconnected in 3 seconds. Please reconnect."
            new = await logged_on(sim, "NEW", ALICE)  # the client's new session
            second = await old.recv("B")
            assert second.get(148) == "You'll be disconnected in 2 seconds. Please reconnect."
            last = await old.recv("B")
            assert last.get(148) == "Your connection is about to be closed. Please reconnect."
            bye = await old.recv("5")
            assert "Maintenance" in bye.get(58)
            assert await old.closed()
            new.send("1", [(112, "still-here")])
            assert (await new.recv("0")).get(112) == "still-here"
            assert not [m for m in new.inbox if m.msg_type == "B"]
            assert sim.stats["binance_news_sent"] == 3
            await new.close()
    run(main())
