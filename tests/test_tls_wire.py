"""TLS at the pipeline's wire ends: the feed handler's ``wss://`` stream (handshake on the
cold path, records decrypted by ``feed_once``), ``https://`` snapshots, and verification
failures that leave no connection. The FIX initiator's part is in test_tls_fix.py."""

from __future__ import annotations

import base64
import hashlib
import time

import numpy as np
import pytest
import tls_peers
from tls_peers import ScriptedServer

from pipeline.instruments import SymbolTable
from pipeline.marketdata import sbe
from pipeline.marketdata import warm as MW
from pipeline.marketdata.feed import Sock, feed_once, new_state
from pipeline.marketdata.normalize import FeedCore
from pipeline.marketdata.segments import create_md_segments
from pipeline.marketdata.wire import rest
from pipeline.marketdata.wire.ws import WsConnection
from pipeline.tls import client as C
from pipeline.tls.certs import TestCA

ca, good, no_key_in_logs = tls_peers.ca, tls_peers.good, tls_peers.no_key_in_logs  # fixtures

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TICK = (b'{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"100.01",'
        b'"B":"1.000","a":"100.02","A":"2.000"}}')


def ws_text(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def ws_upgrade(srv: ScriptedServer) -> None:
    """The server side of the HTTP upgrade, over TLS."""
    req = b""
    while b"\r\n\r\n" not in req:
        req += srv.recv(1)
    key = next(ln.split(b":", 1)[1].strip() for ln in req.split(b"\r\n")
               if ln.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    srv.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def settings(ca, **kw) -> C.TlsSettings:
    return C.TlsSettings.from_config({"ca_file": str(ca.ca_file), **kw}, "localhost")


def test_wss_frames_split_across_records_reach_the_md_ring_once(instance, ca, good):
    """wss:// through WsConnection + feed_once: a frame split across two TLS records, one
    record holding two frames, then close_notify: every frame published exactly once,
    then a clean end of stream (eof without errno)."""
    f7, f8, f9 = ws_text(TICK % 7), ws_text(TICK % 8), ws_text(TICK % 9)

    def script(srv: ScriptedServer) -> None:
        ws_upgrade(srv)
        srv.send(f7[:30])  # one frame, two records
        time.sleep(0.05)
        srv.send(f7[30:])
        time.sleep(0.05)
        srv.send(f8 + f9)  # two frames, one record
        time.sleep(0.05)
        srv.close_notify()
        srv.recv(1)  # until the client closes

    srv = ScriptedServer(good, script)
    table = SymbolTable.from_config([{"symbol": "BTCUSDT", "venue": "spot",
                                      "tick_size": "0.01", "lot_size": "0.001"}])
    segs = create_md_segments(instance, 64, table)
    segs.md.claim_producer()
    core = FeedCore(table)
    conn = WsConnection.open(f"wss://localhost:{srv.port}/stream?streams=btcusdt@bookTicker",
                             tls=settings(ca))
    try:
        assert conn.ssl != 0 and conn.tls.version.startswith("TLSv1.")
        rbuf, frag = np.zeros(4096, np.uint8), np.zeros(4096, np.uint8)
        st = new_state()
        rbuf[: len(conn.leftover)] = np.frombuffer(conn.leftover, np.uint8)
        st[0]["w"] = len(conn.leftover)
        warm = MW.feed_state(0, core.stats.shape[0])
        md = segs.md.view()
        dec = sbe.new_decoder(table)
        deadline = time.monotonic() + 120  # includes compiling feed_once
        while not st[0]["eof"] and time.monotonic() < deadline:
            if not feed_once(Sock(conn.fd, conn.ssl), rbuf, frag, st, core.parse, core.syms,
                             core.emit, md, warm, dec):
                time.sleep(0.001)
        s = st[0]
        assert s["eof"] == 1 and s["errno"] == 0, (st, srv.error)
        assert s["frames"] == 3 and s["proto_errors"] == 0
        assert s["bytes"] == len(f7) + len(f8) + len(f9) - len(conn.leftover)
        assert segs.md.published() == 6  # bid + ask per ticker, none twice
        assert "close_notify" in conn.tls.describe(C.O.TLS_CLOSED)
    finally:
        conn.close()
    srv.wait()


def test_wss_unknown_ca_and_wrong_name_refused_before_any_byte(ca, good, tmp_path):
    other = TestCA(tmp_path / "other", name="someone else")
    try:
        for tls, cause in ((settings(other), C.UNKNOWN_CA),
                           (settings(ca, server_name="stream.binance.com"),
                            C.HOSTNAME_MISMATCH)):
            srv = ScriptedServer(good, ws_upgrade)
            with pytest.raises(C.TlsVerifyError) as err:
                WsConnection.open(f"wss://127.0.0.1:{srv.port}/ws", tls=tls)
            assert err.value.cause == cause and cause in str(err.value)
            srv.wait()
            assert not srv.handshaken, "the server completed a handshake with a rejecter"
    finally:
        other.cleanup()


def test_https_snapshot_trusts_ca_file_and_rejects_an_unknown_ca(ca, good, tmp_path):
    body = b'{"lastUpdateId":1,"bids":[],"asks":[]}'

    def script(srv: ScriptedServer) -> None:
        req = b""
        while b"\r\n\r\n" not in req:
            req += srv.recv(1)
        assert req.startswith(b"GET /api/v3/depth?symbol=BTCUSDT&limit=5 ")
        srv.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (len(body), body))
        srv.close_notify()

    srv = ScriptedServer(good, script)
    url = rest.snapshot_url(f"https://localhost:{srv.port}", "spot", "BTCUSDT", 5)
    got, _ = rest.fetch(url, tls=settings(ca))
    assert got == body
    srv.wait()
    other = TestCA(tmp_path / "other2", name="someone else")
    try:
        srv = ScriptedServer(good, script)
        url = rest.snapshot_url(f"https://localhost:{srv.port}", "spot", "BTCUSDT", 5)
        with pytest.raises(C.TlsVerifyError, match=C.UNKNOWN_CA):
            rest.fetch(url, tls=settings(other))
        srv.wait()
    finally:
        other.cleanup()


def test_tls_settings_validated():
    from pipeline.config import ConfigError
    with pytest.raises(ConfigError, match="tls_verify must be true or false"):
        C.TlsSettings.from_config({"tls_verify": "no"}, "h", "[gateway]")
    with pytest.raises(ConfigError, match="ca_file /nonexistent.pem does not exist"):
        C.TlsSettings.from_config({"ca_file": "/nonexistent.pem"}, "h", "[feed]")
    with pytest.raises(ConfigError, match="handshake_timeout_s must be > 0"):
        C.TlsSettings.from_config({"handshake_timeout_s": 0}, "h")
    assert C.TlsSettings.from_config({}, "h") == C.TlsSettings("h", None, True, 5.0)
