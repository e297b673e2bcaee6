"""End-to-end benchmark: tick-to-trade and per-hop latency of the whole pipeline.

Runs ``hft run`` against the simulator for ``--seconds`` on this host's layout profile and
reports, from the pipeline's shared-memory histograms, tick-to-trade (frame receipt in
the feed handler -> order bytes written to the FIX socket) and each hop, counted from
``--warmup`` seconds after the first order went out (steady state). The reference in
the same run are the bare ring hop (busy-spin ping-pong between two pinned processes, see
``bench/transport.py``): the floor a hop could reach with a core per process; and one
loopback send() by the state of the receiving process (``bench/loopback.py``): the floor
under the order leg, which ends when send() returns; and the tick-to-trade floor
(``bench/c/floor.c``, compiled now): a C reader pinned where the pipeline ran, busy-polling
frames of the run's rate from a venue process pinned where the simulator ran, sending an
order every N-th frame at the run's order rate. Tick-to-trade is reported as a ratio to it
(``tick_to_trade_p50_vs_floor``, ``tick_to_trade_p99_vs_floor``).

CPU use (user + system time, % of one core) of each process over the latency window
("trading", at the run's rate) and over ``--idle-seconds`` with the simulator's flow
paused ("quiet"): a layout that sleeps instead of spinning shows it there
(``pipeline_core_pct_trading``, ``pipeline_core_pct_quiet``: the four pipeline agents).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench import loopback
from bench._report import emit
from bench.transport import _hop, ring_pingpong
from pipeline.launch.launcher import Launcher, RunOptions

FLOOR_SOURCE = Path(__file__).with_name("c") / "floor.c"
TARGETS = {"tick_to_trade_p50_vs_floor": 1.5, "tick_to_trade_p99_vs_floor": 2.0}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=30.0, help="how long the pipeline runs")
    p.add_argument("--profile", default="auto", help="core layout profile (tuning/profiles)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds after the first order before latencies count")
    p.add_argument("--floor-seconds", type=float, default=20.0,
                   help="how long the C tick-to-trade floor runs (after the pipeline)")
    p.add_argument("--tls", action="store_true",
                   help="the whole run over TLS (hft run --tls): compare with a plain run")
    p.add_argument("--md-format", choices=("json", "sbe"), default=None,
                   help="market data format (hft run --md-format): compare json with sbe")
    p.add_argument("--frame-bytes", type=int, default=180,
                   help="frame size for the C floor (the simulator's frames are ~180 B)")
    p.add_argument("--idle-seconds", type=float, default=5.0,
                   help="after the run, CPU use for this long with the flow paused (0: skip)")


def c_floor(cores: list[int], seconds: float, frames_per_s: float, orders_per_s: float,
            frame_bytes: int, order_bytes: int = 200) -> dict | None:
    """The C floor of frame receipt -> order send() at the given rates (None: no compiler
    or no orders to match)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or frames_per_s <= 0 or orders_per_s <= 0:
        return None
    every = max(1, round(frames_per_s / orders_per_s))
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "floor"
        subprocess.run([cc, "-O2", "-std=c11", "-o", str(exe), str(FLOOR_SOURCE)], check=True)
        out = subprocess.run([str(exe), str(cores[1]), str(cores[0]), str(seconds),
                              str(frames_per_s), str(every), str(frame_bytes), str(order_bytes)],
                             capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(out.stdout) if out.stdout.strip() else None


def cpu_rows(cpu: dict) -> list[dict]:
    """One row per process: CPU seconds and % of a core, trading and quiet."""
    names = dict.fromkeys(n for part in cpu.values() if part for n in part["processes"])
    rows = []
    for name in names:
        row = {"process": name}
        for part in ("trading", "quiet"):
            p = (cpu.get(part) or {}).get("processes", {}).get(name, {})
            row[f"{part}_cpu_s"], row[f"{part}_core_pct"] = p.get("cpu_s"), p.get("core_pct")
        rows.append(row)
    return rows


def main(args: argparse.Namespace) -> int:
    summary = Launcher(RunOptions(duration=args.seconds, profile=args.profile,
                                  instance=f"benche2e{os.getpid()}",
                                  warmup=args.warmup, tls=args.tls,
                                  md_format=args.md_format,
                                  idle_seconds=args.idle_seconds)).run()
    rows = []
    for name, h in summary["latency_ns"].items():
        if h.get("count"):
            rows.append({"measure": name, "p50_ns": h["p50"], "p99_ns": h["p99"],
                         "p99.9_ns": h["p99.9"], "max_ns": h["max"], "samples": h["count"]})
    cpus = sorted(os.sched_getaffinity(0))
    cores = cpus[:2] if len(cpus) > 1 else cpus * 2
    ref = _hop(ring_pingpong(cores, 50_000, 5_000))
    rows.append({"measure": "reference: bare ring hop, 2 pinned busy-spinning processes",
                 "p50_ns": ref["p50"], "p99_ns": ref["p99"], "p99.9_ns": ref["p99.9"],
                 "max_ns": None, "samples": ref["n"]})
    rows += loopback.rows(2000)
    t2t = next((h for n, h in summary["latency_ns"].items() if n.startswith("tick-to-trade")),
               {})
    counts, wall = summary["counters"], max(summary["seconds"], 1e-9)
    rates = {"frames_per_s": counts.get("feed.messages", 0) / wall,
             "orders_per_s": counts.get("gateway.orders.sent", 0) / wall}
    floor = c_floor(cores, args.floor_seconds, rates["frames_per_s"], rates["orders_per_s"],
                    args.frame_bytes)
    if floor is not None:
        rows.append({"measure": "reference: C floor, frame recv() -> order send() at the "
                                "run's rates", "p50_ns": floor["p50"], "p99_ns": floor["p99"],
                     "p99.9_ns": floor["p99.9"], "max_ns": floor["max"],
                     "samples": floor["n"]})
    extra = {"profile": args.profile, "seconds": args.seconds, "tls": args.tls,
             "md_format": args.md_format or "json",
             "latency_window_s": summary.get("latency_window_s"),
             "fills": int(np.sum([p["fills"] for p in summary["positions"].values()])),
             "run_rates": rates, "floor": floor, "targets": TARGETS,
             "cpu": cpu_rows(summary.get("cpu", {}))}
    for part in ("trading", "quiet"):
        extra[f"pipeline_core_pct_{part}"] = (summary.get("cpu", {}).get(part) or {}).get(
            "pipeline_core_pct")
    for q in ("p50", "p99"):
        extra[f"tick_to_trade_{q}_vs_floor"] = (
            round(t2t[q] / floor[q], 3) if t2t.get(q) and floor and floor.get(q) else None)
    emit("e2e", rows, args.json, extra)
    if not args.json:
        emit("e2e: CPU use, % of one core (trading: the latency window; quiet: flow paused)",
             extra["cpu"], False)
    return 0
