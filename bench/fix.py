"""FIX codec and round-trip benchmark: our numba codec vs simplefix on the same messages.

1. NewOrderSingle encode, msgs/s (numba loop vs simplefix building and encoding).
2. ExecutionReport decode, msgs/s: framing + checksum + fields to ticks/lots (numba) vs
   simplefix ``get_message`` plus reading the same tags (no numeric conversion: flattering
   to simplefix).
3. NewOrderSingle -> ExecutionReport round trip over loopback TCP against an echo acceptor
   process (numba codec, blocking socket): our initiator (numba encode, session framing
   and parse, busy-polling non-blocking socket) vs a simplefix client doing the same, and
   a raw-bytes ping-pong of the same sizes as the floor.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time

import numpy as np
import simplefix
from numba import njit

from bench._report import emit
from pipeline.fix import codec as C
from pipeline.fix.session import K_APP, inbound, next_inbound
from pipeline.fix.store import NEXT_IN, NEXT_OUT, SEQ_WORDS
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.runtime.agent import SameArgsCall
from shm_layouts.records import ORDER_INTENT, OrderType, TimeInForce

TABLE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                  "lot_size": "0.00001"}])
GRID = TABLE.table()
SYMS = C.symbols(symbol_matrix(["BTCUSDT"]), GRID)
SYM = np.frombuffer(b"BTCUSDT", np.uint8).copy()
IDS = C.comp_id_block("CLIENT", "VENUE")
VENUE_IDS = C.comp_id_block("VENUE", "CLIENT")
NOW = 1_764_000_000_123_456_000


def order(cl: int = 10**15, side: int = 0, price: int = 6183763, qty: int = 150) -> np.ndarray:
    """One limit GTC order (a 1-element ORDER_INTENT array) for the encoders."""
    o = np.zeros(1, ORDER_INTENT)
    o[0]["cl_ord_id"], o[0]["side"], o[0]["price"], o[0]["qty"] = cl, side, price, qty
    o[0]["ord_type"], o[0]["tif"] = int(OrderType.LIMIT), int(TimeInForce.GTC)
    return o


def report(**fields) -> np.ndarray:
    """One ExecutionReport's fields (a 1-element codec.EXEC_FIELDS array)."""
    r = np.zeros(1, C.EXEC_FIELDS)
    for k, v in fields.items():
        r[0][k] = v
    return r


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=200_000, help="messages per codec run")
    parser.add_argument("--rtt", type=int, default=20_000, help="round trips")
    parser.add_argument("--sim-rtt", type=int, default=2_000,
                        help="round trips against the venue simulator (0: skip)")
    parser.add_argument("--dispatch", type=int, default=100_000,
                        help="idle gateway duty calls from Python (0: skip)")
    parser.add_argument("--dispatch-only", action="store_true",
                        help="only the dispatch row (no codec, no round trips)")


# ----------------------------------------------------------------------------- codec
@njit(cache=True)
def encode_many(buf, n, grid, orders):
    total = 0
    o = orders[0]
    for i in range(n):
        o["cl_ord_id"] = 1000 + i
        o["side"] = i & 1
        o["price"] = 6183763 + (i & 255)
        s, e = C.encode_new_order(buf, IDS, i + 1, NOW + i * 1000, o, SYM, grid[0])
        total += e - s
    return total


