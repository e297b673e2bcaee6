"""Binance market-data JSON, spot and futures flavours, exactly as the venue writes it.

Spot writes prices and quantities with 8 decimals ("0.35130000"); USD-M/COIN-M futures
write them with the instrument's own decimals ("7.6110", "24"). Field order follows the
real frames (see /work/shared/data/binance). Strings are built by hand: the simulator
publishes many thousands of these per second, and ``json.dumps`` of dicts is the slow part.
Decimal text comes from ``Instrument.price_str``/``qty_str`` (exact), padded and cached.
"""

from __future__ import annotations

from pipeline.instruments import Instrument

SPOT_DECIMALS = 8


def _pad(text: str, decimals: int) -> str:
    if decimals == 0:
        return text
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(decimals, '0')}"


class Formatter:
    """Builds one instrument's frames (``data`` objects, without the stream wrapper)."""

    def __init__(self, inst: Instrument):
        self.inst = inst
        self.futures = inst.venue != "spot"
        self.symbol = inst.symbol
        self.pdec = SPOT_DECIMALS if not self.futures else inst.price_decimals
        self.qdec = SPOT_DECIMALS if not self.futures else inst.qty_decimals
        self._px: dict[int, str] = {}
        self._qty: dict[int, str] = {}

    def px(self, ticks: int) -> str:
        s = self._px.get(ticks)
        if s is None:
            if len(self._px) > 200_000:
                self._px.clear()
            s = self._px[ticks] = _pad(self.inst.price_str(ticks), self.pdec)
        return s

    def qty(self, lots: int) -> str:
        s = self._qty.get(lots)
        if s is None:
            if len(self._qty) > 200_000:
                self._qty.clear()
            s = self._qty[lots] = _pad(self.inst.qty_str(lots), self.qdec)
        return s

    def levels(self, levels: list[tuple[int, int]]) -> str:
        px, qty = self.px, self.qty
        return "[" + ",".join(f'["{px(p)}","{qty(q)}"]' for p, q in levels) + "]"

    def depth_update(self, event_ms: int, first_id: int, last_id: int, prev_id: int,
                     bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> str:
        if self.futures:
            return (f'{{"e":"depthUpdate","E":{event_ms},"T":{event_ms},"s":"{self.symbol}",'
                    f'"U":{first_id},"u":{last_id},"pu":{prev_id},'
                    f'"b":{self.levels(bids)},"a":{self.levels(asks)}}}')
        return (f'{{"e":"depthUpdate","E":{event_ms},"s":"{self.symbol}","U":{first_id},'
                f'"u":{last_id},"b":{self.levels(bids)},"a":{self.levels(asks)}}}')

    def snapshot(self, last_id: int, event_ms: int, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> str:
        head = f'{{"lastUpdateId":{last_id},'
        if self.futures:
            head += f'"E":{event_ms},"T":{event_ms},'
        return head + f'"bids":{self.levels(bids)},"asks":{self.levels(asks)}}}'

    def trade(self, event_ms: int, trade_id: int, price: int, qty: int, trade_ms: int,
              buyer_maker: bool) -> str:
        m = "true" if buyer_maker else "false"
        if self.futures:
            return (f'{{"e":"trade","E":{event_ms},"T":{trade_ms},"s":"{self.symbol}",'
                    f'"t":{trade_id},"p":"{self.px(price)}","q":"{self.qty(qty)}",'
                    f'"X":"MARKET","m":{m}}}')
        return (f'{{"e":"trade","E":{event_ms},"s":"{self.symbol}","t":{trade_id},'
                f'"p":"{self.px(price)}","q":"{self.qty(qty)}","T":{trade_ms},'
                f'"m":{m},"M":true}}')

    def agg_trade(self, event_ms: int, agg_id: int, price: int, qty: int, first_trade: int,
                  last_trade: int, trade_ms: int, buyer_maker: bool) -> str:
        m = "true" if buyer_maker else "false"
        if self.futures:
            return (f'{{"e":"aggTrade","E":{event_ms},"a":{agg_id},"s":"{self.symbol}",'
                    f'"p":"{self.px(price)}","q":"{self.qty(qty)}","f":{first_trade},'
                    f'"l":{last_trade},"T":{trade_ms},"m":{m}}}')
        return (f'{{"e":"aggTrade","E":{event_ms},"s":"{self.symbol}","a":{agg_id},'
                f'"p":"{self.px(price)}","q":"{self.qty(qty)}","f":{first_trade},'
                f'"l":{last_trade},"T":{trade_ms},"m":{m},"M":true}}')

    def book_ticker(self, update_id: int, bid: tuple[int, int], ask: tuple[int, int],
                    event_ms: int) -> str:
        body = (f'"u":{update_id},"s":"{self.symbol}","b":"{self.px(bid[0])}",'
                f'"B":"{self.qty(bid[1])}","a":"{self.px(ask[0])}","A":"{self.qty(ask[1])}"')
        if self.futures:
            return f'{{"e":"bookTicker",{body},"T":{event_ms},"E":{event_ms}}}'
        return "{" + body + "}"
