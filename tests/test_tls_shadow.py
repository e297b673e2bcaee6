"""The warm pass over TLS: a shadow session on the warm link encrypts what the pass sends,
alike to the venue session (version, cipher), and the venue session is left alone: the
venue receives exactly the orders sent, in order, and still decrypts after many warm
passes. Over plain TCP the pass sends plain bytes, as before."""

from __future__ import annotations

import ssl
import subprocess
import time

import pytest
import simplefix
import tls_peers
from test_orders_gateway import Harness
from test_orders_risk import MID, Rig
from tls_peers import ScriptedServer, connect

from pipeline.metrics import histogram
from pipeline.orders import flow, warm
from pipeline.orders import journal as J
from pipeline.orders import views as V
from pipeline.orders.testing import push_intent
from pipeline.tls.certs import OPENSSL, ServerCert
from pipeline.tls.shadow import ShadowTls, alike_suite
from pipeline.transport.ring import Ring
from shm_layouts.records import EXEC_REPORT, ORDER_INTENT, OrderAction, OrderType, Side, TimeInForce

ca, good, no_key_in_logs = tls_peers.ca, tls_peers.good, tls_peers.no_key_in_logs  # fixtures
pytestmark = pytest.mark.timeout(120)
ORDERS = 3  # the rig's risk limits allow 3 open orders
IDLE_PASSES = 60  # warm passes between two orders


@pytest.fixture
def rig(instance, tmp_path):
    execs = Ring.create(instance, "execs", "exec_report", EXEC_REPORT, 1024)
    orders = Ring.create(instance, "orders", "order_intent", ORDER_INTENT, 1024,
                         gating=("gateway",))
    r = Rig(execs, J.open_journal(tmp_path / "oms.journal", 4096))
    r.orders_ring = orders
    r.args = (orders.view(orders.join("gateway")), r.oms, r.risk, r.fix, r.execs,
              V.book_view(None), V.Hists(*(histogram.new() for _ in V.Hists._fields)))
    link = warm.WarmLink()
    io = r.wio[0]
    io["warm_tx"], io["warm_rx"] = link.fds()
    io["period_ns"], io["ready"] = 1, 1  # every idle duty pass warms
    flow.duty(-1, 0, *r.args)  # compiled now, not while a TLS peer's read times out
    io["passes"] = io["stop"] = 0
    r.link = link
    yield r
    link.close()
    execs.close()
    orders.close()


def _messages(raw: bytes) -> list:
    p = simplefix.FixParser()
    p.append_buffer(raw)
    out = []
    while (m := p.get_message()) is not None:
        out.append(m)
    return out


def _trade(rig, fd: int, ssl_p: int) -> list[int]:
    """ORDERS orders through ``flow.duty``, IDLE_PASSES idle (warming) passes before, between
    and after them; the ClOrdIDs sent."""
    ids = []
    for k in range(ORDERS):
        for _ in range(IDLE_PASSES):
            assert flow.duty(fd, ssl_p, *rig.args) >= 0
        rig.marks[0] = (MID - 1, MID + 1, time.monotonic_ns(), 0)
        push_intent(rig.orders_ring, action=int(OrderAction.NEW), cl_ord_id=1000 + k,
                    symbol_id=0, side=int(Side.BID), price=MID - 5, qty=1,
                    tif=int(TimeInForce.POST_ONLY), ord_type=int(OrderType.LIMIT))
        assert flow.duty(fd, ssl_p, *rig.args) > 0 and rig.wio[0]["stop"] == flow.STOP_NONE
        ids.append(1000 + k)
    for _ in range(IDLE_PASSES):
        assert flow.duty(fd, ssl_p, *rig.args) >= 0
    return ids


@pytest.mark.parametrize("max_version", [None, ssl.TLSVersion.TLSv1_2],
                         ids=["tls1.3", "tls1.2"])
def test_shadow_warm_passes_leave_the_venue_session_alone(rig, ca, good, max_version):
    got: dict[str, bytes] = {}
    server = ScriptedServer(good, lambda s: got.setdefault("raw", s.recv(1 << 20)),
                            max_version=max_version)
    conn = connect(server.port, ca.ca_file)
    shadow = ShadowTls(rig.link.tx, rig.link.rx)
    try:
        io = rig.wio[0]
        warm.follow_tls(shadow, rig.wio, conn.ssl)
        assert io["warm_ssl"] == shadow.ssl != 0
        assert (shadow.version, shadow.cipher) == (conn.version, conn.cipher)
        warm.follow_tls(shadow, rig.wio, conn.ssl)  # alike already: no new handshake
        assert shadow.handshakes == 1 and io["warm_ssl"] == shadow.ssl
        ids = _trade(rig, conn.fd, conn.ssl)
        passes = int(io["passes"])
        assert passes >= (ORDERS + 1) * IDLE_PASSES
        assert io["warm_tls"] == passes and io["warm_tls_failed"] == 0  # all encrypted
        assert io["warm_result"] > 0  # ... and their ciphertext came back on the link
    finally:
        conn.close()  # close_notify: the venue's read ends
        shadow.close()
    server.wait()
    assert server.error is None
    msgs = _messages(got["raw"])
    assert [m.get(35) for m in msgs] == [b"D"] * ORDERS  # nothing but the orders
    assert [int(m.get(11)) for m in msgs] == ids  # in order
    assert [int(m.get(34)) for m in msgs] == list(range(1, ORDERS + 1))  # no number taken


