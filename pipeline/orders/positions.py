"""An instance's positions and PnL as people read them (decimal strings in the instrument's
units), from the OMS segment and the latest books: the run summary, the replay summary and
the firm-wide risk link all report exactly this."""

from __future__ import annotations

from pipeline.instruments import SymbolTable, from_units
from pipeline.marketdata.latest import LatestBooks
from pipeline.orders.segments import OmsState


def money(ticks_lots: int, inst) -> str:
    """A tick*lot amount in quote currency: ticks*tick_size * lots*lot_size."""
    return from_units(ticks_lots * inst.tick_units * inst.lot_units,
                      inst.price_decimals + inst.qty_decimals, 1)


def position_report(oms: OmsState, books: LatestBooks | None, symbols: SymbolTable) -> dict:
    """Per symbol: position, fills, volume, realised PnL and unrealised PnL marked at the
    latest book's mid (None without a two-sided book, or without ``books``). Also what the
    firm-wide risk link publishes every report."""
    out = {}
    for inst in symbols:
        p = oms.positions[inst.symbol_id]
        book = books.read(inst.symbol_id) if books is not None else None
        mid2 = None
        if book is not None and book["n_bids"] and book["n_asks"]:
            mid2 = int(book["bid_px"][0] + book["ask_px"][0])  # twice the mid, in ticks
        pos, cost = int(p["position"]), int(p["open_cost"])
        unreal = None if mid2 is None else (pos * mid2 - 2 * cost) // 2
        out[inst.symbol] = {
            "position": inst.qty_str(pos) if pos >= 0 else "-" + inst.qty_str(-pos),
            "position_lots": pos,
            "fills": int(p["fills"]),
            "volume": inst.qty_str(int(p["volume"])),
            "realised_pnl": money(int(p["realised"]), inst),
            "unrealised_pnl": None if unreal is None else money(unreal, inst),
        }
    return out
