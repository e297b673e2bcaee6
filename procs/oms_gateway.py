"""The OMS gateway process: order ring -> risk -> OMS -> FIX socket -> exec ring.

``python -m procs.oms_gateway [--config FILE] [--instance NAME] [--core N] [--idle NAME]``.
The instance (rings "orders"/"execs", the "oms" segment) is set up by whoever starts the
pipeline; ``--create`` makes them here when missing (standalone runs). SIGTERM/SIGINT:
cancel all open orders, log out, exit. kill -9: restart it; it resumes from shared memory,
the FIX store and the OMS journal, and reconciles with the venue before trading.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline import config as cfgmod
from pipeline.control.area import ControlArea
from pipeline.instruments import SymbolTable
from pipeline.observe.counters import Counters
from pipeline.orders.gateway import GatewayAgent, GatewayConfig
from pipeline.orders.risk import RiskLimits
from pipeline.orders.segments import create_order_path
from pipeline.runtime import idle
from pipeline.runtime.runner import AgentRunner, RunnerConfig
from pipeline.transport.registry import Instance
from pipeline.transport.segment import SegmentMissing
from procs import _common

log = logging.getLogger("oms_gateway")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oms_gateway", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML merged over config/default.toml")
    p.add_argument("--instance", help="pipeline instance name (default: config)")
    p.add_argument("--core", type=int, help="pin to this core")
    p.add_argument("--idle", help="idle strategy (default: [gateway] idle or backoff)")
    p.add_argument("--create", action="store_true", help="create the segments if missing")
    _common.add_slice_argument(p)
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
    agent = GatewayAgent(instance, GatewayConfig.from_config(section), table,
                         RiskLimits.from_config(cfg.get("risk", {})), counters, control,
                         warm_ns=int(args.warm_us * 1000))
    return agent, counters


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s oms_gateway %(levelname)s %(message)s")
    agent, counters = build(args)
    section = cfgmod.load(args.config).get("gateway", {})
    core = args.core if args.core is not None else section.get("core")
    idle_state = idle.from_name(args.idle or section.get("idle", "backoff"))
    AgentRunner(agent, idle_state, RunnerConfig(core=core, slice_ns=int(args.slice_us * 1000)),
                counters).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
