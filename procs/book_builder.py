"""Book builder process: md ring -> L2 books -> book ring and latest-book area."""

from __future__ import annotations

import argparse
import sys

from pipeline.marketdata.builder import BookBuilderAgent
from pipeline.marketdata.segments import attach_md_segments
from pipeline.metrics.counters import Counters
from pipeline.transport.registry import Instance
from pipeline.transport.segment import SegmentMissing
from procs import _common


def parser() -> argparse.ArgumentParser:
    p = _common.parser(__doc__)
    p.add_argument("--window", type=int, default=1 << 16, help="book window in ticks (2^k)")
    p.add_argument("--no-ticker-overlay", action="store_true",
                   help="publish the book alone, not fresh bookTickers over it (replays "
                   "that check the rebuilt books)")
    _common.add_warm_argument(p, "the bookTicker overlay")
    return p


def build(args: argparse.Namespace) -> tuple[BookBuilderAgent, Counters | None]:
    inst = Instance.attach(args.instance)
    try:
        counters = Counters.attach(inst)
    except SegmentMissing:
        counters = None
    agent = BookBuilderAgent(attach_md_segments(inst), window=args.window, counters=counters,
                             ticker_overlay=not args.no_ticker_overlay,
                             warm_ns=int(args.warm_us * 1000))
    return agent, counters


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    agent, counters = build(args)
    return _common.run(agent, args, counters)


if __name__ == "__main__":
    sys.exit(main())
