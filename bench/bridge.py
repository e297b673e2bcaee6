"""Bridge benchmark: a ring hop over ``hft bridge`` (Aeron UDP on loopback) against its
references, all in one run on the same host.

- bridged hop: a jitted producer publishes 64-byte order intents into A's ``orders`` ring
  (``t_origin_ns`` = CLOCK_MONOTONIC just before publish); the real ``procs.bridge`` sender
  forwards them through the media driver to the real receiver, the producer of B's
  ``orders`` ring; a consumer process on B's ring takes ``now - t_origin_ns`` as it sees
  each record. One host, one clock: a one-way figure, no halving.
- local ring hop: the same producer and consumer on one local ring (the floor the bridge
  adds to).
- bare Aeron: a ping-pong between two processes through the same driver and the same C
  client calls (``aeron_offer``/``aeron_poll`` from jitted loops), RTT / 2; the same two
  processes one-way at the bridged hop's pace on the shared clock (the like-for-like
  reference); its throughput is messages of the bridge's own size (header + one MTU's
  worth of records) offered flat out, counted as records.
Latency is taken at a paced rate (``--interval-us``), throughput flat out. Every waiting
party uses the same idle strategy (``--idle``, default ``yield``: on 2 cores five processes
and the driver share two cores, so nobody may busy-spin); the driver itself backs off.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import time
import uuid

import numpy as np
from numba import njit

from bench._report import emit
from pipeline.bridge import aeron
from pipeline.bridge.calls import aeron_offer, aeron_poll, new_stage, stage_fragment
from pipeline.bridge.driver import start_driver, stop_driver
from pipeline.bridge.rings import CONSUMER, RINGS
from pipeline.bridge.sender import max_records
from pipeline.metrics.counters import Counters
from pipeline.runtime import idle as I
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.libc import nanosleep
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.bridge import HEADER_BYTES

CTX = mp.get_context("spawn")
ORDERS = RINGS["orders"]
READER = "bench"
DEFAULT_MTU = 1408  # Aeron's default (the channels here do not set mtu=)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency", type=int, default=20_000, help="paced records for latency")
    p.add_argument("--interval-us", type=float, default=50.0,
                   help="pause between two latency records")
    p.add_argument("--records", type=int, default=500_000, help="records for throughput")
    p.add_argument("--pingpongs", type=int, default=20_000, help="bare Aeron round trips")
    p.add_argument("--idle", default="yield", help="idle strategy of every waiting party")


# ---------------------------------------------------------------------------- ring hop
def _get(conn, timeout: float):
    """A child's answer over a pipe (a pipe, not a Queue: a Queue's feeder thread needs the
    GIL, which the child's jitted loop holds right after ``send``)."""
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer from the benchmark child in {timeout:.0f}s")
    return conn.recv()


@njit(cache=True)
def produce(ctl, stamps, records, n, interval_ns, strategy):
    """Publish ``n`` order intents stamped with the clock, ``interval_ns`` apart (0: flat
    out, idling while the ring is full)."""
    mask = ctl[R.MASK]
    for i in range(n):
        start = R.try_claim(ctl, 1)
        while start < 0:
            I.idle(strategy, 0)
            start = R.try_claim(ctl, 1)
        rec = records[start & mask]
        rec["cl_ord_id"] = i
        rec["t_origin_ns"] = monotonic_ns()
        R.publish(ctl, stamps, start + 1)
        if interval_ns > 0:
            nanosleep(interval_ns)


@njit(cache=True)
def consume(ctl, stamps, records, slot, lat, total, strategy):
    """Take ``total`` records; the latency of the first ``len(lat)``; returns the clock when
    the last one was seen."""
    mask = ctl[R.MASK]
    got = 0
    while got < total:
        n = R.poll(ctl, stamps, slot, 256)
        I.idle(strategy, n)
        if n == 0:
            continue
        now = monotonic_ns()
        pos = R.cursor(ctl, slot)
        for i in range(n):
            if got + i < lat.shape[0]:
                lat[got + i] = now - records[(pos + i) & mask]["t_origin_ns"]
        R.release(ctl, slot, pos + n)
        got += n
    return monotonic_ns()


def _reader(instance: str, ring: str, n_lat: int, total: int, idle_name: str, out) -> None:
    inst = Instance.attach(instance)
    r = Ring.attach(inst, ring, ORDERS.stream, ORDERS.dtype)
    lat = np.zeros(n_lat, np.int64)
    slot = r.join(READER)
    strategy = I.from_name(idle_name)
    consume(r.ctl, r.stamps, r.records, slot, lat, 0, strategy)  # compile before "ready"
    out.send("ready")
    t_last = consume(r.ctl, r.stamps, r.records, slot, lat, total, strategy)
    out.send((lat, t_last))


