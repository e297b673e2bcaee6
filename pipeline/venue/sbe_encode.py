"""Binance SBE market-data frames from event fields (the simulator's side; cold path).

The exact bytes of ``stream_1_0.xml``'s four messages (little-endian, fields packed in
schema order, groups after the root block, the ``varString8`` symbol last), so the
simulator can serve ``stream-sbe`` streams from the same events it writes as JSON. Times
are microseconds; prices and quantities are exact ``(mantissa, exponent)`` with one
exponent per message for prices and one for quantities (``common_exponent`` picks it).

``Layout`` exists for tests of forward compatibility: a newer schema version may lengthen
the root block or the group entries and append bytes after the symbol; a decoder must
honour the lengths it is given.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from decimal import Decimal

from pipeline.marketdata.sbe import (
    BBA_BLOCK,
    DIFF_BLOCK,
    LEVEL_ENTRY,
    SCHEMA_ID,
    SCHEMA_VERSION,
    SNAPSHOT_BLOCK,
    TRADE_ENTRY,
    TRADES_BLOCK,
    Template,
)

Level = tuple[int, int]  # (price mantissa, qty mantissa)


@dataclass(frozen=True)
class Layout:
    """Header values and padding: the defaults are schema 1 version 0 exactly."""

    schema_id: int = SCHEMA_ID
    version: int = SCHEMA_VERSION
    extra_block: int = 0  # zero bytes after the root block's known fields
    extra_entry: int = 0  # zero bytes after every group entry's known fields
    trailer: bytes = b""  # bytes after the symbol


EXACT = Layout()


@dataclass(frozen=True)
class Trade:
    id: int
    price: int
    qty: int
    is_buyer_maker: bool


@dataclass(frozen=True)
class TradesEvent:
    symbol: str
    event_time_us: int
    transact_time_us: int
    price_exponent: int
    qty_exponent: int
    trades: list[Trade] = field(default_factory=list)


@dataclass(frozen=True)
class BestBidAskEvent:
    symbol: str
    event_time_us: int
    book_update_id: int
    price_exponent: int
    qty_exponent: int
    bid: Level
    ask: Level


@dataclass(frozen=True)
class DepthSnapshotEvent:  # <symbol>@depth20
    symbol: str
    event_time_us: int
    book_update_id: int
    price_exponent: int
    qty_exponent: int
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)


@dataclass(frozen=True)
class DepthDiffEvent:  # <symbol>@depth
    symbol: str
    event_time_us: int
    first_update_id: int
    last_update_id: int
    price_exponent: int
    qty_exponent: int
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)


Event = TradesEvent | BestBidAskEvent | DepthSnapshotEvent | DepthDiffEvent


def _symbol(symbol: str) -> bytes:
    raw = symbol.encode()
    if len(raw) > 255:
        raise ValueError(f"symbol {symbol!r} longer than varString8 holds")
    return bytes([len(raw)]) + raw


def _levels(levels: list[Level], lay: Layout) -> bytes:
    """A groupSize16Encoding group of (price, qty) entries."""
    if len(levels) > 0xFFFF:
        raise ValueError(f"{len(levels)} levels: more than groupSize16Encoding holds")
    pad = bytes(lay.extra_entry)
    return struct.pack("<HH", LEVEL_ENTRY + lay.extra_entry, len(levels)) + b"".join(
        struct.pack("<qq", p, q) + pad for p, q in levels)


def _message(template: Template, block: int, root: bytes, rest: bytes, symbol: str,
             lay: Layout) -> bytes:
    assert len(root) == block  # noqa: S101 (a packing bug, not input)
    header = struct.pack("<HHHH", block + lay.extra_block, template, lay.schema_id,
                         lay.version)
    return header + root + bytes(lay.extra_block) + rest + _symbol(symbol) + lay.trailer


def encode(ev: Event, lay: Layout = EXACT) -> bytes:
    """One event -> the bytes of one SBE message (one WebSocket binary frame)."""
    if isinstance(ev, TradesEvent):
        root = struct.pack("<qqbb", ev.event_time_us, ev.transact_time_us, ev.price_exponent,
                           ev.qty_exponent)
        pad = bytes(lay.extra_entry)
        group = struct.pack("<HI", TRADE_ENTRY + lay.extra_entry, len(ev.trades)) + b"".join(
            struct.pack("<qqqB", t.id, t.price, t.qty, int(t.is_buyer_maker)) + pad
            for t in ev.trades)
        return _message(Template.TRADES, TRADES_BLOCK, root, group, ev.symbol, lay)
    if isinstance(ev, BestBidAskEvent):
        root = struct.pack("<qqbbqqqq", ev.event_time_us, ev.book_update_id, ev.price_exponent,
                           ev.qty_exponent, *ev.bid, *ev.ask)
        return _message(Template.BEST_BID_ASK, BBA_BLOCK, root, b"", ev.symbol, lay)
    groups = _levels(ev.bids, lay) + _levels(ev.asks, lay)
    if isinstance(ev, DepthSnapshotEvent):
        root = struct.pack("<qqbb", ev.event_time_us, ev.book_update_id, ev.price_exponent,
                           ev.qty_exponent)
        return _message(Template.DEPTH_SNAPSHOT, SNAPSHOT_BLOCK, root, groups, ev.symbol, lay)
    if isinstance(ev, DepthDiffEvent):
        root = struct.pack("<qqqbb", ev.event_time_us, ev.first_update_id, ev.last_update_id,
                           ev.price_exponent, ev.qty_exponent)
        return _message(Template.DEPTH_DIFF, DIFF_BLOCK, root, groups, ev.symbol, lay)
    raise TypeError(f"not an SBE market-data event: {type(ev).__name__}")


def common_exponent(values: list[str]) -> tuple[int, list[int]]:
    """Decimal strings -> (the largest exponent that holds them all exactly, mantissas):
    ``["61837.63000000", "0.5"] -> (-2, [6183763, 50])``; zero for an empty list."""
    decs = [Decimal(v) for v in values]
    if any(d < 0 or not d.is_finite() for d in decs):
        raise ValueError(f"not a non-negative decimal in {values!r}")
    exp = min((d.normalize().as_tuple().exponent for d in decs if d), default=0)
    exp = min(int(exp), 0)
    return exp, [int(d.scaleb(-exp)) for d in decs]
