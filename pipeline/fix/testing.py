"""A small scripted FIX 4.4 acceptor over loopback, for tests and the round-trip benchmark.

Real FIX on a real socket (simplefix on this side), one connection at a time, run in a
thread (``start()``) or a process (``python -m pipeline.fix.testing PORT``). It keeps an
order book of client orders so it can acknowledge, fill, cancel, replace and report status,
and it has knobs to misbehave: refuse logons, go silent, skip sequence numbers, send garbled
bytes, ask us for a resend. It is not the venue simulator; it exists so the initiator can
be tested against something that is not our own code path.
"""

from __future__ import annotations

import itertools
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import simplefix

from pipeline.fix import codec as C
from pipeline.fix.session import utc_timestamp
from pipeline.fix.store import journal_append


@dataclass
class Order:
    cl_ord_id: str
    order_id: str
    symbol: str
    side: str
    qty: str
    price: str
    cum: str = "0"
    status: str = "0"


@dataclass
class Script:
    sender: str = "VENUE"
    target: str = "CLIENT"
    password: str | None = None  # if set, Logon must carry it in tag 554
    refuse_logon: str | None = None  # Logout text to refuse every logon with
    silent: bool = False  # answer nothing after logon (heartbeat timeout)
    auto_fill: bool = False  # fill every new order at once
    resend_app: bool = True  # answer our ResendRequests with PossDup resends
    received: list = field(default_factory=list)  # every message, as simplefix messages


