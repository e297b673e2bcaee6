"""Our frames have exactly the fields, in the order, of real Binance frames (captures)."""

from __future__ import annotations

import json

import pytest

from pipeline.instruments import Instrument
from pipeline.venue.binance_format import Formatter

FLAVOURS = {"spot": ("BINANCE", Instrument("NKNUSDT", "spot", "0.0001", "1")),
            "usdm": ("BINANCE_FUTURES", Instrument("SUSHIUSDT", "usdm", "0.001", "1")),
            "coinm": ("BINANCE_DELIVERY", Instrument("BCHUSD_PERP", "coinm", "0.01", "1"))}


def first_frames(path) -> dict[str, dict]:
    """The first data object of each event kind in a capture."""
    out: dict[str, dict] = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("wss://"):  # header, blank lines
                continue
            data = json.loads(line.split(": ", 1)[1])["data"]
            out.setdefault(data.get("e", "bookTicker"), data)
    return out


def ours(fmt: Formatter) -> dict[str, dict]:
    lv = [(3513, 6195)]
    return {"depthUpdate": json.loads(fmt.depth_update(1, 2, 3, 1, lv, lv)),
            "aggTrade": json.loads(fmt.agg_trade(1, 7, 3513, 5, 8, 9, 1, True)),
            "bookTicker": json.loads(fmt.book_ticker(3, (3512, 1), (3513, 2), 1))}


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_stream_shapes_match_captures(binance_data, flavour):
    prefix, inst = FLAVOURS[flavour]
    real = first_frames(binance_data / f"{prefix}.ws.1.0")
    mine = ours(Formatter(inst))
    for kind in ("depthUpdate", "aggTrade", "bookTicker"):
        assert list(mine[kind]) == list(real[kind]), (flavour, kind)
    # decimals as the venue writes them
    assert mine["aggTrade"]["p"] == ("0.35130000" if flavour == "spot" else
                                     {"usdm": "3.513", "coinm": "35.13"}[flavour])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_snapshot_shape_matches_captures(binance_data, flavour):
    prefix, inst = FLAVOURS[flavour]
    with open(binance_data / f"{prefix}.http.0.0") as f:
        real = json.loads(f.readline().split(": ", 1)[1])
    mine = json.loads(Formatter(inst).snapshot(5, 1, [(3513, 1)], [(3514, 2)]))
    assert list(mine) == list(real)
    assert mine["lastUpdateId"] == 5


def test_trade_shape_spot():
    """@trade is not in the captures: Binance's documented spot payload."""
    fmt = Formatter(Instrument("BTCUSDT", "spot", "0.01", "0.00001"))
    t = json.loads(fmt.trade(1, 12345, 6000000, 100, 1, True))
    assert list(t) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
    assert (t["p"], t["q"], t["m"]) == ("60000.00000000", "0.00100000", True)
