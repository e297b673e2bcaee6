"""End-to-end benchmark: tick-to-trade and per-hop latency of the whole pipeline.

Runs ``hft run`` against the simulator for ``--seconds`` on this host's layout profile and
reports, from the pipeline's shared-memory histograms, tick-to-trade (frame receipt in
the feed handler -> order bytes written to the FIX socket) and each hop, counted from
``--warmup`` seconds after the first order went out (steady state). The reference in
the same run are the bare ring hop (busy-spin ping-pong between two pinned processes, see
``bench/transport.py``): the floor a hop could reach with a core per process; and one
loopback send() by the state of the receiving process (``bench/loopback.py``): the floor
under the order leg, which ends when send() returns.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from bench import loopback
from bench._report import emit
from bench.transport import _hop, ring_pingpong
from pipeline.launch.launcher import Launcher, RunOptions

TARGETS = {"tick_to_trade_p50_ns": 10_000, "tick_to_trade_p99_ns": 50_000}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=30.0, help="how long the pipeline runs")
    p.add_argument("--profile", default="auto", help="core layout profile (tuning/profiles)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds after the first order before latencies count")


def main(args: argparse.Namespace) -> int:
    summary = Launcher(RunOptions(duration=args.seconds, profile=args.profile,
                                  instance=f"benche2e{os.getpid()}",
                                  warmup=args.warmup)).run()
    rows = []
    for name, h in summary["latency_ns"].items():
        if h.get("count"):
            rows.append({"measure": name, "p50_ns": h["p50"], "p99_ns": h["p99"],
                         "p99.9_ns": h["p99.9"], "max_ns": h["max"], "samples": h["count"]})
    cpus = sorted(os.sched_getaffinity(0))
    ref = _hop(ring_pingpong(cpus[:2] if len(cpus) > 1 else cpus * 2, 50_000, 5_000))
    rows.append({"measure": "reference: bare ring hop, 2 pinned busy-spinning processes",
                 "p50_ns": ref["p50"], "p99_ns": ref["p99"], "p99.9_ns": ref["p99.9"],
                 "max_ns": None, "samples": ref["n"]})
    rows += loopback.rows(2000)
    t2t = next((h for n, h in summary["latency_ns"].items() if n.startswith("tick-to-trade")),
               {})
    extra = {"profile": args.profile, "seconds": args.seconds,
             "latency_window_s": summary.get("latency_window_s"),
             "fills": int(np.sum([p["fills"] for p in summary["positions"].values()])),
             "targets": TARGETS,
             "tick_to_trade_p50_vs_target": (t2t.get("p50", 0) / TARGETS["tick_to_trade_p50_ns"]
                                             if t2t else None)}
    emit("e2e", rows, args.json, extra)
    return 0
