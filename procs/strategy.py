"""Strategy process: book and exec rings in, order intents out (market maker)."""

from __future__ import annotations

import argparse
import sys
import warnings

from pipeline import config as cfg
from pipeline.control.area import ControlArea
from pipeline.instruments import SymbolTable
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.strategy import market_maker
from pipeline.strategy.agent import StrategyAgent
from pipeline.strategy.intents import id_state
from pipeline.strategy.setup import market_maker_state
from pipeline.transport.ring import Ring
from procs import _common
from shm_layouts.records import BOOK_UPDATE, EXEC_REPORT, MD_EVENT, ORDER_INTENT

# the strategy callbacks reach the generic cycle as first-class functions (by design)
warnings.filterwarnings("ignore", "First-class function type feature is experimental")


def parser() -> argparse.ArgumentParser:
    p = _common.parser(__doc__)
    p.add_argument("--seed", type=int, default=None,
                   help="deterministic order ids and the event clock (replay)")
    _common.add_warm_argument(p, "the decision path (live only)")
    return p


def build(args: argparse.Namespace) -> tuple[StrategyAgent, Counters | None]:
    config = cfg.load(args.config)
    symbols = SymbolTable.from_config(config["instruments"])
    inst, counters = _common.attach(args)
    agent = StrategyAgent(
        market_maker, market_maker_state(config, symbols),
        order_ring=Ring.attach(inst, "orders", "order_intent", ORDER_INTENT),
        ids=id_state(args.seed),
        book_ring=Ring.attach(inst, "book", "book_update", BOOK_UPDATE),
        exec_ring=Ring.attach(inst, "execs", "exec_report", EXEC_REPORT),
        counters=counters,
        md_ring=Ring.attach(inst, "md", "md_event", MD_EVENT, readonly=False),
        event_clock=args.seed is not None,
        control=ControlArea.attach(inst) if any(
            e.name == "control" for e in inst.segments()) else None,
        symbol_names=[i.symbol for i in symbols],
        oms=OmsState.attach(inst),
        max_book_age_ns=int(float(cfg.section("strategy", config.get("strategy", {}))[
            "max_book_age_ms"]) * 1e6),
        warm_ns=int(args.warm_us * 1000),
    )
    return agent, counters


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    agent, counters = build(args)
    return _common.run(agent, args, counters)


if __name__ == "__main__":
    sys.exit(main())
