"""Venue simulator throughput: market-data messages/s to one subscriber, orders/s via FIX.

Market data: ``hft sim`` runs as its own process at several flow rates; one subscriber to
every stream of every symbol counts frames for ``--seconds``: first a minimal raw reader
(frame headers only: what the server sustains), then a ``websockets`` client (what a
typical Python consumer takes). The reference is the same readers against a bare
``websockets`` server sending one pre-built frame in a loop (the library's ceiling here).

Orders: two FIX sessions (buyer and seller) send crossing NewOrderSingles in pipelined
batches against an empty book, so every order is matched; orders/s counts fully filled
orders. The reference is the same batches of TestRequest -> Heartbeat (session layer only).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import websockets

from bench._report import emit
from pipeline.venue import admin
from pipeline.venue.process import spawn, stop
from pipeline.venue.testing import FixClient

SUFFIXES = ("@trade", "@aggTrade", "@bookTicker", "@depth@100ms", "@depth")
PASSWORDS = {"HFT_BENCH_ALICE": "bench-a", "HFT_BENCH_BOB": "bench-b"}
CONFIG = """
[sim]
flow = { target_orders = %d }
[[sim.accounts]]
username = "alice"
password_env = "HFT_BENCH_ALICE"
[[sim.accounts]]
username = "bob"
password_env = "HFT_BENCH_BOB"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement per case")
    parser.add_argument("--rates", default="2000,20000,50000",
                        help="flow events/s per instrument to try (comma-separated)")
    parser.add_argument("--batch", type=int, default=100, help="FIX orders in flight per side")


async def count_frames(url: str, seconds: float) -> tuple[int, float]:
    """Frames a ``websockets`` client (a typical Python consumer) takes in ``seconds``."""
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        await ws.recv()
        t_end = time.perf_counter() + 0.5  # warm-up
        while time.perf_counter() < t_end:
            await ws.recv()
        n, t0 = 0, time.perf_counter()
        t_end = t0 + seconds
        while time.perf_counter() < t_end:
            await ws.recv()
            n += 1
        return n, time.perf_counter() - t0