def ring_hop(src: Ring, dst_instance: str, dst_ring: str, args) -> tuple[np.ndarray, float]:
    """(one-way latencies ns, throughput records/s) from ``src`` to ``dst_ring``'s reader."""
    strategy = I.from_name(args.idle)
    produce(src.ctl, src.stamps, src.records, 0, 0, strategy)  # compile before timing
    q, theirs = CTX.Pipe()
    child = CTX.Process(target=_reader, args=(dst_instance, dst_ring, args.latency,
                                              args.latency + args.records, args.idle, theirs))
    child.start()
    assert _get(q, 120) == "ready"
    produce(src.ctl, src.stamps, src.records, args.latency, int(args.interval_us * 1000),
            strategy)
    t0 = time.monotonic_ns()
    produce(src.ctl, src.stamps, src.records, args.records, 0, strategy)
    lat, t_last = _get(q, 300)
    child.join(30)
    warm = len(lat) // 10
    return lat[warm:], args.records / ((t_last - t0) / 1e9)


# ---------------------------------------------------------------------------- bare Aeron
@njit(cache=True)
def _await_message(sub, handler, clientd, stage_words, strategy):
    while stage_words[0] == 0:
        k = aeron_poll(sub, handler, clientd, 1)
        I.idle(strategy, k)
    return stage_words[0]


@njit(cache=True)
def _offer(pub, buf, start, n, strategy):
    while aeron_offer(pub, buf, start, n) < 0:
        I.idle(strategy, 0)


@njit(cache=True)
def aeron_ping(pub, sub, handler, clientd, stage_words, msg, rtts, strategy):
    words = msg.view(np.int64)
    for i in range(rtts.shape[0]):
        t0 = monotonic_ns()
        words[0] = t0
        _offer(pub, msg, 0, msg.shape[0], strategy)
        _await_message(sub, handler, clientd, stage_words, strategy)
        stage_words[0] = 0
        rtts[i] = monotonic_ns() - t0


@njit(cache=True)
def aeron_pong(pub, sub, handler, clientd, stage, stage_words, n, strategy):
    for _ in range(n):
        length = _await_message(sub, handler, clientd, stage_words, strategy)
        _offer(pub, stage, 8, length, strategy)
        stage_words[0] = 0


@njit(cache=True)
def aeron_flood(pub, msg, n, strategy):
    for _ in range(n):
        _offer(pub, msg, 0, msg.shape[0], strategy)


@njit(cache=True)
def aeron_drain(sub, handler, clientd, stage_words, n, strategy):
    for _ in range(n):
        _await_message(sub, handler, clientd, stage_words, strategy)
        stage_words[0] = 0
    return monotonic_ns()


@njit(cache=True)
def aeron_paced(pub, msg, n, interval_ns, strategy):
    """Offer ``n`` messages stamped with the clock, ``interval_ns`` apart."""
    words = msg.view(np.int64)
    for _ in range(n):
        words[0] = monotonic_ns()
        _offer(pub, msg, 0, msg.shape[0], strategy)
        nanosleep(interval_ns)


@njit(cache=True)
def aeron_one_way(sub, handler, clientd, stage_words, lat, strategy):
    """``now - stamp`` of each of ``len(lat)`` messages, as they are polled."""
    for i in range(lat.shape[0]):
        _await_message(sub, handler, clientd, stage_words, strategy)
        lat[i] = monotonic_ns() - stage_words[1]  # the stamp: the message's first word
        stage_words[0] = 0


def _ponger(aeron_dir: str, ports: tuple[int, int], n: int, n_flood: int, n_paced: int,
            idle_name: str, out) -> None:
    client = aeron.Client(aeron_dir)
    sub = client.add_subscription(aeron.udp_channel(ports[0]), 101)
    pub = client.add_publication(aeron.udp_channel(ports[1]), 102)
    stage, words = new_stage()
    strategy = I.from_name(idle_name)
    out.send("ready" if aeron.wait_connected(pub, 30) else "not connected")
    aeron_pong(pub.handle, sub.handle, stage_fragment.address, stage.ctypes.data, stage,
               words, n, strategy)
    out.send(aeron_drain(sub.handle, stage_fragment.address, stage.ctypes.data, words,
                         n_flood, strategy))
    lat = np.zeros(n_paced, np.int64)
    aeron_one_way(sub.handle, stage_fragment.address, stage.ctypes.data, words, lat, strategy)
    out.send(lat)
    client.close()