class ScriptedAcceptor:
    def __init__(self, script: Script | None = None, port: int = 0):
        self.script = script or Script()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.lock = threading.RLock()
        self.next_out = 1
        self.next_in = 1
        self.sent: dict[int, bytes] = {}
        self.orders: dict[str, Order] = {}
        self.ids = itertools.count(1)
        self.logons = 0
        self.stop_flag = False
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ running
    def start(self) -> ScriptedAcceptor:
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_flag = True
        if self.thread:
            self.thread.join(5)
        self.drop()
        self.listener.close()

    def serve(self) -> None:
        parser = simplefix.FixParser()
        while not self.stop_flag:
            socks = [self.listener] + ([self.conn] if self.conn else [])
            readable, _, _ = select.select(socks, [], [], 0.05)
            if self.listener in readable:
                conn, _ = self.listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.drop()
                self.conn = conn
                parser = simplefix.FixParser()
            if self.conn is not None and self.conn in readable:
                try:
                    data = self.conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.drop()
                    continue
                parser.append_buffer(data)
                while (m := parser.get_message()) is not None:
                    with self.lock:
                        self.on_message(m)

    def drop(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    # ------------------------------------------------------------------ sending
    def send(self, msg_type: str, pairs, seq: int | None = None, poss_dup: bool = False,
             orig_time: bytes | None = None, lose: bool = False) -> bytes:
        """Send (or with ``lose`` only journal: the initiator sees a gap) one message."""
        with self.lock:
            m = simplefix.FixMessage()
            m.append_pair(8, "FIX.4.4", header=True)
            m.append_pair(35, msg_type, header=True)
            m.append_pair(49, self.script.sender, header=True)
            m.append_pair(56, self.script.target, header=True)
            if seq is None:
                seq = self.next_out
                self.next_out += 1
            m.append_pair(34, seq, header=True)
            if poss_dup:
                m.append_pair(43, "Y", header=True)
            m.append_pair(52, utc_timestamp(time.time_ns()), header=True)
            if orig_time:
                m.append_pair(122, orig_time, header=True)
            for tag, value in pairs:
                m.append_pair(tag, value)
            raw = m.encode()
            if not poss_dup:
                self.sent[seq] = (msg_type, pairs, raw)
            if not lose:
                self.send_raw(raw)
            return raw

    def send_raw(self, raw: bytes) -> None:
        with self.lock:
            if self.conn is not None:
                try:
                    self.conn.sendall(raw)
                except OSError:
                    self.drop()

    def skip_seq(self, n: int = 1) -> None:
        """Lose ``n`` outbound messages: the initiator sees a gap."""
        with self.lock:
            for _ in range(n):
                self.sent[self.next_out] = ("0", [], b"")
                self.next_out += 1

    def send_garbled(self) -> None:
        """A heartbeat whose checksum is wrong (it still consumes a sequence number)."""
        with self.lock:
            seq = self.next_out
            raw = bytearray(self.send_to_bytes("0", [], seq))
            self.next_out += 1
            self.sent[seq] = ("0", [], bytes(raw))
            i = raw.rindex(b"10=") + 3
            raw[i:i + 3] = b"%03d" % ((int(raw[i:i + 3]) + 7) % 256)
            self.send_raw(bytes(raw))

    def send_to_bytes(self, msg_type: str, pairs, seq: int) -> bytes:
        m = simplefix.FixMessage()
        for tag, value in ((8, "FIX.4.4"), (35, msg_type), (49, self.script.sender),
                           (56, self.script.target), (34, seq),
                           (52, utc_timestamp(time.time_ns())), *pairs):
            m.append_pair(tag, value)
        return m.encode()

    # ------------------------------------------------------------------ receiving
    def on_message(self, m) -> None:
        s = self.script
        s.received.append(m)
        mt = m.get(35).decode()
        seq = int(m.get(34))
        if mt == "A":
            if s.refuse_logon or (s.password is not None and m.get(554) != s.password.encode()):
                self.send("5", [(58, s.refuse_logon or "invalid credentials")])
                self.drop()
                return
            if m.get(141) == b"Y":
                self.next_in = 1
                self.next_out = 1
            self.logons += 1
            self.send("A", [(98, 0), (108, int(m.get(108)))])
            if seq > self.next_in:
                self.send("2", [(7, self.next_in), (16, 0)])
                return
            self.next_in = seq + 1
            return
        if s.silent:
            return
        if mt == "4":
            self.next_in = max(self.next_in, int(m.get(36)))
            return
        if seq > self.next_in:
            self.send("2", [(7, self.next_in), (16, 0)])
            return
        if seq < self.next_in:
            return  # PossDup duplicate
        self.next_in = seq + 1
        if mt == "1":
            self.send("0", [(112, m.get(112))])
        elif mt == "2":
            self.answer_resend(int(m.get(7)), int(m.get(16)))
        elif mt == "5":
            self.send("5", [])
            self.drop()
        elif mt in "DFGH":
            getattr(self, "on_" + mt)(m)

    def answer_resend(self, begin: int, end: int) -> None:
        end = self.next_out - 1 if end == 0 else end
        for seq in range(begin, end + 1):
            msg_type, pairs, raw = self.sent.get(seq, ("0", [], b""))
            if msg_type in "89" and self.script.resend_app:
                orig = raw.split(b"\x0152=")[1].split(b"\x01")[0]
                self.send(msg_type, pairs, seq=seq, poss_dup=True, orig_time=orig)
            else:
                self.send("4", [(123, "Y"), (36, seq + 1)], seq=seq, poss_dup=True)

    # ------------------------------------------------------------------ orders
    def report(self, o: Order, exec_type: str, last_qty: str = "0", last_px: str = "0",
               extra=(), cl: str | None = None) -> None:
        leaves = "0" if o.status in "248C" else _sub(o.qty, o.cum)
        self.send("8", [(37, o.order_id), (11, cl or o.cl_ord_id), (17, next(self.ids)),
                        (150, exec_type), (39, o.status), (55, o.symbol), (54, o.side),
                        (38, o.qty), (44, o.price), (32, last_qty), (31, last_px),
                        (14, o.cum), (151, leaves), (60, utc_timestamp(time.time_ns())),
                        *extra])

    def on_D(self, m) -> None:
        cl = m.get(11).decode()
        if cl in self.orders:
            self.send("8", [(37, "NONE"), (11, cl), (17, next(self.ids)), (150, "8"),
                            (39, "8"), (55, m.get(55)), (54, m.get(54)), (14, 0), (151, 0),
                            (103, 6), (58, "duplicate order")])
            return
        o = Order(cl, f"V{next(self.ids)}", m.get(55).decode(), m.get(54).decode(),
                  m.get(38).decode(), (m.get(44) or b"0").decode())
        self.orders[cl] = o
        self.report(o, "0")
        if self.script.auto_fill:
            self.fill(cl, o.qty, o.price)

    def fill(self, cl: str, qty: str, px: str) -> None:
        with self.lock:
            o = self.orders[cl]
            o.cum = _add(o.cum, qty)
            o.status = "2" if _sub(o.qty, o.cum) == "0" else "1"
            self.report(o, "F", qty, px)

    def unsolicited_cancel(self, cl: str) -> None:
        with self.lock:
            o = self.orders[cl]
            o.status = "4"
            self.report(o, "4")

    def on_F(self, m) -> None:
        orig = m.get(41).decode()
        o = self.orders.get(orig)
        if o is None or o.status in "2484":
            self.send("9", [(37, o.order_id if o else "NONE"), (11, m.get(11)), (41, orig),
                            (39, o.status if o else "8"), (434, 1), (102, 1 if o is None else 0),
                            (58, "unknown order" if o is None else "too late to cancel")])
            return
        o.status = "4"
        self.report(o, "4", extra=[(41, orig)], cl=m.get(11).decode())

    def on_G(self, m) -> None:
        orig = m.get(41).decode()
        o = self.orders.get(orig)
        if o is None or o.status in "248":
            self.send("9", [(37, "NONE"), (11, m.get(11)), (41, orig), (39, "8"), (434, 2),
                            (102, 1), (58, "unknown order")])
            return
        o.status = "4"
        new = Order(m.get(11).decode(), o.order_id, o.symbol, o.side, m.get(38).decode(),
                    m.get(44).decode(), o.cum)
        self.orders[new.cl_ord_id] = new
        self.report(new, "5", extra=[(41, orig)])

    def on_H(self, m) -> None:
        cl = m.get(11).decode()
        o = self.orders.get(cl)
        if o is None:
            self.send("8", [(37, "NONE"), (11, cl), (17, next(self.ids)), (150, "I"),
                            (39, "8"), (55, m.get(55)), (54, m.get(54)), (14, 0), (151, 0),
                            (58, "unknown order")])
            return
        self.report(o, "I")


def run_until(init, pred, timeout: float = 5.0, apps: list | None = None) -> None:
    """Poll ``init`` (a ``wire.Initiator``) until ``pred()``; parsed application messages
    are copied into ``apps``. Sleeps between polls: tests never busy-spin a shared core."""
    def on_app(f, buf):
        if apps is not None:
            apps.append(f.copy())
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        init.poll(time.monotonic_ns(), on_app)
        time.sleep(0.0005)


def send_order(init, cl: int, symbol: bytes, grid_row, px: int, qty: int) -> None:
    """Encode, journal and send one limit GTC buy through ``init`` (cold-path helper)."""
    buf = np.zeros(512, np.uint8)
    s = init.session
    seq = s.next_seq()
    from shm_layouts.records import ORDER_INTENT
    o = np.zeros(1, ORDER_INTENT)
    o[0]["cl_ord_id"], o[0]["price"], o[0]["qty"] = cl, px, qty  # side 0: buy
    o[0]["ord_type"], o[0]["tif"] = 1, 1  # limit, GTC
    start, end = C.encode_new_order(buf, s.comp_ids, seq, time.time_ns(), o[0],
                                    np.frombuffer(symbol, np.uint8).copy(), grid_row)
    journal_append(s.store.words, s.store.data, s.store.index, buf, start, end, seq)
    init.send(buf[start:end])


def _add(a: str, b: str) -> str:
    from decimal import Decimal
    return format(Decimal(a) + Decimal(b), "f")


def _sub(a: str, b: str) -> str:
    from decimal import Decimal
    d = Decimal(a) - Decimal(b)
    return "0" if d == 0 else format(d, "f")


def main() -> None:
    """``python -m pipeline.fix.testing PORT [auto_fill]``: serve until killed."""
    acc = ScriptedAcceptor(Script(auto_fill="auto_fill" in sys.argv), int(sys.argv[1]))
    print(acc.port, flush=True)
    acc.serve()


if __name__ == "__main__":
    main()
