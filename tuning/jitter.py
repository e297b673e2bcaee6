"""Jitter probe (after jHiccup / sysjitter): how often and how long a core is taken away.

A worker process pinned to one core reads CLOCK_MONOTONIC in a tight jitted loop; any gap
between consecutive reads above ``threshold_ns`` is an interruption (timer tick, IRQ,
another task, SMI, a vCPU preempted by the hypervisor) and goes into a histogram. The
report per core: interruptions, their p50/p99/max in us, and the share of time lost, so
the effect of tuning is a number. Each core runs in its own process, all at once.

It busy-spins the cores it measures for the whole run: never point it at cores the
pipeline is using.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
from numba import njit

from pipeline.metrics import histogram
from pipeline.metrics.histogram import record
from pipeline.runtime.clock import monotonic_ns

# result words
R_LOOPS, R_GAPS, R_LOST_NS, R_ELAPSED_NS, R_MIN_GAP = 0, 1, 2, 3, 4


@njit(cache=True)
def hiccups(duration_ns, threshold_ns, hist, result):
    """Spin for ``duration_ns`` reading the clock; record every gap above the threshold."""
    start = monotonic_ns()
    last = start
    end = start + duration_ns
    loops = 0
    gaps = 0
    lost = 0
    min_gap = 1 << 62
    while last < end:
        now = monotonic_ns()
        gap = now - last
        if gap > threshold_ns:
            record(hist, gap)
            gaps += 1
            lost += gap
        elif gap < min_gap:
            min_gap = gap
        last = now
        loops += 1
    result[R_LOOPS] = loops
    result[R_GAPS] = gaps
    result[R_LOST_NS] = lost
    result[R_ELAPSED_NS] = last - start
    result[R_MIN_GAP] = min_gap


def measure(core: int | None, seconds: float, threshold_ns: int) -> dict:
    """Run the probe in this process (pinned to ``core`` if given); return the report."""
    hist, result = histogram.new(), np.zeros(5, np.int64)
    # compile (seconds from a cold cache) before pinning: on any core, not on the one probed
    hiccups(1_000_000, threshold_ns, histogram.new(), result)
    if core is not None:
        os.sched_setaffinity(0, {core})
    hiccups(1_000_000, threshold_ns, histogram.new(), result)  # warm up on the core
    hiccups(int(seconds * 1e9), threshold_ns, hist, result)
    p = histogram.percentiles(hist, (50.0, 99.0, 99.9))
    elapsed = int(result[R_ELAPSED_NS])
    return {"core": core, "seconds": elapsed / 1e9, "threshold_ns": threshold_ns,
            "interruptions": int(result[R_GAPS]),
            "per_second": result[R_GAPS] * 1e9 / elapsed if elapsed else 0.0,
            "p50_us": p["p50"] / 1e3, "p99_us": p["p99"] / 1e3, "p99.9_us": p["p99.9"] / 1e3,
            "max_us": p["max"] / 1e3, "lost_percent": 100.0 * result[R_LOST_NS] / elapsed
            if elapsed else 0.0, "loops": int(result[R_LOOPS]),
            "clock_read_ns": int(result[R_MIN_GAP])}


def run(cores: list[int], seconds: float, threshold_ns: int) -> list[dict]:
    """One worker process per core, all concurrently; reports in core order."""
    procs = [subprocess.Popen([sys.executable, "-m", "tuning.jitter", "--worker", str(c),
                               "--seconds", str(seconds), "--threshold-ns", str(threshold_ns)],
                              stdout=subprocess.PIPE, text=True) for c in cores]
    out = []
    for core, p in zip(cores, procs, strict=True):
        stdout, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            raise RuntimeError(f"jitter worker on core {core} failed (exit {p.returncode})")
        out.append(json.loads(stdout))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="jitter probe worker (use `hft tune jitter`)")
    p.add_argument("--worker", type=int, required=True, help="core to pin to and measure")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--threshold-ns", type=int, required=True)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.worker, args.seconds, args.threshold_ns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
