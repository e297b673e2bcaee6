"""TLS client: verification, handshake failures and hostile peers, with the record I/O
called from jitted loops (tls_read/tls_write). All on 127.0.0.1, every wait bounded."""

from __future__ import annotations

import asyncio
import errno
import http.client
import http.server
import logging
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from pipeline.tls import client as C
from pipeline.tls import pyssl
from pipeline.tls.certs import TestCA
from pipeline.tls.client import TlsHandshakeTimeout, TlsPeerClosed, TlsVerifyError
from pipeline.tls.io import (
    TLS_CLOSED,
    TLS_EOF,
    TLS_ERROR,
    TLS_WANT_READ,
    TLS_WANT_WRITE,
    wire_send,
)
from tests import tls_peers
from tests.tls_peers import (
    TIMEOUT,
    ScriptedServer,
    SServer,
    connect,
    listener,
    read_upto,
    silent_server,
    staged_until,
    stats,
    wire_until,
    write_some,
)

ca, good, no_key_in_logs = tls_peers.ca, tls_peers.good, tls_peers.no_key_in_logs  # fixtures

NS = 1_000_000_000
WAIT_NS = int(TIMEOUT * NS)


def arr(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).copy()


def read_exact(conn, n: int, st=None):
    out = np.zeros(max(n, 1), np.uint8)
    st = stats() if st is None else st
    got, last, empty = read_upto(conn.ssl, out, n, st, WAIT_NS)
    return bytes(out[:got]), last, st


# ----------------------------------------------------------------------- happy path
def test_echo_through_jitted_loop_and_session_ticket(ca, good):
    def echo(srv):
        srv.send(srv.recv(200))
        srv.recv(1)  # hold the connection until the client closes

    srv = ScriptedServer(good, echo)
    with connect(srv.port, ca.ca_file) as conn:
        assert conn.version == "TLSv1.3"
        assert not conn.has_session_ticket()  # the tickets are still unread on the socket
        msg = bytes(range(200))
        st = stats()
        done, last = write_some(conn.ssl, arr(msg), len(msg), st, WAIT_NS)
        assert (done, last) == (200, 200)
        got, last, st = read_exact(conn, 200, st)
        assert got == msg
        # the NewSessionTickets that preceded the echo were consumed inside tls_read
        assert conn.has_session_ticket()
        assert st[0]["bytes_in"] == 200 and st[0]["bytes_out"] == 200
        assert st[0]["errors"] == st[0]["eof"] == st[0]["close_notify"] == 0
    srv.wait()
    assert srv.error is None


def test_tls12_server_and_ip_address_name(ca, good):
    def hello(srv):
        srv.send(b"hello 1.2")
        srv.recv(1)

    srv = ScriptedServer(good, hello, max_version=ssl.TLSVersion.TLSv1_2)
    with connect(srv.port, ca.ca_file, server_name="127.0.0.1") as conn:  # IP SAN checked
        assert conn.version == "TLSv1.2"
        assert read_exact(conn, 9)[0] == b"hello 1.2"
    srv.wait()


# --------------------------------------------------------------- verification failures
def _rejected(cert, ca_file, cause, server_name="localhost"):
    srv = ScriptedServer(cert, lambda s: s.send(b"must never be read"))
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    with C.client_context(str(ca_file)) as ctx, pytest.raises(TlsVerifyError) as exc:
        ctx.connect(sock, server_name, TIMEOUT)
    srv.wait()
    assert sock.fileno() == -1  # no connection left behind
    assert isinstance(srv.error, ssl.SSLError) and not srv.handshaken
    assert exc.value.cause == cause
    assert cause in str(exc.value) and f"127.0.0.1:{srv.port}" in str(exc.value)
    return exc.value, srv.error


def test_unknown_ca(ca, good, tmp_path):
    other = TestCA(tmp_path / "other", name="someone else")
    err, server_saw = _rejected(good, other.ca_file, C.UNKNOWN_CA)
    assert "unable to get local issuer certificate" in str(err)
    assert "unknown ca" in str(server_saw).lower()  # our alert told the server why


