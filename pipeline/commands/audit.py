"""``hft audit --nats URL``: replay the drop copy, filter it, and check it is complete.

Reads the DROPCOPY stream from its first message, decodes every batch with the
``shm_layouts`` record dtypes (enum fields by name) and prints the records as a table, or
as JSON lines with ``--json``. ``--symbol-id`` and ``--cl-ord-id`` (matching the order id
or the id a cancel/replace targets) filter what is printed; the sequence check always
covers every record of the selected instance and ring. Exit 0: no gap, no duplicate, no
undecodable message; 1: any of them (listed); 2: cannot reach the server or the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import nats.js.errors

from pipeline.firm import jetstream
from pipeline.firm.audit import Continuity, Stored, read_stream, record_dicts, subject_filter
from pipeline.firm.batch import RINGS, STREAM_NAME, subject

COLUMNS = {
    "orders": ("seq", "action", "cl_ord_id", "orig_cl_ord_id", "symbol_id", "side", "price",
               "qty", "tif", "ord_type", "t_decision_ns"),
    "execs": ("seq", "exec_type", "ord_status", "cl_ord_id", "venue_order_id", "symbol_id",
              "side", "last_px", "last_qty", "cum_qty", "leaves_qty", "source",
              "reject_reason"),
}
EXIT_ISSUES, EXIT_UNAVAILABLE = 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nats", required=True, help="NATS server URL")
    p.add_argument("--stream", default=STREAM_NAME, help="JetStream stream")
    p.add_argument("--instance", default=None, help="only this instance")
    p.add_argument("--ring", choices=tuple(RINGS), default=None, help="only this ring")
    p.add_argument("--symbol-id", type=int, default=None, help="print only this symbol")
    p.add_argument("--cl-ord-id", type=int, default=None,
                   help="print only this order (its cl_ord_id or orig_cl_ord_id)")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--creds", default=None, help="NATS credentials file")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per server request")


def wanted(row: dict, args: argparse.Namespace) -> bool:
    if args.symbol_id is not None and row["symbol_id"] != args.symbol_id:
        return False
    return args.cl_ord_id is None or args.cl_ord_id in (row["cl_ord_id"], row["orig_cl_ord_id"])


async def fetch(args: argparse.Namespace) -> list[Stored]:
    nc = await jetstream.connect(args.nats, "hft-audit", args.creds, forever=False)
    try:
        js = nc.jetstream(timeout=args.timeout)
        await js.stream_info(args.stream)  # NotFoundError: no such stream (not "no messages")
        return await read_stream(js, args.stream, subject_filter(args.instance, args.ring),
                                 args.timeout)
    finally:
        await nc.close()


def main(args: argparse.Namespace) -> int:
    try:
        if args.instance is not None:
            subject(args.instance, args.ring or "orders")  # a bad name fails clearly here
        stored = asyncio.run(asyncio.wait_for(fetch(args), 4 * args.timeout + 5))
    except nats.js.errors.NotFoundError:
        print(f"hft audit: no stream {args.stream} on {jetstream.redact(args.nats)}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (*jetstream.NET_ERRORS, ValueError) as e:
        print(f"hft audit: {jetstream.redact(args.nats)}: {type(e).__name__}: {e}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    check = Continuity()
    tables: dict[str, list[list]] = {r: [] for r in RINGS}
    for item in stored:
        check.add(item)
        if item.batch is None:
            continue
        for row in record_dicts(item.batch):
            if not wanted(row, args):
                continue
            if args.json:
                print(json.dumps({"instance": item.instance, "ring": item.ring,
                                  "epoch_ns": item.batch.epoch_ns,
                                  "stream_seq": item.stream_seq, **row}))
            else:
                tables[item.ring].append([item.instance, *(row[c] for c in COLUMNS[item.ring])])
    if args.json:
        for s in check.summary():
            print(json.dumps({"summary": s}))
        for issue in check.issues:
            print(json.dumps(issue))
    else:
        for ring, rows in tables.items():
            if rows:
                _table(ring, ["instance", *COLUMNS[ring]], rows)
        for s in check.summary():
            print(f"{s['instance']}/{s['ring']} epoch {s['epoch_ns']}: {s['records']} records "
                  f"in {s['batches']} batches, seq 0..{s['last_seq']}")
        for issue in check.issues:
            print(_describe(issue), file=sys.stderr)
        if not stored:
            print(f"no messages on {subject_filter(args.instance, args.ring)}")
    return EXIT_ISSUES if check.issues else 0


def _describe(issue: dict) -> str:
    where = f"{issue['instance']}/{issue['ring']} (stream seq {issue['stream_seq']})"
    if issue["issue"] == "bad_message":
        return f"BAD MESSAGE {where}: {issue['error']}"
    return (f"{issue['issue'].upper()} {where} epoch {issue['epoch_ns']}: "
            f"seq {issue['first']}..{issue['last']}")


def _table(title: str, cols: list[str], rows: list[list]) -> None:
    cells = [[str(v) for v in r] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    print(f"== {title}")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
