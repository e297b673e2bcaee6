"""Monitor benchmark: does watching a pipeline slow it? And what does a refresh cost?

A probe producer and a gating consumer run in their own processes (backoff idle, as on a
2-core host) at a fixed rate. Phases alternate: no monitor (the reference) and a monitor
in this process refreshing every ``--refresh`` seconds (snapshot + rich render +
Prometheus text, everything ``hft monitor`` does). Each phase reports the consumer's
throughput and hop-latency percentiles recorded during that phase alone, and the monitor
phases the cost of one refresh. Ratios against the reference phases of the same run are
what to read; on a 2-core host the monitor also competes for CPU time, which is included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench._report import emit
from pipeline.commands.demo import interval_stats
from pipeline.metrics.counters import Counters
from pipeline.monitor.top import Monitor
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.probe import PROBE_RECORD


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=3.0, help="length of each phase")
    p.add_argument("--rounds", type=int, default=2, help="reference/monitor phase pairs")
    p.add_argument("--rate", type=int, default=100_000, help="records/s")
    p.add_argument("--refresh", type=float, default=0.1, help="monitor refresh interval (s)")


def phase(counters: Counters, hist, seconds: float, mon: Monitor | None,
          refresh: float) -> dict:
    before, count0 = hist.copy(), counters.values()["consumer1.records"]
    costs = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if mon is not None:
            c0 = time.perf_counter()
            mon.render(mon.snapshot())
            mon.metrics_text()
            costs.append(time.perf_counter() - c0)
        time.sleep(refresh if mon is not None else seconds / 10)
    elapsed = time.monotonic() - t0
    st = interval_stats(hist.copy(), before)
    return {"phase": "monitor" if mon else "reference",
            "records_per_s": (counters.values()["consumer1.records"] - count0) / elapsed,
            "hop_p50_ns": st["p50"], "hop_p99_ns": st["p99"], "hop_p99.9_ns": st["p99.9"],
            "refresh_ms": statistics.median(costs) * 1e3 if costs else None}


def main(args: argparse.Namespace) -> int:
    inst = Instance.create(f"benchmon{os.getpid()}")
    children: list[Child] = []
    try:
        counters = Counters.create(inst)
        Ring.create(inst, "probe", "probe", PROBE_RECORD, 1 << 16, gating=("consumer1",))
        hist = counters.histogram("hop.consumer1")
        common = ["--instance", inst.name, "--idle", "backoff"]
        children.append(Child("consumer1", "procs.probe_consumer",
                              common + ["--name", "consumer1"]).start())
        wait_running(counters, children)
        children.append(Child("probe_producer", "procs.probe_producer",
                              common + ["--rate", str(args.rate), "--batch", "16"]).start())
        wait_running(counters, children)
        mon = Monitor(inst.name)
        mon.render(mon.snapshot())  # warm: imports, first psutil samples
        phase(counters, hist, 1.0, None, args.refresh)  # settle
        rows = []
        for _ in range(args.rounds):
            rows.append(phase(counters, hist, args.seconds, None, args.refresh))
            rows.append(phase(counters, hist, args.seconds, mon, args.refresh))
        mon.close()
        ref = [r for r in rows if r["phase"] == "reference"]
        obs = [r for r in rows if r["phase"] == "monitor"]
        ratio = {k: statistics.median(r[k] for r in obs) / statistics.median(r[k] for r in ref)
                 for k in ("records_per_s", "hop_p50_ns", "hop_p99_ns")}
        emit("monitor interference", rows, args.json,
             {"rate": args.rate, "refresh_s": args.refresh,
              "monitor/reference (median)": {k: round(v, 3) for k, v in ratio.items()}})
        return 0
    finally:
        stop(children)
        inst.destroy()
