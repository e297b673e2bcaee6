"""Loopback TLS peers for tests: a scripted server that controls every byte on the wire.

``ScriptedServer`` runs Python's ``ssl`` over memory BIOs in a thread, so a script can send
a record whole, byte by byte, cut in half, garbage in place of a record, or a close_notify,
and read what the client sent. ``silent_server`` accepts TCP and never speaks. Every wait
is bounded (``TIMEOUT``). ``s_server`` drives ``openssl s_server`` for what Python's ``ssl``
cannot send (KeyUpdate).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from errno import EAGAIN
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from pipeline.fix.sockio import sock_recv
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.libc import nanosleep
from pipeline.tls.certs import ServerCert, TestCA
from pipeline.tls.client import TlsConnection, client_context
from pipeline.tls.io import (
    TLS_WANT_READ,
    TLS_WANT_WRITE,
    account,
    bio_write,
    tls_read,
    tls_write,
    wire_recv,
)

TIMEOUT = 10.0
IDLE_NS = 20_000  # backoff between empty polls: tests never spin a core


@pytest.fixture(scope="module")
def ca():
    """A test CA per module (shared fixtures: import them into the test module)."""
    authority = TestCA()
    yield authority
    authority.cleanup()


@pytest.fixture(scope="module")
def good(ca):
    return ca.issue(("localhost", "127.0.0.1"), stem="good")


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog, ca):
    """Whatever a test does, no private key (marker or body) reaches a log record."""
    caplog.set_level(logging.DEBUG, logger="pipeline")
    yield
    assert_no_key_in(caplog.text, ca.dir)


def assert_no_key_in(text: str, directory) -> None:
    """No private key marker, and no line of any ``*.key`` body under ``directory``, in
    ``text`` (captured logs)."""
    assert "PRIVATE KEY" not in text
    for key in Path(directory).glob("*.key"):
        body = [ln for ln in key.read_text().splitlines() if ln and not ln.startswith("-----")]
        assert body and not any(ln in text for ln in body), f"{key.name} content logged"


def listener() -> socket.socket:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(TIMEOUT)
    return ls


class ScriptedServer:
    """One TLS connection on 127.0.0.1; after the handshake ``script(self)`` runs.
    ``error`` holds what ended the thread badly (e.g. the client's alert on a rejected
    certificate), ``done`` is set when it is over."""

    def __init__(self, cert: ServerCert, script: Callable[[ScriptedServer], None] | None = None,
                 max_version: ssl.TLSVersion | None = None,
                 hold: threading.Event | None = None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert_file, cert.key_file)
        if max_version is not None:
            self.ctx.maximum_version = max_version
        self.script = script
        self.hold = hold  # set: start the handshake (until then the client waits)
        self.ls = listener()
        self.port = self.ls.getsockname()[1]
        self.error: BaseException | None = None
        self.handshaken = False
        self.done = threading.Event()
        self.sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            c, _ = self.ls.accept()
            c.settimeout(TIMEOUT)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = c
            if self.hold is not None and not self.hold.wait(TIMEOUT):
                raise TimeoutError("never released")
            with c:
                self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
                self.obj = self.ctx.wrap_bio(self.inc, self.out, server_side=True)
                self._handshake()
                self.handshaken = True
                if self.script is not None:
                    self.script(self)
        except BaseException as e:  # noqa: BLE001 (reported to the test through .error)
            self.error = e
        finally:
            self.ls.close()
            self.done.set()

    def _handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                self._pull()

    def _pull(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("client closed")
        self.inc.write(chunk)

    def flush(self) -> None:
        if self.out.pending:
            self.sock.sendall(self.out.read())

    def record(self, data: bytes) -> bytes:
        """``data`` as TLS record bytes, not sent."""
        self.flush()
        self.obj.write(data)
        return self.out.read()

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.record(data))

    def send_raw(self, raw: bytes, bytewise: bool = False) -> None:
        if not bytewise:
            self.sock.sendall(raw)
            return
        for i in range(len(raw)):
            self.sock.sendall(raw[i:i + 1])
            time.sleep(0.0005)

    def recv(self, n: int) -> bytes:
        """Exactly ``n`` plaintext bytes from the client (fewer if it closes)."""
        got = bytearray()
        while len(got) < n:
            try:
                chunk = self.obj.read(n - len(got))
                if not chunk:  # close_notify
                    break
                got += chunk
            except ssl.SSLWantReadError:
                self.flush()
                try:
                    self._pull()
                except ConnectionError:
                    break
            except ssl.SSLZeroReturnError:
                break
        return bytes(got)

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.obj.unwrap()  # writes our close_notify, then wants the client's
        self.flush()

    def wait(self) -> None:
        assert self.done.wait(TIMEOUT), "TLS test server did not finish"


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP listener that accepts and never speaks (handshake timeout)."""
    ls = listener()
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            held.append(ls.accept()[0])

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield ls.getsockname()[1]
    finally:
        ls.close()
        t.join(TIMEOUT)
        for s in held:
            s.close()


