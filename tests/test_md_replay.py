"""Replay of the shared real captures: zero gaps, zero crossed books, and each final BBO
equals the last bookTicker at or before the book's update id; plus a mid-stream
re-snapshot and the hftbacktest line format."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal

import pytest
from md_reference import DictBook

from pipeline.marketdata import files
from pipeline.replay import inline as replay

CAPTURES = ["BINANCE.ws.1.0", "BINANCE_FUTURES.ws.1.0", "BINANCE_DELIVERY.ws.1.0"]


def _book_tickers(path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    cap = files.load([path])
    for i in range(len(cap)):
        msg = json.loads(cap.raw(i))
        data = msg.get("data", msg)
        if "@bookTicker" in msg.get("stream", "") or data.get("e") == "bookTicker":
            out.setdefault(data["s"], []).append(data)
    return out


def _same(a: str, b: str) -> bool:
    return Decimal(a) == Decimal(b)


@pytest.mark.parametrize("name", CAPTURES)
def test_real_capture_rebuilds_to_book_ticker(binance_data, name, tmp_path):
    result = replay.InlineReplay(replay.prepare([binance_data / name])).run(log_bbo=True)
    s = result.summary
    assert s["gaps"] == 0 and s["crossed"] == 0 and s["rejected"] == 0 and s["id_errors"] == 0
    assert s["applied"] > 0 and s["snapshots"] == len(result.symbols)
    tickers = _book_tickers(binance_data / name)
    checked = 0
    for symbol, book in result.final.items():
        assert book["state"] == 2, symbol
        before = [t for t in tickers.get(symbol, []) if t["u"] <= book["update_id"]]
        if not before:
            continue
        t = max(before, key=lambda t: t["u"])
        assert _same(book["bid_px"], t["b"]) and _same(book["bid_qty"], t["B"]), (symbol, t)
        assert _same(book["ask_px"], t["a"]) and _same(book["ask_qty"], t["A"]), (symbol, t)
        checked += 1
    assert checked >= len(result.symbols) - 1
    out = tmp_path / "bbo.csv"
    replay.write_bbo_csv(out, result.symbols, result.bbo_rows)
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == s["applied"]
    last = {r["symbol"]: r for r in rows}
    for symbol, r in last.items():
        assert r["bid_px"] == result.final[symbol]["bid_px"]
        assert int(r["update_id"]) == result.final[symbol]["update_id"]


def _symbol_stream(binance_data, symbol: str):
    """(recv_ns, raw) of one symbol's depth diffs and its snapshot body."""
    cap = files.load([binance_data / "BINANCE.ws.1.0"])
    diffs, snap = [], None
    for i in range(len(cap)):
        raw = cap.raw(i)
        if cap.snap_symbol[i] == symbol:
            snap = (int(cap.recv_ns[i]), raw)
        elif f'"s":"{symbol}"'.encode() in raw and b"depthUpdate" in raw:
            diffs.append((int(cap.recv_ns[i]), raw))
    return diffs, snap


def _snapshot_after(snap_raw: bytes, diffs: list[bytes]) -> bytes:
    """A REST-style snapshot equal to snapshot + the given diffs (reference book)."""
    snap = json.loads(snap_raw)
    book = DictBook()
    for side, key in ((0, "bids"), (1, "asks")):
        for p, q in snap[key]:
            book.apply(side, Decimal(p), Decimal(q))
    last = snap["lastUpdateId"]
    for raw in diffs:
        d = json.loads(raw)["data"]
        if d["u"] <= last:
            continue
        for side, key in ((0, "b"), (1, "a")):
            for p, q in d[key]:
                book.apply(side, Decimal(p), Decimal(q))
        last = d["u"]
    body = {"lastUpdateId": last,
            "bids": [[str(p), str(q)] for p, q in book.top(0, 1000)],
            "asks": [[str(p), str(q)] for p, q in book.top(1, 1000)]}
    return json.dumps(body, separators=(",", ":")).encode()


