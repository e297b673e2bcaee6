"""The FIX acceptor's asyncio edge: a TCP server, one task per client connection.

Everything FIX is in the Sans-I/O ``session.AcceptorSession``; this module only moves bytes
between a socket and it and keeps its timer armed (``loop.call_later``, re-armed after
every exchange, so a delayed report leaves on time without a task per session).
"""

from __future__ import annotations

import asyncio
import time

from pipeline.venue.session import AcceptorSession, Host

CLOSE_GRACE_S = 2.0  # how long close() lets clients end their connections themselves


class Connection:
    """One client socket driving one session."""

    def __init__(self, host: Host, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tap=None):
        self.session = AcceptorSession(host, time.monotonic())
        self.session.tap = tap
        self.reader, self.writer = reader, writer
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    async def run(self) -> None:
        s = self.session
        self._arm()
        try:
            while s.want_close is None:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, TimeoutError):  # TLS: "SSL shutdown timed out"
                    break
                if not data:
                    break
                s.receive_data(data, time.monotonic())
                self.flush()
                try:
                    await self.writer.drain()
                except (ConnectionError, TimeoutError):
                    break
        finally:
            if self.timer is not None:
                self.timer.cancel()
            self.closed = True
            s.connection_lost()
            self.writer.close()

    def flush(self) -> None:
        """Write what the session has to say; close once it wants to."""
        if self.closed:
            return
        out = self.session.take_output()
        if out:
            self.writer.write(out)
        if self.session.want_close is not None:
            self.closed = True
            self.writer.close()  # the reader then sees EOF and run() ends
        else:
            self._arm()

    def abort(self, reason: str) -> None:
        """Cut the connection without a Logout (the session stops sending at once)."""
        self.session.close(reason)
        self.closed = True
        self.writer.transport.abort()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(self.session.next_timer(time.monotonic()),
                                          self._on_timer)

    def _on_timer(self) -> None:
        self.session.timer(time.monotonic())
        self.flush()


class FixServer:
    def __init__(self, host: Host):
        self.host = host
        self.conns: dict[AcceptorSession, Connection] = {}
        self.server: asyncio.AbstractServer | None = None
        self.tap = None  # given to every new session (tests record what clients sent)

    async def start(self, bind: str, port: int, ssl=None) -> int:
        self.server = await asyncio.start_server(self._client, bind, port, ssl=ssl)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, reader, writer) -> None:
        conn = Connection(self.host, reader, writer, self.tap)
        self.conns[conn.session] = conn
        self.host.stats["fix_connections"] += 1
        try:
            await conn.run()
        finally:
            del self.conns[conn.session]

    def flush(self, s: AcceptorSession) -> None:
        conn = self.conns.get(s)
        if conn is not None:
            conn.flush()

    def abort_all(self, reason: str) -> int:
        conns = list(self.conns.values())
        for c in conns:
            c.abort(reason)
        return len(conns)

    async def close(self, text: str) -> None:
        if self.server is not None:
            self.server.close()
        now = time.monotonic()
        for c in list(self.conns.values()):
            if c.session.logged_on:
                c.session.logout(text, now)
            c.session.close(text)
            c.flush()
        if self.server is not None:
            # since 3.12 wait_closed also waits for every connection to end: a client that
            # answers neither our Logout nor TLS close_notify must not hold the stop for the
            # SSL shutdown timeout (30 s), so it is cut after a grace
            try:
                await asyncio.wait_for(self.server.wait_closed(), CLOSE_GRACE_S)
            except TimeoutError:
                self.abort_all(text)
                await self.server.wait_closed()
