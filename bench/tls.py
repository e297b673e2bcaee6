"""TLS against plain TCP on loopback, in the same run: what ``tls_read``/``tls_write`` cost.

1. Receiving 180-byte frames (a bookTicker-sized WebSocket frame), ns per frame: a sender
   process writes a batch of frames in one ``send()`` (TLS: one record per frame, encrypted
   into a memory BIO first so the batch still leaves in one send), waits for a 1-byte ack;
   the receiver times from the read that brought the batch's first bytes to its last
   frame (an empty poll before the batch, untimed, yields the core). Paths: plain
   ``sock_recv`` with 64 KiB reads (as the feed reads), plain with 180-byte reads (one
   syscall per frame), ``tls_read`` with read-ahead (our setting), ``tls_read`` without
   read-ahead, and a memory BIO (``sock_recv`` the ciphertext, ``BIO_write`` it,
   ``SSL_read`` until empty) to see whether it would be the better design.
2. Request/response round trip: write 200 bytes, read 200 back from an echo process that
   uses the same path (both ends jitted, polling; an empty poll yields the core, since
   on a shared 2-core host two spinning processes measure the scheduler).
3. An empty poll (nothing to read), what a busy-polling loop pays between messages.

The same run then does (``--parts``) md throughput through the feed handler's own duty
cycle, TLS vs plain in interleaved rounds (``bench/tls_md.py``), and one order-sized send
after a ~100 ms idle gap with and without the gateway's warm pass, plain bytes or the
shadow TLS session (``bench/tls_cold.py``). With ``--json``: one document, the parts
under ``md_tls_vs_plain_throughput`` and ``cold_send_after_gap``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import tempfile
import time

import numpy as np
from numba import njit

from bench import tls_cold, tls_md
from bench._report import emit
from pipeline.fix.sockio import EAGAIN, sock_recv, sock_send
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.libc import sched_yield
from pipeline.tls import openssl as O
from pipeline.tls.certs import TestCA
from pipeline.tls.client import client_context, server_context
from pipeline.tls.io import (
    TLS_WANT_READ,
    TLS_WANT_WRITE,
    bio_read,
    bio_write,
    tls_read,
    tls_write,
)

PLAIN = 0
TLS = 1
MEMBIO = 2
FRAME = 180
MSG = 200
CHUNK = 1 << 16
DEADLINE_NS = 20_000_000_000  # no loop here outlives this, whatever the peer does


PARTS = ("records", "md", "cold")
JSON_KEYS = {"md": "md_tls_vs_plain_throughput", "cold": "cold_send_after_gap"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="records: per-record costs (below); md: md throughput through "
                             "feed_once (bench/tls_md.py); cold: a send after an idle gap, "
                             "warm pass or not (bench/tls_cold.py)")
    tls_md.add_arguments(parser)
    tls_cold.add_arguments(parser)
    parser.add_argument("--batch", type=int, default=64, help="frames per send")
    parser.add_argument("--frame", type=int, default=FRAME,
                        help="frame size (180: bookTicker; ~2500: a 50-level depth diff)")
    parser.add_argument("--rounds", type=int, default=300, help="batches per path")
    parser.add_argument("--rtt", type=int, default=3000, help="round trips per path")
    parser.add_argument("--budget-s", type=float, default=1.0,
                        help="time cap per path (a loaded host gets fewer samples, not a "
                             "longer run)")


@njit(cache=True, _nrt=False)
def _read(mode, fd, ssl_p, rbio, buf, chunk):
    """One poll of the receive path: plaintext bytes this poll (0: none), -1: finished."""
    if mode == PLAIN:
        r = sock_recv(fd, buf, 0, chunk)
        return r if r > 0 else (0 if r == -EAGAIN else -1)
    if mode == TLS:
        r = tls_read(ssl_p, buf, 0, chunk)
        return r if r > 0 else (0 if r == TLS_WANT_READ or r == TLS_WANT_WRITE else -1)
    raw = sock_recv(fd, buf, chunk, buf.shape[0] - chunk)  # ciphertext after the plaintext
    if raw <= 0:
        return 0 if raw == -EAGAIN else -1
    bio_write(rbio, buf, chunk, raw)
    got = 0
    while True:
        r = tls_read(ssl_p, buf, 0, chunk)
        if r <= 0:
            return got if r == TLS_WANT_READ else -1
        got += r


@njit(cache=True, _nrt=False)
def _write(mode, fd, ssl_p, buf, start, n):
    """Write all of ``buf[start:start+n]`` (small: never more than the socket takes)."""
    done = 0
    t_end = monotonic_ns() + DEADLINE_NS
    while done < n and monotonic_ns() < t_end:
        r = sock_send(fd, buf, start + done, n - done) if mode == PLAIN else \
            tls_write(ssl_p, buf, start + done, n - done)
        if r > 0:
            done += r
            continue
        busy = r == -EAGAIN if mode == PLAIN else r == TLS_WANT_WRITE or r == TLS_WANT_READ
        if not busy:
            return False
    return done == n


@njit(cache=True, _nrt=False)
def _read_exactly(mode, fd, ssl_p, buf, n, t_end):
    """Read ``buf[:n]``; an empty poll yields the core (this host has 2 shared cores:
    spinning against the peer process would measure the scheduler's slice instead)."""
    got = 0
    while got < n:
        r = _read(mode, fd, ssl_p, 0, buf[got:], n - got)
        if r < 0 or monotonic_ns() > t_end:
            return False
        if r == 0:
            sched_yield()
        got += r
    return True


@njit(cache=True, _nrt=False)
def receive_batches(mode, fd, ssl_p, rbio, buf, chunk, batch_bytes, per_round, ack, budget_ns):
    """Per round: ns from the read bringing the first bytes to the batch's last byte.
    Returns the rounds done (the budget may stop it early), -1 if the stream broke."""
    t_end = monotonic_ns() + DEADLINE_NS
    t_stop = monotonic_ns() + budget_ns
    for k in range(per_round.shape[0]):
        if monotonic_ns() > t_stop:
            return k
        got = 0
        t0 = 0
        while got < batch_bytes:
            t = monotonic_ns()
            r = _read(mode, fd, ssl_p, rbio, buf, chunk)
            if r < 0 or t > t_end:
                return -1
            if r > 0 and got == 0:
                t0 = t
            elif r == 0 and got == 0:
                sched_yield()  # before the batch (untimed): let the sender run
            got += r
        per_round[k] = monotonic_ns() - t0
        if not _write(mode if mode == PLAIN else TLS, fd, ssl_p, ack, 0, 1):
            return -1
    return per_round.shape[0]


@njit(cache=True, _nrt=False)
def send_batches(mode, fd, ssl_p, wbio, frames, out, batch, rounds, ack):
    """Sender: each round one send() of ``batch`` frames (TLS: records via a memory BIO)."""
    t_end = monotonic_ns() + DEADLINE_NS
    frame = frames.shape[0] // batch
    for _ in range(rounds):
        n = batch * frame
        src = frames
        if mode != PLAIN:
            for i in range(batch):
                tls_write(ssl_p, frames, i * frame, frame)
            n = bio_read(wbio, out, 0, out.shape[0])
            src = out
        if not _write(PLAIN, fd, ssl_p, src, 0, n):
            return False
        if not _read_exactly(PLAIN if mode == PLAIN else TLS, fd, ssl_p, ack, 1, t_end):
            return False
    return True


@njit(cache=True, _nrt=False)
def round_trips(mode, fd, ssl_p, msg, buf, lat, budget_ns):
    """Client: write ``msg``, read as many bytes back; ns per round trip into ``lat``.
    Returns the round trips done (the budget may stop it early), -1 on a failure."""
    n = msg.shape[0]
    t_end = monotonic_ns() + DEADLINE_NS
    t_stop = monotonic_ns() + budget_ns
    for i in range(lat.shape[0]):
        t0 = monotonic_ns()
        if t0 > t_stop:
            return i
        if not _write(mode, fd, ssl_p, msg, 0, n):
            return -1
        if not _read_exactly(mode, fd, ssl_p, buf, n, t_end):
            return -1
        lat[i] = monotonic_ns() - t0
    return lat.shape[0]


@njit(cache=True, _nrt=False)
def empty_polls(mode, fd, ssl_p, buf, per):
    """ns per poll of a connection with nothing to read, in groups of 64 polls."""
    for k in range(per.shape[0]):
        t0 = monotonic_ns()
        for _ in range(64):
            if _read(mode, fd, ssl_p, 0, buf, buf.shape[0]) != 0:
                return False
        per[k] = monotonic_ns() - t0
    return True


@njit(cache=True, _nrt=False)
def echo(mode, fd, ssl_p, buf, n, rounds):
    t_end = monotonic_ns() + DEADLINE_NS
    for _ in range(rounds):
        if not _read_exactly(mode, fd, ssl_p, buf, n, t_end):
            return False
        if not _write(mode, fd, ssl_p, buf, 0, n):
            return False
    return True


def _serve(q, mode: int, role: str, cert: str, key: str, batch: int, rounds: int,
           frame: int) -> None:
    """Peer process: accept one connection (TLS handshake if asked) and play ``role``."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    q.put(ls.getsockname()[1])
    ls.settimeout(30)
    sock, _ = ls.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    conn = None
    ssl_p = 0
    if mode != PLAIN:
        with server_context(cert, key) as ctx:
            conn = ctx.accept(sock, 10)
        ssl_p = conn.ssl
    fd = sock.fileno()
    if role == "stream":
        frames = np.frombuffer((bytes(range(256)) * (frame // 256 + 1))[:frame] * batch,
                               np.uint8).copy()
        # TLS: records collect in memory, then leave in one send()
        wbio = conn.memory_bio(read=False) if conn is not None else 0
        send_batches(mode, fd, ssl_p, wbio, frames, np.zeros(batch * (frame + 64), np.uint8),
                     batch, rounds, np.zeros(1, np.uint8))
    else:
        echo(mode, fd, ssl_p, np.zeros(MSG, np.uint8), MSG, rounds)
    time.sleep(0.2)
    (conn or sock).close()


def _connect(mode: int, role: str, paths, batch: int, rounds: int, ca_file: str,
             read_ahead: bool = True, frame: int = FRAME):
    q = mp.Queue()
    proc = mp.Process(target=_serve, args=(q, mode, role, *paths, batch, rounds, frame),
                      daemon=True)
    proc.start()
    port = q.get(timeout=30)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    if mode == PLAIN:
        return sock, None, proc, 0.0
    t = time.perf_counter()
    with client_context(ca_file, read_ahead=read_ahead) as ctx:
        conn = ctx.connect(sock, "localhost", 10)
    return sock, conn, proc, time.perf_counter() - t


def _row(measure: str, path: str, ns: np.ndarray, base: float | None) -> dict:
    p50 = float(np.percentile(ns, 50))
    return {"measure": measure, "path": path, "n": int(ns.size), "p50_ns": p50,
            "p99_ns": float(np.percentile(ns, 99)), "mean_ns": float(ns.mean()),
            "extra_p50_ns": None if base is None else p50 - base}


def stream_paths(frame: int) -> list[tuple[str, int, int, bool]]:
    return [("plain sock_recv, 64 KiB reads", PLAIN, CHUNK, True),
            (f"plain sock_recv, {frame} B reads", PLAIN, frame, True),
            ("tls_read, read-ahead (ours)", TLS, CHUNK, True),
            ("tls_read, no read-ahead", TLS, CHUNK, False),
            ("memory BIO: recv+BIO_write+SSL_read", MEMBIO, CHUNK, False)]


def records(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Part 1: records, round trips, empty polls; (rows, extra) for ``emit``."""
    budget = int(args.budget_s * 1e9)
    ca = TestCA(tempfile.mkdtemp(prefix="hft-bench-tls-"))
    try:
        cert = ca.issue(("localhost", "127.0.0.1"))
        paths = (str(cert.cert_file), str(cert.key_file))
        rows, handshakes = [], []
        base = None
        for name, mode, chunk, read_ahead in stream_paths(args.frame):
            sock, conn, proc, hs = _connect(mode, "stream", paths, args.batch, args.rounds,
                                            str(ca.ca_file), read_ahead, args.frame)
            rbio = conn.memory_bio() if mode == MEMBIO else 0
            per = np.zeros(args.rounds, np.int64)
            done = receive_batches(mode, sock.fileno(), conn.ssl if conn else 0, rbio,
                                   np.zeros(2 * CHUNK, np.uint8), chunk, args.batch * args.frame,
                                   per, np.zeros(1, np.uint8), budget)
            (conn or sock).close()
            proc.join(10)
            if done <= 0:  # -1: broken; 0: a host too loaded for even one round
                raise RuntimeError(f"{name}: no round completed ({done})")
            ns = per[done // 10:done] / args.batch  # the first tenth warms up
            row = _row(f"recv {args.frame} B frame (ns/frame)", name, ns, base)
            base = row["p50_ns"] if base is None else base
            rows.append(row)
            if hs:
                handshakes.append(hs)
        base = None
        idle_rows: list[dict] = []
        for name, mode in (("plain sock_send/sock_recv", PLAIN), ("tls_write/tls_read", TLS)):
            sock, conn, proc, hs = _connect(mode, "echo", paths, 0, args.rtt,
                                            str(ca.ca_file))
            polls = np.zeros(200, np.int64)
            if not empty_polls(mode, sock.fileno(), conn.ssl if conn else 0,
                               np.zeros(MSG, np.uint8), polls):
                raise RuntimeError(f"{name}: data before the first request")
            idle_rows.append(_row("empty poll, nothing to read (ns)", name,
                                  polls[20:] / 64, idle_rows[0]["p50_ns"] if idle_rows else None))
            lat = np.zeros(args.rtt, np.int64)
            done = round_trips(mode, sock.fileno(), conn.ssl if conn else 0,
                               np.frombuffer(bytes(range(MSG)), np.uint8).copy(),
                               np.zeros(MSG, np.uint8), lat, budget)
            (conn or sock).close()
            proc.join(10)
            if done <= 0:
                raise RuntimeError(f"{name}: no round trip completed ({done})")
            row = _row(f"round trip {MSG} B out, {MSG} B back (ns)", name,
                       lat[done // 10:done], base)  # the first tenth warms up
            base = row["p50_ns"] if base is None else base
            rows.append(row)
            if hs:
                handshakes.append(hs)
        rows += idle_rows
    finally:
        ca.cleanup()
    return rows, {"handshake_ms_median": round(float(np.median(handshakes)) * 1e3, 2),
                  "tls": f"{O.lib().OpenSSL_version_num():#x} TLSv1.3, batch {args.batch} "
                         "frames"}


def main(args: argparse.Namespace) -> int:
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        raise SystemExit(f"--parts: expected some of {','.join(PARTS)}, not {args.parts}")
    runs = {"records": ("tls: tls_read/tls_write against plain TCP, loopback", records),
            "md": ("tls md: frames through feed_once, TLS vs plain, interleaved rounds",
                   tls_md.run),
            "cold": ("tls cold: one 200-byte send after an idle gap, TLS vs plain",
                     tls_cold.run)}
    doc_rows: list[dict] = []
    doc: dict = {}
    for part in PARTS:
        if part not in parts:
            continue
        title, run = runs[part]
        rows, extra = run(args)
        if not args.json:
            emit(title, rows, False, extra)
        elif part == "records":
            doc_rows = rows
            doc |= extra
        else:  # one JSON document: a key per part
            doc[JSON_KEYS[part]] = {"title": title, "rows": rows,
                                    **extra.get(JSON_KEYS[part], extra)}
    if args.json:
        emit(runs["records"][0], doc_rows, True, doc)
    return 0