def test_wrong_hostname(ca):
    cert = ca.issue(("venue.example",), stem="wrongname")
    err, _ = _rejected(cert, ca.ca_file, C.HOSTNAME_MISMATCH)
    assert "localhost" in str(err)


def test_expired_certificate(ca):
    cert = ca.issue(("localhost",), days=-1, stem="expired")
    _rejected(cert, ca.ca_file, C.EXPIRED)


def test_system_store_does_not_trust_a_private_ca(good):
    srv = ScriptedServer(good)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    with C.client_context() as ctx, pytest.raises(TlsVerifyError) as exc:
        ctx.connect(sock, "localhost", TIMEOUT)
    srv.wait()
    assert exc.value.cause == C.UNKNOWN_CA


def test_verification_off_warns_on_every_connect(good, caplog):
    for _ in range(2):
        srv = ScriptedServer(good, lambda s: s.send(b"ok"))
        with connect(srv.port, None, verify=False) as conn:  # nothing trusts this CA
            assert read_exact(conn, 2)[0] == b"ok"
        srv.wait()
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and "verification is OFF" in r.getMessage()]
    assert len(warnings) == 2


# ------------------------------------------------------------------ handshake failures
def test_handshake_timeout():
    with silent_server() as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        t0 = time.monotonic()
        with C.client_context() as ctx, pytest.raises(TlsHandshakeTimeout) as exc:
            ctx.connect(sock, "localhost", timeout=0.3)
        assert time.monotonic() - t0 < TIMEOUT
        assert "handshake timeout" in str(exc.value)
        assert sock.fileno() == -1


def test_peer_closes_during_handshake(ca):
    ls = listener()
    sock = socket.create_connection(("127.0.0.1", ls.getsockname()[1]), timeout=TIMEOUT)
    ls.accept()[0].close()
    ls.close()
    with C.client_context(str(ca.ca_file)) as ctx, pytest.raises(TlsPeerClosed) as exc:
        ctx.connect(sock, "localhost", TIMEOUT)
    assert "peer closed" in str(exc.value)


# ------------------------------------------------------------------------ hostile peers
def test_close_notify_mid_stream(ca, good):
    def script(srv):
        srv.send(b"last words")
        srv.close_notify()

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        got, last, st = read_exact(conn, 100)
        assert got == b"last words" and last == TLS_CLOSED
        assert st[0]["close_notify"] == 1
        assert "close_notify" in conn.describe(last)
    srv.wait()


def test_garbage_record_is_an_error_and_counted(ca, good):
    def script(srv):
        srv.send(b"fine")
        srv.send_raw(b"\x17\x03\x03\x00\x20" + os.urandom(32))  # app data that fails its MAC
        srv.recv(1)

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        got, last, st = read_exact(conn, 100)
        assert got == b"fine" and last == TLS_ERROR
        assert st[0]["errors"] == 1
        detail = conn.describe(last)
        assert "protocol error" in detail and ("decrypt" in detail or "mac" in detail)
    srv.wait()


