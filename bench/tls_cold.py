"""One order's send after an idle gap, TLS against plain: what the gateway's send() costs
when it runs a few times a second, and what the warm pass buys back (issue 13, open point
2: TLS added 6.7 us to tick-to-trade p50, all in ``SSL_write`` + ``send``).

Pinned to one core, one process: a 200-byte record (a NewOrderSingle's size) written with
``wire_send`` after a gap of ``--gap-ms`` (default 100 ms: the gateway's ~10 orders/s)
spent as the gateway's idle duty spends it: polling the session's socket
(``wire_recv``, EAGAIN) in a loop, and, in the warmed rows, a warm pass every
``--warm-us`` (the lowlat profile's 50 us) on the warm link (``orders.warm.WarmLink``):
either plain bytes (what the gateway did over TLS until now) or through the shadow TLS
session (``tls.shadow``, what it does now). Sessions are loopback TCP to a sink in this
process (drained after each sample, untimed), so the figures are the sender's own costs:
no peer process wakes. The rows are interleaved sample by sample (plain, TLS, ...) so a
noisy host spreads over all of them; the back-to-back rows (gap 0) are the hot reference.

Also reported: the TLS session's OpenSSL mode bits (``SSL_MODE_RELEASE_BUFFERS`` would
free and reallocate the record buffer on every write) and the record's ciphertext size
(one record, written by the socket BIO in one ``write()``).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import threading

import numpy as np
from numba import njit

from bench._report import emit
from pipeline.fix.sockio import sock_recv
from pipeline.orders.warm import WarmLink
from pipeline.runtime.clock import monotonic_ns
from pipeline.tls import openssl as O
from pipeline.tls.certs import TestCA
from pipeline.tls.client import client_context, server_context
from pipeline.tls.io import wire_recv, wire_send
from pipeline.tls.shadow import ShadowTls

MSG = 200

# rows: (name, TLS session, warm pass: None | "plain" | "shadow")
CASES = [("plain send(), no warm pass", False, None),
         ("plain send(), warm pass (plain bytes on the link)", False, "plain"),
         ("TLS SSL_write+send, no warm pass", True, None),
         ("TLS SSL_write+send, warm pass plain bytes (until now)", True, "plain"),
         ("TLS SSL_write+send, warm pass via shadow TLS (new)", True, "shadow")]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gap-ms", type=float, default=100.0, help="idle gap before each send")
    p.add_argument("--warm-us", type=float, default=50.0, help="warm pass period in the gap")
    p.add_argument("--samples", type=int, default=40, help="sends per row after a gap")


@njit(cache=True, _nrt=False)
def send_after_gap(fd, ssl_p, sink, msg, gap_ns, warm_ns, tx, warm_ssl, rx, scratch):
    """ns of one ``wire_send`` of ``msg`` after ``gap_ns`` of polling ``fd`` (and a warm
    pass on the link ``tx``/``rx`` every ``warm_ns``, if > 0); -1 if it did not all go.
    The sink's bytes are drained after the clock stopped."""
    t_end = monotonic_ns() + gap_ns
    last = 0
    while True:
        now = monotonic_ns()
        if now >= t_end:
            break
        wire_recv(fd, ssl_p, scratch, 0, 512)  # the idle duty's poll of its socket
        if warm_ns > 0 and now - last >= warm_ns:
            if wire_send(tx, warm_ssl, msg, 0, msg.shape[0]) > 0:
                sock_recv(rx, scratch, 512, scratch.shape[0] - 512)
            last = now
    t0 = monotonic_ns()
    r = wire_send(fd, ssl_p, msg, 0, msg.shape[0])
    t1 = monotonic_ns()
    while sock_recv(sink, scratch, 512, scratch.shape[0] - 512) > 0:
        pass
    return t1 - t0 if r == msg.shape[0] else -1


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as ls:
        a = socket.create_connection(ls.getsockname())
        b, _ = ls.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    return a, b


