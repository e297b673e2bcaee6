"""The FIX initiator over TLS against the simulator's acceptor (``SimConfig.tls``, what
``hft sim --tls`` serves): logon, order and fill; an untrusted CA refused before any FIX
byte; FIX messages split across many TLS records; a peer cut mid-record (reconnect, the
session resumes, nothing lost or duplicated); ``hft sim --tls``'s JSON line."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from pipeline.config import ROOT
from pipeline.fix import codec as C
from pipeline.fix.session import Session, SessionConfig
from pipeline.fix.wire import Initiator
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.marketdata.wire import rest
from pipeline.marketdata.wire.ws import WsConnection
from pipeline.tls.certs import TestCA
from pipeline.tls.client import UNKNOWN_CA, TlsSettings, TlsVerifyError
from pipeline.venue.testing import VenueThread, quiet_venue, run_until
from pipeline.venue.testing import send_order as _send_order

TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.00001"}])
GRID = TABLE.table()
SYMS = symbol_matrix(["BTCUSDT"])
SECRET = "s3cr3t-Pa55"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="pipeline")
    yield
    assert "PRIVATE KEY" not in caplog.text and SECRET not in caplog.text


def venue(tmp_path, tls: bool = True) -> VenueThread:
    return VenueThread(dataclasses.replace(quiet_venue(tmp_path, TABLE, password=SECRET),
                                           tls=tls))


def make(tmp_path, port: int, ca_file: str) -> Initiator:
    cfg = SessionConfig(sender="CLIENT", target="VENUE", store_dir=str(tmp_path / "store"),
                        password=SECRET)
    tls = TlsSettings.from_config({"ca_file": ca_file}, "127.0.0.1", "[gateway]")
    return Initiator(Session(cfg, SYMS, GRID), "127.0.0.1", port, backoff_min_s=0.05, tls=tls)


def order_filled(init: Initiator, acc, cl: int, timeout: float = 20.0) -> list:
    apps: list = []
    _send_order(init, cl, b"BTCUSDT", GRID[0], 6183763, 150)
    run_until(init, lambda: len(apps) == 1, timeout, apps=apps)
    acc.fill(str(cl), "0.0015", "61837.6")
    run_until(init, lambda: len(apps) == 2, timeout, apps=apps)
    assert [int(f[C.F_CL_ORD_ID]) for f in apps] == [cl, cl]
    assert apps[1][C.F_LAST_QTY] == 150
    return apps


def test_fix_over_tls_logon_order_fill(tmp_path):
    acc = venue(tmp_path)
    try:
        ep = acc.sim.endpoints()
        assert ep["tls"] and ep["fix"] == f"tcp+tls://127.0.0.1:{acc.port}"
        assert ep["ws"].startswith("wss://") and ep["rest"].startswith("https://")
        init = make(tmp_path, acc.port, ep["ca_file"])
        run_until(init, lambda: init.active, 20.0)
        assert init.ssl != 0 and init.conn.version.startswith("TLSv1.")
        order_filled(init, acc, 42)
        assert init.tls_events["handshakes"] == init.connects >= 1
        assert init.session.counters.garbled == 0
        init.session.logout(time.monotonic_ns())
        run_until(init, lambda: init.sock is None)
    finally:
        acc.stop()


def test_fix_untrusted_ca_refused_before_any_fix_byte(tmp_path):
    other = TestCA(tmp_path / "other", name="someone else")
    acc = venue(tmp_path)
    try:
        init = make(tmp_path, acc.port, str(other.ca_file))
        run_until(init, lambda: init.tls_events["handshake_failures"] >= 2, 20.0)
        assert not init.active and init.connects == 0 and init.sock is None
        assert acc.received == [] and acc.logons == 0  # no Logon ever reached the venue
    finally:
        acc.stop()
        other.cleanup()


def test_fix_verification_off_warns_on_every_connect(tmp_path, caplog):
    acc = venue(tmp_path)
    try:
        cfg = SessionConfig(sender="CLIENT", target="VENUE",
                            store_dir=str(tmp_path / "store"), password=SECRET)
        tls = TlsSettings.from_config({"tls_verify": False}, "127.0.0.1", "[gateway]")
        init = Initiator(Session(cfg, SYMS, GRID), "127.0.0.1", acc.port, backoff_min_s=0.05,
                         tls=tls)
        run_until(init, lambda: init.active, 20.0)
        acc.drop()
        run_until(init, lambda: init.connects == 2 and init.active, 20.0)
        warnings = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
        assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    finally:
        acc.stop()


def test_feed_refuses_a_simulator_with_an_untrusted_ca(tmp_path):
    """wss:// and https:// against ``hft sim --tls`` with someone else's CA: a clear error
    naming the cause, no WebSocket connection reaches the venue; its own CA works."""
    other = TestCA(tmp_path / "other", name="someone else")
    acc = venue(tmp_path)
    try:
        ep = acc.sim.endpoints()
        url = ep["ws"] + "/stream?streams=btcusdt@bookTicker"
        wrong = TlsSettings.from_config({"ca_file": str(other.ca_file)}, "127.0.0.1")
        with pytest.raises(TlsVerifyError, match=UNKNOWN_CA) as err:
            WsConnection.open(url, tls=wrong)
        assert "127.0.0.1" in str(err.value)
        snap = rest.snapshot_url(ep["rest"], "spot", "BTCUSDT", 5)
        with pytest.raises(TlsVerifyError, match=UNKNOWN_CA):
            rest.fetch(snap, tls=wrong)
        assert acc.sim.stats["md_connections"] == 0
        right = TlsSettings.from_config({"ca_file": ep["ca_file"]}, "127.0.0.1")
        WsConnection.open(url, tls=right).close()
        assert rest.fetch(snap, tls=right)[0].startswith(b"{")
    finally:
        acc.stop()
        other.cleanup()


class Rechunker:
    """A TLS front for a plain acceptor: venue -> client bytes go out ``chunk`` bytes per
    TLS record (every FIX message split across records); ``cut()`` makes the next venue
    bytes a record header with half a body, then the connection is dropped (a peer gone
    mid-record). Accepts a new connection after each one ends."""

    def __init__(self, cert, key, upstream: int, chunk: int = 7):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.upstream, self.chunk = upstream, chunk
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.stop = threading.Event()
        self.cut_next = threading.Event()
        self.records = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.ls.accept()
            except TimeoutError:
                continue
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as ts, \
                        socket.create_connection(("127.0.0.1", self.upstream)) as vs:
                    self._pump(ts, vs)
            except (OSError, ssl.SSLError):
                pass

    def _pump(self, ts: ssl.SSLSocket, vs: socket.socket) -> None:
        while not self.stop.is_set():
            r, _, _ = select.select([ts, vs], [], [], 0.05)
            if ts in r or ts.pending():
                data = ts.recv(65536)
                if not data:
                    return
                vs.sendall(data)
            if vs in r:
                data = vs.recv(65536)
                if not data:
                    return
                if self.cut_next.is_set():
                    self.cut_next.clear()
                    os.write(ts.fileno(), b"\x17\x03\x03\x00\x40" + b"\x00" * 20)
                    os.close(ts.detach())  # TCP gone, no close_notify
                    return
                for i in range(0, len(data), self.chunk):
                    ts.sendall(data[i:i + self.chunk])
                    self.records += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.ls.close()


def test_fix_split_across_records_and_cut_mid_record(tmp_path):
    """Every venue message arrives in 7-byte records: framed once, nothing garbled; then
    the peer vanishes mid-record: counted, reconnect, logon resumes the sequence numbers,
    and the next order round-trips with each report seen exactly once."""
    ca = TestCA(tmp_path / "ca")
    cert = ca.issue(("127.0.0.1",), stem="front")
    acc = venue(tmp_path, tls=False)
    front = Rechunker(str(cert.cert_file), str(cert.key_file), acc.port)
    try:
        init = make(tmp_path, front.port, str(ca.ca_file))
        run_until(init, lambda: init.active, 20.0)
        order_filled(init, acc, 7)
        assert front.records > 30 and init.session.counters.garbled == 0
        sent_before = len(acc.received)
        front.cut_next.set()
        acc.send("0", [])  # a heartbeat from the venue triggers the cut
        run_until(init, lambda: init.tls_events["cut_or_error"] == 1, 20.0)
        run_until(init, lambda: init.active and init.connects == 2, 20.0)
        order_filled(init, acc, 8)
        assert init.session.counters.garbled == 0
        orders = [m.get(11) for m in acc.received[sent_before:] if m.get(35) == b"D"]
        assert orders == [b"8"], "order 8 reached the venue exactly once"
    finally:
        front.close()
        acc.stop()
        ca.cleanup()


def test_hft_sim_tls_prints_ca_and_tls_endpoints(tmp_path):
    env = dict(os.environ, HFT_SIM_PASSWORD="x")
    p = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "sim", "--tls", "--md-port",
                          "0", "--rest-port", "0", "--fix-port", "0", "--rate", "0",
                          "--state-dir", str(tmp_path / "sim")], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ep = json.loads(p.stdout.readline())
        assert ep["tls"] is True and os.path.isfile(ep["ca_file"])
        assert ep["ws"].startswith("wss://127.0.0.1:") and ep["rest"].startswith("https://")
        assert ep["fix"] == f"tcp+tls://127.0.0.1:{ep['fix_port']}"
        key = next((tmp_path / "sim" / "tls").glob("sim.key"))
        assert oct(key.stat().st_mode & 0o777) == "0o600"
    finally:
        p.terminate()
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "PRIVATE KEY" not in err