def test_connection_cut_mid_record(ca, good):
    def script(srv):
        rec = srv.record(b"x" * 180)
        srv.send_raw(rec[: len(rec) // 2])
        srv.sock.shutdown(socket.SHUT_RDWR)  # FIN, no close_notify

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        got, last, st = read_exact(conn, 180)
        assert got == b"" and last == TLS_EOF
        assert st[0]["eof"] == 1 and st[0]["errors"] == 0
        assert "mid-stream" in conn.describe(last)
    srv.wait()


def test_record_split_across_reads(ca, good):
    """A record that arrives a byte at a time: no partial plaintext, then all of it."""
    msg = bytes(range(256))[:200]
    parts = {}

    def script(srv):
        rec = srv.record(msg)
        parts["n"] = len(rec)
        srv.send_raw(rec[:100], bytewise=True)
        srv.recv(1)  # the client's go-ahead: it saw the incomplete record
        srv.send_raw(rec[100:], bytewise=True)
        srv.recv(1)

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        time.sleep(0.1)  # some of the first 100 bytes arrive (how many does not matter)
        out = np.zeros(400, np.uint8)
        st = stats()
        got, last, _ = read_upto(conn.ssl, out, 400, st, int(0.05 * NS))
        assert got == 0 and last == TLS_WANT_READ  # incomplete record: nothing yet
        assert conn.send(b"g") == 1
        got, last, _ = read_upto(conn.ssl, out, 200, st, WAIT_NS)
        assert bytes(out[:got]) == msg
        assert conn.send(b"!") == 1
    srv.wait()
    assert srv.error is None and parts["n"] > 200


def test_keyupdate_from_openssl_s_server(ca, good):
    """The server rotates its keys and requests ours: reads keep decrypting, our KeyUpdate
    goes out with the next write and the server reads it with our new keys."""
    srv = SServer(good)
    try:
        with connect(srv.port, ca.ca_file) as conn:
            srv.type(b"one\n")
            assert read_exact(conn, 4)[0] == b"one\n"
            assert not conn.key_update_pending()
            srv.type(b"K\n")
            deadline = time.monotonic() + TIMEOUT
            out = np.zeros(16, np.uint8)
            while not conn.key_update_pending():  # the KeyUpdate is read inside tls_read
                got, last, _ = read_upto(conn.ssl, out, 16, stats(), int(0.01 * NS))
                assert got == 0 and last == TLS_WANT_READ
                assert time.monotonic() < deadline, "no KeyUpdate arrived"
            srv.type(b"two\n")
            assert read_exact(conn, 4)[0] == b"two\n"
            msg = b"after key update\n"
            assert write_some(conn.ssl, np.frombuffer(msg, np.uint8).copy(), len(msg), stats(),
                              WAIT_NS) == (len(msg), len(msg))
            assert not conn.key_update_pending()  # ours went out with that write
            srv.wait_for("after key update")  # s_server decrypted it
    finally:
        printed = srv.finish()
    assert "SSL_do_handshake -> 1" in printed  # s_server's report of its KeyUpdate
    assert "after key update" in printed


def test_partial_write_then_retry_from_a_moved_buffer(ca, good):
    """A write the socket cannot take ends in WANT_WRITE; retrying the rest from a copy
    at another address (the FIX initiator's ``pending``) delivers every byte once."""
    total = 8 << 20
    data = np.random.default_rng(7).integers(0, 256, total, dtype=np.uint8)
    received = {}
    gate = threading.Event()  # the server reads only once the client met a full socket

    def script(srv):
        assert gate.wait(TIMEOUT)
        received["data"] = srv.recv(total)

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        rest = data
        st = stats()
        retries = 0
        deadline = time.monotonic() + TIMEOUT
        while len(rest):
            done, last = write_some(conn.ssl, rest, len(rest), st, WAIT_NS)
            assert last > 0 or last in (TLS_WANT_WRITE, TLS_WANT_READ)
            if last == TLS_WANT_WRITE:
                retries += 1
                gate.set()
            rest = rest[done:].copy()  # a new buffer each time
            assert time.monotonic() < deadline
        gate.set()
        srv.wait()
    assert retries > 0
    assert received["data"] == data.tobytes()
    assert st[0]["bytes_out"] == total


# ---------------------------------------------------------------------------- toolkit
def test_keys_are_private_and_errors_name_files_not_content(ca, good, tmp_path):
    for key in ca.dir.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca.dir.stat().st_mode) == 0o700
    with pytest.raises(C.TlsError) as exc:
        C.server_context(str(good.cert_file), str(ca.ca_key))  # key of another certificate
    assert "ca.key" in str(exc.value) and "PRIVATE" not in str(exc.value)


# ------------------------------------------------------------- cold path, then hot path
def test_cold_path_exchange_then_jitted_reads_lose_nothing(ca, good):
    """The WebSocket upgrade pattern: the cold path writes a request and reads the response
    with frames right behind it in the same record and the next ones; what the cold read
    did not take (in Python or buffered inside OpenSSL by read-ahead) reaches tls_read."""
    head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    frames = [bytes([65 + i]) * 180 for i in range(5)]

    def script(srv):
        assert srv.recv(4) == b"GET "
        srv.send(head + frames[0])
        for f in frames[1:]:
            srv.send(f)
        srv.recv(1)

    srv = ScriptedServer(good, script)
    settings = C.TlsSettings.from_config({"ca_file": str(ca.ca_file), "server_name": ""},
                                         "localhost")
    assert settings == C.TlsSettings("localhost", str(ca.ca_file), True, 5.0)
    with C.open_connection("127.0.0.1", srv.port, settings) as conn:
        conn.sendall(b"GET ")
        got = b""
        while b"\r\n\r\n" not in got:
            got += conn.recv(64)
        leftover = got.split(b"\r\n\r\n", 1)[1]
        rest, last, _ = read_exact(conn, 5 * 180 - len(leftover))
        assert leftover + rest == b"".join(frames)
    srv.wait()
    assert srv.error is None


def test_client_key_update_round_trip(ca, good):
    def script(srv):
        srv.send(srv.recv(5))
        srv.recv(1)

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        conn.key_update(request_peer=True)
        assert conn.key_update_pending()
        assert write_some(conn.ssl, arr(b"hello"), 5, stats(), WAIT_NS) == (5, 5)
        assert not conn.key_update_pending()
        assert read_exact(conn, 5)[0] == b"hello"  # the server answered under new keys
    srv.wait()
    assert srv.error is None


# ------------------------------------------------------- Python ssl under the same policy
def _https_server(cert):
    class Depth(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            body = b'{"lastUpdateId": 1, "bids": [], "asks": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Depth)
    httpd.socket = pyssl.server_ssl_context(str(cert.cert_file), str(cert.key_file)).wrap_socket(
        httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return httpd


def _get(port, ctx):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=TIMEOUT)
    try:
        conn.request("GET", "/api/v3/depth?symbol=BTCUSDT")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_https_snapshot_with_ca_file_and_rejection(ca, good, tmp_path):
    httpd = _https_server(good)
    try:
        port = httpd.server_address[1]
        status, body = _get(port, pyssl.client_ssl_context(str(ca.ca_file)))
        assert status == 200 and b"lastUpdateId" in body
        other = TestCA(tmp_path / "other")
        with pytest.raises(ssl.SSLError) as exc:
            _get(port, pyssl.client_ssl_context(str(other.ca_file)))
        err = pyssl.as_tls_error(exc.value, f"127.0.0.1:{port}")
        assert isinstance(err, TlsVerifyError) and err.cause == C.UNKNOWN_CA
        assert C.UNKNOWN_CA in str(err)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_asyncio_tls_server_serves_the_jitted_client(ca, good):
    """The simulator's shape: an asyncio server with server_ssl_context; our client reads
    and writes through tls_read/tls_write."""
    ready = threading.Event()
    box = {}

    async def handler(reader, writer):
        writer.write(await reader.readexactly(6))
        await writer.drain()
        await reader.read(1)
        writer.close()

    async def main():
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=pyssl.server_ssl_context(
            str(good.cert_file), str(good.key_file)))
        box["port"] = srv.sockets[0].getsockname()[1]
        box["stop"] = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await asyncio.wait_for(box["stop"].wait(), TIMEOUT)
        srv.close()

    t = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    t.start()
    assert ready.wait(TIMEOUT)
    try:
        with connect(box["port"], ca.ca_file) as conn:
            assert write_some(conn.ssl, arr(b"quotes"), 6, stats(), WAIT_NS) == (6, 6)
            assert read_exact(conn, 6)[0] == b"quotes"
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(TIMEOUT)


# ------------------------------------------------ the wire switch and the stepped handshake
def _hostile(kind):
    def script(srv):
        srv.send(b"data")
        if kind == "close_notify":
            srv.close_notify()
        elif kind == "garbage":
            srv.send_raw(b"\x17\x03\x03\x00\x20" + os.urandom(32))
        else:
            srv.send_raw(srv.record(b"y" * 100)[:50])
            srv.sock.shutdown(socket.SHUT_RDWR)
        srv.recv(1)
    return script


@pytest.mark.parametrize(("kind", "code"), [("close_notify", 0), ("garbage", -errno.EPROTO),
                                            ("cut", -errno.ECONNRESET)])
def test_wire_recv_speaks_recv_conventions_over_tls(ca, good, kind, code):
    srv = ScriptedServer(good, _hostile(kind))
    with connect(srv.port, ca.ca_file) as conn:
        got, last = wire_until(conn.fd, conn.ssl, np.zeros(4, np.uint8), WAIT_NS)
        assert got == 4
        got, last = wire_until(conn.fd, conn.ssl, np.zeros(64, np.uint8), WAIT_NS)
        assert (got, last) == (0, code)
        conn.describe(TLS_ERROR)  # drains the thread's error queue
    srv.wait()


def test_wire_calls_over_plain_tcp():
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        assert wire_until(a.fileno(), 0, np.zeros(4, np.uint8), int(0.01 * NS)) == \
            (0, -errno.EAGAIN)
        assert wire_send(b.fileno(), 0, arr(b"ping"), 0, 4) == 4
        assert wire_until(a.fileno(), 0, np.zeros(4, np.uint8), WAIT_NS) == (4, 4)
        b.shutdown(socket.SHUT_WR)
        assert wire_until(a.fileno(), 0, np.zeros(4, np.uint8), WAIT_NS) == (0, 0)


def test_stepped_handshake_never_blocks(ca, good):
    hold = threading.Event()
    srv = ScriptedServer(good, lambda s: s.send(s.recv(3)) or s.recv(1), hold=hold)
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    with C.client_context(str(ca.ca_file)) as ctx:
        hs = ctx.begin_connect(sock, "localhost", TIMEOUT)
    assert hs.step() is None and hs.wants_read  # the server has not answered: no wait
    assert hs.step() is None
    hold.set()
    deadline = time.monotonic() + TIMEOUT
    while (conn := hs.step()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    with conn:
        assert wire_send(conn.fd, conn.ssl, arr(b"abc"), 0, 3) == 3
        assert wire_until(conn.fd, conn.ssl, np.zeros(3, np.uint8), WAIT_NS) == (3, 3)
    srv.wait()


def test_stepped_handshake_times_out_and_closes():
    with silent_server() as port:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        with C.client_context() as ctx:
            hs = ctx.begin_connect(sock, "localhost", timeout=0.05)
        assert hs.step() is None
        time.sleep(0.1)
        with pytest.raises(TlsHandshakeTimeout):
            hs.step()
        assert sock.fileno() == -1


def test_jitted_tls_calls_load_from_the_cache_in_a_fresh_process():
    """SSL_read is declared by name, so cached machine code links in a new process (a
    ctypes address baked into the code would not survive: numba would refuse to cache)."""
    read_upto(0, np.zeros(1, np.uint8), 1, stats(), 0)  # compiled (and cached) here
    code = ("import numpy as np; from tests.tls_peers import read_upto, stats; "
            "print(read_upto(0, np.zeros(1, np.uint8), 1, stats(), 0)[1], "
            "sum(read_upto.stats.cache_hits.values()), "
            "sum(read_upto.stats.cache_misses.values()))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=root, timeout=120, check=True).stdout.split()
    assert out == [str(TLS_WANT_READ), "1", "0"]


def test_memory_bio_reading_gets_every_record(ca, good):
    """The alternative read path bench/tls.py measures: ciphertext moved by sock_recv and
    bio_write, records (incl. the NewSessionTickets) decrypted by tls_read, close_notify
    still seen."""
    frames = [bytes([97 + i]) * 300 for i in range(20)]

    def script(srv):
        for f in frames:
            srv.send(f)
        srv.close_notify()

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        rbio = conn.memory_bio()
        out = np.zeros(20 * 300, np.uint8)
        stage = np.zeros(1 << 16, np.uint8)
        got, last = staged_until(conn.fd, conn.ssl, rbio, stage, out, WAIT_NS)
        assert bytes(out[:got]) == b"".join(frames)
        got, last = staged_until(conn.fd, conn.ssl, rbio, stage, np.zeros(8, np.uint8),
                                 WAIT_NS)
        assert (got, last) == (0, TLS_CLOSED)
    srv.wait()
