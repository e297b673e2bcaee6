"""Pre-trade risk in numba: every intent is checked here before anything reaches the wire.

Limits (``RiskLimits``, from config ``[risk]``) are compiled into int64 arrays: per
instrument ``limits[sid] = (max_qty lots, max_notional tick*lot units, max_position lots)``
and ``globals_`` (price band, rates, max open orders, stale-data age). Rate limits are exact
sliding one-second windows: ring buffers of the last N accept times.

Market data comes in through ``marks[sid] = (best bid ticks, best ask ticks, t_book_ns)``:
the gateway fills it from whatever latest-book source it has (``book_top`` is the one
function to rewire to the market-data engineer's seqlock reader).

The venue's exchange rules (Binance exchangeInfo filters, ``pipeline.binance.exchange``)
travel as ``filters[sid]``, a ``FILTER`` record per instrument in the config's ticks/lots
(``compile_filters``; every rule off by default, so a venue without rules, the standard
dialect and the simulator, sees no change). Each filter has its own ``RiskReason``, so an
order the venue would reject is refused here and counted as
``gateway.orders.denied.<reason>``. Approximations: PERCENT_PRICE takes the book's mid as
the reference price (Binance: its reference / weighted average price), MAX_NUM_ORDERS
counts every open order of the gateway (Binance: per symbol; so stricter, never looser).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline import config as cfgmod
from pipeline.binance.exchange import PPM, ExchangeInfoError, ExchangeRules, cross_check
from pipeline.binance.exchange import parse as parse_exchange_info
from pipeline.instruments import SymbolTable
from pipeline.orders import oms
from pipeline.orders.ratewindow import window_ok, window_take
from pipeline.transport.atomics import load_acquire, load_relaxed
from shm_layouts.oms import W_KILL, W_OPEN_ORDERS, W_READY, RiskReason
from shm_layouts.records import OrderAction, OrderType, Side

L_MAX_QTY, L_MAX_NOTIONAL, L_MAX_POSITION = 0, 1, 2
LIMIT_WORDS = 4
G_BAND_BPS, G_ORDERS_PER_S, G_CANCELS_PER_S, G_MAX_OPEN, G_STALE_NS = 0, 1, 2, 3, 4
GLOBAL_WORDS = 8
M_BID, M_ASK, M_TIME = 0, 1, 2
MARK_WORDS = 4
# rate state: [0] next order index, [1] next cancel index, then the two time rings
R_ORDER_IDX, R_CANCEL_IDX = 0, 1

# RiskReason, OrderAction, OrderType and Side as int constants for jitted code
OK, KILL_SWITCH, NOT_READY = int(RiskReason.OK), int(RiskReason.KILL_SWITCH), \
    int(RiskReason.NOT_READY)
UNKNOWN_SYMBOL, BAD_ORDER = int(RiskReason.UNKNOWN_SYMBOL), int(RiskReason.BAD_ORDER)
MAX_QTY, MAX_NOTIONAL = int(RiskReason.MAX_QTY), int(RiskReason.MAX_NOTIONAL)
MAX_POSITION, PRICE_BAND = int(RiskReason.MAX_POSITION), int(RiskReason.PRICE_BAND)
ORDER_RATE, CANCEL_RATE = int(RiskReason.ORDER_RATE), int(RiskReason.CANCEL_RATE)
MAX_OPEN_ORDERS, DUPLICATE_ID = int(RiskReason.MAX_OPEN_ORDERS), int(RiskReason.DUPLICATE_ID)
STALE_MARKET_DATA = int(RiskReason.STALE_MARKET_DATA)
UNKNOWN_ORDER, TABLE_FULL = int(RiskReason.UNKNOWN_ORDER), int(RiskReason.TABLE_FULL)
NO_MARKET_DATA = int(RiskReason.NO_MARKET_DATA)
ORDER_NOT_CANCELABLE = int(RiskReason.ORDER_NOT_CANCELABLE)
PRICE_TICK, PRICE_RANGE = int(RiskReason.PRICE_TICK), int(RiskReason.PRICE_RANGE)
LOT_STEP, MIN_QTY = int(RiskReason.LOT_STEP), int(RiskReason.MIN_QTY)
LOT_MAX_QTY, MIN_NOTIONAL = int(RiskReason.LOT_MAX_QTY), int(RiskReason.MIN_NOTIONAL)
NOTIONAL_MAX, PERCENT_PRICE = int(RiskReason.NOTIONAL_MAX), int(RiskReason.PERCENT_PRICE)
MAX_NUM_ORDERS = int(RiskReason.MAX_NUM_ORDERS)
VENUE_MAX_POSITION = int(RiskReason.VENUE_MAX_POSITION)
NEW, CANCEL = int(OrderAction.NEW), int(OrderAction.CANCEL)
REPLACE, CANCEL_ALL = int(OrderAction.REPLACE), int(OrderAction.CANCEL_ALL)
MARKET = int(OrderType.MARKET)
BID, ASK = int(Side.BID), int(Side.ASK)


# the venue's rules per instrument, in the config's ticks / lots / tick x lot units;
# 0 = the rule is off (a step of 1 = every tick / lot)
FILTER = np.dtype([
    ("price_step", "<i8"),  # PRICE_FILTER tickSize in ticks
    ("min_price", "<i8"),
    ("max_price", "<i8"),
    ("qty_step", "<i8"),  # LOT_SIZE stepSize in lots
    ("min_qty", "<i8"),
    ("max_qty", "<i8"),
    ("min_notional", "<i8"),  # MIN_NOTIONAL / NOTIONAL, price ticks x qty lots
    ("max_notional", "<i8"),
    ("bid_up_ppm", "<i8"),  # PERCENT_PRICE(_BY_SIDE) multipliers, parts per million
    ("bid_down_ppm", "<i8"),
    ("ask_up_ppm", "<i8"),
    ("ask_down_ppm", "<i8"),
    ("max_num_orders", "<i8"),  # open orders (the symbol's and the exchange's, lower)
    ("max_position", "<i8"),  # MAX_POSITION lots of the base asset
    # base asset held (lots) minus the OMS position when the balance was read: held now =
    # holding_offset + position (set_holding, after every reconcile)
    ("holding_offset", "<i8"),
    ("_pad", "<i8"),
])


class RiskView(NamedTuple):
    """Pre-trade risk as one jitted argument: ``limits`` (per instrument), ``g`` (globals),
    ``marks`` (best bid/ask and book time per instrument), ``rates`` (the windows) and
    ``filters`` (the venue's rules per instrument, ``FILTER`` records)."""

    limits: np.ndarray
    g: np.ndarray
    marks: np.ndarray
    rates: np.ndarray
    filters: np.ndarray
_RISK = cfgmod.defaults("risk")


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
    exchange_rules: str = _RISK["exchange_rules"]  # an exchangeInfo JSON file, "" = none
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

    def view(self, table: SymbolTable, rules: ExchangeRules | None = None) -> RiskView:
        """Compiled limits, empty marks (no market data yet), fresh rate windows and the
        venue's ``rules`` (None: those in the ``exchange_rules`` file, if one is set)."""
        if rules is None and self.exchange_rules:
            rules = self.load_rules(table)
        limits, g = self.compile(table)
        marks = np.zeros((max(len(table), 1), MARK_WORDS), np.int64)
        return RiskView(limits, g, marks, self.rate_state(), compile_filters(rules, table))

    def load_rules(self, table: SymbolTable) -> ExchangeRules:
        """The ``exchange_rules`` file, parsed and cross-checked against ``table``."""
        try:
            with open(self.exchange_rules) as f:
                info = json.load(f)
        except (OSError, ValueError) as e:
            raise ExchangeInfoError(f"[risk] exchange_rules {self.exchange_rules}: {e}") \
                from None
        rules = parse_exchange_info(info, f"file {self.exchange_rules}")
        cross_check(rules, table)
        return rules


def _ratio(venue: str, ours: str, what: str) -> int:
    """How many of our ticks (lots) one venue tick (lot) is; it must be whole."""
    q = Decimal(venue) / Decimal(ours)
    if q != q.to_integral_value() or q < 1:
        raise ValueError(f"{what}: the venue's {venue} is not a whole multiple of the "
                         f"config's {ours}")
    return int(q)


def compile_filters(rules: ExchangeRules | None, table: SymbolTable) -> np.ndarray:
    """``FILTER`` rows for ``table`` from the venue's rules (which are on the venue's grid;
    here converted to the config's, normally the same one: ``exchange.cross_check``)."""
    out = np.zeros(max(len(table), 1), FILTER)
    out["price_step"] = out["qty_step"] = 1
    if rules is None:
        return out
    for inst in table:
        r = rules.symbols.get(inst.symbol)
        if r is None:
            raise ValueError(f"{inst.symbol}: no exchange rules from the venue")
        pt = _ratio(r.tick_size, inst.tick_size, f"{inst.symbol} tick size")
        lt = _ratio(r.step_size, inst.lot_size, f"{inst.symbol} lot size")
        n_orders = [n for n in (r.max_num_orders, rules.max_num_orders) if n > 0]
        out[inst.symbol_id] = (
            pt, r.min_price * pt, r.max_price * pt, lt, r.min_qty * lt, r.max_qty * lt,
            r.min_notional * pt * lt, r.max_notional * pt * lt, r.bid_up_ppm,
            r.bid_down_ppm, r.ask_up_ppm, r.ask_down_ppm, min(n_orders, default=0),
            r.max_position * lt, 0, 0)
    return out


def set_holding(filters: np.ndarray, sid: int, held_lots: int, position_lots: int) -> None:
    """After a reconcile: the base asset held at the venue (free + locked, lots) while the
    OMS position was ``position_lots``; MAX_POSITION then follows fills from there."""
    filters[sid]["holding_offset"] = held_lots - position_lots


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
        return NO_MARKET_DATA
    if now - t > g[G_STALE_NS]:
        return STALE_MARKET_DATA
    return OK


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
def lot_filters(f, lo_qty, hi_qty):
    """LOT_SIZE (every order type): step, then ``lo_qty`` >= minQty, ``hi_qty`` <= maxQty."""
    step = f["qty_step"]
    if step > 1 and (lo_qty % step != 0 or hi_qty % step != 0):
        return LOT_STEP
    if lo_qty < f["min_qty"]:
        return MIN_QTY
    if f["max_qty"] > 0 and hi_qty > f["max_qty"]:
        return LOT_MAX_QTY
    return OK


@njit(cache=True, _nrt=False)
def venue_filters(f, side, price, lo_qty, hi_qty, mid2):
    """The venue's symbol filters (``f``: a ``FILTER`` record) for a limit order at
    ``price``: ``lo_qty`` against the minimums, ``hi_qty`` against the maximums (the same
    for a new order; a replace checks both its new open quantity and its new total, so
    neither a cancel-and-new nor an amend of it can be refused); ``mid2``: twice the mid."""
    step = f["price_step"]
    if step > 1 and price % step != 0:
        return PRICE_TICK
    if price < f["min_price"] or (f["max_price"] > 0 and price > f["max_price"]):
        return PRICE_RANGE
    v = lot_filters(f, lo_qty, hi_qty)
    if v:
        return v
    if price * lo_qty < f["min_notional"]:
        return MIN_NOTIONAL
    if f["max_notional"] > 0 and price * hi_qty > f["max_notional"]:
        return NOTIONAL_MAX
    up = f["bid_up_ppm"] if side == BID else f["ask_up_ppm"]
    down = f["bid_down_ppm"] if side == BID else f["ask_down_ppm"]
    if (up > 0 and 2 * PPM * price > up * mid2) or 2 * PPM * price < down * mid2:
        return PERCENT_PRICE
    return OK


@njit(cache=True, _nrt=False)
def _venue_position(f, p, side, qty, extra_open):
    """MAX_POSITION: a BUY whose base asset held + open buys + ``qty`` exceeds it."""
    if side != BID or f["max_position"] == 0:
        return OK
    held = f["holding_offset"] + p["position"]
    if held + p["open_buy"] + extra_open + qty > f["max_position"]:
        return VENUE_MAX_POSITION
    return OK


@njit(cache=True, _nrt=False)
def _filter_checks(rk, positions, r, lo_qty, extra_open):
    """The venue's rules for a new order or a replace (``lo_qty``: its open quantity). A
    market order has no price: only LOT_SIZE (its notional and MARKET_LOT_SIZE, judged by
    the venue on its average price, are not modelled; the market maker sends limits)."""
    sid = r["symbol_id"]
    f = rk.filters[sid]
    if r["ord_type"] == MARKET:
        v = lot_filters(f, lo_qty, r["qty"])
    else:
        bid, ask, _ = book_top(rk.marks, sid)
        v = venue_filters(f, r["side"], r["price"], lo_qty, r["qty"], bid + ask)
    if v:
        return v
    return _venue_position(f, positions[sid], r["side"], lo_qty, extra_open)


@njit(cache=True, _nrt=False)
def _order_checks(rk, positions, r, qty, extra_open, now):
    """Size, notional, position (counting open orders) and price band of order ``r`` (an
    intent) for ``qty`` lots."""
    sid, side, price, ord_type = r["symbol_id"], r["side"], r["price"], r["ord_type"]
    limits = rk.limits
    market = ord_type == MARKET
    if qty <= 0 or side > ASK or (not market and price <= 0):
        return BAD_ORDER
    if qty > limits[sid, L_MAX_QTY]:
        return MAX_QTY
    m = market_check(rk.marks, rk.g, sid, now)
    if m:
        return m
    bid, ask, _ = book_top(rk.marks, sid)
    px = price if not market else (ask if side == BID else bid)
    if px * qty > limits[sid, L_MAX_NOTIONAL] or px > limits[sid, L_MAX_NOTIONAL]:
        return MAX_NOTIONAL
    p = positions[sid]
    if side == BID:
        worst = p["position"] + p["open_buy"] + extra_open + qty
    else:
        worst = -(p["position"] - p["open_sell"] - extra_open - qty)
    if worst > limits[sid, L_MAX_POSITION]:
        return MAX_POSITION
    if not market:
        mid2 = bid + ask  # twice the mid: stay in integers
        if abs(2 * price - mid2) * 10000 > rk.g[G_BAND_BPS] * mid2:
            return PRICE_BAND
    return OK


@njit(cache=True, _nrt=False)
def check(om, rk, r, now):
    """RiskReason for intent ``r`` (an ORDER_INTENT record; ``om``: the OMS view, ``rk``: a
    ``RiskView``). OK = pass. Does not change any state."""
    words, orders, g = om.words, om.orders, rk.g
    action, cl_ord_id, sid = r["action"], r["cl_ord_id"], r["symbol_id"]
    if load_acquire(words, W_KILL) != 0 and action != CANCEL and action != CANCEL_ALL:
        return KILL_SWITCH  # only cancels pass
    if load_relaxed(words, W_READY) == 0:
        return NOT_READY
    if action == CANCEL_ALL:
        return OK
    if sid < 0 or sid >= rk.limits.shape[0]:
        return UNKNOWN_SYMBOL
    if cl_ord_id <= 0 or oms.find(orders, cl_ord_id) >= 0:
        return DUPLICATE_ID
    if not oms.slot_free(orders, cl_ord_id):
        return TABLE_FULL
    if action == NEW:
        if load_relaxed(words, W_OPEN_ORDERS) >= g[G_MAX_OPEN]:
            return MAX_OPEN_ORDERS
        n_max = rk.filters[sid]["max_num_orders"]
        if n_max > 0 and load_relaxed(words, W_OPEN_ORDERS) >= n_max:
            return MAX_NUM_ORDERS
        if not _rate_ok(rk.rates, g, R_ORDER_IDX, 2, G_ORDERS_PER_S, now):
            return ORDER_RATE
        v = _order_checks(rk, om.positions, r, r["qty"], 0, now)
        return v if v else _filter_checks(rk, om.positions, r, r["qty"], 0)
    slot = oms.find(orders, r["orig_cl_ord_id"])
    if slot < 0 or not oms.is_live(orders[slot]["status"]) or \
            orders[slot]["symbol_id"] != sid:
        return UNKNOWN_ORDER
    o = orders[slot]
    if o["status"] == oms.PENDING_CANCEL or o["status"] == oms.PENDING_REPLACE:
        return ORDER_NOT_CANCELABLE
    if action == CANCEL:
        if not _rate_ok(rk.rates, g, R_CANCEL_IDX, 2 + g[G_ORDERS_PER_S], G_CANCELS_PER_S,
                        now):
            return CANCEL_RATE
        return OK
    if action == REPLACE:  # the new order minus what the old one had open
        if r["side"] != o["side"]:
            return BAD_ORDER
        if r["qty"] > rk.limits[sid, L_MAX_QTY]:
            return MAX_QTY
        if not _rate_ok(rk.rates, g, R_ORDER_IDX, 2, G_ORDERS_PER_S, now):
            return ORDER_RATE
        new_leaves = r["qty"] - o["cum_qty"]
        if new_leaves <= 0:
            return BAD_ORDER
        v = _order_checks(rk, om.positions, r, new_leaves, -o["leaves_qty"], now)
        return v if v else _filter_checks(rk, om.positions, r, new_leaves, -o["leaves_qty"])
    return BAD_ORDER
