"""One ring hop on a quiet path, by the consumer's idle strategy: what blocking buys.

A producer process publishes a stamped record every ``--gap-us`` (default 1000: about
what a default-profile hop sees between ticks); a consumer process reads it and records
publish -> read (CLOCK_MONOTONIC is one clock for all processes). The consumer idles with:

- backoff (the default before issue 16): its nanosleep park, doubling to 1 ms, ends on its
  own clock, so a record waits for it;
- block: backoff's spins and yields, then asleep on the ring's futex
  (``pipeline.transport.notify``): the publish wakes it;
- busy_spin: the floor; it owns a core.

Each on the other core and on the producer's core (the default profile has both kinds of
hop). Reported: p50/p99 of the hop, the consumer's CPU use (% of one core: user + system
time over the run) and the producer's FUTEX_WAKE calls. ``hft bench wake [--json]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import psutil
from numba import njit

from bench._report import emit
from pipeline.runtime import idle as I
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.libc import nanosleep
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.probe import PROBE_RECORD

CTX = mp.get_context("spawn")
STRATEGIES = ("backoff", "block", "busy_spin")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--records", type=int, default=2000, help="measured hops per row")
    p.add_argument("--gap-us", type=float, default=1000.0, help="time between two records")


@njit(cache=True)
def _publish_every(ring, n, gap_ns):
    """Publish ``n`` records stamped with the clock, ``gap_ns`` apart (sleeping between)."""
    mask = ring.records.shape[0] - 1
    for _ in range(n):
        nanosleep(gap_ns)
        start = R.try_claim(ring.ctl, 1)
        while start < 0:
            nanosleep(1000)
            start = R.try_claim(ring.ctl, 1)
        ring.records[start & mask].t_send_ns = monotonic_ns()
        R.publish(ring.ctl, ring.stamps, start + 1)


@njit(cache=True)
def _read_hops(ring, strategy, hops):
    """Read ``len(hops)`` records, idling with ``strategy``; ``hops[i]``: publish -> read."""
    mask = ring.records.shape[0] - 1
    pos = R.cursor(ring.ctl, ring.slot)
    end = pos + hops.shape[0]
    first = pos
    while pos < end:
        n = R.poll(ring.ctl, ring.stamps, ring.slot, 1)
        if n:
            hops[pos - first] = monotonic_ns() - ring.records[pos & mask].t_send_ns
            pos += 1
            R.release(ring.ctl, ring.slot, pos)
        I.idle(strategy, n)


def _consumer(instance: str, core: int, strategy: str, n: int, result) -> None:
    os.sched_setaffinity(0, {core})
    ring = Ring.attach(Instance.attach(instance), "hop", "probe", PROBE_RECORD)
    view = ring.view(ring.join("c"))
    hops = np.zeros(n, np.int64)
    idle = I.wait_on(I.from_name(strategy), view)
    _read_hops(view, I.busy_spin(), hops[:1])  # compile (the first record is not counted)
    cpu = psutil.Process().cpu_times()
    _read_hops(view, idle, hops)
    after = psutil.Process().cpu_times()
    result.put((hops, after.user + after.system - cpu.user - cpu.system))


def hop(cores: list[int], strategy: str, n: int, gap_ns: int) -> dict:
    """Producer here on ``cores[0]``, consumer on ``cores[1]``."""
    inst = Instance.create(f"benchwake{os.getpid()}")
    child = None
    try:
        ring = Ring.create(inst, "hop", "probe", PROBE_RECORD, 1024, gating=("c",))
        result = CTX.Queue()
        child = CTX.Process(target=_consumer, args=(inst.name, cores[1], strategy, n, result))
        child.start()
        os.sched_setaffinity(0, {cores[0]})
        view = ring.view()
        _publish_every(view, 1, gap_ns)
        while ring.consumer(0)["cursor"] < 1:  # compiled and read the first
            time.sleep(0.001)
        wakes = ring.wake_count()
        t0 = time.monotonic_ns()
        _publish_every(view, n, gap_ns)
        hops, cpu_s = result.get(timeout=120)
        wall = (time.monotonic_ns() - t0) / 1e9
        child.join(30)
        return {"p50": float(np.percentile(hops, 50)), "p99": float(np.percentile(hops, 99)),
                "n": n, "core_pct": round(100 * cpu_s / wall, 2),
                "wakes": ring.wake_count() - wakes}
    finally:
        if child is not None and child.is_alive():
            child.kill()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        inst.destroy()


def main(args: argparse.Namespace) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    placements = {"other core": cpus[:2] if len(cpus) > 1 else cpus * 2,
                  "same core": [cpus[0], cpus[0]]}
    rows = []
    for where, cores in placements.items():
        for strategy in STRATEGIES:
            if strategy == "busy_spin" and cores[0] == cores[1]:
                continue  # a spinner on the producer's core starves it
            h = hop(cores, strategy, args.records, int(args.gap_us * 1000))
            rows.append({"consumer": f"{strategy}, {where}", "p50_ns": h["p50"],
                         "p99_ns": h["p99"], "samples": h["n"],
                         "consumer_core_pct": h["core_pct"], "futex_wakes": h["wakes"]})
    emit("wake", rows, args.json, {"gap_us": args.gap_us})
    return 0
