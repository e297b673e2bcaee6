"""Market-data decode: Binance SBE (numba decoder) vs our JSON parser vs orjson/json + float,
on the same events in the same run: depth diffs (50-100 levels), trades, best bid/ask.

Every impl turns a frame into numbers; ours also into exact int64 ticks/lots. "SBE decode"
and "JSON on_message" write the MD_EVENT records the feed handler publishes (on_message
also runs the depth sync rules, as in the feed); "JSON parse + ticks" stops at the numbers.
SBE prices use exponent -8 (Binance spot's 8 decimals: the decoder divides the zeros out
exactly) or the instrument's own exponent (``grid exp``: no division).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
from numba import njit

from bench._report import emit
from bench.md import _best, generate, parse_all, reference_parse
from pipeline.instruments import Instrument, SymbolTable
from pipeline.marketdata import sbe
from pipeline.marketdata.files import Capture
from pipeline.marketdata.normalize import M_REJECTED, FeedCore, on_message
from pipeline.venue import sbe_encode as E
from shm_layouts.records import MD_EVENT

SYMBOLS = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001")])
INS = SYMBOLS[0]
SPOT = -8  # Binance spot's decimals
DEPTH_DIFFS = 4_000  # default: the SBE frames are encoded in Python (setup time)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=DEPTH_DIFFS, help="depth diffs")
    add_sbe_arguments(parser)
    parser.add_argument("--repeat", type=int, default=5, help="best of N timed runs")
    parser.add_argument("--seed", type=int, default=1)


def add_sbe_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only this benchmark has (``hft bench md --format sbe`` adds them too)."""
    parser.add_argument("--small", type=int, default=20_000, help="trades and bbo events")


@njit(cache=True, _nrt=False)
def json_all(data, start, end, snap_sid, ps, sy, em):
    """``normalize.on_message`` over every message (``FeedCore``'s parse, syms, emit)."""
    total = 0
    for i in range(start.shape[0]):
        total += on_message(data, start[i], end[i], i, snap_sid[i], ps, sy, em)
    return total


@njit(cache=True, _nrt=False)
def sbe_all(data, start, end, dec, out):
    total = 0
    for i in range(start.shape[0]):
        n, _ = sbe.decode(data, start[i], end[i], i, dec, out, 0)
        total += n  # a reject would subtract: the counts are checked below
    return total


def pack(rows: list[bytes]) -> Capture:
    lengths = np.array([len(r) for r in rows], np.int64)
    end = np.cumsum(lengths)
    return Capture(np.frombuffer(b"".join(rows), np.uint8).copy(), end - lengths, end,
                   np.zeros(len(rows), np.int64), [""] * len(rows))


def _mant(text: str, exp: int) -> int:
    """An 8-decimal string ("61837.63000000") as a mantissa at ``exp`` (exact or raise)."""
    whole, frac = text.split(".")
    assert len(frac) == -SPOT  # noqa: S101 (generated input)
    m, rest = divmod(int(whole + frac), 10 ** (exp - SPOT))
    assert rest == 0  # noqa: S101
    return m


def depth_events(n: int, seed: int) -> tuple[list[bytes], dict[int, list[bytes]]]:
    """bench.md's generated BTCUSDT diffs as JSON, and as SBE at each price exponent."""
    cap = generate(n, seed)
    raws = [cap.raw(i) for i in range(1, len(cap))]  # the diffs (the snapshot is message 0)
    frames: dict[int, list[bytes]] = {SPOT: [], -INS.price_decimals: []}
    for raw in raws:
        d = json.loads(raw)["data"]
        for pexp, out in frames.items():
            qexp = SPOT if pexp == SPOT else -INS.qty_decimals
            levels = [[(_mant(p, pexp), _mant(q, qexp)) for p, q in d[k]] for k in "ba"]
            out.append(E.encode(E.DepthDiffEvent("BTCUSDT", d["E"] * 1000, d["U"], d["u"],
                                                 pexp, qexp, *levels)))
    return [cap.raw(0)] + raws, frames


def small_events(n: int, seed: int) -> dict[str, tuple[list[bytes], list[bytes]]]:
    """Trades and best bid/ask: (JSON frames as Binance spot writes them, SBE frames)."""
    rng = random.Random(seed)
    out: dict[str, tuple[list[bytes], list[bytes]]] = {"trade": ([], []), "bbo": ([], [])}
    for i in range(n):
        px, qty = 6_183_763 + rng.randint(-500, 500), rng.randint(1, 10**6)
        pt, qt = f"{px // 100}.{px % 100:02d}000000", f"{qty / 1e5:.8f}"
        maker = rng.random() < 0.5
        e_ms = 1_700_000_000_000 + i
        out["trade"][0].append(json.dumps(
            {"e": "trade", "E": e_ms, "s": "BTCUSDT", "t": 10**9 + i, "p": pt, "q": qt,
             "T": e_ms, "m": maker, "M": True}, separators=(",", ":")).encode())
        out["trade"][1].append(E.encode(E.TradesEvent(
            "BTCUSDT", e_ms * 1000, e_ms * 1000, SPOT, SPOT,
            [E.Trade(10**9 + i, _mant(pt, SPOT), _mant(qt, SPOT), maker)])))
        ask, aq = f"{(px + 1) // 100}.{(px + 1) % 100:02d}000000", f"{(qty + 7) / 1e5:.8f}"
        out["bbo"][0].append(json.dumps(
            {"u": 4 * 10**10 + i, "s": "BTCUSDT", "b": pt, "B": qt, "a": ask, "A": aq},
            separators=(",", ":")).encode())
        out["bbo"][1].append(E.encode(E.BestBidAskEvent(
            "BTCUSDT", e_ms * 1000, 4 * 10**10 + i, SPOT, SPOT,
            (_mant(pt, SPOT), _mant(qt, SPOT)), (_mant(ask, SPOT), _mant(aq, SPOT)))))
    return out


