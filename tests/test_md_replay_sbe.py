"""Capture lines for binary (SBE) frames: ``<recv_ns> b64:<base64>`` beside the unchanged
text lines; a replay of SBE diffs builds the same books as the JSON capture of the same
events."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from bench.md import generate
from bench.md_sbe import SPOT, depth_events
from pipeline.cli import main
from pipeline.instruments import Instrument, SymbolTable
from pipeline.marketdata import files, sbe
from pipeline.replay.inline import InlineReplay, prepare
from pipeline.venue.testing import VenueThread, sim_test_config

SYMBOLS = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001")])


def _write(path, lines: list[bytes]) -> None:
    with gzip.open(path, "wb") as f:
        f.write(b"".join(lines))


def test_sbe_capture_replays_to_the_json_books(tmp_path):
    n = 300
    cap = generate(n, seed=3)
    json_lines = [b"%d %s\n" % (cap.recv_ns[i], cap.raw(i)) for i in range(len(cap))]
    raws, frames = depth_events(n, 3)
    assert raws[0] == cap.raw(0)  # the REST snapshot: a text line in both files
    sbe_lines = [json_lines[0]] + [files.binary_line(int(cap.recv_ns[i + 1]), f)
                                   for i, f in enumerate(frames[SPOT])]
    _write(tmp_path / "json.gz", json_lines)
    _write(tmp_path / "sbe.gz", sbe_lines)

    text = files.load([tmp_path / "json.gz"])
    assert not text.binary.any() and text.raw(5) == cap.raw(5)  # text lines as before
    binary = files.load([tmp_path / "sbe.gz"])
    assert binary.binary.tolist() == [False] + [True] * n
    assert binary.raw(7) == frames[SPOT][6] and binary.snap_symbol[0] == "BTCUSDT"
    assert np.array_equal(binary.recv_ns, text.recv_ns)

    results = {}
    for name in ("json", "sbe"):
        replay = InlineReplay(prepare([tmp_path / f"{name}.gz"], SYMBOLS))
        replay.run()
        s = replay.summary()
        assert s["applied"] == n and s["gaps"] == 0 and s["rejected"] == 0, (name, s)
        results[name] = replay.final(), replay.books.qty.copy()
    (fj, qj), (fs, qs) = results["json"], results["sbe"]
    assert fs == fj and np.array_equal(qs, qj)  # every level of the book, not only the top
    assert fj["BTCUSDT"]["update_id"] > 40_000_000_000 and np.count_nonzero(qj) > 1000


def test_symbol_of_walks_every_template():
    from pipeline.venue import sbe_encode as E
    events = [E.TradesEvent("BTCUSDT", 1, 1, -2, -5, [E.Trade(1, 100, 5, True)]),
              E.BestBidAskEvent("ETHUSDT", 1, 2, -2, -5, (1, 2), (3, 4)),
              E.DepthSnapshotEvent("BTCUSDT", 1, 3, -2, -5, [(1, 2)], [(3, 4), (5, 6)]),
              E.DepthDiffEvent("ETHUSDT", 1, 4, 5, -2, -5, [], [(3, 4)])]
    assert [sbe.symbol_of(E.encode(ev)) for ev in events] == [ev.symbol for ev in events]
    assert sbe.symbol_of(E.encode(events[0])[:-3]) == ""  # truncated: no symbol


@pytest.mark.timeout(120)
def test_hft_capture_of_the_simulators_sbe_streams_replays(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HFT_TEST_SBE_KEY", "test-key")
    vt = VenueThread(sim_test_config(tmp_path, symbols=SYMBOLS))
    out = tmp_path / "btc.sbe.gz"
    try:
        ep = vt.sim.endpoints()
        assert main(["capture", "--url", f"{ep['sbe']}/stream?streams=btcusdt@depth/"
                     "btcusdt@trade", "--rest", ep["rest"], "--symbols", "BTCUSDT", "--out",
                     str(out), "--max-frames", "200", "--api-key-env", "HFT_TEST_SBE_KEY"]) == 0
    finally:
        vt.stop()
    assert "captured 200 frames and 1 snapshots" in capsys.readouterr().out
    lines = gzip.open(out).read().splitlines()
    assert lines[0].split(b" ", 1)[1].startswith(b'{"lastUpdateId"')
    assert all(line.split(b" ", 1)[1].startswith(files.BINARY_TAG) for line in lines[1:])
    replay = InlineReplay(prepare([out], SYMBOLS))
    result = replay.run()
    s = result.summary
    assert s["gaps"] == 0 and s["rejected"] == 0 and s["snapshots"] == 1 and s["applied"] > 50
    assert result.final["BTCUSDT"]["state"] == 2
