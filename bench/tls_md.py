"""Market-data throughput, TLS against plain, in the same run (issue 13: TLS may cost at
most 20 % of md throughput through parse).

A producer process streams real-shaped Binance spot WebSocket frames over loopback TCP:
the depth diffs ``bench.md`` generates (50-100 levels, ~2.5 KB), each followed by
``--small`` trades and as many bookTickers (``bench.md_sbe.small_events``), once as plain
``ws://`` bytes and once as TLS 1.3 records (one record per frame, as a venue writes them;
encrypted into a memory BIO before the stream starts, so the producer is only a
``send()`` of ready bytes in both modes and never the bottleneck). The consumer is the
feed handler's own duty cycle, ``feed.feed_once`` (``wire_recv``: ``recv`` or
``SSL_read`` with read-ahead, WebSocket deframing, parse, ticks/lots, the sync rules, the
md ring), called as fast as it returns, after the REST snapshot was injected (untimed).
Timed: from the cycle that read the first bytes to the one that took the last frame.

Rounds alternate plain, TLS, plain, TLS... on fresh connections; per round the TLS rate
over the plain rate is one paired ratio, and the median of those is the figure (this
host's speed moves within minutes, see bench/transport.py). Before the first bytes an
empty cycle yields the core (the producer is encrypting); during the stream the consumer
polls like the lowlat feed handler does (one core busy for the round, ~0.1 s).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import tempfile
import time

import numpy as np
from numba import njit

from bench._report import emit
from bench.md import generate
from bench.md_sbe import small_events
from pipeline import config as cfgmod
from pipeline.marketdata import sbe
from pipeline.marketdata import warm as MW
from pipeline.marketdata.feed import Sock, feed_once, inject, new_state
from pipeline.marketdata.infer import infer_symbols
from pipeline.marketdata.normalize import M_REJECTED, FeedCore
from pipeline.marketdata.segments import MD_RING, MD_STREAM
from pipeline.marketdata.wire.frames import OP_TEXT, encode_server_frame
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.libc import sched_yield
from pipeline.tls.certs import TestCA
from pipeline.tls.client import client_context, server_context
from pipeline.tls.io import bio_read, tls_write
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.records import MD_EVENT

PLAIN, TLS = 0, 1
MAX_RECORD = 16384  # TLS plaintext per record
BUDGET_NS = 60_000_000_000  # no round outlives this, whatever the peer does
CTX = mp.get_context("fork")  # the producer inherits the frames, nothing is pickled


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--diffs", type=int, default=3000, help="depth diffs per round")
    p.add_argument("--small", type=int, default=3,
                   help="trades and bookTickers after each depth diff (each)")
    p.add_argument("--md-rounds", type=int, default=7, help="rounds per mode (>= 5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--record-bytes", type=int, default=0,
                   help="0: one TLS record per frame (as measured); N: the producer packs "
                        f"consecutive frames into records of up to N bytes (<= {MAX_RECORD})")
    p.add_argument("--ciphersuites", default="",
                   help="TLS 1.3 suites the consumer offers, e.g. TLS_AES_128_GCM_SHA256 "
                        "(default: OpenSSL's, which the server answers with AES-256-GCM)")


class Stream:
    """The frames of one round: ``data`` (the WebSocket frames back to back) with each
    frame's ``[starts, ends)``, the snapshot body, and the instruments."""

    def __init__(self, diffs: int, small: int, seed: int):
        cap = generate(diffs, seed)
        self.symbols = infer_symbols(cap)
        self.snapshot = np.frombuffer(cap.raw(0), np.uint8).copy()
        ev = small_events(diffs * small, seed)
        trades, bbos = ev["trade"][0], ev["bbo"][0]
        payloads: list[bytes] = []
        for i in range(1, len(cap)):
            payloads.append(cap.raw(i))
            k = (i - 1) * small
            payloads += trades[k:k + small] + bbos[k:k + small]
        frames = [encode_server_frame(OP_TEXT, p) for p in payloads]
        lengths = np.array([len(f) for f in frames], np.int64)
        self.ends = np.cumsum(lengths)
        self.starts = self.ends - lengths
        self.data = np.frombuffer(b"".join(frames), np.uint8).copy()
        self.diffs = diffs
        self.frames = len(frames)


