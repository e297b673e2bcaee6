"""WebSocket client connection: handshake via ``websockets``' Sans-I/O ``ClientProtocol``,
then a non-blocking socket whose bytes the jitted feed loop reads and decodes.

``wss://``: the TLS handshake (verification, SNI; ``pipeline.tls.client``) runs here on the
cold path, then the HTTP upgrade goes through the ``TlsConnection``; the feed loop reads
the records with ``wire_recv(fd, ssl, ...)`` (``ssl`` is 0 for ``ws://``).

Bytes the server sent right after its handshake response (already on the wire, or already
decrypted) are handed over in ``leftover`` so no frame is lost; ciphertext OpenSSL read
ahead stays inside the ``SSL`` and the next ``tls_read`` returns it.
"""

from __future__ import annotations

import os
import socket
import time

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from pipeline.marketdata.wire.frames import OP_CLOSE, OP_PONG, encode_client_frame
from pipeline.tls.client import TlsConnection, TlsContext, TlsSettings, client_context


class HandshakeError(ConnectionError):
    pass


class WsConnection:
    def __init__(self, sock: socket.socket, leftover: bytes, tls: TlsConnection | None = None):
        self.sock = sock
        self.leftover = leftover
        self.tls = tls  # None for ws://

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    @property
    def ssl(self) -> int:
        """The ``SSL*`` for ``wire_recv`` (0: plain TCP)."""
        return self.tls.ssl if self.tls is not None else 0

    @classmethod
    def open(cls, url: str, timeout: float = 5.0, rcvbuf: int = 4 << 20,
             tls: TlsSettings | None = None, ctx: TlsContext | None = None,
             headers: dict[str, str] | None = None) -> WsConnection:
        """Connect and upgrade. ``wss://``: TLS per ``tls`` (default: the URL's host, the
        system CA store) with ``ctx`` (built per call when None; a reconnecting owner keeps
        one); a verification failure raises ``TlsVerifyError`` and leaves no connection.
        ``headers``: extra request headers (Binance SBE: ``X-MBX-APIKEY``)."""
        uri = parse_uri(url)
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        conn = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if uri.secure:
                conn = _tls_connect(sock, uri.host, tls, ctx)
            io = conn if conn is not None else sock
            proto = ClientProtocol(uri)
            request = proto.connect()
            for name, value in (headers or {}).items():
                request.headers[name] = value
            proto.send_request(request)
            for chunk in proto.data_to_send():
                io.sendall(chunk)
            raw = b""
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in raw:
                if time.monotonic() > deadline or len(raw) > 65536:
                    raise HandshakeError(f"{url}: no handshake response")
                chunk = io.recv(65536)
                if not chunk:
                    raise HandshakeError(f"{url}: connection closed during handshake")
                raw += chunk
            head, rest = raw.split(b"\r\n\r\n", 1)
            proto.receive_data(head + b"\r\n\r\n")
            events = proto.events_received()
            if proto.handshake_exc is not None:
                raise HandshakeError(f"{url}: {proto.handshake_exc}")
            if not events or not isinstance(events[0], Response):
                raise HandshakeError(f"{url}: no handshake response")
            sock.setblocking(False)
            return cls(sock, rest, conn)
        except BaseException:
            (conn or sock).close()
            raise

    def pong(self, payload: bytes) -> None:
        self._send(OP_PONG, payload)

    def close(self, code: int = 1000) -> None:
        try:
            self._send(OP_CLOSE, code.to_bytes(2, "big"))
        except OSError:
            pass
        (self.tls or self.sock).close()  # TLS: our close_notify, then the socket

    def _send(self, opcode: int, payload: bytes) -> None:
        frame = encode_client_frame(opcode, payload, os.urandom(4))
        if self.tls is not None:
            self.tls.sendall(frame)
            return
        self.sock.setblocking(True)
        try:
            self.sock.sendall(frame)
        finally:
            self.sock.setblocking(False)


def _tls_connect(sock: socket.socket, host: str, tls: TlsSettings | None,
                 ctx: TlsContext | None) -> TlsConnection:
    tls = tls or TlsSettings(server_name=host)
    own = ctx is None
    ctx = ctx or client_context(tls.ca_file, tls.verify)
    try:
        return ctx.connect(sock, tls.server_name, tls.handshake_timeout)
    finally:
        if own:
            ctx.close()  # each SSL holds its own reference
