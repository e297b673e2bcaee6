"""``hft capture`` against the loopback venue, then ``hft replay`` of what it wrote."""

from __future__ import annotations

import gzip
from decimal import Decimal

import pytest
from md_loopback import Market, Venue

from pipeline.cli import main
from pipeline.replay import inline as replay


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_capture_then_replay_rebuilds_the_venue_book(tmp_path, capsys):
    market = Market(seed=11)
    out = tmp_path / "btc.gz"
    with Venue(market, interval=0.001) as venue:
        assert main(["capture", "--url", venue.ws_url, "--rest", venue.rest_url,
                     "--symbols", "BTCUSDT", "--out", str(out), "--max-frames", "300"]) == 0
    assert "captured 300 frames and 1 snapshots" in capsys.readouterr().out
    lines = gzip.open(out).read().splitlines()
    assert len(lines) == 301
    recv_ns, raw = lines[0].split(b" ", 1)
    assert int(recv_ns) > 1_600_000_000 * 10**9 and raw.startswith(b'{"lastUpdateId"')
    result = replay.InlineReplay(replay.prepare([out])).run()
    s = result.summary
    assert s["gaps"] == 0 and s["rejected"] == 0 and s["snapshots"] == 1 and s["applied"] > 200
    book = result.final["BTCUSDT"]
    assert book["state"] == 2
    bids, asks = market.history[book["update_id"]]
    ticks = (Decimal(book["bid_px"]) * 100, Decimal(book["bid_qty"]) * 1000,
             Decimal(book["ask_px"]) * 100, Decimal(book["ask_qty"]) * 1000)
    assert ticks == (*bids[0], *asks[0])