def simplefix_encode(n: int) -> int:
    total = 0
    inst = TABLE[0]
    for i in range(n):
        m = simplefix.FixMessage()
        m.append_pair(8, "FIX.4.4", header=True)
        m.append_pair(35, "D", header=True)
        m.append_pair(49, "CLIENT", header=True)
        m.append_pair(56, "VENUE", header=True)
        m.append_pair(34, i + 1, header=True)
        ns = NOW + i * 1000
        stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(ns // 10**9)) + \
            f".{ns // 1000 % 10**6:06d}"
        m.append_pair(52, stamp, header=True)
        m.append_pair(11, 1000 + i)
        m.append_pair(55, "BTCUSDT")
        m.append_pair(54, "1" if i & 1 == 0 else "2")
        m.append_pair(38, inst.qty_str(150))
        m.append_pair(40, "2")
        m.append_pair(44, inst.price_str(6183763 + (i & 255)))
        m.append_pair(59, "1")
        m.append_pair(60, stamp)
        total += len(m.encode())
    return total


@njit(cache=True)
def decode_all(buf, end, syms, f, spans):
    pos = 0
    n = 0
    check = 0
    while pos < end:
        k = C.frame(buf, pos, end)
        if k <= 0:
            break
        C.parse(buf, pos, k, syms, f, spans)
        check += f[C.F_CUM_QTY] + f[C.F_LAST_PX]
        pos += k
        n += 1
    return n, check


def exec_reports(n: int) -> bytes:
    buf = np.zeros(512, np.uint8)
    out = bytearray()
    er = report(exec_type=ord("F"), ord_status=ord("1"), price=6183763, qty=300,
                last_qty=100, cum_qty=100, leaves_qty=200)
    r = er[0]
    for i in range(n):
        r["order_id"], r["cl_ord_id"], r["exec_id"] = 77 + i, 1000 + i, 5000 + i
        r["last_px"] = 6183763 + i % 7
        s, e = C.encode_exec_report(buf, VENUE_IDS, i + 1, NOW, r, SYM, GRID[0])
        out += bytes(buf[s:e])
    return bytes(out)


def split(stream: bytes) -> list[bytes]:
    """The stream as one chunk per message (simplefix re-slices its whole buffer per
    message, so one huge append would be quadratic: feed it as a socket would)."""
    parts = stream.split(b"8=FIX.4.4\x01")[1:]
    return [b"8=FIX.4.4\x01" + p for p in parts]


def simplefix_decode(chunks: list[bytes]) -> int:
    p = simplefix.FixParser()
    n = 0
    for chunk in chunks:
        p.append_buffer(chunk)
        m = p.get_message()
        for tag in (11, 37, 17, 150, 39, 55, 54, 44, 31, 32, 14, 151, 60):
            m.get(tag)
        n += 1
    return n


def rate(fn, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


# ----------------------------------------------------------------------------- round trip
@njit(cache=True)
def answer_orders(inbuf, start, end, out, scratch, seqs, inb, syms, er, now_ns, fill):
    """Acceptor side: every complete NewOrderSingle gets an ExecutionReport (New, or a full
    fill when ``fill``). Stops before any other message type (Python answers those).
    Returns (consumed, out_len, other_len)."""
    olen = 0
    f = inb.fields
    r = er[0]
    while start < end:
        k = C.frame(inbuf, start, end)
        if k <= 0:
            break
        C.parse(inbuf, start, k, syms, f, inb.spans)
        if f[C.F_MSG_TYPE] != C.MSG_NEW_ORDER:
            return start, olen, k
        start += k
        seq = seqs[0]
        seqs[0] += 1
        q = f[C.F_ORDER_QTY]
        r["order_id"] = seq
        r["cl_ord_id"] = f[C.F_CL_ORD_ID]
        r["exec_id"] = seq
        r["exec_type"] = 70 if fill else 48  # 'F' trade, '0' new
        r["ord_status"] = 50 if fill else 48  # '2' filled, '0' new
        r["side"] = 1 if f[C.F_SIDE] == 50 else 0
        r["price"] = f[C.F_PRICE]
        r["qty"] = q
        r["last_px"] = f[C.F_PRICE] if fill else 0
        r["last_qty"] = q if fill else 0
        r["cum_qty"] = q if fill else 0
        r["leaves_qty"] = 0 if fill else q
        s, e = C.encode_exec_report(scratch, VENUE_IDS, seq, now_ns, r, SYM, syms.grid[0])
        out[olen: olen + e - s] = scratch[s:e]
        olen += e - s
    return start, olen, 0


def echo_acceptor(port_q, raw: bool, fill: bool = False) -> None:
    """Accept one connection; answer NOS with ER (or echo raw bytes of the same size).
    Admin messages: Logon is answered with Logon, TestRequest with Heartbeat."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    port_q.put(lst.getsockname()[1])
    conn, _ = lst.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    inbuf = np.zeros(1 << 16, np.uint8)
    out = np.zeros(1 << 16, np.uint8)
    scratch = np.zeros(1024, np.uint8)
    view = memoryview(inbuf)
    seqs = np.ones(1, np.int64)
    inb = inbound(16)
    er = report()
    answer = SameArgsCall(answer_orders)  # no per-call typing of the views (as in rtt_ours)
    start = end = 0
    while True:
        n = conn.recv_into(view[end:])
        if n == 0:
            return
        end += n
        if raw:
            conn.sendall(out[: ER_SIZE * (end // NOS_SIZE)])
            end %= NOS_SIZE
            continue
        while True:
            start, olen, other = answer(inbuf, start, end, out, scratch, seqs, inb, SYMS, er,
                                        time.time_ns(), fill)
            if olen:
                conn.sendall(out[:olen])
            if not other:
                break
            p = simplefix.FixParser()
            p.append_buffer(inbuf[start: start + other].tobytes())
            m = p.get_message()
            start += other
            reply = {b"A": [(98, 0), (108, m.get(108) or 30)], b"1": [(112, m.get(112))],
                     b"5": []}.get(m.get(35))
            if reply is not None:
                r = simplefix.FixMessage()
                for tag, v in ((8, "FIX.4.4"), (35, {b"A": "A", b"1": "0", b"5": "5"}[
                        m.get(35)]), (49, "VENUE"), (56, "CLIENT"), (34, int(seqs[0]))):
                    r.append_pair(tag, v, header=True)
                seqs[0] += 1
                r.append_utc_timestamp(52, precision=6, header=True)
                for tag, v in reply:
                    r.append_pair(tag, v)
                conn.sendall(r.encode())
        if start == end:
            start = end = 0


def _nos_er_sizes() -> tuple[int, int]:
    buf = np.zeros(512, np.uint8)
    s, e = C.encode_new_order(buf, IDS, 1, NOW, order()[0], SYM, GRID[0])
    er = report(order_id=1, cl_ord_id=10**15, exec_id=1, exec_type=48, ord_status=48,
                price=6183763, qty=150, leaves_qty=150)
    s2, e2 = C.encode_exec_report(buf, VENUE_IDS, 1, NOW, er[0], SYM, GRID[0])
    return e - s, e2 - s2


NOS_SIZE, ER_SIZE = _nos_er_sizes()


def start_acceptor(raw: bool, fill: bool = False) -> tuple[int, mp.Process]:
    q = mp.Queue()
    proc = mp.Process(target=echo_acceptor, args=(q, raw, fill), daemon=True)
    proc.start()
    return q.get(timeout=30), proc


def connect(raw: bool) -> tuple[socket.socket, mp.Process]:
    port, proc = start_acceptor(raw)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock, proc


def rtt_ours(n: int) -> np.ndarray:
    """numba encode -> send; busy-poll recv_into -> next_inbound (frame, checksum, parse)."""
    sock, proc = connect(False)
    out = np.zeros(512, np.uint8)
    inb = inbound(1 << 16)
    view = memoryview(inb.buf)
    io = inb.io[0]
    seqs = np.zeros(SEQ_WORDS, np.int64)
    seqs[NEXT_IN] = seqs[NEXT_OUT] = 1
    o = order()
    lat = np.zeros(n, np.int64)
    # the pipeline calls both from jitted code; from this Python loop they go through
    # SameArgsCall, as the gateway's own Python-side calls do (no per-call typing)
    # (the same record objects every call: a record view is typed like an array)
    encode, inbound_once = SameArgsCall(C.encode_new_order), SameArgsCall(next_inbound)
    rec, grid = o[0], GRID[0]
    for i in range(n + 200):
        t0 = time.perf_counter_ns()
        rec["cl_ord_id"] = 10**15 + i
        s, e = encode(out, IDS, i + 1, time.time_ns(), rec, SYM, grid)
        sock.send(out[s:e])
        while True:
            try:
                io["end"] += sock.recv_into(view[io["end"]:])
            except BlockingIOError:
                continue
            if inbound_once(inb, seqs, SYMS, 0) == K_APP:
                break
        if i >= 200:
            lat[i - 200] = time.perf_counter_ns() - t0
        if io["start"] == io["end"]:
            io["start"] = io["end"] = 0
    sock.close()
    proc.join(5)
    return lat


def rtt_simplefix(n: int) -> np.ndarray:
    sock, proc = connect(False)
    inst = TABLE[0]
    parser = simplefix.FixParser()
    lat = np.zeros(n, np.int64)
    for i in range(n + 200):
        t0 = time.perf_counter_ns()
        m = simplefix.FixMessage()
        for tag, v in ((8, "FIX.4.4"), (35, "D"), (49, "CLIENT"), (56, "VENUE"), (34, i + 1)):
            m.append_pair(tag, v, header=True)
        m.append_utc_timestamp(52, precision=6, header=True)
        for tag, v in ((11, 10**15 + i), (55, "BTCUSDT"), (54, "1"), (38, inst.qty_str(150)),
                       (40, "2"), (44, inst.price_str(6183763)), (59, "1")):
            m.append_pair(tag, v)
        m.append_utc_timestamp(60, precision=6)
        sock.send(m.encode())
        while True:
            try:
                parser.append_buffer(sock.recv(65536))
            except BlockingIOError:
                continue
            r = parser.get_message()
            if r is not None:
                inst.ticks(r.get(44).decode())
                inst.lots(r.get(151).decode())
                break
        if i >= 200:
            lat[i - 200] = time.perf_counter_ns() - t0
    sock.close()
    proc.join(5)
    return lat


def rtt_raw(n: int) -> np.ndarray:
    sock, proc = connect(True)
    msg = np.zeros(NOS_SIZE, np.uint8)
    view = memoryview(np.zeros(1 << 16, np.uint8))
    lat = np.zeros(n, np.int64)
    for i in range(n + 200):
        t0 = time.perf_counter_ns()
        sock.send(msg)
        got = 0
        while got < ER_SIZE:
            try:
                got += sock.recv_into(view[got:])
            except BlockingIOError:
                continue
        if i >= 200:
            lat[i - 200] = time.perf_counter_ns() - t0
    sock.close()
    proc.join(5)
    return lat


def rtt_gateway(n: int, tmp: str) -> tuple[np.ndarray, dict]:
    """The whole order path in one process: intent on the "orders" ring -> gateway (risk,
    OMS, encode, socket) -> acceptor fills -> decode, OMS -> record on the "execs" ring."""
    import uuid

    from pipeline.fix.session import SessionConfig
    from pipeline.metrics import histogram
    from pipeline.orders.gateway import GatewayAgent, GatewayConfig
    from pipeline.orders.risk import RiskLimits
    from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
    from pipeline.orders.testing import push_intent, read_execs
    from pipeline.transport.registry import Instance

    port, proc = start_acceptor(False, fill=True)
    inst = Instance.create(f"bfix{uuid.uuid4().hex[:8]}")
    try:
        orders, execs, state = create_order_path(inst, 1024)
        slot = execs.join(EXECS_CONSUMER)
        cfg = GatewayConfig("127.0.0.1", port, SessionConfig("CLIENT", "VENUE", f"{tmp}/fix"),
                            f"{tmp}/oms.journal")
        limits = RiskLimits(max_qty="1", max_notional="1000000", max_position="10",
                            max_orders_per_s=10**6, max_cancels_per_s=10**6,
                            max_open_orders=100, stale_md_ms=10**9)
        gw = GatewayAgent(inst, cfg, TABLE, limits)
        gw.marks[0] = (6183762, 6183764, time.monotonic_ns(), 0)
        deadline = time.monotonic() + 300  # a cold numba cache compiles the gateway first
        while not state.ready():
            gw.poll_once()
            gw.housekeeping(time.monotonic_ns())
            assert time.monotonic() < deadline, "gateway did not log on"
        lat = np.zeros(n, np.int64)
        for i in range(n + 200):
            if i == 200:
                gw.hist[:] = 0
            t0 = time.monotonic_ns()
            push_intent(orders, action=1, cl_ord_id=state.next_cl_ord_id(), symbol_id=0,
                        side=i & 1, price=6183763, qty=150, tif=1, ord_type=1)
            got = 0
            while not got:
                gw.poll_once()
                got = len(read_execs(execs, slot))
            if i >= 200:
                lat[i - 200] = time.monotonic_ns() - t0
            if i % 256 == 0:
                gw.housekeeping(time.monotonic_ns())
        wire = histogram.percentiles(gw.hist)
        gw.on_close()
        return lat, wire
    finally:
        inst.destroy()
        proc.terminate()


def dispatch(n: int, tmp: str) -> dict:
    """The Python -> jit call of the gateway's duty with nothing to do (no intents, no
    bytes on a socketpair, no warming): what the dispatcher costs to type its arguments,
    against an empty jitted function taking one int (the floor)."""
    import uuid

    from pipeline.fix.session import SessionConfig
    from pipeline.orders.gateway import GatewayAgent, GatewayConfig
    from pipeline.orders.risk import RiskLimits
    from pipeline.orders.segments import create_order_path
    from pipeline.transport.registry import Instance

    inst = Instance.create(f"bdsp{uuid.uuid4().hex[:8]}")
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        create_order_path(inst, 1024)
        cfg = GatewayConfig("127.0.0.1", 1, SessionConfig("CLIENT", "VENUE", f"{tmp}/dfix"),
                            f"{tmp}/doms.journal", journal_records=4096)
        gw = GatewayAgent(inst, cfg, TABLE, RiskLimits())
        duty, args = gw.duty_template()
        args = (a.fileno(), *args[1:])
        calls = {"dispatcher": duty}
        if hasattr(gw, "duty_call"):  # what the gateway calls: the compiled overload
            calls["same_args_call"] = gw.duty_call
        calls["empty_jit"] = _floor
        row = {"call": "gateway duty, idle (flow.duty)"}
        for name, fn in calls.items():
            call = (0,) if fn is _floor else args
            assert fn(*call) == 0  # idle: no work, no stop
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn(*call)
            row[f"{name}_ns"] = (time.perf_counter_ns() - t0) / n
        gw.journal.base.flush()
        return row | {"n": n}
    finally:
        a.close()
        b.close()
        inst.destroy()


@njit(cache=True, _nrt=False)
def _floor(x):
    return x


def rtt_simulator(n: int, tmp: str) -> np.ndarray:
    """Our initiator (session, numba codec) against the venue simulator's FIX acceptor
    (``hft sim`` subprocess): NewOrderSingle (a resting buy far from the touch) -> its
    first ExecutionReport."""
    from pipeline.fix.session import Session, SessionConfig
    from pipeline.fix.wire import Initiator
    from pipeline.venue.process import spawn, stop

    password = "bench-only-password"
    proc, ep = spawn(["--md-port", "0", "--rest-port", "0", "--fix-port", "0", "--state-dir",
                      f"{tmp}/simfix", "--rate", "0", "--symbols", "BTCUSDT"],
                     {"HFT_SIM_PASSWORD": password})
    try:
        cfg = SessionConfig("BENCH", "SIMVENUE", f"{tmp}/simstore", username="trader",
                            password=password)
        init = Initiator(Session(cfg, SYMS.names, GRID), "127.0.0.1", ep["fix_port"])
        deadline = time.monotonic() + 30
        while not init.active:
            init.poll(time.monotonic_ns())
            time.sleep(0.001)
            assert time.monotonic() < deadline, "no logon to the simulator"
        s = init.session
        out = np.zeros(512, np.uint8)
        o = order(price=5_000_000, qty=100)
        got = [0]

        def on_app(f, buf):
            got[0] += 1
        lat = np.zeros(n, np.int64)
        for i in range(n + 100):
            t0 = time.perf_counter_ns()
            before = got[0]
            o[0]["cl_ord_id"] = 10**15 + i
            st, e = C.encode_new_order(out, s.comp_ids, s.next_seq(), time.time_ns(), o[0],
                                       SYM, GRID[0])
            init.send(out[st:e])
            while got[0] == before:
                init.poll(time.monotonic_ns(), on_app)
            if i >= 100:
                lat[i - 100] = time.perf_counter_ns() - t0
        s.logout(time.monotonic_ns())
        return lat
    finally:
        stop(proc)


def main(args: argparse.Namespace) -> int:
    import tempfile
    if args.dispatch_only:
        with tempfile.TemporaryDirectory() as tmp:
            row = dispatch(args.dispatch, tmp)
        emit("fix" if args.json else "gateway duty dispatch (Python -> jit)", [row], args.json)
        return 0
    n = args.n
    buf = np.zeros(1024, np.uint8)
    orders = order()
    encode_many(buf, 10, GRID, orders)
    stream = exec_reports(n)
    sbuf = np.frombuffer(stream, np.uint8).copy()
    f = np.zeros(C.N_FIELDS, np.int64)
    spans = np.zeros(C.SPAN_WORDS, np.int64)
    got, _ = decode_all(sbuf, len(sbuf), SYMS, f, spans)
    assert got == n, (got, n)
    assert simplefix_decode(split(exec_reports(10))) == 10
    ours_enc = rate(lambda: encode_many(buf, n, GRID, orders), n)
    sf_n = max(n // 20, 1000)
    sf_enc = rate(lambda: simplefix_encode(sf_n), sf_n)
    ours_dec = rate(lambda: decode_all(sbuf, len(sbuf), SYMS, f, spans), n)
    sf_chunks = split(exec_reports(sf_n))
    sf_dec = rate(lambda: simplefix_decode(sf_chunks), sf_n)
    rows = [
        {"test": "NewOrderSingle encode", "ours_msgs_s": ours_enc, "simplefix_msgs_s": sf_enc,
         "ratio": ours_enc / sf_enc},
        {"test": "ExecutionReport decode", "ours_msgs_s": ours_dec, "simplefix_msgs_s": sf_dec,
         "ratio": ours_dec / sf_dec},
    ]
    rtt = []
    for label, fn in (("ours (numba codec)", rtt_ours), ("simplefix client", rtt_simplefix),
                      ("raw bytes floor", rtt_raw)):
        lat = fn(args.rtt)
        rtt.append({"round_trip": label, "p50_us": float(np.percentile(lat, 50)) / 1000,
                    "p99_us": float(np.percentile(lat, 99)) / 1000,
                    "p999_us": float(np.percentile(lat, 99.9)) / 1000, "n": len(lat)})
    with tempfile.TemporaryDirectory() as tmp:
        lat, wire = rtt_gateway(args.rtt, tmp)
        sim_lat = rtt_simulator(args.sim_rtt, tmp) if args.sim_rtt else None
        disp = [dispatch(args.dispatch, tmp)] if args.dispatch else []
    rtt.append({"round_trip": "whole gateway: orders ring -> fill on execs ring",
                "p50_us": float(np.percentile(lat, 50)) / 1000,
                "p99_us": float(np.percentile(lat, 99)) / 1000,
                "p999_us": float(np.percentile(lat, 99.9)) / 1000, "n": len(lat)})
    if sim_lat is not None:
        rtt.append({"round_trip": "ours vs the venue simulator's acceptor (hft sim)",
                    "p50_us": float(np.percentile(sim_lat, 50)) / 1000,
                    "p99_us": float(np.percentile(sim_lat, 99)) / 1000,
                    "p999_us": float(np.percentile(sim_lat, 99.9)) / 1000, "n": len(sim_lat)})
    inside = {"intent_to_wire_p50_us": wire["p50"] / 1000, "intent_to_wire_p99_us":
              wire["p99"] / 1000, "intent_to_wire_count": wire["count"]}
    if args.json:
        emit("fix", rows, True, {"round_trip": rtt, "gateway_tick_to_trade": inside,
                                 "dispatch": disp})
    else:
        emit("fix codec (msgs/s, best of 3)", rows, False)
        emit("fix NOS -> ExecutionReport round trip over loopback TCP", rtt, False, inside)
        emit("gateway duty dispatch (Python -> jit)", disp, False)
    return 0
