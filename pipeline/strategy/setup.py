"""Build the market maker's state from config (decimal quantities -> lots)."""

from __future__ import annotations

import logging
from decimal import Decimal

from pipeline import config as cfgmod
from pipeline.instruments import SymbolTable
from pipeline.orders.risk import RiskLimits
from pipeline.strategy import market_maker as MM

log = logging.getLogger(__name__)


def market_maker_state(config: dict, symbols: SymbolTable) -> tuple:
    params = config.get("strategy", {})
    qty = params.get("quote_qty", {})
    limit = params.get("max_position", {})
    missing = [i.symbol for i in symbols if i.symbol not in qty or i.symbol not in limit]
    if missing:
        raise ValueError(f"[strategy] quote_qty/max_position missing for {', '.join(missing)}")
    for warning in [budget_warning(config, len(symbols)), *position_warnings(config, symbols)]:
        if warning:
            log.warning("%s", warning)
    return MM.make_state(len(symbols), params,
                         quote_qty=[i.lots(str(qty[i.symbol])) for i in symbols],
                         max_position=[i.lots(str(limit[i.symbol])) for i in symbols])


def budget_warning(config: dict, n_symbols: int) -> str | None:
    """Why pre-trade risk could still deny the market maker's orders for rate, or None.

    Risk counts on the gateway's clock, the budget on the strategy's: orders one second
    apart at the strategy can arrive closer together, so a gateway window can hold the
    orders of up to two strategy windows (while the order ring hop stays under a second).
    Cancels are not budgeted: at most the quotes resting plus the new orders."""
    params = cfgmod.defaults("strategy") | config.get("strategy", {})
    budget = params["max_orders_per_s"]
    risk = RiskLimits.from_config(config.get("risk", {}))
    if budget == 0:
        return "[strategy] max_orders_per_s = 0: no order budget, risk will throttle quoting"
    if 2 * budget > risk.max_orders_per_s:
        return (f"[strategy] max_orders_per_s = {budget} is above half of [risk] "
                f"max_orders_per_s = {risk.max_orders_per_s}: risk may deny requotes")
    quotes = 2 * min(int(params["levels"]), MM.MAX_LEVELS) * n_symbols
    if quotes + 2 * budget > risk.max_cancels_per_s:
        return (f"{quotes} quotes + 2 x [strategy] max_orders_per_s = {budget} exceed [risk] "
                f"max_cancels_per_s = {risk.max_cancels_per_s}: risk may deny cancels")
    return None


def position_warnings(config: dict, symbols: SymbolTable) -> list[str]:
    """Instruments whose [strategy] max_position is above risk's: the strategy would
    quote into MAX_POSITION denials instead of stopping a side itself."""
    mine = config.get("strategy", {}).get("max_position", {})
    risk = RiskLimits.from_config(config.get("risk", {}))
    out = []
    for inst in symbols:
        limit = (risk.per_symbol or {}).get(inst.symbol, {}).get("max_position",
                                                                  risk.max_position)
        if inst.symbol in mine and Decimal(str(mine[inst.symbol])) > Decimal(str(limit)):
            out.append(f"[strategy] max_position {inst.symbol} = {mine[inst.symbol]} is above "
                       f"[risk] max_position = {limit}: risk will deny its quotes")
    return out
