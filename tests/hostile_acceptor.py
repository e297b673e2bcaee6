"""A FIX 4.4 acceptor of the tests' own over a raw socket (not the simulator): it plays a
venue that can send anything, malformed on purpose, byte for byte as the test says.

It answers what a venue must for a session to run (Logon, TestRequest, ResendRequest with
a gap fill, Logout), acks NewOrderSingle and OrderCancelRequest, answers
OrderStatusRequest from its own view of each order (``orders``), and otherwise sends only
what the test asks: ``send`` (fields, header overridable), ``send_fields`` (every field
as given: the begin string, BodyLength and checksum are computed) or ``send_raw``.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass

import simplefix

from pipeline.fix.session import utc_timestamp

Value = bytes | str | int


def encode(fields: list[tuple[Value, Value | None]]) -> bytes:
    """A FIX 4.4 message of exactly ``fields`` (after 8 and 9; 10 appended); a value of
    None writes the tag alone, without '='."""
    def b(v: Value) -> bytes:
        return v if isinstance(v, bytes) else str(v).encode()
    body = b"".join(b(t) + (b"" if v is None else b"=" + b(v)) + b"\x01" for t, v in fields)
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


@dataclass
class VenueOrder:
    cl: int
    side: bytes
    qty: str
    price: str
    status: bytes = b"0"
    cum: str = "0"
    leaves: str = ""
    avg_px: str = "0"


class HostileAcceptor:
    def __init__(self, sender: str = "VENUE", target: str = "CLIENT", symbol: str = "BTCUSDT"):
        self.sender, self.target, self.symbol = sender, target, symbol
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.conn: socket.socket | None = None
        self.next_out = 1
        self.received: list[simplefix.FixMessage] = []
        self.seqs_in: list[int] = []  # MsgSeqNum of each received message
        self.orders: dict[int, VenueOrder] = {}
        # MsgType -> fn(acceptor, message, its MsgSeqNum): replaces the automatic answer
        self.handlers: dict[bytes, object] = {}
        self.logons = 0
        self.lock = threading.RLock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ sending
    def header(self, msg_type: str, seq: int | None) -> list[tuple[Value, Value]]:
        if seq is None:
            seq = self.next_out
            self.next_out += 1
        return [(35, msg_type), (49, self.sender), (56, self.target), (34, seq),
                (52, utc_timestamp(time.time_ns()))]

    def send(self, msg_type: str, body: list[tuple[Value, Value]], seq: int | None = None,
             header: dict[int, Value | None] | None = None, lose: bool = False,
             poss_dup: bool = False) -> int:
        """Send ``msg_type`` with ``body``; ``header`` replaces (or, with None, removes)
        header fields; ``lose``: consume the sequence number without sending. Returns the
        MsgSeqNum used."""
        with self.lock:
            fields = self.header(msg_type, seq)
            used = int(fields[3][1])
            if poss_dup:
                fields.insert(4, (43, "Y"))
            for tag, value in (header or {}).items():
                fields = [(t, value if t == tag else v) for t, v in fields if
                          not (t == tag and value is None)]
            if not lose:
                self.send_raw(encode(fields + body))
            return used

    def send_fields(self, fields: list[tuple[Value, Value]]) -> None:
        self.send_raw(encode(fields))

    def send_raw(self, raw: bytes) -> None:
        with self.lock:
            assert self.conn is not None, "no session connected"
            self.conn.sendall(raw)

    def report(self, cl: int, exec_type: str, status: str, lose: bool = False,
               seq: int | None = None, extra: list | None = None, **fields: Value) -> int:
        """An ExecutionReport for order ``cl``: ``fields`` by tag (``t31="60000"``), None
        leaves a default out; ``extra`` fields are appended as given (repeats, odd tags).
        Defaults: OrderID, ExecID, Symbol, Side, OrderQty."""
        o = self.orders.get(cl)
        body = {37: f"V{cl}", 11: cl, 17: f"E{time.monotonic_ns()}", 150: exec_type, 39: status,
                55: self.symbol, 54: (o.side if o else b"1").decode(), 38: o.qty if o else "0.001"}
        for k, v in fields.items():
            body[int(k[1:])] = v
        pairs = [(t, v) for t, v in body.items() if v is not None] + (extra or [])
        return self.send("8", pairs, seq=seq, lose=lose)

    def fill(self, cl: int, last_qty: str, last_px: str, cum: str, status: str = "1",
             **fields: Value) -> int:
        o = self.orders[cl]
        o.cum, o.status, o.avg_px = cum, status.encode(), last_px
        return self.report(cl, "F", status, **(dict(t31=last_px, t32=last_qty, t14=cum)
                                                | fields))

    # ------------------------------------------------------------------ receiving
    def of_type(self, msg_type: str) -> list[simplefix.FixMessage]:
        with self.lock:
            return [m for m in self.received if m.get(35) == msg_type.encode()]

    def _run(self) -> None:
        parser = simplefix.FixParser()
        while not self._stop:
            socks = [self.lsock] + ([self.conn] if self.conn is not None else [])
            readable, _, _ = select.select(socks, [], [], 0.05)
            if self.lsock in readable:
                conn, _ = self.lsock.accept()
                with self.lock:
                    if self.conn is not None:
                        self.conn.close()
                    self.conn = conn
                    parser = simplefix.FixParser()
                continue
            if self.conn is None or self.conn not in readable:
                continue
            try:
                data = self.conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.lock:
                    self.conn.close()
                    self.conn = None
                continue
            parser.append_buffer(data)
            while (m := parser.get_message()) is not None:
                with self.lock:
                    self.received.append(m)
                    self.seqs_in.append(int(m.get(34)))
                    try:
                        self._answer(m)
                    except OSError:
                        pass

    def _answer(self, m: simplefix.FixMessage) -> None:
        t = m.get(35)
        if t in self.handlers:
            if t == b"D":
                cl = int(m.get(11))
                self.orders[cl] = VenueOrder(cl, m.get(54), m.get(38).decode(),
                                             m.get(44).decode())
            self.handlers[t](self, m, int(m.get(34)))
        elif t == b"A":
            self.logons += 1
            self.send("A", [(98, 0), (108, int(m.get(108)))])
        elif t == b"1":
            self.send("0", [(112, m.get(112).decode())])
        elif t == b"2":  # nothing is resent: one gap fill over the whole range
            begin = int(m.get(7))
            if begin < self.next_out:
                self.send("4", [(123, "Y"), (36, self.next_out)], seq=begin, poss_dup=True)
        elif t == b"5":
            self.send("5", [])
        elif t == b"D":
            cl = int(m.get(11))
            self.orders[cl] = VenueOrder(cl, m.get(54), m.get(38).decode(), m.get(44).decode())
            self.report(cl, "0", "0", t44=m.get(44).decode(), t14="0", t151=m.get(38).decode())
        elif t == b"F":
            orig = int(m.get(41))
            o = self.orders.get(orig)
            if o is not None:
                o.status = b"4"
            self.report(int(m.get(11)), "4", "4", t41=orig, t14=o.cum if o else "0",
                        t151="0")
        elif t == b"H":
            cl = int(m.get(11))
            o = self.orders.get(cl)
            if o is None:
                self.report(cl, "I", "8", t14="0", t151="0")
            else:
                self.report(cl, "I", o.status.decode(), t14=o.cum, t6=o.avg_px,
                            t151=o.leaves or None)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        with self.lock:
            if self.conn is not None:
                self.conn.close()
        self.lsock.close()
