"""``hft replay FILE [FILE ...]``: captures through parser -> sync -> book builder."""

from __future__ import annotations

import argparse
import json
import logging

from pipeline.config import load as load_config
from pipeline.instruments import SymbolTable
from pipeline.replay import inline as replay

log = logging.getLogger("replay")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="captures: '<recv_ns> <raw>' lines (gzip or "
                        "plain), or cryptofeed NAME.ws.* (its .http.* sibling is read too)")
    parser.add_argument("--inline", action="store_true",
                        help="all stages in this process (default: book builder process + rings)")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="0: as fast as possible; 1: recorded pace; 10: ten times faster")
    parser.add_argument("--bbo-out", default=None, help="CSV: one row per applied depth event")
    parser.add_argument("--config", default=None,
                        help="TOML with [[instruments]]; other symbols get tick/lot from the data")
    parser.add_argument("--idle", default="backoff", help="book builder idle strategy")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args: argparse.Namespace) -> int:
    configured = None
    if args.config:
        configured = SymbolTable.from_config(load_config(args.config).get("instruments", []))
    prepared = replay.prepare(args.files, configured)
    log_bbo = args.bbo_out is not None
    if args.inline:
        result = replay.InlineReplay(prepared).run(args.speed, log_bbo)
    else:
        from pipeline.replay.procs import run_processes
        result = run_processes(prepared, args.speed, log_bbo, idle=args.idle)
    if log_bbo:
        replay.write_bbo_csv(args.bbo_out, prepared.symbols, result.bbo_rows)
    if args.json:
        print(json.dumps({"summary": result.summary, "books": result.final,
                          "seconds": result.seconds}, indent=2))
    else:
        print_summary(result)
    return 0


def print_summary(result: replay.ReplayResult) -> None:
    s = result.summary
    rejects = {k[7:]: v for k, v in s.items() if k.startswith("reject_") and v}
    print(f"messages {s['messages']:,}  depth events applied {s['applied']:,} "
          f"dropped {s['dropped']:,}  snapshots {s['snapshots']:,}  gaps {s['gaps']:,}  "
          f"resyncs {s['resyncs']:,}  crossed {s['crossed']:,}  "
          f"rejects {s['rejected']:,} {rejects or ''}  ({result.seconds:.3f}s)")
    for symbol, b in result.final.items():
        state = {0: "UNSYNCED", 1: "PENDING", 2: "SYNCED"}.get(b["state"], "?")
        print(f"  {symbol:16} {state:8} id {b['update_id']:<14} "
              f"{b['bid_qty']} @ {b['bid_px']}  /  {b['ask_qty']} @ {b['ask_px']}")
