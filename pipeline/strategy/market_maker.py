"""Inventory-aware market maker (Guéant-Lehalle-Fernandez-Tapia closed form).

Quotes around the mid, skewed by inventory, with the spread set by risk aversion, the
mid's volatility and the intensity of order arrivals (lambda(delta) = A exp(-k delta)):

    c1 = ln(1 + gamma/k) / gamma
    c2 = sqrt(sigma^2 gamma / (2 k A) * (1 + gamma/k)^(1 + k/gamma))
    bid = mid - (c1 + (2q + 1)/2 c2)        ask = mid + (c1 - (2q - 1)/2 c2)

with q the inventory in quote sizes, all distances in ticks, sigma^2 in ticks^2/s and A
in arrivals/s. sigma^2 is an exponentially weighted estimate from mid changes; A from
trade arrivals; k and gamma come from config. Model arithmetic is floating point; every
price it emits is rounded to whole ticks on the passive side and every quantity is lots.

State is ``MarketMakerState``, a named tuple of plain arrays (one row per symbol, words
named below) so the whole thing runs in numba:
- ``p_i``/``p_f``: integer and float parameters; ``sym_cfg``: per-symbol quote size and
  inventory limit in lots;
- ``st_i``/``st_f``: per-symbol state; ``orders[symbol, side, level, word]``: our quotes;
- ``budget``: the order budget (below).

Order budget (``[strategy] max_orders_per_s``): new orders and replaces, counted the way
pre-trade risk counts its ``max_orders_per_s`` (one exact sliding one-second window over
all instruments, ``pipeline/orders/ratewindow.py``), but on the strategy's clock ``now``,
so a replay throttles identically. It is one budget for all instruments because the risk
limit it must stay under is one window for the whole session. When it is spent the quote
is left where it is (never dropped) and the symbol is marked due: the next book update
requotes it, or, if the book stays quiet for ``requote_retry_ms``, the timer does from the
last book once the window has room (book-driven requotes keep their frame's t_origin, so
tick-to-trade stays measured). Cancels are never held back (pulling a quote
is the safe action); each cancels a quote one new order placed, so within any second they
number at most the quotes resting at its start plus that second's new orders.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline import config as cfgmod
from pipeline.orders.ratewindow import window_ok, window_take
from pipeline.strategy.intents import (
    ASK,
    BID,
    CANCEL,
    NEW,
    POST_ONLY,
    REPLACE,
    Order,
    next_id,
    submit,
)
from shm_layouts.records import ExecType, SyncState

# integer parameters
LEVELS, SPACING, REQUOTE, STALE_NS, COOLDOWN_NS, PAUSED, ORDERS_PER_S, RETRY_NS = range(8)
P_INT_WORDS = 8
# float parameters
GAMMA, K, A_PRIOR, SIGMA2_PRIOR, VOL_TAU_S, RATE_TAU_S = 0, 1, 2, 3, 4, 5
P_FLOAT_WORDS = 8
# per-symbol config
QUOTE_QTY, MAX_POSITION = 0, 1
# per-symbol integer state
POSITION, SYNCED, BEST_BID, BEST_ASK, COOLDOWN_UNTIL, LAST_BOOK_NS, FILLED_QTY = range(7)
N_QUOTES, N_REJECTS, N_FILLS, REQUOTE_DUE = 7, 8, 9, 10  # REQUOTE_DUE: held back by budget
ST_INT_WORDS = 12
# per-symbol float state
MID, LAST_MID_NS, SIGMA2, RATE, LAST_TRADE_NS = range(5)
ST_FLOAT_WORDS = 8
# per-order words
O_ID, O_PRICE, O_QTY, O_STATUS, O_PREV_ID, O_PREV_PRICE = range(6)
ORDER_WORDS = 8
EMPTY, PENDING_NEW, LIVE, PENDING_CANCEL, PENDING_REPLACE = 0, 1, 2, 3, 4
MAX_LEVELS = 8
# order budget: orders counted so far, quote updates held back, then the window's times
B_COUNT, B_THROTTLED, B_TIMES = 0, 1, 2

SYNCED_STATE = int(SyncState.SYNCED)
ET_NEW, ET_PARTIAL, ET_FILL = int(ExecType.NEW), int(ExecType.PARTIAL_FILL), int(ExecType.FILL)
ET_CANCELED, ET_REPLACED = int(ExecType.CANCELED), int(ExecType.REPLACED)
ET_REJECTED, ET_EXPIRED = int(ExecType.REJECTED), int(ExecType.EXPIRED)
ET_CANCEL_REJECTED = int(ExecType.CANCEL_REJECTED)


class MarketMakerState(NamedTuple):
    """The market maker's ``mm``: every array a callback reads or writes."""

    p_i: np.ndarray  # int64 [LEVELS..RETRY_NS]
    p_f: np.ndarray  # float64 [GAMMA..RATE_TAU_S]
    sym_cfg: np.ndarray  # int64 [symbol, QUOTE_QTY | MAX_POSITION]
    st_i: np.ndarray  # int64 [symbol, POSITION..REQUOTE_DUE]
    st_f: np.ndarray  # float64 [symbol, MID..LAST_TRADE_NS]
    orders: np.ndarray  # int64 [symbol, side, level, O_ID..O_PREV_PRICE]
    budget: np.ndarray  # int64 [B_COUNT, B_THROTTLED, B_TIMES...]


