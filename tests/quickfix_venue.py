"""A QuickFIX/C++ acceptor application for the interop tests (run as its own process).

``python tests/quickfix_venue.py PORT WORKDIR PASSWORD``: accepts VENUE<-CLIENT FIX 4.4,
refuses a Logon without the password, acknowledges and fully fills every NewOrderSingle,
and prints READY / LOGON / ORDER <ClOrdID> lines for the test. Stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import quickfix as fix


def emit(line: str) -> None:
    print(line, flush=True)


class VenueApp(fix.Application):
    def __init__(self, password: str):
        super().__init__()
        self.password = password
        self.ids = 0

    def onCreate(self, sid):  # noqa: N802 (QuickFIX callback names)
        pass

    def onLogon(self, sid):  # noqa: N802
        emit("LOGON")

    def onLogout(self, sid):  # noqa: N802
        emit("LOGOUT")

    def toAdmin(self, msg, sid):  # noqa: N802
        pass

    def fromAdmin(self, msg, sid):  # noqa: N802
        if msg.getHeader().getField(35) == "A":
            if not msg.isSetField(554) or msg.getField(554) != self.password:
                raise fix.RejectLogon("invalid credentials")

    def toApp(self, msg, sid):  # noqa: N802
        pass

    def fromApp(self, msg, sid):  # noqa: N802
        if msg.getHeader().getField(35) != "D":
            return
        get = msg.getField
        cl = get(11)
        emit(f"ORDER {cl}")
        for exec_type, status, cum, leaves, last in (("0", "0", "0", get(38), "0"),
                                                      ("F", "2", get(38), "0", get(38))):
            self.ids += 1
            r = fix.Message()
            r.getHeader().setField(fix.MsgType("8"))
            for tag, value in ((37, f"QF{cl}"), (11, cl), (17, f"E{self.ids}"),
                               (150, exec_type), (39, status), (55, get(55)), (54, get(54)),
                               (38, get(38)), (44, get(44)), (32, last), (31, get(44)),
                               (14, cum), (151, leaves)):
                r.setField(fix.StringField(tag, str(value)))
            fix.Session.sendToTarget(r, sid)


def main() -> None:
    port, workdir, password = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "acceptor.cfg"
    cfg.write_text(f"""[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort={port}
SocketAcceptHost=127.0.0.1
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=N
ResetOnLogon=N
FileLogPath={workdir / 'log'}
[SESSION]
BeginString=FIX.4.4
SenderCompID=VENUE
TargetCompID=CLIENT
""")
    settings = fix.SessionSettings(str(cfg))
    acceptor = fix.SocketAcceptor(VenueApp(password), fix.MemoryStoreFactory(), settings,
                                  fix.FileLogFactory(settings))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    acceptor.start()
    emit("READY")
    stop.wait()
    acceptor.stop()


if __name__ == "__main__":
    main()
