"""``hft capture``: record a Binance-format feed (frames + REST snapshots) to gzip."""

from __future__ import annotations

import argparse
import os

from pipeline.instruments import VENUE_KINDS
from pipeline.marketdata.capture import Recorder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="combined-stream WebSocket URL")
    parser.add_argument("--rest", required=True, help="REST base URL for depth snapshots")
    parser.add_argument("--symbols", nargs="+", required=True, help="symbols to snapshot")
    parser.add_argument("--venue", choices=VENUE_KINDS, default="spot",
                        help="REST depth path: spot /api/v3, usdm /fapi/v1, coinm /dapi/v1")
    parser.add_argument("--out", required=True, help="FILE.gz (FILE.SYMBOL.gz per symbol "
                        "when several)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after (0: Ctrl-C)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames")
    parser.add_argument("--limit", type=int, default=1000, help="snapshot depth limit")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="SBE streams: send the API key in environment variable VAR as "
                        "X-MBX-APIKEY (binary frames are written as '<ns> b64:...' lines)")


def main(args: argparse.Namespace) -> int:
    headers = {}
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise SystemExit(f"hft capture: no API key in ${args.api_key_env}")
        headers["X-MBX-APIKEY"] = key
    rec = Recorder(args.url, args.rest, args.symbols, args.venue, args.out, args.limit,
                   headers)
    try:
        rec.run(args.seconds, args.max_frames)
    except KeyboardInterrupt:
        pass
    print(f"captured {rec.frames:,} frames and {rec.snapshots} snapshots to "
          f"{', '.join(str(p) for p in rec.paths.values())} ({rec.unrouted} unrouted)")
    return 0
