"""What an idle gap costs on this host, and what warming buys back: the case for warm_us.

An order goes out a few times a second; between two, the host runs other things. This
measures, pinned to one core, the same work after different idle gaps (a jitted spin on
the clock, no syscalls), each with and without a dry pass every 50 us during the gap:

1. code: four FIX NewOrderSingle encodes (``pipeline.fix.codec``), warmed by doing the
   same encodes into scratch;
2. kernel: one 200-byte loopback TCP send() to a peer busy-polling on another core,
   warmed by a send to ourselves over a private connection (``orders.warm.WarmLink``).

The back-to-back row (code) and the 200 us row (kernel) are the references in the same
run. ``hft bench idle [--json]``.
"""

from __future__ import annotations

import argparse
import os
import socket

import numpy as np
from numba import njit

from bench._report import emit
from bench.fix import GRID, encode_many
from bench.loopback import CTX, _receiver
from pipeline.fix.sockio import sock_recv, sock_send
from pipeline.orders.warm import WarmLink
from pipeline.runtime.clock import monotonic_ns

WARM_EVERY_NS = 50_000
CODE_GAPS_NS = (0, 1_000_000, 10_000_000)
SEND_GAPS_NS = (200_000, 20_000_000)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", type=int, default=200, help="timed calls per row (at most)")


@njit(cache=True)
def _encodes_after_gaps(buf, grid, gap_ns, warm, out):
    """``out[i]``: ns for four encodes after a ``gap_ns`` spin (``warm``: encodes into
    the same buffer every 50 us of it)."""
    for i in range(out.shape[0]):
        t_end = monotonic_ns() + gap_ns
        last = monotonic_ns()
        while monotonic_ns() < t_end:
            if warm and monotonic_ns() - last >= WARM_EVERY_NS:
                encode_many(buf, 4, grid)
                last = monotonic_ns()
        t = monotonic_ns()
        encode_many(buf, 4, grid)
        out[i] = monotonic_ns() - t


@njit(cache=True)
def _sends_after_gaps(fd, buf, gap_ns, tx, rx, scratch, out):
    """``out[i]``: ns for one send() after a ``gap_ns`` spin (``tx >= 0``: a send to
    ourselves on the private link every 50 us of it, drained from ``rx``)."""
    for i in range(out.shape[0]):
        t_end = monotonic_ns() + gap_ns
        last = monotonic_ns()
        while monotonic_ns() < t_end:
            if tx >= 0 and monotonic_ns() - last >= WARM_EVERY_NS:
                sock_send(tx, buf, 0, 200)
                sock_recv(rx, scratch, 0, scratch.shape[0])
                last = monotonic_ns()
        t = monotonic_ns()
        sock_send(fd, buf, 0, 200)
        out[i] = monotonic_ns() - t


def _row(measure: str, t: np.ndarray) -> dict:
    return {"measure": measure, "p50_ns": float(np.percentile(t, 50)),
            "p99_ns": float(np.percentile(t, 99)), "samples": len(t)}


def _samples(gap_ns: int, most: int) -> int:
    return max(20, min(most, int(4e9 // max(gap_ns, 1))))  # ~4 s a row at most


def code_rows(most: int) -> list[dict]:
    buf = np.zeros(1 << 12, np.uint8)
    _encodes_after_gaps(buf, GRID, 0, False, np.zeros(10, np.int64))  # compile, warm up
    rows = []
    for gap in CODE_GAPS_NS:
        for warm in ((False,) if gap == 0 else (False, True)):
            out = np.zeros(_samples(gap, most), np.int64)
            _encodes_after_gaps(buf, GRID, gap, warm, out)
            how = "back to back (reference)" if gap == 0 else \
                f"after {gap / 1e6:g} ms idle" + (", warmed every 50 us" if warm else "")
            rows.append(_row(f"4 FIX encodes, {how}", out))
    return rows


def send_rows(most: int, cores: list[int]) -> list[dict]:
    listener = socket.create_server(("127.0.0.1", 0))
    peer = CTX.Process(target=_receiver, args=(listener, cores[1], "spin"), daemon=True)
    peer.start()
    link = WarmLink()
    s = socket.create_connection(listener.getsockname())
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        buf, scratch = np.full(256, ord("x"), np.uint8), np.zeros(1 << 14, np.uint8)
        tx, rx = link.fds()
        _sends_after_gaps(s.fileno(), buf, 0, -1, -1, scratch, np.zeros(50, np.int64))
        rows = []
        for gap in SEND_GAPS_NS:
            for warm in (False, True):
                out = np.zeros(_samples(gap, most), np.int64)
                _sends_after_gaps(s.fileno(), buf, gap, tx if warm else -1, rx, scratch, out)
                ref = " (reference)" if gap == SEND_GAPS_NS[0] and not warm else ""
                how = ", warm link every 50 us" if warm else ""
                rows.append(_row(f"loopback send(), after {gap / 1e6:g} ms idle{how}{ref}",
                                 out))
        return rows
    finally:
        s.close()
        link.close()
        peer.kill()
        peer.join(5)
        listener.close()


def main(args: argparse.Namespace) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    cores = cpus[-1:] + cpus[:1] if len(cpus) > 1 else cpus * 2
    old = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cores[0]})
        rows = code_rows(args.samples) + send_rows(args.samples, cores)
    finally:
        os.sched_setaffinity(0, old)
    emit("idle", rows, args.json)
    return 0
