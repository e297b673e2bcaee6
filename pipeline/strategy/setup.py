"""Build the market maker's state from config (decimal quantities -> lots)."""

from __future__ import annotations

from pipeline.instruments import SymbolTable
from pipeline.strategy import market_maker as MM


def market_maker_state(config: dict, symbols: SymbolTable) -> tuple:
    params = config.get("strategy", {})
    qty = params.get("quote_qty", {})
    limit = params.get("max_position", {})
    missing = [i.symbol for i in symbols if i.symbol not in qty or i.symbol not in limit]
    if missing:
        raise ValueError(f"[strategy] quote_qty/max_position missing for {', '.join(missing)}")
    return MM.make_state(len(symbols), params,
                         quote_qty=[i.lots(str(qty[i.symbol])) for i in symbols],
                         max_position=[i.lots(str(limit[i.symbol])) for i in symbols])