def test_over_plain_tcp_the_warm_pass_sends_plain_bytes(rig, ca):
    """No TLS venue session (0): no shadow, the warm link carries the FIX bytes as such."""
    shadow = ShadowTls(rig.link.tx, rig.link.rx)
    try:
        warm.follow_tls(shadow, rig.wio, 0)
        io = rig.wio[0]
        assert io["warm_ssl"] == 0 and shadow.ssl == 0 and shadow.handshakes == 0
        rig.marks[0] = (MID - 1, MID + 1, 10**12, 0)
        got = warm.warm(rig.fix, rig.oms, rig.risk, 10**12, 10**18, 0)
        msgs = _messages(bytes(rig.scratch[warm.WARM_RX: warm.WARM_RX + got]))
        assert [m.get(35) for m in msgs] == [b"D"] and io["warm_tls"] == 0
    finally:
        shadow.close()
    warm.follow_tls(None, rig.wio, 12345)  # no shadow at all (plain venue config)
    assert rig.wio[0]["warm_ssl"] == 0


def test_a_failed_shadow_write_drops_the_shadow_and_the_venue_session_goes_on(rig, ca, good):
    """The link's far end gone: the shadow write fails, is counted, the pass falls back to
    no TLS (and clears OpenSSL's error queue: the venue session's reads still work);
    housekeeping's next ``follow_tls`` makes a new shadow session."""
    got: dict[str, bytes] = {}
    server = ScriptedServer(good, lambda s: got.setdefault("raw", s.recv(1 << 20)))
    conn = connect(server.port, ca.ca_file)
    shadow = ShadowTls(rig.link.tx, rig.link.rx)
    try:
        warm.follow_tls(shadow, rig.wio, conn.ssl)
        io = rig.wio[0]
        rig.link.rx.close()  # writes on tx now fail (RST, then EPIPE)
        rig.marks[0] = (MID - 1, MID + 1, 10**12, 0)
        for _ in range(20):
            warm.warm(rig.fix, rig.oms, rig.risk, 10**12, 10**18, 0)
            if io["warm_tls_failed"]:
                break
        assert io["warm_tls_failed"] == 1 and io["warm_ssl"] == 0
        ids = _trade(rig, conn.fd, conn.ssl)  # the venue session is unaffected
    finally:
        conn.close()
        shadow.close()
    server.wait()
    assert server.error is None
    assert [int(m.get(11)) for m in _messages(got["raw"])] == ids


def test_the_gateway_over_tls_warms_through_a_shadow_session(instance, tmp_path):
    """The whole gateway against the simulator over TLS, warm passes on: housekeeping
    makes the shadow session alike to the venue's; the warm passes encrypt on it; the
    venue gets the orders, in order, and nothing else of ours."""
    h = Harness(instance, tmp_path, tls=True, warm_ns=1_000)
    try:
        h.ready()
        gw = h.gw
        h.run_until(lambda: gw.shadow_tls.ssl != 0)
        assert (gw.shadow_tls.version, gw.shadow_tls.cipher) == (gw.wire.conn.version,
                                                                 gw.wire.conn.cipher)
        assert gw.wio[0]["warm_ssl"] == gw.shadow_tls.ssl
        ids = []
        for _ in range(2):
            seen = int(gw.wio[0]["warm_tls"])
            h.run_until(lambda seen=seen: gw.wio[0]["warm_tls"] >= seen + 20)
            ids.append(h.new(qty=150))
            h.run_until(lambda: len(h.exec_for(ids[-1])) == 1)
        assert [int(d.get(11)) for d in h.received("D")] == ids
        counts = gw._counter_values()
        assert counts["tls.shadow_writes"] >= 40 and counts["tls.shadow_failures"] == 0
        assert counts["tls.handshakes"] == 1 and gw.shadow_tls.handshakes == 1
    finally:
        h.gw.on_close()
        h.close()


def test_a_tls12_rsa_suite_gets_its_ecdsa_twin():
    """The shadow's certificate is EC: a venue's ECDHE-RSA suite is matched by the ECDSA
    suite with the same bulk cipher and MAC (what the records see); the rest unchanged."""
    assert alike_suite("ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert alike_suite("ECDHE-RSA-CHACHA20-POLY1305") == "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert alike_suite("ECDHE-ECDSA-AES256-GCM-SHA384") == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_a_tls12_rsa_venue_gets_an_alike_shadow(rig, tmp_path):
    """A TLS 1.2 venue with an RSA certificate (ECDHE-RSA): the shadow runs the same
    version and bulk cipher over its EC certificate, and the warm passes encrypt on it."""
    cert, key = tmp_path / "rsa.pem", tmp_path / "rsa.key"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True,
                   capture_output=True, timeout=60, umask=0o077)
    server = ScriptedServer(ServerCert(cert, key, ("localhost",)), lambda s: s.recv(1),
                            max_version=ssl.TLSVersion.TLSv1_2)
    conn = connect(server.port, cert)  # the self-signed certificate is its own anchor
    shadow = ShadowTls(rig.link.tx, rig.link.rx)
    try:
        assert conn.version == "TLSv1.2" and conn.cipher.startswith("ECDHE-RSA-")
        warm.follow_tls(shadow, rig.wio, conn.ssl)
        assert shadow.version == "TLSv1.2" and shadow.cipher == alike_suite(conn.cipher)
        rig.marks[0] = (MID - 1, MID + 1, 10**12, 0)
        assert warm.warm(rig.fix, rig.oms, rig.risk, 10**12, 10**18, 0) > 0
        assert rig.wio[0]["warm_tls"] == 1
    finally:
        conn.close()
        shadow.close()
    server.wait()
