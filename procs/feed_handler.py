"""Feed handler process: Binance-format WebSocket + REST snapshots -> md ring."""

from __future__ import annotations

import argparse
import sys

from pipeline import config as C
from pipeline.control.area import ControlArea
from pipeline.instruments import SymbolTable
from pipeline.marketdata.feed import FeedConfig, FeedHandlerAgent
from pipeline.marketdata.latest import LatestBooks
from pipeline.marketdata.segments import MD_RING, MD_STREAM
from pipeline.metrics.counters import Counters
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from pipeline.transport.segment import SegmentMissing
from procs import _common
from shm_layouts.records import MD_EVENT


def parser() -> argparse.ArgumentParser:
    p = _common.parser(__doc__)
    p.add_argument("--url", default=None, help="combined-stream WebSocket URL (overrides "
                   "[feed] url)")
    p.add_argument("--rest", default=None, help="REST base URL (overrides [feed] rest_url)")
    _common.add_warm_argument(p, "the bookTicker parse")
    return p


def build(args: argparse.Namespace) -> tuple[FeedHandlerAgent, Counters | None]:
    cfg = C.load(args.config)
    section = dict(cfg.get("feed", {}))
    if args.url:
        section["url"] = args.url
    if args.rest:
        section["rest_url"] = args.rest
    if "url" not in section or "rest_url" not in section:
        parser().error("no WebSocket/REST URL: set [feed] url and rest_url, or --url/--rest")
    symbols = SymbolTable.from_config(cfg.get("instruments", []))
    inst = Instance.attach(args.instance)
    try:
        counters = Counters.attach(inst)
    except SegmentMissing:
        counters = None
    md = Ring.attach(inst, MD_RING, MD_STREAM, MD_EVENT)
    try:
        latest = LatestBooks.attach(inst)
    except SegmentMissing:
        latest = None  # no book builder area: no resync requests
    control = ControlArea.attach(inst) if any(
        e.name == "control" for e in inst.segments()) else None
    agent = FeedHandlerAgent(md, symbols, FeedConfig.from_config(section), counters, latest,
                             control, warm_ns=int(args.warm_us * 1000))
    return agent, counters


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    agent, counters = build(args)
    return _common.run(agent, args, counters)


if __name__ == "__main__":
    sys.exit(main())
