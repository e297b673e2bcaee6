"""One instrument's Binance SBE streams, from the same book events as its JSON streams.

``SymbolFeed`` hands this object what it publishes as JSON (the touched levels, the best
bid/ask, the trades); the SBE streams carry the same values, so a book built from either is
the same. Streams (``SBE_SUFFIXES``, Binance's names): ``@trade`` (one TradesEvent per taker
order's fills), ``@bestBidAsk`` (bookUpdateId = the book's update id), ``@depth`` (diffs
``U = prev u + 1 .. u``, its own period, 20 ms on Binance) and ``@depth20`` (top 20).
Prices are ``ticks * tick_units`` at exponent ``-price_decimals``, quantities likewise: exact
by construction. Times are microseconds.
"""

from __future__ import annotations

import time

from pipeline.instruments import Instrument
from pipeline.venue import sbe_encode as E
from pipeline.venue.matching import BUY, SELL, Book

SBE_SUFFIXES = ("@trade", "@bestBidAsk", "@depth", "@depth20")
TOP = 20  # @depth20


def now_us() -> int:
    return time.time_ns() // 1000


class SbeFeed:
    def __init__(self, inst: Instrument, book: Book, hub):
        self.inst = inst
        self.book = book
        self.hub = hub  # an MdHub of SBE_SUFFIXES streams (binary frames)
        base = inst.symbol.lower()
        self.trade_name, self.bba_name, self.depth_name, self.top_name = (
            f"{base}{s}" for s in SBE_SUFFIXES)
        self.pexp, self.qexp = -inst.price_decimals, -inst.qty_decimals
        self.dirty: set[tuple[int, int]] = set()
        self.prev_u = book.update_id

    def _levels(self, levels: list[tuple[int, int]]) -> list[E.Level]:
        tu, lu = self.inst.tick_units, self.inst.lot_units
        return [(p * tu, q * lu) for p, q in levels]

    def bbo(self, update_id: int, bbo: tuple[int, int, int, int]) -> None:
        if self.hub.listening(self.bba_name):
            (bid, bq), (ask, aq) = self._levels([bbo[:2], bbo[2:]])
            self.hub.publish(self.bba_name, E.encode(E.BestBidAskEvent(
                self.inst.symbol, now_us(), update_id, self.pexp, self.qexp, (bid, bq),
                (ask, aq))))

    def trades(self, trades: list) -> None:
        """One TradesEvent per taker order (its fills, in order)."""
        if not self.hub.listening(self.trade_name):
            return
        us, tu, lu = now_us(), self.inst.tick_units, self.inst.lot_units
        i, n = 0, len(trades)
        while i < n:
            j = i
            while j < n and trades[j].taker_oid == trades[i].taker_oid:
                j += 1
            group = [E.Trade(t.trade_id, t.price * tu, t.qty * lu, t.taker_side == SELL)
                     for t in trades[i:j]]
            t_us = trades[i].time_ms * 1000 if trades[i].time_ms else us
            self.hub.publish(self.trade_name, E.encode(E.TradesEvent(
                self.inst.symbol, us, t_us, self.pexp, self.qexp, group)))
            i = j

    def flush_depth(self, levels_of) -> None:
        """``@depth``: the levels touched since the last event (``levels_of(book, dirty)``
        -> bids, asks with current quantities, as the JSON streams publish them)."""
        u = self.book.update_id
        if u == self.prev_u:
            return
        prev, self.prev_u = self.prev_u, u
        if self.hub.listening(self.depth_name):
            bids, asks = levels_of(self.book, self.dirty)
            self.hub.publish(self.depth_name, E.encode(E.DepthDiffEvent(
                self.inst.symbol, now_us(), prev + 1, u, self.pexp, self.qexp,
                self._levels(bids), self._levels(asks))))
        self.dirty.clear()

    def flush_top(self) -> None:
        if self.hub.listening(self.top_name):
            b = self.book
            self.hub.publish(self.top_name, E.encode(E.DepthSnapshotEvent(
                self.inst.symbol, now_us(), b.update_id, self.pexp, self.qexp,
                self._levels(b.depth(BUY, TOP)), self._levels(b.depth(SELL, TOP)))))