def small_floats(raws: list[bytes], loads) -> int:
    """loads + a trade's or bookTicker's prices and quantities to float (bench.md's
    ``reference_parse`` does the depth levels)."""
    for raw in raws:
        msg = loads(raw)
        for key in ("p", "q", "b", "B", "a", "A"):
            if key in msg:
                float(msg[key])
    return len(raws)


def _timed(fn, repeat: int) -> tuple[float, object]:
    """Best of ``repeat`` runs after an untimed one (compilation, cache loads, page faults)."""
    fn()
    return _best(fn, repeat)


def stage_rows(stage: str, jraws: list[bytes], variants: dict[str, list[bytes]],
               args: argparse.Namespace, loaders: list) -> list[dict]:
    """One event kind: our JSON path, then SBE (each price exponent), then the loaders."""
    depth = stage == "depth diff"
    first = 1 if depth else 0  # a depth run starts with the snapshot (untimed)
    jcap, events = pack(jraws), jraws[first:]
    msgs, levels = len(events), reference_parse(events, json.loads) if depth else 0
    jbytes = int((jcap.end[first:] - jcap.start[first:]).sum())
    snap = np.full(len(jcap), -1, np.int64)
    snap[:first] = 0
    rows: list[dict] = []

    def row(impl: str, seconds: float, nbytes: int) -> dict:
        return {"stage": stage, "impl": impl, "msgs/s": msgs / seconds,
                "ns/msg": seconds / msgs * 1e9,
                "ns/level": seconds / levels * 1e9 if levels else None,
                "MB/s": nbytes / seconds / 1e6, "x JSON ours": t_json / seconds}

    t_json = float("inf")
    for _ in range(args.repeat):  # fresh sync state per run
        core = FeedCore(SYMBOLS)
        views = core.parse, core.syms, core.emit
        json_all(jcap.data, jcap.start[:first], jcap.end[:first], snap[:first], *views)
        t = time.perf_counter()
        n_json = json_all(jcap.data, jcap.start[first:], jcap.end[first:], snap[first:], *views)
        t_json = min(t_json, time.perf_counter() - t)
        assert core.stats[M_REJECTED] == 0 and (not depth or core.sync["applied"][0] == msgs)
    rows.append(row("JSON on_message (ours: parse, ticks, records)", t_json, jbytes))
    conv = np.zeros((core.lv.shape[0], 2), np.int64)
    t_parse, _ = _timed(lambda: parse_all(jcap.data, jcap.start[first:], jcap.end[first:],
                                         snap[first:], core.hdr, core.lv, core.keys, core.lens,
                                         core.grid, conv), args.repeat)
    rows.append(row("JSON parse + ticks (ours, no records)", t_parse, jbytes))
    out = np.zeros(1024, MD_EVENT)
    for name, frames in variants.items():
        scap, dec = pack(frames), sbe.new_decoder(SYMBOLS)
        t_sbe, n = _timed(lambda scap=scap, dec=dec: sbe_all(scap.data, scap.start, scap.end,
                                                            dec, out), args.repeat)
        assert sbe.summary(dec)["rejected"] == 0 and n == n_json  # the same records
        rows.append(row(f"SBE decode ({name}: ticks, records)", t_sbe, scap.nbytes))
    floats = reference_parse if depth else small_floats
    for lname, loads in loaders:
        t_ref, _ = _timed(lambda loads=loads: floats(events, loads), max(1, args.repeat // 2))
        rows.append(row(f"{lname}.loads + float()", t_ref, jbytes))
    return rows


def main(args: argparse.Namespace) -> int:
    loaders = [("json", json.loads)]
    try:
        import orjson
        loaders.insert(0, ("orjson", orjson.loads))
    except ImportError:  # dev dependency
        pass
    t_setup = time.perf_counter()
    json_depth, sbe_depth = depth_events(args.messages, args.seed)
    small = small_events(args.small, args.seed)
    setup_s = time.perf_counter() - t_setup
    rows = stage_rows("depth diff", json_depth, {f"exp {e}": f for e, f in sbe_depth.items()},
                      args, loaders)
    for name, (jraws, frames) in small.items():
        rows += stage_rows(name, jraws, {f"exp {SPOT}": frames}, args, loaders)
    extra = {"depth_diffs": args.messages, "small_events": args.small,
             "setup_s": round(setup_s, 2), "target": "SBE >= 3x our JSON path per event"}
    emit("md_sbe", rows, args.json, extra)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", action="store_true")
    add_arguments(p)
    raise SystemExit(main(p.parse_args()))
