"""WebSocket client connection: handshake via ``websockets``' Sans-I/O ``ClientProtocol``,
then a plain non-blocking socket whose bytes the jitted feed loop reads and decodes.

Bytes the server sent right after its handshake response (already on the wire) are
handed over in ``leftover`` so no frame is lost.
"""

from __future__ import annotations

import os
import socket
import time

from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from pipeline.marketdata.wire.frames import OP_CLOSE, OP_PONG, encode_client_frame


class HandshakeError(ConnectionError):
    pass


class WsConnection:
    def __init__(self, sock: socket.socket, leftover: bytes):
        self.sock = sock
        self.leftover = leftover

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    @classmethod
    def open(cls, url: str, timeout: float = 5.0, rcvbuf: int = 4 << 20,
             headers: dict[str, str] | None = None) -> WsConnection:
        """``headers``: extra request headers (Binance SBE: ``X-MBX-APIKEY``)."""
        uri = parse_uri(url)
        if uri.secure:
            raise HandshakeError("wss:// needs TLS, which the busy-polled shell does not do; "
                                 "use a local TLS terminator or ws://")
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            proto = ClientProtocol(uri)
            request = proto.connect()
            for name, value in (headers or {}).items():
                request.headers[name] = value
            proto.send_request(request)
            for chunk in proto.data_to_send():
                sock.sendall(chunk)
            raw = b""
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in raw:
                if time.monotonic() > deadline or len(raw) > 65536:
                    raise HandshakeError(f"{url}: no handshake response")
                chunk = sock.recv(65536)
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
            return cls(sock, rest)
        except BaseException:
            sock.close()
            raise

    def pong(self, payload: bytes) -> None:
        self._send(OP_PONG, payload)

    def close(self, code: int = 1000) -> None:
        try:
            self._send(OP_CLOSE, code.to_bytes(2, "big"))
        except OSError:
            pass
        self.sock.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        frame = encode_client_frame(opcode, payload, os.urandom(4))
        self.sock.setblocking(True)
        try:
            self.sock.sendall(frame)
        finally:
            self.sock.setblocking(False)
