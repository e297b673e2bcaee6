"""The thin I/O shell around a ``Session``: one non-blocking TCP socket, busy-polled.

``poll(now_ns)`` does one round of everything (connect, read, session processing, timers,
write) without blocking, so it can sit in an agent's duty cycle. Reconnects back off
exponentially from ``backoff_min_s`` to ``backoff_max_s``; a successful logon resets it.

With ``tls`` (``[gateway] tls = true``) the connect state has one more step: the TLS
handshake, stepped each round (``TlsHandshake.step`` never blocks) until it is done or
fails (a verification failure closes the socket before any FIX byte and is retried with
the same backoff, its cause in the reason). ``io`` is then the ``TlsConnection``, which
behaves like the non-blocking socket (BlockingIOError on WANT_READ/WANT_WRITE, 0 on
close_notify, an OSError for a cut or garbled stream), so reads, partial writes and
reconnects keep their plain-TCP paths; ``ssl`` is what the gateway's jitted duty passes
to ``wire_send``/``wire_recv``. ``tls_events`` counts what ended TLS connections.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
from collections.abc import Callable

import numpy as np

from pipeline.fix.session import SECOND, Session, State
from pipeline.tls.client import TlsConnection, TlsError, TlsHandshake, TlsSettings, client_context

log = logging.getLogger(__name__)


class Initiator:
    def __init__(self, session: Session, host: str, port: int, backoff_min_s: float = 0.1,
                 backoff_max_s: float = 5.0, tls: TlsSettings | None = None):
        self.session = session
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.connecting = False
        self.tls = tls
        # one context per venue: the CA store is loaded once, reused by every reconnect
        self.tls_ctx = client_context(tls.ca_file, tls.verify) if tls is not None else None
        self.handshake: TlsHandshake | None = None
        self.conn: TlsConnection | None = None
        self.tls_events = {"handshakes": 0, "handshake_failures": 0, "close_notify": 0,
                           "cut_or_error": 0, "want_write": 0}
        self.pending = bytearray()  # bytes the kernel did not take yet
        self.backoff_min = int(backoff_min_s * SECOND)
        self.backoff_max = int(backoff_max_s * SECOND)
        self.backoff = self.backoff_min
        self.next_attempt = 0
        self.enabled = True
        self.connects = 0

    @property
    def active(self) -> bool:
        return self.session.state == State.ACTIVE and self.sock is not None

    @property
    def io(self):
        """What carries the bytes: the TLS connection, else the socket."""
        return self.conn if self.conn is not None else self.sock

    @property
    def ssl(self) -> int:
        """The ``SSL*`` for the jitted duty's ``wire_send``/``wire_recv`` (0: plain TCP)."""
        return self.conn.ssl if self.conn is not None else 0

    def poll(self, now_ns: int, on_app: Callable[[np.ndarray, np.ndarray], None] | None
             = None) -> int:
        """One non-blocking round; returns a work count (0 when nothing happened)."""
        if self.sock is None:
            if self.enabled and now_ns >= self.next_attempt:
                self._connect(now_ns)
            return 0
        if self.connecting:
            _, writable, _ = select.select([], [self.sock], [], 0)
            if not writable:
                return 0
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._close(now_ns, f"connect failed: {errno.errorcode.get(err, err)}")
                return 1
            self.connecting = False
            if self.tls is None:
                self._connected(now_ns)
            else:
                self.handshake = self.tls_ctx.begin_connect(self.sock, self.tls.server_name,
                                                            self.tls.handshake_timeout)
        if self.handshake is not None:
            return self._tls_step(now_ns)
        work = self._read(now_ns)
        s = self.session
        work += s.process(now_ns, on_app)
        s.on_timer(now_ns)
        if s.state == State.ACTIVE:
            self.backoff = self.backoff_min
        work += self.send(s.take_output())
        if s.want_disconnect is not None and self.sock is not None:
            self._close(now_ns, s.want_disconnect)
        return work

    def _connected(self, now_ns: int) -> None:
        self.connects += 1
        self.session.on_connected(now_ns)

    def _tls_step(self, now_ns: int) -> int:
        """One non-blocking handshake step; the session starts when it is done."""
        try:
            conn = self.handshake.step()
        except TlsError as e:  # the handshake freed the SSL and closed the socket
            self.handshake = None
            self.tls_events["handshake_failures"] += 1
            log.error("FIX %s:%d: %s", *self.addr, e)
            self._close(now_ns, str(e))
            return 1
        if conn is None:
            return 0
        self.handshake = None
        self.conn = conn
        self.tls_events["handshakes"] += 1
        self._connected(now_ns)
        return 1

    def send(self, data) -> int:
        """Write ``data`` (bytes or a uint8 view) after anything still pending. Over TLS a
        WANT_WRITE leaves all of it pending and the retry repeats the same leading bytes
        (what OpenSSL requires; ACCEPT_MOVING_WRITE_BUFFER lets them move)."""
        if self.sock is None or self.handshake is not None or (not len(data)
                                                               and not self.pending):
            return 0
        if self.pending:
            self.pending += bytes(data)
            data = self.pending
        try:
            n = self.io.send(data)
        except BlockingIOError:
            n = 0
            if self.conn is not None:
                self.tls_events["want_write"] += 1
        except OSError as e:
            if self.conn is not None:
                self.tls_events["cut_or_error"] += 1
            self.session._drop(f"send failed: {e.strerror or e}")
            return 1
        if n < len(data):
            rest = bytes(memoryview(data)[n:])
            self.pending = bytearray(rest)
        else:
            self.pending = bytearray()
        return 1

    def close(self, now_ns: int, reason: str = "closed by owner") -> None:
        self.enabled = False
        if self.sock is not None:
            self._close(now_ns, reason)

    def _read(self, now_ns: int) -> int:
        space = self.session.free_space()
        if not len(space):
            self.session._drop("inbound buffer full")
            return 0
        try:
            n = self.io.recv_into(space)
        except BlockingIOError:
            return 0
        except OSError as e:  # over TLS: a cut mid-record or a garbled record, named
            self.tls_failed(now_ns, f"recv failed: {e.strerror or e}", detail=False)
            return 1
        if n == 0:
            self.tls_failed(now_ns, "peer closed the connection", detail=False)
            return 1
        self.session.received(n)
        return 1

    def _connect(self, now_ns: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        rc = sock.connect_ex(self.addr)
        if rc not in (0, errno.EINPROGRESS):
            sock.close()
            self._schedule(now_ns, f"connect failed: {errno.errorcode.get(rc, rc)}")
            return
        self.sock = sock
        self.connecting = True
        self.pending = bytearray()

    def tls_failed(self, now_ns: int, reason: str, detail: bool = True) -> None:
        """The connection ended (the jitted duty's STOP_CLOSED/STOP_ERROR, or a Python
        read): close it, over TLS with the OpenSSL detail and a count."""
        if self.conn is not None:
            close_notify = reason.startswith("peer closed")
            self.tls_events["close_notify" if close_notify else "cut_or_error"] += 1
            if close_notify:  # nothing may follow the peer's close_notify: no Logout
                reason = "peer sent close_notify"
                self.session.take_output()
            elif detail:  # the duty saw it: the detail is still in the error queue
                reason = f"{reason}: {self.conn.describe(-1)}"
        self._close(now_ns, reason)

    def _close(self, now_ns: int, reason: str) -> None:
        if self.handshake is not None:
            self.handshake.abort()
            self.handshake = None
        if self.sock is not None:
            if not self.connecting and (self.conn is not None or self.tls is None):
                self.send(self.session.take_output())  # e.g. our Logout
            if self.conn is not None:
                self.conn.close()  # our close_notify, then the socket
            self.sock.close()
        self.sock = None
        self.conn = None
        self.connecting = False
        self.pending = bytearray()
        self.session.on_disconnected(now_ns, reason)
        self._schedule(now_ns, reason)

    def _schedule(self, now_ns: int, reason: str) -> None:
        self.next_attempt = now_ns + self.backoff
        log.info("FIX reconnect to %s:%d in %.2fs (%s)", *self.addr, self.backoff / SECOND,
                 reason)
        self.backoff = min(self.backoff * 2, self.backoff_max)
