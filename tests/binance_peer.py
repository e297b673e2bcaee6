"""A raw-socket Binance order-entry peer for gateway tests, polled from the test's loop
(no thread): it accepts connections, answers Logon, XLQ (with configured limits),
TestRequest and Logout the way fix-api.md describes, and sends whatever the test scripts
(ExecutionReports, News, a gap). Plus ``FakeRest``: the signed REST calls the gateway makes
(time, openOrders, order), answered from the test's own book of the venue's orders."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import simplefix

from pipeline.fix.binance_spot import frame


def stamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns // 1000 % 1_000_000:06d}"


@dataclass
class Conn:
    sock: socket.socket
    parser: simplefix.FixParser = field(default_factory=simplefix.FixParser)
    inbox: list[dict[int, bytes]] = field(default_factory=list)
    sender: str = ""  # the client's SenderCompID (from its Logon)
    next_out: int = 1
    closed: bool = False

    def got(self, msg_type: str) -> list[dict[int, bytes]]:
        return [m for m in self.inbox if m[35] == msg_type.encode()]


class Peer:
    def __init__(self, limits=(("2", 10000, 10, "s"), ("1", 100, 10, "s"),
                               ("1", 200000, 1, "d"))):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.conns: list[Conn] = []
        self.limits = limits

    def close(self) -> None:
        for c in self.conns:
            c.sock.close()
        self.listener.close()

    def logged_on(self) -> list[Conn]:
        return [c for c in self.conns if c.sender and not c.closed]

    def poll(self) -> None:
        try:
            sock, _ = self.listener.accept()
            sock.setblocking(False)
            self.conns.append(Conn(sock))
        except BlockingIOError:
            pass
        for c in self.conns:
            if c.closed:
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                c.closed = True
                c.sock.close()
                continue
            c.parser.append_buffer(data)
            while (m := c.parser.get_message()) is not None:
                msg = {int(t): v for t, v in m.pairs}
                c.inbox.append(msg)
                self._answer(c, msg)

    def _answer(self, c: Conn, m: dict[int, bytes]) -> None:
        t = m[35]
        if t == b"A":
            c.sender = m[49].decode()
            self.send(c, "A", [(98, 0), (108, int(m[108])), (25037, "4392a152-3481")])
        elif t == b"XLQ":
            group = [(25003, len(self.limits))]
            for kind, count_max, interval, res in self.limits:
                group += [(25004, kind), (25005, 0), (25006, count_max), (25007, interval),
                          (25008, res)]
            self.send(c, "XLR", [(6136, m[6136].decode()), *group])
        elif t == b"1":
            self.send(c, "0", [(112, m[112].decode())])
        elif t == b"5":
            self.send(c, "5", [(58, "Logout acknowledgment.")])
            c.sock.close()
            c.closed = True

    def send(self, c: Conn, msg_type: str, fields, seq: int | None = None) -> None:
        """One message to ``c`` (``seq``: force a MsgSeqNum, e.g. to leave a gap)."""
        if seq is None:
            seq = c.next_out
        c.next_out = seq + 1
        body = f"35={msg_type}\x0134={seq}\x0149=SPOT\x0152={stamp()}\x0156={c.sender}\x01" + \
            "".join(f"{t}={v}\x01" for t, v in fields)
        c.sock.sendall(frame(body))

    def report(self, c: Conn, cl: int, order_id: int, exec_type: str, status: str,
               qty: str, price: str, cum: str, last_qty: str = "0", side: str = "1",
               symbol: str = "BTCUSDT", seq: int | None = None, extra=()) -> None:
        """An ExecutionReport as Binance sends it (tags in number order)."""
        fields = [(11, cl), (14, cum), (17, order_id * 100 + c.next_out), (32, last_qty),
                  (37, order_id), (38, qty), (39, status), (40, 2), (44, price),
                  (54, side), (55, symbol), (59, 1), (60, stamp()), (150, exec_type)]
        if exec_type == "F":
            fields.append((31, price))
        self.send(c, "8", sorted(fields + list(extra)), seq)


class FakeRest:
    """The signed REST endpoints the gateway calls; ``lead_ms``: how far the venue's
    clock is ahead of ours; ``book``: the venue's orders by clientOrderId (Binance JSON)."""

    def __init__(self):
        self.lead_ms = 0
        self.offset_ms = 0
        self.book: dict[str, dict] = {}
        self.calls: list[str] = []
        self.balances: list[dict] | None = []  # None: GET /api/v3/account fails

    def account(self) -> dict:
        from pipeline.binance.rest import BinanceError
        self.calls.append("account")
        if self.balances is None:
            raise BinanceError("GET /api/v3/account", 500, -1000, "An unknown error occurred.")
        return {"balances": self.balances}

    def time_ms(self) -> int:
        self.calls.append("time")
        return time.time_ns() // 1_000_000 + self.lead_ms

    def open_orders(self, symbol: str | None = None) -> list[dict]:
        self.calls.append(f"openOrders {symbol}")
        return [o for o in self.book.values() if o["symbol"] == symbol and
                o["status"] in ("NEW", "PARTIALLY_FILLED")]

    def signed(self, method: str, path: str, params) -> dict:
        from pipeline.binance.rest import BinanceError
        p = dict(params)
        self.calls.append(f"{method} {path} {p.get('origClientOrderId')}")
        o = self.book.get(p["origClientOrderId"])
        if o is None:
            raise BinanceError(f"{method} {path}", 400, -2013, "Order does not exist.")
        return o

    def put(self, cl: int, order_id: int, status: str, qty: str, executed: str,
            price: str, symbol: str = "BTCUSDT", side: str = "BUY") -> None:
        self.book[str(cl)] = {"symbol": symbol, "orderId": order_id, "clientOrderId": str(cl),
                              "price": price, "origQty": qty, "executedQty": executed,
                              "status": status, "type": "LIMIT", "side": side,
                              "timeInForce": "GTC"}
