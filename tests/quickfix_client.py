"""A QuickFIX/C++ initiator for the venue interop tests (run as its own process).

``python tests/quickfix_client.py HOST PORT USER SENDER WORKDIR`` with the password in
``$QUICKFIX_CLIENT_PASSWORD`` (not on the command line): a SocketInitiator logs on to the
simulator (TargetCompID SIMVENUE) with Username/Password and reports what it sees as JSON
lines ``[kind, data]`` on stdout: ``logon``, ``logout``, ``logout_text`` (text) and ``8``
(ExecutionReport: ``[[tag, value], ...]``). The test drives it with JSON lines on stdin:
``{"op": "order", "clid", "side", "qty", "price", "tif"}`` sends a BTCUSDT limit order and
``{"op": "stop"}`` stops the initiator (it waits for the Logout reply); each is answered with
``["reply", {"op", "ok", "error"}]``. The process then leaves with ``os._exit``, so
QuickFIX's destructors (whose teardown occasionally segfaults) never run; on stdin EOF (the
test is gone) it leaves at once with status 1.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import quickfix as fix

PASSWORD_ENV = "QUICKFIX_CLIENT_PASSWORD"
_out = threading.Lock()  # callbacks (QuickFIX threads) and replies (main) share stdout


def emit(kind: str, data=None) -> None:
    with _out:
        sys.stdout.write(json.dumps([kind, data]) + "\n")
        sys.stdout.flush()


class Client(fix.Application):
    """QuickFIX application: logs on with Username/Password, reports what it receives."""

    def __init__(self, user: str, password: str):
        super().__init__()
        self.user, self.password = user, password
        self.session_id = None

    def onCreate(self, session_id):  # noqa: N802 (QuickFIX callback names)
        self.session_id = session_id

    def onLogon(self, session_id):  # noqa: N802
        emit("logon")

    def onLogout(self, session_id):  # noqa: N802
        emit("logout")

    def toAdmin(self, message, session_id):  # noqa: N802
        if message.getHeader().getField(35) == "A":
            message.setField(fix.StringField(553, self.user))
            message.setField(fix.StringField(554, self.password))

    def fromAdmin(self, message, session_id):  # noqa: N802
        if message.getHeader().getField(35) == "5" and message.isSetField(58):
            emit("logout_text", message.getField(58))

    def toApp(self, message, session_id):  # noqa: N802
        pass

    def fromApp(self, message, session_id):  # noqa: N802
        fields = [[t, message.getField(t)] for t in (11, 17, 31, 32, 39, 150, 151)
                  if message.isSetField(t)]
        emit(message.getHeader().getField(35), fields)


def settings(workdir: Path, host: str, port: int, sender: str) -> fix.SessionSettings:
    """File store and log under ``workdir``: a second run with the same SenderCompID
    resumes the sequence numbers of the first."""
    path = workdir / f"quickfix_{sender}.cfg"
    path.write_text(f"""
[DEFAULT]
ConnectionType=initiator
ReconnectInterval=1
FileStorePath={workdir}/qf_store
FileLogPath={workdir}/qf_log
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=N
HeartBtInt=30
SocketConnectHost={host}
SocketConnectPort={port}
[SESSION]
BeginString=FIX.4.4
SenderCompID={sender}
TargetCompID=SIMVENUE
""")
    return fix.SessionSettings(str(path))


def send_order(app: Client, clid: str, side: str, qty: str, price: str, tif: str) -> bool:
    """A BTCUSDT limit NewOrderSingle through QuickFIX's own session."""
    msg = fix.Message()
    msg.getHeader().setField(fix.BeginString("FIX.4.4"))
    msg.getHeader().setField(fix.MsgType("D"))
    for tag, value in [(11, clid), (55, "BTCUSDT"), (54, side), (38, qty), (40, "2"),
                       (44, price), (59, tif), (60, "20260101-00:00:00")]:
        msg.setField(fix.StringField(tag, value))
    return bool(fix.Session.sendToTarget(msg, app.session_id))


def main() -> None:
    host, port, user, sender, workdir = sys.argv[1:6]
    app = Client(user, os.environ[PASSWORD_ENV])
    s = settings(Path(workdir), host, int(port), sender)
    initiator = fix.SocketInitiator(app, fix.FileStoreFactory(s), s, fix.FileLogFactory(s))
    initiator.start()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            if op == "order":
                ok, error = send_order(app, **cmd), ""
            elif op == "stop":
                initiator.stop()
                ok, error = True, ""
            else:
                ok, error = False, f"unknown op {op!r}"
        except Exception as e:  # reported to the test, which fails on it
            ok, error = False, repr(e)
        emit("reply", {"op": op, "ok": ok, "error": error})
        if op == "stop":
            os._exit(0 if ok else 2)  # skip QuickFIX's destructors
    os._exit(1)


if __name__ == "__main__":
    main()