def connect(port: int, ca_file, server_name: str = "localhost", verify: bool = True,
            timeout: float = TIMEOUT) -> TlsConnection:
    with client_context(None if ca_file is None else str(ca_file), verify=verify) as ctx:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        return ctx.connect(sock, server_name, timeout)


@njit(cache=True, _nrt=False, nogil=True)
def read_upto(ssl_p, out, want, stats, timeout_ns):
    """Read into ``out[:want]`` until full, a terminal result, or the deadline: (bytes,
    last result, empty polls). nogil: the server thread runs while this polls."""
    got = 0
    last = TLS_WANT_READ
    empty = 0
    deadline = monotonic_ns() + timeout_ns
    while got < want and monotonic_ns() < deadline:
        last = tls_read(ssl_p, out, got, want - got)
        if account(stats, last, True):
            break
        if last > 0:
            got += last
        else:
            empty += 1
            nanosleep(IDLE_NS)
    return got, last, empty


@njit(cache=True, _nrt=False, nogil=True)
def write_some(ssl_p, buf, n, stats, timeout_ns):
    """Write ``buf[:n]``; stops at the first WANT_WRITE (the caller retries, maybe from a
    moved copy) or the deadline: (bytes taken, last result)."""
    done = 0
    last = 0
    deadline = monotonic_ns() + timeout_ns
    while done < n and monotonic_ns() < deadline:
        last = tls_write(ssl_p, buf, done, n - done)
        if account(stats, last, False) or last == TLS_WANT_WRITE:
            break
        if last > 0:
            done += last
        else:
            nanosleep(IDLE_NS)
    return done, last


@njit(cache=True, _nrt=False, nogil=True)
def wire_until(fd, ssl_p, out, timeout_ns):
    """``wire_recv`` into ``out`` until full, a result other than -EAGAIN, or the deadline:
    (bytes, last result)."""
    got = 0
    last = -EAGAIN
    deadline = monotonic_ns() + timeout_ns
    while got < out.shape[0] and monotonic_ns() < deadline:
        last = wire_recv(fd, ssl_p, out, got, out.shape[0] - got)
        if last > 0:
            got += last
        elif last == -EAGAIN:
            nanosleep(IDLE_NS)
        else:
            break
    return got, last


@njit(cache=True, _nrt=False, nogil=True)
def staged_until(fd, ssl_p, rbio, stage, out, timeout_ns):
    """Memory-BIO reading: ``sock_recv`` ciphertext into ``stage``, ``bio_write`` it,
    ``tls_read`` plaintext into ``out`` until full, a terminal result or the deadline:
    (bytes, last tls_read result)."""
    got = 0
    last = TLS_WANT_READ
    deadline = monotonic_ns() + timeout_ns
    while got < out.shape[0] and monotonic_ns() < deadline:
        raw = sock_recv(fd, stage, 0, stage.shape[0])
        if raw > 0:
            bio_write(rbio, stage, 0, raw)
        last = tls_read(ssl_p, out, got, out.shape[0] - got)
        if last > 0:
            got += last
        elif last != TLS_WANT_READ:
            break
        elif raw <= 0:
            nanosleep(IDLE_NS)
    return got, last


def stats() -> np.ndarray:
    from pipeline.tls.io import TLS_STATS

    return np.zeros(1, TLS_STATS)


class SServer:
    """``openssl s_server`` on 127.0.0.1: lines on stdin are sent as app data; a line
    ``K`` alone makes it send a KeyUpdate that requests ours."""

    def __init__(self, cert: ServerCert):
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", str(cert.cert_file),
             "-key", str(cert.key_file), "-tls1_3", "-naccept", "1", "-ign_eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.port = self._port()

    def _port(self) -> int:
        text = self.wait_for("ACCEPT", line=True)
        for line in text.splitlines():
            if line.startswith("ACCEPT"):
                return int(line.rsplit(":", 1)[1])
        raise AssertionError(f"s_server did not start: {text!r}")

    def wait_for(self, needle: str, line: bool = False) -> str:
        """Read s_server's output until ``needle`` (a whole line of it, with ``line``)
        shows up; everything printed so far."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while True:
            text = "".join(self.lines)
            done = text.rpartition("\n")[0] if line else text
            if needle in done:
                return text
            assert time.monotonic() < deadline, f"s_server never printed {needle!r}: {text!r}"
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, f"s_server exited before printing {needle!r}: {text!r}"
                self.lines.append(chunk.decode(errors="replace"))

    def type(self, line: bytes) -> None:
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def finish(self) -> str:
        """Quit and return everything it printed."""
        with contextlib.suppress(OSError):
            self.type(b"Q\n")
        try:
            out, _ = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return "".join(self.lines) + out.decode(errors="replace")