@njit(cache=True, _nrt=False)
def encrypt(ssl_p, wbio, data, starts, ends, record_bytes, out):
    """Each frame as its own TLS record (``record_bytes`` > 0: consecutive frames share a
    record up to that size) into the memory BIO ``wbio``, drained into ``out`` as it goes;
    the ciphertext's length (-1: a write failed)."""
    n = 0
    i = 0
    while i < starts.shape[0]:
        j = i + 1
        while j < starts.shape[0] and ends[j] - starts[i] <= record_bytes:
            j += 1
        if tls_write(ssl_p, data, starts[i], ends[j - 1] - starts[i]) <= 0:
            return -1
        i = j
        while True:
            r = bio_read(wbio, out, n, out.shape[0] - n)
            if r <= 0:
                break
            n += r
    return n


@njit(cache=True, _nrt=False)
def drain(sock, rbuf, frag, st, ps, sy, em, md, warm, dec, frames, budget_ns):
    """``feed_once`` until ``frames`` frames were taken: ns from the cycle that read the
    first bytes to the end of the last one; -1 if the stream broke or the budget ran out."""
    s = st[0]
    t0 = 0
    t_end = monotonic_ns() + budget_ns
    while s.frames < frames:
        t = monotonic_ns()
        if t > t_end or s.eof != 0 or s.ctrl_op != 0:
            return -1
        w = feed_once(sock, rbuf, frag, st, ps, sy, em, md, warm, dec)
        if w > 0 and t0 == 0:
            t0 = t
        elif w == 0 and t0 == 0:
            sched_yield()  # before the stream (untimed): let the producer run
    return monotonic_ns() - t0


