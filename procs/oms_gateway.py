"""The OMS gateway process: order ring -> risk -> OMS -> FIX socket -> exec ring.

``python -m procs.oms_gateway [--config FILE] [--instance NAME]`` plus the options every
process takes (``procs/_common.py``: --core, --idle, --lock-memory, --slice-us ...).
The instance (rings "orders"/"execs", the "oms" segment) is set up by whoever starts the
pipeline; ``--create`` makes them here when missing (standalone runs). SIGTERM/SIGINT:
cancel all open orders, log out, exit. kill -9: restart it; it resumes from shared memory,
the FIX store and the OMS journal, and reconciles with the venue before trading.
"""

from __future__ import annotations

import argparse
import sys

from pipeline import config as cfgmod
from pipeline.control.area import ControlArea
from pipeline.instruments import SymbolTable
from pipeline.metrics.counters import Counters
from pipeline.orders.gateway import GatewayAgent, GatewayConfig
from pipeline.orders.risk import RiskLimits
from pipeline.orders.segments import create_order_path
from pipeline.transport.registry import Instance
from pipeline.transport.segment import SegmentMissing
from procs import _common


def parser() -> argparse.ArgumentParser:
    p = _common.parser(__doc__.splitlines()[0], instance_required=False)
    p.add_argument("--create", action="store_true", help="create the segments if missing")
    _common.add_warm_argument(p, "the order path")
    return p


def build(args: argparse.Namespace) -> tuple[GatewayAgent, Counters | None]:
    cfg = cfgmod.load(args.config)
    section = cfg.get("gateway", {})
    name = args.instance or cfg["instance"]["name"]
    try:
        instance = Instance.attach(name)
    except SegmentMissing:
        if not args.create:
            raise
        instance = Instance.create(name)
    try:
        counters = Counters.attach(instance)
    except SegmentMissing:
        counters = Counters.create(instance) if args.create else None
    if args.create and not any(e.name == "oms" for e in instance.segments()):
        create_order_path(instance)
    table = SymbolTable.from_config(cfg["instruments"])
    control = ControlArea.attach(instance) if any(
        e.name == "control" for e in instance.segments()) else None
    agent = GatewayAgent(instance, GatewayConfig.from_config(section, cfg.get("binance")), table,
                         RiskLimits.from_config(cfg.get("risk", {})), counters, control,
                         warm_ns=int(args.warm_us * 1000))
    return agent, counters


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _common.log_as("oms_gateway")
    agent, counters = build(args)
    return _common.run(agent, args, counters)


if __name__ == "__main__":
    sys.exit(main())
