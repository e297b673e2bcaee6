"""Pre-trade risk in numba: every intent is checked here before anything reaches the wire.

Limits (``RiskLimits``, from config ``[risk]``) are compiled into int64 arrays: per
instrument ``limits[sid] = (max_qty lots, max_notional tick*lot units, max_position lots)``
and ``globals_`` (price band, rates, max open orders, stale-data age). Rate limits are exact
sliding one-second windows: ring buffers of the last N accept times.

Market data comes in through ``marks[sid] = (best bid ticks, best ask ticks, t_book_ns)``:
the gateway fills it from whatever latest-book source it has (``book_top`` is the one
function to rewire to the market-data engineer's seqlock reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numba import njit

from pipeline import config as cfgmod
from pipeline.instruments import SymbolTable
from pipeline.orders import oms
from pipeline.orders.ratewindow import window_ok, window_take
from pipeline.transport.atomics import load_acquire, load_relaxed
from shm_layouts.oms import W_KILL, W_OPEN_ORDERS, W_READY, RiskReason

L_MAX_QTY, L_MAX_NOTIONAL, L_MAX_POSITION = 0, 1, 2
LIMIT_WORDS = 4
G_BAND_BPS, G_ORDERS_PER_S, G_CANCELS_PER_S, G_MAX_OPEN, G_STALE_NS = 0, 1, 2, 3, 4
GLOBAL_WORDS = 8
M_BID, M_ASK, M_TIME = 0, 1, 2
MARK_WORDS = 4
# rate state: [0] next order index, [1] next cancel index, then the two time rings
R_ORDER_IDX, R_CANCEL_IDX = 0, 1

OK = int(RiskReason.OK)
_RISK = cfgmod.defaults("risk")
R = RiskReason


@dataclass
class RiskLimits:
    """``[risk]``: quantities and notionals as decimal strings in instrument units."""

    max_qty: str = _RISK["max_qty"]
    max_notional: str = _RISK["max_notional"]
    max_position: str = _RISK["max_position"]
    price_band_bps: int = _RISK["price_band_bps"]
    max_orders_per_s: int = _RISK["max_orders_per_s"]
    max_cancels_per_s: int = _RISK["max_cancels_per_s"]
    max_open_orders: int = _RISK["max_open_orders"]
    stale_md_ms: int = _RISK["stale_md_ms"]
    per_symbol: dict | None = None  # {"BTCUSDT": {"max_qty": "0.5", ...}}

    @classmethod
    def from_config(cls, section: dict) -> RiskLimits:
        return cls(**cfgmod.section("risk", section))

    def compile(self, table: SymbolTable) -> tuple[np.ndarray, np.ndarray]:
        limits = np.zeros((max(len(table), 1), LIMIT_WORDS), np.int64)
        for inst in table:
            over = (self.per_symbol or {}).get(inst.symbol, {})
            unit = Decimal(inst.tick_size) * Decimal(inst.lot_size)
            limits[inst.symbol_id] = (
                inst.lots(str(over.get("max_qty", self.max_qty))),
                int(Decimal(str(over.get("max_notional", self.max_notional))) / unit),
                inst.lots(str(over.get("max_position", self.max_position))), 0)
        g = np.zeros(GLOBAL_WORDS, np.int64)
        g[[G_BAND_BPS, G_ORDERS_PER_S, G_CANCELS_PER_S, G_MAX_OPEN, G_STALE_NS]] = (
            self.price_band_bps, self.max_orders_per_s, self.max_cancels_per_s,
            self.max_open_orders, self.stale_md_ms * 1_000_000)
        return limits, g

    def rate_state(self) -> np.ndarray:
        return np.zeros(2 + self.max_orders_per_s + self.max_cancels_per_s, np.int64)


@njit(cache=True, _nrt=False)
def book_top(marks, sid):
    """(best bid ticks, best ask ticks, t_book_ns); t 0 when there is no book yet.
    The interface to the latest-book area: rewire here, nothing else reads ``marks``."""
    return marks[sid, M_BID], marks[sid, M_ASK], marks[sid, M_TIME]


@njit(cache=True, _nrt=False)
def market_check(marks, g, sid, now):
    """Stale or missing market data for ``sid``, else OK."""
    bid, ask, t = book_top(marks, sid)
    if t == 0 or bid <= 0 or ask <= 0:
        return 16  # NO_MARKET_DATA
    if now - t > g[G_STALE_NS]:
        return 13  # STALE_MARKET_DATA
    return 0


@njit(cache=True, _nrt=False)
def _rate_ok(rates, g, idx_word, base, limit_word, now):
    return window_ok(rates, base, rates[idx_word], g[limit_word], now)


@njit(cache=True, _nrt=False)
def _rate_take(rates, g, idx_word, base, limit_word, now):
    window_take(rates, base, rates[idx_word], g[limit_word], now)
    rates[idx_word] += 1


@njit(cache=True, _nrt=False)
def note_order(rates, g, now):
    _rate_take(rates, g, R_ORDER_IDX, 2, G_ORDERS_PER_S, now)


@njit(cache=True, _nrt=False)
def note_cancel(rates, g, now):
    _rate_take(rates, g, R_CANCEL_IDX, 2 + g[G_ORDERS_PER_S], G_CANCELS_PER_S, now)


@njit(cache=True, _nrt=False)
def _order_checks(limits, g, marks, positions, sid, side, price, qty, ord_type, extra_open,
                  now):
    """Size, notional, position (counting open orders) and price band of one order."""
    if qty <= 0 or side > 1 or (ord_type != 2 and price <= 0):
        return 4  # BAD_ORDER
    if qty > limits[sid, L_MAX_QTY]:
        return 5
    m = market_check(marks, g, sid, now)
    if m:
        return m
    bid, ask, _ = book_top(marks, sid)
    px = price if ord_type != 2 else (ask if side == 0 else bid)
    if px * qty > limits[sid, L_MAX_NOTIONAL] or px > limits[sid, L_MAX_NOTIONAL]:
        return 6
    p = positions[sid]
    if side == 0:
        worst = p["position"] + p["open_buy"] + extra_open + qty
    else:
        worst = -(p["position"] - p["open_sell"] - extra_open - qty)
    if worst > limits[sid, L_MAX_POSITION]:
        return 7
    if ord_type != 2:
        mid2 = bid + ask  # twice the mid: stay in integers
        if abs(2 * price - mid2) * 10000 > g[G_BAND_BPS] * mid2:
            return 8
    return 0


@njit(cache=True, _nrt=False)
def check(words, orders, positions, limits, g, marks, rates, action, cl_ord_id,
          orig_cl_ord_id, sid, side, price, qty, ord_type, now):
    """RiskReason for one intent (0 = pass). Does not change any state."""
    if load_acquire(words, W_KILL) != 0 and action != 2 and action != 4:
        return 1  # KILL_SWITCH: only cancels pass
    if load_relaxed(words, W_READY) == 0:
        return 2  # NOT_READY
    if action == 4:
        return 0
    if sid < 0 or sid >= limits.shape[0]:
        return 3
    if cl_ord_id <= 0 or oms.find(orders, cl_ord_id) >= 0:
        return 12  # DUPLICATE_ID
    if not oms.slot_free(orders, cl_ord_id):
        return 15
    if action == 1:  # NEW
        if load_relaxed(words, W_OPEN_ORDERS) >= g[G_MAX_OPEN]:
            return 11
        if not _rate_ok(rates, g, R_ORDER_IDX, 2, G_ORDERS_PER_S, now):
            return 9
        return _order_checks(limits, g, marks, positions, sid, side, price, qty, ord_type,
                             0, now)
    slot = oms.find(orders, orig_cl_ord_id)
    if slot < 0 or not oms.is_live(orders[slot]["status"]) or \
            orders[slot]["symbol_id"] != sid:
        return 14  # UNKNOWN_ORDER
    o = orders[slot]
    if o["status"] == oms.PENDING_CANCEL or o["status"] == oms.PENDING_REPLACE:
        return 17
    if action == 2:  # CANCEL
        if not _rate_ok(rates, g, R_CANCEL_IDX, 2 + g[G_ORDERS_PER_S], G_CANCELS_PER_S, now):
            return 10
        return 0
    if action == 3:  # REPLACE: the new order minus what the old one had open
        if side != o["side"]:
            return 4
        if qty > limits[sid, L_MAX_QTY]:
            return 5
        if not _rate_ok(rates, g, R_ORDER_IDX, 2, G_ORDERS_PER_S, now):
            return 9
        new_leaves = qty - o["cum_qty"]
        if new_leaves <= 0:
            return 4
        return _order_checks(limits, g, marks, positions, sid, side, price, new_leaves,
                             ord_type, -o["leaves_qty"], now)
    return 4
