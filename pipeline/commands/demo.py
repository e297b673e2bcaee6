"""``hft demo``: producer and consumer processes on a shared-memory ring, live figures.

Prints, every second, each consumer's record rate and one-way hop latency percentiles
(producer publish -> consumer read, CLOCK_MONOTONIC across processes), then a summary.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.probe import PROBE_RECORD

CONSUMERS = ("consumer1", "consumer2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=5.0, help="seconds to run")
    p.add_argument("--rate", type=int, default=1_000_000, help="records/s (0: unpaced)")
    p.add_argument("--batch", type=int, default=16, help="max records per publish")
    p.add_argument("--capacity", type=int, default=1 << 16, help="ring capacity (power of 2)")
    p.add_argument("--idle", default=None,
                   help="idle strategy (default: backoff on <= 3 cores, busy_spin above)")
    p.add_argument("--instance", default=f"demo{os.getpid()}", help="instance name")


def host_layout(n_cpus: int) -> tuple[list[int], str]:
    """Cores for producer, consumer1, consumer2, and the idle strategy that fits the host."""
    cpus = sorted(os.sched_getaffinity(0))[:n_cpus]
    if len(cpus) >= 4:  # a core each (leave cpus[0] for the OS)
        return cpus[1:4], "busy_spin"
    if len(cpus) >= 2:  # two consumers share the second core: they must not spin
        return [cpus[0], cpus[1], cpus[1]], "backoff"
    return [cpus[0]] * 3, "backoff"


def interval_stats(h: np.ndarray, previous: np.ndarray) -> dict:
    """Percentiles of what was recorded since ``previous`` (both full histogram copies)."""
    delta = h - previous
    delta[2], delta[3] = h[2], h[3]  # min/max are not differences: keep the running ones
    return histogram.percentiles(delta)


def main(args: argparse.Namespace) -> int:
    cores, idle_default = host_layout(os.cpu_count() or 1)
    idle = args.idle or idle_default
    inst = Instance.create(args.instance)
    children: list[Child] = []
    try:
        counters = Counters.create(inst)
        Ring.create(inst, "probe", "probe", PROBE_RECORD, args.capacity, gating=CONSUMERS)
        hists = {c: counters.histogram(f"hop.{c}") for c in CONSUMERS}
        common = ["--instance", inst.name, "--idle", idle]
        for name, core in zip(CONSUMERS, cores[1:], strict=True):
            children.append(Child(name, "procs.probe_consumer",
                                  common + ["--core", str(core), "--name", name]).start())
        producer = Child("probe_producer", "procs.probe_producer",
                         common + ["--core", str(cores[0]), "--rate", str(args.rate),
                                   "--batch", str(args.batch)])
        wait_running(counters, children)
        children.insert(0, producer.start())
        wait_running(counters, children)
        print(f"instance {inst.name}: producer on core {cores[0]}, consumers on cores "
              f"{cores[1]} and {cores[2]}, idle strategy {idle}, rate "
              f"{args.rate or 'unpaced'} records/s, batch <= {args.batch}")
        print(f"{'t':>5} {'consumer':<10} {'records/s':>12} {'p50 ns':>8} {'p99 ns':>8} "
              f"{'p99.9 ns':>9} {'errors':>6}")
        previous = {c: hists[c].copy() for c in CONSUMERS}
        last_count = {c: 0 for c in CONSUMERS}
        start = last = time.monotonic()
        while time.monotonic() - start < args.duration:
            time.sleep(max(0.0, min(1.0, start + args.duration - time.monotonic())))
            now = time.monotonic()
            values = counters.values()
            for c in CONSUMERS:
                snap = hists[c].copy()
                st = interval_stats(snap, previous[c])
                count = values[f"{c}.records"]
                rate = (count - last_count[c]) / (now - last)
                print(f"{now - start:5.1f} {c:<10} {rate:12,.0f} {st['p50']:8,.0f} "
                      f"{st['p99']:8,.0f} {st['p99.9']:9,.0f} {values[f'{c}.sequence_errors']:6}")
                previous[c], last_count[c] = snap, count
            last = now
        stop(children)
        children = []
        values = counters.values()
        print("summary:")
        for c in CONSUMERS:
            st = histogram.percentiles(hists[c])
            print(f"  {c}: {values[f'{c}.records']:,} records, sequence errors "
                  f"{values[f'{c}.sequence_errors']}, hop p50 {st['p50']:,.0f} ns, "
                  f"p99 {st['p99']:,.0f} ns, p99.9 {st['p99.9']:,.0f} ns, max {st['max']:,} ns")
        bad = sum(values[f"{c}.sequence_errors"] for c in CONSUMERS)
        return 1 if bad else 0
    finally:
        stop(children)
        inst.destroy()