def make_state(n_symbols: int, params: dict, quote_qty: list[int],
               max_position: list[int]) -> MarketMakerState:
    """Allocate the strategy's arrays from config values (already in ticks and lots);
    ``params`` is ``[strategy]``, over its defaults in ``config.SCHEMA``."""
    params = cfgmod.defaults("strategy") | params
    p_i = np.zeros(P_INT_WORDS, np.int64)
    p_i[LEVELS] = min(int(params["levels"]), MAX_LEVELS)
    p_i[SPACING] = int(params["level_spacing_ticks"])
    p_i[REQUOTE] = int(params["requote_ticks"])
    p_i[STALE_NS] = int(float(params["stale_ms"]) * 1e6)
    p_i[COOLDOWN_NS] = int(float(params["reject_cooldown_ms"]) * 1e6)
    budget = params["max_orders_per_s"]
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"[strategy] max_orders_per_s must be a whole number >= 0 "
                         f"(0: no budget), not {budget!r}")
    p_i[ORDERS_PER_S] = budget
    p_i[RETRY_NS] = int(float(params["requote_retry_ms"]) * 1e6)
    p_f = np.zeros(P_FLOAT_WORDS, np.float64)
    p_f[GAMMA] = float(params["gamma"])
    p_f[K] = float(params["k"])
    p_f[A_PRIOR] = float(params["arrival_rate_prior"])
    p_f[SIGMA2_PRIOR] = float(params["sigma2_prior"])
    p_f[VOL_TAU_S] = float(params["vol_halflife_s"]) / math.log(2)
    p_f[RATE_TAU_S] = float(params["rate_halflife_s"]) / math.log(2)
    sym_cfg = np.zeros((n_symbols, 2), np.int64)
    sym_cfg[:, QUOTE_QTY] = quote_qty
    sym_cfg[:, MAX_POSITION] = max_position
    st_i = np.zeros((n_symbols, ST_INT_WORDS), np.int64)
    st_f = np.zeros((n_symbols, ST_FLOAT_WORDS), np.float64)
    st_f[:, SIGMA2] = p_f[SIGMA2_PRIOR]
    st_f[:, RATE] = p_f[A_PRIOR]
    orders = np.zeros((n_symbols, 2, MAX_LEVELS, ORDER_WORDS), np.int64)
    window = np.full(B_TIMES + max(budget, 1), np.iinfo(np.int64).min // 2, np.int64)
    window[B_COUNT] = window[B_THROTTLED] = 0  # the times start long past: all room
    return MarketMakerState(p_i, p_f, sym_cfg, st_i, st_f, orders, window)


# ---------------------------------------------------------------------------- model
@njit(cache=True, _nrt=False)
def quote_offsets(gamma, k, arrival_rate, sigma2, q):
    """GLFT bid and ask distances from the mid, in ticks, for inventory ``q`` quotes."""
    c1 = math.log(1.0 + gamma / k) / gamma
    c2 = math.sqrt(sigma2 * gamma / (2.0 * k * arrival_rate)
                   * (1.0 + gamma / k) ** (1.0 + k / gamma))
    return c1 + (2.0 * q + 1.0) / 2.0 * c2, c1 - (2.0 * q - 1.0) / 2.0 * c2


@njit(cache=True, _nrt=False)
def _decay(dt_s, tau_s):
    return math.exp(-dt_s / tau_s) if tau_s > 0 else 0.0


@njit(cache=True, _nrt=False)
def update_mid(p_f, st_f, s, mid, now_ns):
    """EWMA of squared mid changes per second (ticks^2/s)."""
    last = st_f[s, MID]
    if last > 0 and now_ns > st_f[s, LAST_MID_NS]:
        dt = (now_ns - st_f[s, LAST_MID_NS]) / 1e9
        if mid != last:
            w = _decay(dt, p_f[VOL_TAU_S])
            inst = (mid - last) ** 2 / max(dt, 1e-3)
            st_f[s, SIGMA2] = w * st_f[s, SIGMA2] + (1.0 - w) * inst
            st_f[s, LAST_MID_NS] = now_ns
    else:
        st_f[s, LAST_MID_NS] = now_ns
    st_f[s, MID] = mid


@njit(cache=True, _nrt=False)
def update_rate(p_f, st_f, s, now_ns):
    """Trade arrivals per second, exponentially decayed (A of the intensity model)."""
    tau = p_f[RATE_TAU_S]
    if st_f[s, LAST_TRADE_NS] > 0 and tau > 0:
        dt = max(now_ns - st_f[s, LAST_TRADE_NS], 0) / 1e9
        st_f[s, RATE] = st_f[s, RATE] * _decay(dt, tau) + 1.0 / tau
    st_f[s, LAST_TRADE_NS] = now_ns


# ---------------------------------------------------------------------------- order budget
@njit(cache=True, _nrt=False)
def budget_room(mm, now):
    """May one more new order or replace go out at ``now``?"""
    n, budget = mm.p_i[ORDERS_PER_S], mm.budget
    return n <= 0 or window_ok(budget, B_TIMES, budget[B_COUNT], n, now)


@njit(cache=True, _nrt=False)
def _budget_take(mm, now):
    n, budget = mm.p_i[ORDERS_PER_S], mm.budget
    if n > 0:
        window_take(budget, B_TIMES, budget[B_COUNT], n, now)
        budget[B_COUNT] += 1


@njit(cache=True, _nrt=False)
def _budget_allows(mm, s, now):
    """As ``budget_room``, but a refusal is counted and leaves symbol ``s`` due a requote."""
    if budget_room(mm, now):
        return True
    mm.budget[B_THROTTLED] += 1
    mm.st_i[s, REQUOTE_DUE] = 1
    return False


# ---------------------------------------------------------------------------- order upkeep
@njit(cache=True, _nrt=False)
def keep_order(mm, sink, s, side, level, target, qty, t_origin, now):
    """Make quote (s, side, level) rest at ``target``: new, replace or leave it.
    ``target < 0`` means pull it. Returns intents sent."""
    p_i, st_i, orders = mm.p_i, mm.st_i, mm.orders
    o = orders[s, side, level]
    status = o[O_STATUS]
    if target < 0 or qty <= 0:
        if status == LIVE:
            if submit(sink, CANCEL, Order(s, side, o[O_PRICE], o[O_QTY], POST_ONLY),
                      next_id(sink), o[O_ID], t_origin, now):
                o[O_STATUS] = PENDING_CANCEL
                return 1
        return 0
    if status == EMPTY:
        if now < st_i[s, COOLDOWN_UNTIL] or not _budget_allows(mm, s, now):
            return 0
        cl = next_id(sink)
        if submit(sink, NEW, Order(s, side, target, qty, POST_ONLY), cl, 0, t_origin, now):
            o[O_ID], o[O_PRICE], o[O_QTY], o[O_STATUS] = cl, target, qty, PENDING_NEW
            st_i[s, N_QUOTES] += 1
            _budget_take(mm, now)
            return 1
        return 0
    if status == LIVE and abs(target - o[O_PRICE]) >= p_i[REQUOTE]:
        if not _budget_allows(mm, s, now):
            return 0  # the quote stays where it is; the timer requotes it later
        cl = next_id(sink)
        if submit(sink, REPLACE, Order(s, side, target, qty, POST_ONLY), cl, o[O_ID],
                  t_origin, now):
            o[O_PREV_ID], o[O_PREV_PRICE] = o[O_ID], o[O_PRICE]
            o[O_ID], o[O_PRICE], o[O_QTY], o[O_STATUS] = cl, target, qty, PENDING_REPLACE
            st_i[s, N_QUOTES] += 1
            _budget_take(mm, now)
            return 1
    return 0


@njit(cache=True, _nrt=False)
def pull_symbol(mm, sink, s, t_origin, now):
    mm.st_i[s, REQUOTE_DUE] = 0  # nothing to requote once the quotes are pulled
    sent = 0
    for side in (BID, ASK):
        for level in range(mm.p_i[LEVELS]):  # a run-time bound, as in requote
            sent += keep_order(mm, sink, s, side, level, -1, 0, t_origin, now)
    return sent


# ---------------------------------------------------------------------------- callbacks
@njit(cache=True, _nrt=False)
def on_book(mm, sink, book, now):
    """A book update for one symbol: re-price our quotes (or pull them if unsynced)."""
    p_i, p_f, st_i, st_f = mm.p_i, mm.p_f, mm.st_i, mm.st_f
    s = book["symbol_id"]
    t_origin = book["t_origin_ns"]
    st_i[s, LAST_BOOK_NS] = now
    if book["state"] != SYNCED_STATE or book["n_bids"] == 0 or book["n_asks"] == 0:
        st_i[s, SYNCED] = 0
        return pull_symbol(mm, sink, s, t_origin, now)
    st_i[s, SYNCED] = 1
    bb, ba = book["bid_px"][0], book["ask_px"][0]
    st_i[s, BEST_BID], st_i[s, BEST_ASK] = bb, ba
    if p_i[PAUSED]:
        return pull_symbol(mm, sink, s, t_origin, now)
    update_mid(p_f, st_f, s, (bb + ba) / 2.0, now)
    return requote(mm, sink, s, t_origin, now)


@njit(cache=True, _nrt=False)
def requote(mm, sink, s, t_origin, now):
    """Keep the quotes of symbol ``s`` at their GLFT targets for the last book seen."""
    p_i, p_f, sym_cfg, st_i, st_f = mm.p_i, mm.p_f, mm.sym_cfg, mm.st_i, mm.st_f
    st_i[s, REQUOTE_DUE] = 0  # set again if the budget holds something back
    bb, ba = st_i[s, BEST_BID], st_i[s, BEST_ASK]
    mid = (bb + ba) / 2.0
    qty = sym_cfg[s, QUOTE_QTY]
    position = st_i[s, POSITION]
    d_bid, d_ask = quote_offsets(p_f[GAMMA], p_f[K], max(st_f[s, RATE], 1e-6),
                                 max(st_f[s, SIGMA2], 1e-9), position / max(qty, 1))
    bid0 = min(math.floor(mid - d_bid), ba - 1)  # passive: never at or through the ask
    ask0 = max(math.ceil(mid + d_ask), bb + 1)
    levels = p_i[LEVELS]
    sent = 0
    # A run-time bound on purpose (no quote ever rests at a level >= levels): over the
    # constant MAX_LEVELS, the copy of this loop that a cached caller embeds ran the
    # decision 5x slower than a fresh compile (2.6 vs 0.5 us; issue 12, BENCHMARKS.md).
    for level in range(levels):
        exposure = qty * (level + 1)
        bid = bid0 - level * p_i[SPACING]
        ask = ask0 + level * p_i[SPACING]
        can_buy = position + exposure <= sym_cfg[s, MAX_POSITION] and bid > 0
        can_sell = position - exposure >= -sym_cfg[s, MAX_POSITION]
        # the side moving away from the market goes first: if the budget covers only one,
        # the stale quote is repriced, and a bid never overtakes our own ask (or vice versa)
        ask_first = ask > mm.orders[s, ASK, level, O_PRICE] > 0
        for side in (ASK, BID) if ask_first else (BID, ASK):
            target = (bid if can_buy else -1) if side == BID else (ask if can_sell else -1)
            sent += keep_order(mm, sink, s, side, level, target, qty, t_origin, now)
    return sent


@njit(cache=True, _nrt=False)
def on_trade(mm, sink, symbol_id, price, qty, now):
    update_rate(mm.p_f, mm.st_f, symbol_id, now)
    return 0


@njit(cache=True, _nrt=False)
def _find(orders, s, cl_ord_id, orig_cl_ord_id):
    """Our quote a report is about: by its id, the id it replaced, or (cancel requests
    carry their own id) the original id the request targeted."""
    for side in (BID, ASK):
        for level in range(MAX_LEVELS):
            o = orders[s, side, level]
            if o[O_STATUS] != EMPTY and (o[O_ID] == cl_ord_id or o[O_PREV_ID] == cl_ord_id
                                         or (orig_cl_ord_id > 0 and o[O_ID] == orig_cl_ord_id)):
                return side, level
    return -1, -1


@njit(cache=True, _nrt=False)
def on_exec(mm, sink, report, now):
    """Track our quotes and inventory from an execution report (venue or risk)."""
    p_i, st_i, orders = mm.p_i, mm.st_i, mm.orders
    s = report["symbol_id"]
    if s < 0 or s >= orders.shape[0]:
        return 0
    et = report["exec_type"]
    side, level = _find(orders, s, report["cl_ord_id"], report["orig_cl_ord_id"])
    if et == ET_PARTIAL or et == ET_FILL:
        # the report carries the resulting inventory: exact after a restart, and a fill
        # can never be counted twice
        st_i[s, POSITION] = report["position"]
        st_i[s, FILLED_QTY] += report["last_qty"]
        st_i[s, N_FILLS] += 1
    if side < 0:
        return 0
    o = orders[s, side, level]
    if et == ET_NEW or et == ET_REPLACED:
        if report["cl_ord_id"] == o[O_ID]:
            o[O_STATUS] = LIVE
            o[O_PREV_ID] = 0
    elif et == ET_FILL or et == ET_CANCELED or et == ET_EXPIRED:
        o[O_STATUS] = EMPTY
        o[O_ID] = 0
        o[O_PREV_ID] = 0
    elif et == ET_REJECTED:
        if o[O_STATUS] == PENDING_REPLACE and report["cl_ord_id"] == o[O_ID]:
            o[O_ID], o[O_PRICE], o[O_STATUS] = o[O_PREV_ID], o[O_PREV_PRICE], LIVE
        elif o[O_STATUS] == PENDING_CANCEL and report["cl_ord_id"] != o[O_ID]:
            o[O_STATUS] = LIVE  # our cancel request was refused: the order still rests
        else:
            o[O_STATUS] = EMPTY
        st_i[s, COOLDOWN_UNTIL] = now + p_i[COOLDOWN_NS]
        st_i[s, N_REJECTS] += 1
    elif et == ET_CANCEL_REJECTED:
        # the cancel or replace lost a race (often with a fill): the old order stands
        if o[O_STATUS] == PENDING_REPLACE:
            o[O_ID], o[O_PRICE] = o[O_PREV_ID], o[O_PREV_PRICE]
        o[O_STATUS] = LIVE
        o[O_PREV_ID] = 0
    return 0


@njit(cache=True, _nrt=False)
def on_timer(mm, sink, now):
    """Pull the quotes of any symbol whose book went quiet for longer than STALE_NS;
    requote a symbol the order budget held back if no book update came for RETRY_NS
    (one would requote it, with its frame's t_origin) and the budget has room again."""
    p_i, st_i = mm.p_i, mm.st_i
    sent = 0
    for s in range(st_i.shape[0]):
        if st_i[s, SYNCED] and now - st_i[s, LAST_BOOK_NS] > p_i[STALE_NS]:
            st_i[s, SYNCED] = 0
            sent += pull_symbol(mm, sink, s, 0, now)
        elif st_i[s, SYNCED] and st_i[s, REQUOTE_DUE] and not p_i[PAUSED] and \
                now - st_i[s, LAST_BOOK_NS] >= p_i[RETRY_NS] and budget_room(mm, now):
            sent += requote(mm, sink, s, 0, now)  # t_origin 0: no frame caused it
    return sent


@njit(cache=True, _nrt=False)
def on_shutdown(mm, sink, now):
    sent = 0
    for s in range(mm.st_i.shape[0]):
        sent += pull_symbol(mm, sink, s, 0, now)
    return sent


def counters(mm) -> dict[str, int]:
    """Strategy counters published as ``strategy.<name>`` (cold path)."""
    return {"requotes_throttled": int(mm.budget[B_THROTTLED])}


def positions(mm) -> np.ndarray:
    """Inventory per symbol in lots, as the strategy sees it (cold path)."""
    return mm.st_i[:, POSITION]


def restore(mm, positions_lots) -> None:
    """Start from the OMS's inventory (after a restart), before any report arrives."""
    mm.st_i[:, POSITION] = positions_lots[: mm.st_i.shape[0]]