def bare_aeron(aeron_dir: str, message_bytes: int, records_per_message: int,
               args) -> tuple[np.ndarray, float, np.ndarray]:
    """(RTT/2 ns, records/s in bridge-sized messages, one-way ns of paced 64-byte messages
    on a shared clock: the bridged hop's method)."""
    ports = (aeron.free_udp_port(), aeron.free_udp_port())
    n_flood = max(1, args.records // records_per_message)
    warm = max(100, args.pingpongs // 10)
    q, theirs = CTX.Pipe()
    child = CTX.Process(target=_ponger, args=(aeron_dir, tuple(ports), warm + args.pingpongs,
                                              n_flood, args.latency, args.idle, theirs))
    child.start()
    client = aeron.Client(aeron_dir)
    try:
        pub = client.add_publication(aeron.udp_channel(ports[0]), 101)
        sub = client.add_subscription(aeron.udp_channel(ports[1]), 102)
        assert _get(q, 120) == "ready" and aeron.wait_connected(pub, 30)
        stage, words = new_stage()
        strategy = I.from_name(args.idle)
        rtts = np.zeros(warm + args.pingpongs, np.int64)
        aeron_ping(pub.handle, sub.handle, stage_fragment.address, stage.ctypes.data, words,
                   np.zeros(64, np.uint8), rtts, strategy)
        msg = np.zeros(message_bytes, np.uint8)
        t0 = time.monotonic_ns()
        aeron_flood(pub.handle, msg, n_flood, strategy)
        t_last = _get(q, 300)
        aeron_paced(pub.handle, np.zeros(64, np.uint8), args.latency,
                    int(args.interval_us * 1000), strategy)
        one_way = _get(q, 300)
        child.join(30)
    finally:
        client.close()
    return (rtts[warm:] // 2, n_flood * records_per_message / ((t_last - t0) / 1e9),
            one_way[len(one_way) // 10:])


# ---------------------------------------------------------------------------- run
def _row(path: str, method: str, lat: np.ndarray, rate: float, note: str = "") -> dict:
    p50, p99, p999 = np.percentile(lat, [50, 99, 99.9]) / 1000
    return {"path": path, "method": method, "p50_us": float(p50), "p99_us": float(p99),
            "p99.9_us": float(p999), "records_per_s": float(rate), "note": note}


def main(args: argparse.Namespace) -> int:
    tag = f"bb{os.getpid()}{uuid.uuid4().hex[:4]}"
    aeron_dir = f"/dev/shm/{tag}-aeron"
    driver = start_driver(aeron_dir)
    a, b = Instance.create(f"{tag}a"), Instance.create(f"{tag}b")
    children: list[Child] = []
    try:
        ca, cb = Counters.create(a), Counters.create(b)
        a_orders = Ring.create(a, "orders", ORDERS.stream, ORDERS.dtype, 4096,
                               gating=(CONSUMER,))
        Ring.create(b, "orders", ORDERS.stream, ORDERS.dtype, 4096, gating=(READER,))
        local = Ring.create(a, "local", ORDERS.stream, ORDERS.dtype, 4096, gating=(READER,))
        chan = aeron.udp_channel()
        common = ["--ring", "orders", "--channel", chan, "--stream-id", "7",
                  "--aeron-dir", aeron_dir, "--idle", args.idle]
        recv = Child("bridge_recv_orders", "procs.bridge",
                     ["recv", "--instance", b.name, *common]).start()
        children.append(recv)
        wait_running(cb, [recv], timeout=120)
        send = Child("bridge_send_orders", "procs.bridge",
                     ["send", "--instance", a.name, *common]).start()
        children.append(send)
        wait_running(ca, [send], timeout=120)

        local_lat, local_rate = ring_hop(local, a.name, "local", args)
        bridged_lat, bridged_rate = ring_hop(a_orders, b.name, "orders", args)
        sent = ca.values()
        # what the sender packs with Aeron's default MTU: 1408 minus the 32-byte frame header
        per_msg = max_records(DEFAULT_MTU - 32, ORDERS.dtype.itemsize)
        aeron_lat, aeron_rate, aeron_one = bare_aeron(
            aeron_dir, HEADER_BYTES + per_msg * ORDERS.dtype.itemsize, per_msg, args)
        msgs = sent.get("bridge.send.orders.messages", 0)
        recs = sent.get("bridge.send.orders.records", 0)
        rows = [
            _row("local ring (A -> A)", "one-way, shared clock", local_lat, local_rate),
            _row("bridged ring (A -> Aeron UDP -> B)", "one-way, shared clock", bridged_lat,
                 bridged_rate, f"{recs / max(msgs, 1):.1f} records/message"),
            _row("bare Aeron UDP ping-pong", "RTT / 2", aeron_lat, aeron_rate,
                 f"throughput in {per_msg}-record messages"),
            _row("bare Aeron UDP, paced", "one-way, shared clock", aeron_one, aeron_rate,
                 "64-byte messages at the bridged hop's pace"),
        ]
        extra = {
            "idle": args.idle, "record_bytes": ORDERS.dtype.itemsize,
            "latency_interval_us": args.interval_us,
            "bridged_p50_over_local": rows[1]["p50_us"] / max(rows[0]["p50_us"], 1e-9),
            "bridged_p50_over_bare_aeron_paced": rows[1]["p50_us"] / max(rows[3]["p50_us"],
                                                                         1e-9),
            "bridged_rate_over_bare_aeron": bridged_rate / max(aeron_rate, 1e-9),
            "bridge_counters": {k: v for k, v in (sent | cb.values()).items()
                                if k.startswith("bridge.")},
        }
        emit("bridge", rows, args.json, extra)
    finally:
        stop(list(reversed(children)))
        a.destroy()
        b.destroy()
        stop_driver(driver)
        shutil.rmtree(aeron_dir, ignore_errors=True)
    return 0
