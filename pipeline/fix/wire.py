"""The thin I/O shell around a ``Session``: one non-blocking TCP socket, busy-polled.

``poll(now_ns)`` does one round of everything (connect, read, session processing, timers,
write) without blocking, so it can sit in an agent's duty cycle. Reconnects back off
exponentially from ``backoff_min_s`` to ``backoff_max_s``; a successful logon resets it.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
from collections.abc import Callable

import numpy as np

from pipeline.fix.session import SECOND, Session, State

log = logging.getLogger(__name__)


class Initiator:
    def __init__(self, session: Session, host: str, port: int, backoff_min_s: float = 0.1,
                 backoff_max_s: float = 5.0):
        self.session = session
        self.addr = (host, port)
        self.sock: socket.socket | None = None
        self.connecting = False
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
            self.connects += 1
            self.session.on_connected(now_ns)
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

    def send(self, data) -> int:
        """Write ``data`` (bytes or a uint8 view) after anything still pending."""
        if self.sock is None or (not len(data) and not self.pending):
            return 0
        if self.pending:
            self.pending += bytes(data)
            data = self.pending
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self.session._drop(f"send failed: {e.strerror}")
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
            n = self.sock.recv_into(space)
        except BlockingIOError:
            return 0
        except OSError as e:
            self._close(now_ns, f"recv failed: {e.strerror}")
            return 1
        if n == 0:
            self._close(now_ns, "peer closed the connection")
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

    def _close(self, now_ns: int, reason: str) -> None:
        if self.sock is not None:
            if not self.connecting:
                self.send(self.session.take_output())  # e.g. our Logout
            self.sock.close()
        self.sock = None
        self.connecting = False
        self.pending = bytearray()
        self.session.on_disconnected(now_ns, reason)
        self._schedule(now_ns, reason)

    def _schedule(self, now_ns: int, reason: str) -> None:
        self.next_attempt = now_ns + self.backoff
        log.info("FIX reconnect to %s:%d in %.2fs (%s)", *self.addr, self.backoff / SECOND,
                 reason)
        self.backoff = min(self.backoff * 2, self.backoff_max)
