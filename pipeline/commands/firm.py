"""``hft firm``: the two-instance demo of one firm on this machine (pipeline.launch.firm_demo):
a book ring bridged over Aeron, the drop copy and the risk view over NATS JetStream, the
firm-wide kill switch, and an audit of the drop copy at the end."""

from __future__ import annotations

import argparse

from pipeline.launch.firm_demo import DemoOptions, FirmDemo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds of trading once both instances' gateways send orders")
    p.add_argument("--chaos", action="store_true",
                   help="mid-run: kill -9 instance A's bridge sender (restarted by its "
                   "supervisor) and restart nats-server; the audit must still be complete")
    p.add_argument("--profile", default="dev-2core",
                   help="core layout of both instances (one process per agent: the bridged "
                   "instance runs no market data agents)")
    p.add_argument("--keep", action="store_true", help="keep the logs and stores of a clean run")
    p.add_argument("--summary-json", help="write every step's outcome and both summaries here")


def main(args: argparse.Namespace) -> int:
    return FirmDemo(DemoOptions(duration=args.duration, chaos=args.chaos, profile=args.profile,
                                keep=args.keep, summary_json=args.summary_json)).run()