def test_gap_then_mid_stream_snapshot_resyncs_like_live(binance_data, tmp_path):
    """hftbacktest line format, gzip, split over two files: a dropped diff makes a gap;
    the capture's later snapshot resyncs and the book ends where the full stream does."""
    symbol = "NKNUSDT"
    diffs, snap = _symbol_stream(binance_data, symbol)
    assert snap and len(diffs) > 40
    cut = 30
    resnap = _snapshot_after(snap[1], [raw for _, raw in diffs[: cut + 5]])
    lines = [snap] + diffs[:cut] + diffs[cut + 1: cut + 5] + \
        [(diffs[cut + 4][0] + 1, resnap)] + diffs[cut + 5:]
    lines.sort(key=lambda x: x[0])
    half = len(lines) // 2
    paths = []
    for n, chunk in enumerate((lines[:half], lines[half:])):
        path = tmp_path / f"part{n}.gz"
        with gzip.open(path, "wb") as f:
            for t, raw in chunk:
                f.write(b"%d %s\n" % (t, raw))
        paths.append(path)
    full = replay.InlineReplay(replay.prepare([binance_data / "BINANCE.ws.1.0"])).run()
    got = replay.InlineReplay(replay.prepare(paths)).run()
    s = got.summary
    assert s["gaps"] == 1 and s["resyncs"] == 1 and s["snapshots"] == 2, s
    assert s["crossed"] == 0 and s["invalidations"] == 1
    assert got.final[symbol] == full.final[symbol]


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_replay_through_processes_matches_inline(binance_data):
    from pipeline.replay.procs import run_processes
    prepared = replay.prepare([binance_data / "BINANCE_FUTURES.ws.1.0"])
    inline = replay.InlineReplay(prepared).run(log_bbo=True)
    procs = run_processes(prepared, log_bbo=True, capacity=256)  # small ring: backpressure
    assert procs.final == inline.final
    assert procs.bbo_rows.tolist() == inline.bbo_rows.tolist()
    assert procs.summary == inline.summary


def test_hft_replay_command_writes_bbo_csv(binance_data, tmp_path, capsys):
    from pipeline.cli import main
    out = tmp_path / "bbo.csv"
    assert main(["replay", "--inline", str(binance_data / "BINANCE.ws.1.0"),
                 "--bbo-out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "gaps 0" in text and "crossed 0" in text and "NKNUSDT" in text
    lines = out.read_text().splitlines()
    assert lines[0] == "symbol,update_id,bid_px,bid_qty,ask_px,ask_qty"
    assert len(lines) == 1 + 172


@pytest.mark.timeout(120)
def test_paced_replay_gives_the_same_books(binance_data):
    """--speed paces by the recorded receive times (30 s of capture at 3000x: ~10 ms)."""
    from pipeline.replay.procs import run_processes
    prepared = replay.prepare([binance_data / "BINANCE.ws.1.0"])
    fast = replay.InlineReplay(prepared).run()
    assert replay.InlineReplay(prepared).run(speed=3000).final == fast.final
    assert run_processes(prepared, speed=3000).final == fast.final


@pytest.mark.parametrize("name", CAPTURES)
def test_real_book_tickers_overlay_without_touching_the_books(binance_data, name):
    """Live builders publish fresh bookTickers over the book: on real captures every
    ticker is either published or older than the book, none is crossed, and the rebuilt
    books are exactly those of a replay without the overlay."""
    prepared = replay.prepare([binance_data / name])
    plain = replay.InlineReplay(prepared).run()
    live = replay.InlineReplay(prepared)
    live.bst["ticker_overlay"] = 1
    r = live.run()
    s = r.summary
    assert s["bbo_updates"] > 0 and s["bbo_rejected"] == 0
    assert s["book_updates"] == plain.summary["book_updates"] + s["bbo_updates"]
    assert r.final == plain.final
    tickers = sum(len(t) for t in _book_tickers(binance_data / name).values())
    # a ticker is published, older than the book, or arrives while its book is unsynced
    assert s["bbo_updates"] + s["bbo_superseded"] <= tickers == s["bbo"]