def _produce(ls: socket.socket, stream: Stream, cert: str, key: str, rounds: int,
             record_bytes: int) -> None:
    """Producer process: per connection, the mode byte, then the whole stream at once."""
    out = np.zeros(stream.data.shape[0] + 64 * stream.frames + (1 << 16), np.uint8)
    for _ in range(rounds):
        sock, _ = ls.accept()
        sock.settimeout(60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = None
        if sock.recv(1) == bytes([TLS]):
            with server_context(cert, key) as ctx:
                conn = ctx.accept(sock, 10)
            n = encrypt(conn.ssl, conn.memory_bio(read=False), stream.data, stream.starts,
                        stream.ends, record_bytes, out)
            if n < 0:
                raise RuntimeError("producer: SSL_write into the memory BIO failed")
            payload = memoryview(out)[:n]
        else:
            payload = memoryview(stream.data)
        sock.setblocking(True)
        sock.sendall(payload)
        sock.recv(1)  # the consumer closes when it has read it all
        (conn or sock).close()


def _consume(mode: int, port: int, stream: Stream, ca_file: str, md: Ring,
             suites: str = "") -> dict:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(bytes([mode]))
    conn = None
    ssl_p = 0
    cipher = ""
    if mode == TLS:
        with client_context(ca_file) as ctx:
            if suites and ctx.lib.SSL_CTX_set_ciphersuites(ctx.ctx, suites.encode()) != 1:
                raise ValueError(f"--ciphersuites {suites}: not accepted by OpenSSL")
            conn = ctx.connect(sock, "localhost", 10)
        ssl_p = conn.ssl
        cipher = conn.cipher
    sock.setblocking(False)
    try:
        core = FeedCore(stream.symbols)
        st = new_state()
        size = cfgmod.defaults("feed")["recv_buffer"]
        rbuf, frag = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
        view = md.view()
        snap = stream.snapshot
        if not inject(snap, 0, snap.shape[0], time.monotonic_ns(), 0, core.parse, core.syms,
                      core.emit, view, st):
            raise RuntimeError("snapshot not published")
        ns = drain(Sock(sock.fileno(), ssl_p), rbuf, frag, st, core.parse, core.syms,
                   core.emit, view, MW.feed_state(0, core.stats.shape[0]),
                   sbe.new_decoder(stream.symbols), stream.frames, BUDGET_NS)
        s = st[0]
        applied = int(core.sync[0]["applied"])
        if ns <= 0 or s["proto_errors"] or core.stats[M_REJECTED] or applied != stream.diffs:
            raise RuntimeError(f"{'TLS' if mode else 'plain'} round broke: ns {ns}, frames "
                               f"{s['frames']}/{stream.frames}, proto errors "
                               f"{s['proto_errors']}, rejected {core.stats[M_REJECTED]}, "
                               f"applied {applied}/{stream.diffs}")
        return {"ns": int(ns), "frames": int(s["frames"]), "bytes": int(stream.data.shape[0]),
                "applied": applied, "cipher": cipher}
    finally:
        (conn or sock).close()


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Interleaved rounds; (rows, extra) for ``emit``."""
    stream = Stream(args.diffs, args.small, args.seed)
    ca = TestCA(tempfile.mkdtemp(prefix="hft-bench-tls-md-"))
    inst = Instance.create(f"benchtlsmd{os.getpid()}")
    ls = socket.create_server(("127.0.0.1", 0))
    ls.settimeout(60)
    proc = None
    try:
        cert = ca.issue(("localhost",))
        # no gating consumer: the ring never pushes back, the feed's publish is still real
        md = Ring.create(inst, MD_RING, MD_STREAM, MD_EVENT, 1 << 16)
        md.claim_producer()
        proc = CTX.Process(target=_produce, args=(ls, stream, str(cert.cert_file),
                                                  str(cert.key_file), 2 * args.md_rounds,
                                                  min(args.record_bytes, MAX_RECORD)),
                           daemon=True)
        proc.start()
        port = ls.getsockname()[1]
        got: dict[int, list[dict]] = {PLAIN: [], TLS: []}
        for _ in range(args.md_rounds):
            for mode in (PLAIN, TLS):
                got[mode].append(_consume(mode, port, stream, str(ca.ca_file), md,
                                          args.ciphersuites))
        proc.join(30)
    finally:
        if proc is not None and proc.is_alive():
            proc.kill()
        ls.close()
        inst.destroy()
        ca.cleanup()
    ratios = [t["frames"] / t["ns"] / (p["frames"] / p["ns"])
              for p, t in zip(got[PLAIN], got[TLS], strict=True)]
    rows = []
    for mode, name in ((PLAIN, "plain ws:// (recv)"), (TLS, "TLS 1.3 wss:// (SSL_read)")):
        ns = np.array([r["ns"] for r in got[mode]], np.float64)
        med = float(np.median(ns))
        rows.append({"path": name, "rounds": len(ns), "frames/s": stream.frames / med * 1e9,
                     "ns/frame": med / stream.frames,
                     "MB/s": stream.data.shape[0] / med * 1e3,
                     "best ns/frame": float(ns.min()) / stream.frames})
    med = float(np.median(ratios))
    extra = {"md_tls_vs_plain_throughput": {
        "tls": got[TLS][0]["cipher"],
        "records": "one per frame" if args.record_bytes <= 0 else
                   f"frames packed up to {min(args.record_bytes, MAX_RECORD)} B",
        "frames_per_round": stream.frames,
        "depth_diffs_per_round": stream.diffs,
        "bytes_per_round": int(stream.data.shape[0]),
        "paired_tls_over_plain_rate_median": round(med, 3),
        "paired_ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "tls_cost_of_md_throughput": f"{(1 - med) * 100:.1f} %",
        "target": "TLS costs at most 20 % of md throughput"}}
    return rows, extra


def main(args: argparse.Namespace) -> int:
    rows, extra = run(args)
    emit("tls_md: md frames through feed_once, TLS vs plain (loopback)", rows, args.json, extra)
    return 0