def count_frames_raw(url: str, seconds: float) -> tuple[int, float, int]:
    """Frames/s and bytes read by a minimal reader: handshake, then frame headers only.

    It costs far less per frame than any real client, so it measures what the server
    sends rather than what a consumer can parse.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(f"GET {path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, buf = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake failed: {head[:80]!r}")
    n = nbytes = 0
    pos = 0
    t0 = time.perf_counter()
    t_end = t0 + seconds
    try:
        while time.perf_counter() < t_end:
            data = sock.recv(1 << 20)
            if not data:
                break
            nbytes += len(data)
            buf = buf[pos:] + data
            pos = 0
            end = len(buf)
            while pos + 2 <= end:
                size = buf[pos + 1] & 0x7F
                hdr = 2
                if size == 126:
                    if pos + 4 > end:
                        break
                    size, hdr = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
                elif size == 127:
                    if pos + 10 > end:
                        break
                    size, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
                if pos + hdr + size > end:
                    break
                if buf[pos] & 0x0F == 1:  # text frame
                    n += 1
                pos += hdr + size
    finally:
        sock.close()
    return n, time.perf_counter() - t0, nbytes


def _reference_server(port_q) -> None:
    frame = ('{"stream":"btcusdt@bookTicker","data":{"u":1000001,"s":"BTCUSDT",'
             '"b":"59999.74000000","B":"0.09986000","a":"59999.78000000","A":"0.00750000"}}')

    async def handler(ws):
        while True:
            await ws.send(frame)

    async def main():
        async with websockets.serve(handler, "127.0.0.1", 0, compression=None) as server:
            port_q.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()
    asyncio.run(main())


def md_reference(seconds: float) -> dict:
    q = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(target=_reference_server, args=(q,),
                                                          daemon=True)
    proc.start()
    try:
        port = q.get(timeout=30)
        raw_n, raw_dt, _ = count_frames_raw(f"ws://127.0.0.1:{port}/", seconds)
        n, dt = asyncio.run(count_frames(f"ws://127.0.0.1:{port}/", seconds))
    finally:
        proc.terminate()
        proc.join(10)
    return {"case": "md reference: bare websockets send loop", "flow_rate": None,
            "per_s": raw_n / raw_dt, "unit": "msgs/s", "vs_reference": 1.0,
            "websockets_client_per_s": n / dt}


def md_case(rate: int, seconds: float, tmp: Path) -> dict:
    proc, ep = spawn(["--md-port", "0", "--rest-port", "0", "--fix-port", "0", "--rate",
                      str(rate), "--state-dir", str(tmp / "fix")])
    try:
        streams = "/".join(f"{s.lower()}{suf}" for s in ep["symbols"] for suf in SUFFIXES)
        def stats():
            return admin.call(ep["rest"], "/admin/stats", ep["admin_token"])
        url = f"{ep['ws']}/stream?streams={streams}"
        before, t0 = stats(), time.perf_counter()
        n, dt, nbytes = count_frames_raw(url, seconds)
        after, wall = stats(), time.perf_counter() - t0
        ws_n, ws_dt = asyncio.run(count_frames(url, seconds))
    finally:
        stop(proc)
    events = after.get("flow_events", 0) - before.get("flow_events", 0)
    return {"case": f"md: all streams of {len(ep['symbols'])} symbols", "flow_rate": rate,
            "per_s": n / dt, "unit": "msgs/s", "MB_per_s": nbytes / dt / 1e6,
            "websockets_client_per_s": ws_n / ws_dt, "flow_events_per_s": events / wall,
            "behind": after.get("flow_behind", 0) - before.get("flow_behind", 0)}


async def _fix_pairs(port: int, seconds: float, batch: int, orders: bool) -> tuple[int, float]:
    a = await FixClient(port, "BENCHA").connect()
    b = await FixClient(port, "BENCHB").connect()
    await a.logon("alice", "bench-a", reset=True)
    await b.logon("bob", "bench-b", reset=True)
    n, k = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(batch):
            k += 1
            if orders:
                for c, side in ((a, "1"), (b, "2")):
                    c.send("D", [(11, f"{side}-{k}"), (55, "BTCUSDT"), (54, side),
                                 (38, "0.001"), (40, "2"), (44, "50000.00"), (59, "1")])
            else:
                a.send("1", [(112, str(k))])
                b.send("1", [(112, str(k))])
        for c in (a, b):
            got = 0
            while got < batch:
                m = await c.recv("8" if orders else "0")
                if not orders or m.get(39) == "2" or m.get(112):
                    got += 1
        n += 2 * batch
    dt = time.perf_counter() - t0
    await a.close()
    await b.close()
    return n, dt


def fix_cases(seconds: float, batch: int, tmp: Path) -> list[dict]:
    conf = tmp / "bench.toml"
    conf.write_text(CONFIG % 0)
    proc, ep = spawn(["--config", str(conf), "--md-port", "0", "--rest-port", "0",
                      "--fix-port", "0", "--rate", "0", "--state-dir", str(tmp / "fix")],
                     PASSWORDS)
    try:
        ref_n, ref_dt = asyncio.run(_fix_pairs(ep["fix_port"], seconds, batch, False))
        n, dt = asyncio.run(_fix_pairs(ep["fix_port"], seconds, batch, True))
    finally:
        stop(proc)
    ref = ref_n / ref_dt
    return [{"case": "fix reference: TestRequest->Heartbeat", "flow_rate": 0, "per_s": ref,
             "unit": "msgs/s", "vs_reference": 1.0},
            {"case": f"fix: crossing orders, {batch} in flight per side", "flow_rate": 0,
             "per_s": n / dt, "unit": "orders matched/s", "vs_reference": n / dt / ref}]


def main(args: argparse.Namespace) -> int:
    rates = [int(r) for r in args.rates.split(",") if r]
    with tempfile.TemporaryDirectory(prefix="hft-bench-sim-") as tmp:
        tmp = Path(tmp)
        ref = md_reference(args.seconds)
        rows = [ref]
        for rate in rates:
            row = md_case(rate, args.seconds, tmp)
            row["vs_reference"] = row["per_s"] / ref["per_s"]
            rows.append(row)
        rows += fix_cases(args.seconds, args.batch, tmp)
    keys = ["case", "flow_rate", "per_s", "unit", "vs_reference", "MB_per_s",
            "websockets_client_per_s", "flow_events_per_s", "behind"]
    rows = [{k: r.get(k) for k in keys} for r in rows]
    emit("venue simulator throughput", rows, args.json, {"seconds": args.seconds})
    return 0
