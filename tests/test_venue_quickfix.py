"""Interop: a standard FIX engine (QuickFIX/C++ via the quickfix-tls wheel) trades here."""

from __future__ import annotations

import asyncio
import queue

import pytest

from pipeline.venue.testing import TEST_PASSWORD, FixClient, running, sim_test_config

fix = pytest.importorskip(
    "quickfix", reason="quickfix-tls (QuickFIX/C++ wheel) is only built for cp311 x86_64")


class Client(fix.Application):
    """QuickFIX application: logs on with Username/Password, collects what it receives."""

    def __init__(self, user: str, password: str):
        super().__init__()
        self.user, self.password = user, password
        self.events: queue.Queue = queue.Queue()
        self.session_id = None

    def onCreate(self, session_id):  # noqa: N802 (QuickFIX callback names)
        self.session_id = session_id

    def onLogon(self, session_id):  # noqa: N802
        self.events.put(("logon", None))

    def onLogout(self, session_id):  # noqa: N802
        self.events.put(("logout", None))

    def toAdmin(self, message, session_id):  # noqa: N802
        if message.getHeader().getField(35) == "A":
            message.setField(fix.StringField(553, self.user))
            message.setField(fix.StringField(554, self.password))

    def fromAdmin(self, message, session_id):  # noqa: N802
        if message.getHeader().getField(35) == "5" and message.isSetField(58):
            self.events.put(("logout_text", message.getField(58)))

    def toApp(self, message, session_id):  # noqa: N802
        pass

    def fromApp(self, message, session_id):  # noqa: N802
        fields = {t: message.getField(t) for t in (11, 17, 31, 32, 39, 150, 151)
                  if message.isSetField(t)}
        self.events.put((message.getHeader().getField(35), fields))


def settings(tmp_path, port: int) -> fix.SessionSettings:
    text = f"""
[DEFAULT]
ConnectionType=initiator
ReconnectInterval=1
FileStorePath={tmp_path}/qf_store
FileLogPath={tmp_path}/qf_log
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=N
HeartBtInt=30
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
[SESSION]
BeginString=FIX.4.4
SenderCompID=QFCLIENT
TargetCompID=SIMVENUE
"""
    path = tmp_path / "quickfix.cfg"
    path.write_text(text)
    return fix.SessionSettings(str(path))


async def next_event(app: Client, kind: str, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError(f"no {kind!r} from QuickFIX")
        try:
            got, payload = await asyncio.to_thread(app.events.get, True, min(left, 0.5))
        except queue.Empty:
            continue
        if got == kind:
            return payload


def start_initiator(app: Client, tmp_path, port: int):
    s = settings(tmp_path, port)
    initiator = fix.SocketInitiator(app, fix.FileStoreFactory(s), s, fix.FileLogFactory(s))
    initiator.start()
    return initiator


@pytest.mark.timeout(90)
def test_quickfix_initiator_logs_on_and_gets_filled(tmp_path):
    async def main():
        cfg = sim_test_config(tmp_path, rate=0, flow={"target_orders": 0})
        async with running(cfg) as sim:
            port = sim.endpoints()["fix_port"]
            bob = await FixClient(port, "BOBCLIENT").connect()
            await bob.logon("bob", "bobpw")
            bob.send("D", [(11, "b1"), (55, "BTCUSDT"), (54, "2"), (38, "0.002"), (40, "2"),
                           (44, "60000.00"), (59, "1"), (60, "20260101-00:00:00")])
            await bob.recv("8")
            app = Client("alice", TEST_PASSWORD)
            initiator = start_initiator(app, tmp_path, port)
            try:
                await next_event(app, "logon")
                msg = fix.Message()
                msg.getHeader().setField(fix.BeginString("FIX.4.4"))
                msg.getHeader().setField(fix.MsgType("D"))
                for tag, value in [(11, "q1"), (55, "BTCUSDT"), (54, "1"), (38, "0.003"),
                                   (40, "2"), (44, "60000.00"), (59, "3"),
                                   (60, "20260101-00:00:00")]:
                    msg.setField(fix.StringField(tag, value))
                assert fix.Session.sendToTarget(msg, app.session_id)
                reports = [await next_event(app, "8") for _ in range(3)]
                assert [r[150] for r in reports] == ["0", "F", "C"]
                fill = reports[1]
                assert (fill[31], fill[32], fill[39], fill[11]) == ("60000", "0.002", "1", "q1")
                assert sim.positions()["alice"]["BTCUSDT"]["qty"] == "0.002"
            finally:
                await asyncio.to_thread(initiator.stop)  # it waits for our Logout reply
            await next_event(app, "logout")
            log = b"".join(p.read_bytes() for p in (tmp_path / "qf_log").glob("*messages*"))
            assert b"35=5\x0149=SIMVENUE" in log  # the logout was answered
            assert sim.stats["fix_bad_logon"] == 0 and sim.stats["fix_garbled_in"] == 0
            assert sim.stats["fix_reject_received"] == 0  # QuickFIX accepted every message
    asyncio.run(asyncio.wait_for(main(), 80))


@pytest.mark.timeout(60)
def test_quickfix_wrong_password_gets_logout_text(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, rate=0)) as sim:
            app = Client("alice", "wrong")
            initiator = start_initiator(app, tmp_path, sim.endpoints()["fix_port"])
            try:
                text = await next_event(app, "logout_text")
                assert text == "invalid username or password"
            finally:
                await asyncio.to_thread(initiator.stop)
    asyncio.run(asyncio.wait_for(main(), 60))
