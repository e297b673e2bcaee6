"""Reference for the order leg: what one loopback TCP send() costs, by what the peer does.

A send() on loopback runs the receiver's TCP input inline and, when the receiving process
sleeps in epoll/recv, wakes it: on a VM that wake-up (an IPI through the hypervisor) is
most of the call. The gateway's tick-to-trade ends when send() returns, so this is the
floor under it with a venue that sleeps (the simulator is an asyncio process). Measured
from jitted code pinned to one core, peer pinned to another (or the same) core, 200 us
between sends like a quiet market.

``hft bench loopback [--json]``; ``bench/e2e.py`` runs it as a reference in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import time

import numpy as np
from numba import njit

from bench._report import emit
from pipeline.fix.sockio import sock_send
from pipeline.runtime.clock import monotonic_ns

CTX = mp.get_context("spawn")
PEERS = {  # name -> (what the receiver does, on which core relative to the sender)
    "sleeping peer, other core": ("block", "other"),
    "sleeping peer, same core": ("block", "same"),
    "spinning peer, other core": ("spin", "other"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sends", type=int, default=3000, help="measured sends per peer")


@njit(cache=True)
def timed_sends(fd, buf, size, gap_ns, out):
    """``out[i]`` = ns spent in the i-th send() of ``size`` bytes; ``gap_ns`` spin between."""
    for i in range(out.shape[0]):
        t = monotonic_ns()
        sock_send(fd, buf, 0, size)
        out[i] = monotonic_ns() - t
        while monotonic_ns() - t < gap_ns:
            pass


def _receiver(listener: socket.socket, core: int, mode: str) -> None:
    os.sched_setaffinity(0, {core})
    conn, _ = listener.accept()
    if mode == "spin":
        conn.setblocking(False)
    while True:
        try:
            if not conn.recv(1 << 16):
                return
        except BlockingIOError:
            continue


def send_cost(mode: str, where: str, sends: int, cores: list[int]) -> np.ndarray:
    """Send times (ns) to a receiver process that blocks in recv or spins on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    peer_core = cores[0] if where == "same" else cores[1]
    child = CTX.Process(target=_receiver, args=(listener, peer_core, mode), daemon=True)
    child.start()
    old = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cores[0]})
        s = socket.create_connection(listener.getsockname())
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        buf = np.full(256, ord("x"), np.uint8)
        timed_sends(s.fileno(), buf, 200, 200_000, np.zeros(200, np.int64))  # warm up
        out = np.zeros(sends, np.int64)
        timed_sends(s.fileno(), buf, 200, 200_000, out)
        s.close()
        return out
    finally:
        os.sched_setaffinity(0, old)
        child.join(5)
        if child.is_alive():
            child.kill()
        listener.close()


def rows(sends: int) -> list[dict]:
    cpus = sorted(os.sched_getaffinity(0))
    cores = cpus[-1:] + cpus[:1] if len(cpus) > 1 else cpus * 2  # sender on the last core
    out = []
    for name, (mode, where) in PEERS.items():
        t = send_cost(mode, where, sends, cores)
        out.append({"measure": f"reference: loopback send() of 200 B, {name}",
                    "p50_ns": float(np.percentile(t, 50)), "p99_ns": float(np.percentile(t, 99)),
                    "p99.9_ns": float(np.percentile(t, 99.9)), "max_ns": int(t.max()),
                    "samples": len(t)})
        time.sleep(0.1)
    return out


def main(args: argparse.Namespace) -> int:
    emit("loopback", rows(args.sends), args.json)
    return 0
