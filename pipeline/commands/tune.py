"""``hft tune check|jitter``: compare the host with a low-latency setup; measure jitter.

``check`` is unprivileged and read-only (``tuning/apply.sh`` changes what can change at
run time, as root). ``jitter`` busy-spins the given cores for ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rich.console import Console
from rich.table import Table

from tuning import check
from tuning.profiles import ProfileError, available

STYLE = {"ok": "green", "warn": "bold red", "info": "cyan", "unknown": "yellow"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="tune_command", required=True, metavar="check|jitter")
    c = sub.add_parser("check", help="report host settings vs a low-latency setup")
    c.add_argument("--profile", default="auto",
                   help=f"core layout: auto, {', '.join(available())} or a .toml path")
    c.add_argument("--cores", default=None,
                   help="hot (busy-spin) cores to check instead of the profile's, e.g. 2-5")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--warn", action="store_true",
                   help="only print a one-line warning if untuned (for run.sh); exit 0")
    j = sub.add_parser("jitter", help="measure interruptions per core (busy-spins them)")
    j.add_argument("--cores", required=True, help="cores to measure, e.g. 1 or 2-5")
    j.add_argument("--seconds", type=float, default=5.0, help="how long to measure")
    j.add_argument("--threshold-ns", type=int, default=1000,
                   help="a gap between clock reads above this is an interruption")
    j.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _check(args: argparse.Namespace) -> int:
    if args.warn:
        check.warn_if_untuned(args.profile)
        return 0
    hot = check.parse_cpulist(args.cores) if args.cores else None
    report = check.run_checks(args.profile, hot)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"profile [bold]{report['profile']}[/]: cores {report['cores']}, "
                  f"busy-spin (hot) cores {report['hot_cores'] or 'none'}")
    t = Table(pad_edge=False)
    for col in ("setting", "status", "value", "what to change"):
        t.add_column(col, overflow="fold")
    for f in report["findings"]:
        how = f["advice"] + (" [dim](tuning/apply.sh)[/]" if f["runtime"] and f["advice"]
                             and f["status"] == "warn" else "")
        t.add_row(f["name"], f"[{STYLE[f['status']]}]{f['status']}[/]", f["value"], how)
    console.print(t)
    console.print("untuned: latency figures will be noisy" if report["untuned"]
                  else "no warnings")
    return 0


def _jitter(args: argparse.Namespace) -> int:
    cores = sorted(check.parse_cpulist(args.cores) or ())
    if not cores:
        print(f"hft tune jitter: no cores in {args.cores!r}", file=sys.stderr)
        return 2
    bad = set(cores) - os.sched_getaffinity(0)
    if bad or args.seconds <= 0:
        print(f"hft tune jitter: cores {sorted(bad)} not usable here" if bad else
              "hft tune jitter: --seconds must be positive", file=sys.stderr)
        return 2
    from tuning import jitter  # numba: only when measuring
    rows = jitter.run(cores, args.seconds, args.threshold_ns)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"interruptions (clock gaps > {args.threshold_ns} ns) over {args.seconds:g} s")
    print(f"{'core':>4} {'count':>8} {'per s':>8} {'p50 us':>8} {'p99 us':>9} {'max us':>9} "
          f"{'lost %':>7} {'clock ns':>8}")
    for r in rows:
        print(f"{r['core']:>4} {r['interruptions']:>8,} {r['per_second']:>8,.0f} "
              f"{r['p50_us']:>8,.1f} {r['p99_us']:>9,.1f} {r['max_us']:>9,.1f} "
              f"{r['lost_percent']:>7.2f} {r['clock_read_ns']:>8}")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return _check(args) if args.tune_command == "check" else _jitter(args)
    except ProfileError as e:
        print(f"hft tune: {e}", file=sys.stderr)
        return 2
