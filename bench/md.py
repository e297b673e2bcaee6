"""Market-data throughput: parser vs json/orjson (+ level conversion), array book vs a
dict book, and the whole replay (parser + sync + book), on the same messages.

Default input: a generated BTCUSDT-like capture (a 1000-level snapshot, then depth diffs
of 50-100 levels each, Binance's 8-decimal strings); or a capture given as CAPTURE.
``--format sbe``: Binance's binary streams decoded against our JSON path on the same events
(``bench/md_sbe.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
from numba import njit

from bench._report import emit
from pipeline.marketdata import book as B
from pipeline.marketdata import files
from pipeline.marketdata import parser as P
from pipeline.marketdata.events import DIFF_LEVEL, SNAPSHOT_LEVEL
from pipeline.marketdata.infer import infer_symbols
from pipeline.marketdata.normalize import FeedCore, lookup_symbol, on_message
from pipeline.replay import inline as replay
from pipeline.units import to_units

JSON_DIFFS = 20_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench import md_sbe  # imports this module: bound at call time
    parser.add_argument("capture", nargs="*", help="capture file(s); default: generated")
    parser.add_argument("--format", choices=("json", "sbe"), default="json",
                        help="sbe: the SBE decoder vs our JSON path (bench/md_sbe.py)")
    parser.add_argument("--messages", type=int, help="generated diffs (default: json "
                        f"{JSON_DIFFS}, sbe {md_sbe.DEPTH_DIFFS})")
    parser.add_argument("--repeat", type=int, default=5, help="best of N timed runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-processes", dest="processes", action="store_false",
                        help="skip the replay through the book_builder process and rings")
    parser.add_argument("--idle", default="backoff",
                        help="book builder idle strategy for the process replay")
    md_sbe.add_sbe_arguments(parser)


def generate(n: int, seed: int = 1) -> files.Capture:
    """A snapshot then ``n`` contiguous spot depth diffs of 50-100 levels near the mid;
    levels that the moving mid would cross are deleted, so the book never crosses."""
    rng = random.Random(seed)
    mid = 6_183_763  # ticks of 0.01

    def level(price: int, qty: int) -> list[str]:
        return [f"{price // 100}.{price % 100:02d}000000", f"{qty / 1e5:.8f}"]

    live: tuple[set, set] = (set(range(mid - 1000, mid)), set(range(mid + 1, mid + 1001)))
    bids = [level(p, rng.randint(1, 10**6)) for p in sorted(live[0], reverse=True)]
    asks = [level(p, rng.randint(1, 10**6)) for p in sorted(live[1])]
    last = 40_000_000_000
    rows = [json.dumps({"lastUpdateId": last, "bids": bids, "asks": asks}).encode()]
    for _ in range(n):
        mid += rng.choice((-2, -1, 0, 1, 2))
        sides: tuple[list, list] = ([], [])
        for side, crossed in ((0, [p for p in live[0] if p >= mid]),
                              (1, [p for p in live[1] if p <= mid])):
            for p in crossed:
                live[side].discard(p)
                sides[side].append(level(p, 0))
        for _ in range(rng.randint(50, 100)):
            side = rng.randint(0, 1)
            off = int(abs(rng.gauss(0, 60))) + 1
            price = mid - off if side == 0 else mid + off
            qty = 0 if rng.random() < 0.35 else rng.randint(1, 10**6)
            (live[side].add if qty else live[side].discard)(price)
            sides[side].append(level(price, qty))
        first = last + 1
        last += rng.randint(1, 20)
        data = {"e": "depthUpdate", "E": 1700000000000, "s": "BTCUSDT", "U": first, "u": last,
                "b": sides[0], "a": sides[1]}
        rows.append(json.dumps({"stream": "btcusdt@depth@100ms", "data": data},
                               separators=(",", ":")).encode())
    lengths = np.array([len(r) for r in rows], np.int64)
    end = np.cumsum(lengths)
    return files.Capture(np.frombuffer(b"".join(rows), np.uint8), end - lengths, end,
                         np.arange(len(rows), dtype=np.int64) * 1_000_000,
                         ["BTCUSDT"] + [""] * n)


@njit(cache=True, _nrt=False)
def parse_all(data, start, end, snap_sid, hdr, lv, keys, lens, grid, out):
    """Parse every message, find its instrument and convert its levels to ticks/lots;
    returns the number of levels (a value off the grid would count as -1 in ``out``)."""
    total = 0
    for i in range(start.shape[0]):
        if P.parse_message(data, start[i], end[i], hdr, lv) <= 0:
            continue
        sid = lookup_symbol(data, hdr[P.H_SYM_OFF], hdr[P.H_SYM_LEN], keys, lens)
        g = grid[sid if sid >= 0 else max(snap_sid[i], 0)]
        for j in range(hdr[P.H_NLEV]):
            out[j, 0] = to_units(lv[j, P.L_PM], lv[j, P.L_PD], g.price_decimals, g.tick_units)
            out[j, 1] = to_units(lv[j, P.L_QM], lv[j, P.L_QD], g.qty_decimals, g.lot_units)
        total += hdr[P.H_NLEV]
    return total


def reference_parse(raws: list[bytes], loads) -> int:
    """loads + every level to numbers (float: the cheapest conversion, in its favour)."""
    total = 0
    for raw in raws:
        msg = loads(raw)
        msg = msg.get("data", msg)
        for key in ("b", "a", "bids", "asks"):
            levels = msg.get(key)
            for p, q in levels if isinstance(levels, list) else ():
                float(p)
                float(q)
                total += 1
    return total


@njit(cache=True, _nrt=False)
def book_all(ops, qty, bits, meta, ov, scratch):
    for i in range(ops.shape[0]):
        B.apply_level(qty, bits, meta, ov, scratch, ops[i, 0], ops[i, 1], ops[i, 2], ops[i, 3])
    return ops.shape[0]


def dict_book_all(ops: list[tuple[int, int, int, int]]) -> int:
    books: dict[tuple[int, int], dict[int, int]] = {}
    for sid, side, price, qty in ops:
        book = books.get((sid, side))
        if book is None:
            book = books[(sid, side)] = {}
        if qty:
            book[price] = qty
        else:
            book.pop(price, None)
    return len(ops)


def level_ops(prepared: replay.Prepared) -> np.ndarray:
    """(symbol, side, price ticks, qty lots) of every level record, from the feed stage."""
    core = FeedCore(prepared.symbols)
    cap = prepared.capture
    rows = []
    for i in range(len(cap)):
        n = on_message(cap.data, cap.start[i], cap.end[i], cap.recv_ns[i],
                       prepared.snap_sid[i], core.parse, core.syms, core.emit)
        recs = core.out[:n]
        recs = recs[(recs["kind"] == DIFF_LEVEL) | (recs["kind"] == SNAPSHOT_LEVEL)]
        rows.append(np.stack([recs["symbol_id"], recs["side"], recs["price"], recs["qty"]],
                             axis=1).astype(np.int64))
    return np.concatenate(rows) if rows else np.zeros((0, 4), np.int64)


def _best(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main(args: argparse.Namespace) -> int:
    if args.format == "sbe":
        from bench import md_sbe

        if args.capture:
            raise SystemExit("hft bench md --format sbe: generated events only (no CAPTURE)")
        args.messages = args.messages or md_sbe.DEPTH_DIFFS
        return md_sbe.main(args)
    args.messages = args.messages or JSON_DIFFS
    try:
        import orjson
    except ImportError:  # dev dependency
        orjson = None
    cap = files.load(args.capture) if args.capture else generate(args.messages, args.seed)
    prepared = replay.Prepared(cap, infer_symbols(cap), np.full(len(cap), -1, np.int64))
    if not args.capture:
        prepared.snap_sid[0] = 0
    else:
        prepared = replay.prepare(args.capture)
    symbols = prepared.symbols
    raws = [cap.raw(i) for i in range(len(cap))]
    mb = cap.nbytes / 1e6
    msgs = len(cap)
    hdr, lv = P.new_buffers()
    grid = symbols.table()
    conv = np.zeros((lv.shape[0], 2), np.int64)
    rows = []
    core = FeedCore(symbols)
    t_ours, levels = _best(lambda: parse_all(cap.data, cap.start, cap.end, prepared.snap_sid,
                                             hdr, lv, core.keys, core.lens, grid, conv),
                           args.repeat)
    refs = [("json.loads + float()", json.loads)]
    if orjson is not None:
        refs.append(("orjson.loads + float()", orjson.loads))
    rows.append({"stage": "parse", "impl": "numba parser + exact ticks/lots",
                 "msgs/s": msgs / t_ours, "MB/s": mb / t_ours, "levels/s": levels / t_ours,
                 "vs ours": 1.0})
    for name, loads in refs:
        t_ref, ref_levels = _best(lambda loads=loads: reference_parse(raws, loads),
                                  max(1, args.repeat // 2))
        assert ref_levels == levels, (ref_levels, levels)
        rows.append({"stage": "parse", "impl": name, "msgs/s": msgs / t_ref, "MB/s": mb / t_ref,
                     "levels/s": levels / t_ref, "vs ours": t_ours / t_ref})
    # book: every level record the stage emits (snapshots and applied diffs), in order
    ops_arr = level_ops(prepared)
    ops = [tuple(r) for r in ops_arr.tolist()]
    books = B.Books(len(symbols))
    book_all(ops_arr, *books.arrays())  # compile, touch the pages
    t_book = float("inf")
    for _ in range(args.repeat):
        for sid in range(len(symbols)):  # fresh books, outside the timed region
            B.clear(books.qty, books.bits, books.meta, sid)
        t = time.perf_counter()
        n_ops = book_all(ops_arr, *books.arrays())
        t_book = min(t_book, time.perf_counter() - t)
    t_dict, _ = _best(lambda: dict_book_all(ops), max(1, args.repeat // 2))
    rows.append({"stage": "book", "impl": "numba array book", "levels/s": n_ops / t_book,
                 "vs ours": 1.0})
    rows.append({"stage": "book", "impl": "dict book (set/pop only)", "levels/s": n_ops / t_dict,
                 "vs ours": t_book / t_dict})
    replay.InlineReplay(prepared).run()  # compile
    t_replay, result = float("inf"), None
    for _ in range(args.repeat):
        fresh = replay.InlineReplay(prepared)  # allocation outside the timed region
        result = fresh.run()
        t_replay = min(t_replay, result.seconds)
    s = result.summary
    rows.append({"stage": "replay", "impl": "parse + sync + book + BOOK_UPDATE (inline)",
                 "msgs/s": msgs / t_replay, "MB/s": mb / t_replay,
                 "levels/s": s["levels"] / t_replay, "vs ours": 1.0})
    if args.processes:
        from pipeline.replay.procs import run_processes
        t_procs = min(run_processes(prepared, idle=args.idle).seconds
                      for _ in range(max(1, args.repeat // 2)))
        rows.append({"stage": "replay", "impl": f"same via md ring -> book_builder process -> "
                     f"book ring ({args.idle})", "msgs/s": msgs / t_procs, "MB/s": mb / t_procs,
                     "levels/s": s["levels"] / t_procs, "vs ours": t_replay / t_procs})
    extra = {"messages": msgs, "levels": levels, "bytes": cap.nbytes,
             "input": " ".join(args.capture) or f"generated ({args.messages} diffs)",
             "replay": {k: s[k] for k in ("applied", "gaps", "crossed", "rejected")},
             "targets": "parse >= 5x orjson+conversion; book >= 50M levels/s; "
                        "replay >= 10M levels/s"}
    emit("md", rows, args.json, extra)
    return 0
