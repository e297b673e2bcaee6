"""Interop: our initiator against a QuickFIX/C++ acceptor (a standard third-party engine).

The acceptor application is ``tests/quickfix_venue.py``; QuickFIX runs without a data
dictionary.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.fix import codec as C
from pipeline.fix.store import NEXT_IN, NEXT_OUT

pytest.importorskip(
    "quickfix", reason="quickfix-tls wheel not available for this platform/python")

from pipeline.fix.session import Session, SessionConfig  # noqa: E402
from pipeline.fix.wire import Initiator  # noqa: E402
from pipeline.instruments import SymbolTable, symbol_matrix  # noqa: E402
from pipeline.venue.testing import run_until  # noqa: E402
from pipeline.venue.testing import send_order as _send_order  # noqa: E402

TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.00001"}])
GRID = TABLE.table()
SYMS = symbol_matrix(["BTCUSDT"])
SECRET = "qf-Pa55word"


def make(tmp_path, port: int, password: str = SECRET) -> Initiator:
    cfg = SessionConfig(sender="CLIENT", target="VENUE", store_dir=str(tmp_path / "store"),
                        password=password)
    return Initiator(Session(cfg, SYMS, GRID), "127.0.0.1", port, backoff_min_s=0.05)


def send_order(init: Initiator, cl: int) -> None:
    _send_order(init, cl, b"BTCUSDT", GRID[0], 6183763, 150)

pytestmark = [pytest.mark.timeout(240), pytest.mark.e2e]  # generous only for a cold numba cache


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuickFixVenue:
    """The QuickFIX acceptor runs in its own process (``tests/quickfix_venue.py``): a crash
    in the C++ engine's teardown then cannot take pytest down, and nothing is shared with
    our code. It reports ``LOGON`` / ``ORDER <ClOrdID>`` lines on stdout."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("quickfix_venue.py")),
             str(self.port), str(tmp_path / "qf"), SECRET],
            stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 20
        while "READY" not in self.lines:
            assert time.monotonic() < deadline and self.proc.poll() is None, "no QuickFIX"
            time.sleep(0.01)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    @property
    def logons(self) -> int:
        return self.lines.count("LOGON")

    @property
    def orders(self) -> list[str]:
        return [x.split()[1] for x in self.lines if x.startswith("ORDER ")]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def quickfix_acceptor(tmp_path):
    venue = QuickFixVenue(tmp_path)
    yield venue, venue.port
    venue.stop()


def test_logon_order_reports_logout_against_quickfix(quickfix_acceptor, tmp_path):
    app, port = quickfix_acceptor
    init = make(tmp_path, port)
    run_until(init, lambda: init.active)
    assert app.logons == 1
    apps: list = []
    send_order(init, 1001)
    run_until(init, lambda: len(apps) == 2, apps=apps)
    assert app.orders == ["1001"]
    new, fill = apps
    assert new[C.F_EXEC_TYPE] == ord("0") and fill[C.F_EXEC_TYPE] == ord("F")
    assert fill[C.F_CUM_QTY] == 150 and fill[C.F_LAST_PX] == 6183763
    assert fill[C.F_CL_ORD_ID] == 1001 and fill[C.F_ORDER_ID] >= 2**62  # hashed "QF1001"
    init.session.logout(time.monotonic_ns())
    run_until(init, lambda: ("logout", "") in init.session.events or
              any(e == "logout" for e, _ in init.session.events))


def test_resend_both_ways_against_quickfix(quickfix_acceptor, tmp_path):
    app, port = quickfix_acceptor
    init = make(tmp_path, port)
    run_until(init, lambda: init.active)
    apps: list = []
    send_order(init, 1)
    run_until(init, lambda: len(apps) == 2, apps=apps)
    init.close(time.monotonic_ns(), "test: drop the link")
    store = init.session.store
    # we "lost" QuickFIX's two reports: it must resend them (PossDup) when we ask
    store.words[NEXT_IN] -= 2
    # and QuickFIX "lost" 3 of ours: it asks us, and we gap-fill / resend from the journal
    store.words[NEXT_OUT] += 3
    again = make(tmp_path, port)
    apps2: list = []
    run_until(again, lambda: again.active and len(apps2) == 2, apps=apps2, timeout=10)
    assert all(f[C.F_POSS_DUP] == 1 for f in apps2)
    assert [f[C.F_EXEC_TYPE] for f in apps2] == [ord("0"), ord("F")]
    s = again.session
    run_until(again, lambda: s.counters.resend_requests_answered >= 1, timeout=10)
    assert s.counters.gap_fills_sent >= 1 and s.counters.resend_requests_sent == 1
    # QuickFIX accepted the gap fill: the session keeps working
    send_order(again, 2)
    apps3: list = []
    run_until(again, lambda: len(apps3) == 2, apps=apps3)
    assert app.orders == ["1", "2"] and app.logons == 2


def test_wrong_password_refused_by_quickfix(quickfix_acceptor, tmp_path):
    _, port = quickfix_acceptor
    init = make(tmp_path, port, password="nope")
    run_until(init, lambda: any(e in ("refused", "disconnected")
                                for e, _ in init.session.events), timeout=10)
    assert init.session.counters.logons == 0


def test_gateway_trades_against_quickfix(quickfix_acceptor, instance, tmp_path):
    """The whole gateway (rings, risk, OMS, journal) against the third-party engine."""
    from pipeline.orders.gateway import GatewayAgent, GatewayConfig
    from pipeline.orders.risk import RiskLimits
    from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
    from pipeline.orders.testing import GatewayDriver, push_intent

    venue, port = quickfix_acceptor
    orders, execs, state = create_order_path(instance, 1024)
    slot = execs.join(EXECS_CONSUMER)
    cfg = GatewayConfig("127.0.0.1", port, SessionConfig("CLIENT", "VENUE",
                                                         str(tmp_path / "gwfix"),
                                                         password=SECRET),
                        str(tmp_path / "oms.journal"), backoff_min_s=0.05)
    gw = GatewayAgent(instance, cfg, TABLE, RiskLimits(max_qty="0.01", max_notional="1000",
                                                       max_position="0.05"))
    drv = GatewayDriver(gw, execs, slot)
    until, seen = drv.until, drv.seen

    until(state.ready, 120)
    gw.poll_once()  # compiles the jitted duty pass (cold numba cache) before timed waits
    gw.marks[0] = (6183762, 6183764, time.monotonic_ns(), 0)  # fresh after any compile
    cl = state.next_cl_ord_id()
    push_intent(orders, action=1, cl_ord_id=cl, symbol_id=0, side=0, price=6183763, qty=150,
                tif=1, ord_type=1)
    until(lambda: len([e for e in seen if e["cl_ord_id"] == cl]) == 2)
    new, fill = [e for e in seen if e["cl_ord_id"] == cl]
    assert (new["exec_type"], fill["exec_type"], fill["ord_status"]) == (1, 3, 4)
    assert state.positions[0]["position"] == 150 and gw.open_orders() == 0
    assert venue.orders == [str(cl)]
    gw.on_close()
    assert gw.wire.sock is None