def _tls_session(ca: TestCA):
    """A TLS 1.3 client connection (ours) to a server in a thread of this process; the
    server's socket stays open as the sink (its records are drained raw)."""
    cert = ca.issue(("localhost",), stem="cold")
    a, b = _tcp_pair()
    box: dict = {}

    def serve() -> None:
        with server_context(str(cert.cert_file), str(cert.key_file)) as ctx:
            box["server"] = ctx.accept(b, 10)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with client_context(str(ca.ca_file)) as ctx:
        conn = ctx.connect(a, "localhost", 10)
    t.join(10)
    return conn, box["server"]


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    ca = TestCA()
    old = os.sched_getaffinity(0)
    plain_tx, plain_sink = _tcp_pair()
    conn, server = _tls_session(ca)
    link = WarmLink()
    shadow = ShadowTls(link.tx, link.rx)
    try:
        os.sched_setaffinity(0, {sorted(old)[-1]})
        warm_ssl = shadow.follow(conn.ssl)
        msg = np.frombuffer(bytes(range(MSG)), np.uint8).copy()
        scratch = np.zeros(1 << 16, np.uint8)
        tx, rx = link.fds()
        sessions = {False: (plain_tx.fileno(), 0, plain_sink.fileno()),
                    True: (conn.fd, conn.ssl, server.fd)}
        # the ciphertext of one record: what the sink receives for one tls write
        n_raw = 0
        send_after_gap(*sessions[True], msg, 0, 0, tx, 0, rx, scratch)  # compile
        wire_send(conn.fd, conn.ssl, msg, 0, MSG)
        select.select([server.sock], [], [], 10)
        n_raw = len(server.sock.recv(1 << 16))
        gap, warm_ns = int(args.gap_ms * 1e6), int(args.warm_us * 1e3)
        got: dict[str, list[int]] = {name: [] for name, _, _ in CASES}
        hot = {False: [], True: []}
        for _ in range(args.samples):
            for name, tls, how in CASES:
                ws = warm_ssl if how == "shadow" else 0
                t = send_after_gap(*sessions[tls], msg, gap, warm_ns if how else 0, tx, ws,
                                   rx, scratch)
                if t < 0:
                    raise RuntimeError(f"{name}: the record did not all go")
                got[name].append(int(t))
            for tls in (False, True):  # back to back: hot (the first few warm it up)
                for k in range(20):
                    t = int(send_after_gap(*sessions[tls], msg, 0, 0, tx, 0, rx, scratch))
                    if k >= 5:
                        hot[tls].append(t)
        rows = [_row(f"{'TLS SSL_write+send' if tls else 'plain send()'}, back to back "
                     "(hot reference)", 0, np.array(hot[tls]))
                for tls in (False, True)]
        rows += [_row(name, args.gap_ms, np.array(got[name])) for name, _, _ in CASES]
        mode = int(O.lib().SSL_ctrl(conn.ssl, O.SSL_CTRL_MODE, 0, None))
        extra = {"tls": f"{conn.version} {conn.cipher}, shadow {shadow.version} "
                        f"{shadow.cipher}",
                 "record_bytes": {"plaintext": MSG, "ciphertext": n_raw},
                 "ssl_mode": f"{mode:#x}",
                 "release_buffers": bool(mode & O.SSL_MODE_RELEASE_BUFFERS),
                 "warm_pass_every_us": args.warm_us}
        return rows, extra
    finally:
        os.sched_setaffinity(0, old)
        shadow.close()
        link.close()
        conn.close()
        server.close()
        plain_tx.close()
        plain_sink.close()
        ca.cleanup()


def _row(measure: str, gap_ms: float, ns: np.ndarray) -> dict:
    return {"measure": measure, "gap_ms": gap_ms, "p50_ns": float(np.percentile(ns, 50)),
            "p99_ns": float(np.percentile(ns, 99)), "samples": int(ns.size)}


def main(args: argparse.Namespace) -> int:
    rows, extra = run(args)
    emit("tls_cold: one 200-byte send after an idle gap, TLS vs plain", rows, args.json, extra)
    return 0
