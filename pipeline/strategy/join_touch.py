"""The smallest useful strategy: join the best bid and ask with one quote each.

It shows the whole strategy API in 40 lines: state is a named tuple of arrays, callbacks
are ``@njit`` functions, intents go out through ``intents.submit``. ``mm.orders[symbol,
side]`` is our quote on that side: ``[cl_ord_id, price, live]`` (words O_ID, O_PRICE, O_LIVE).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.strategy.intents import ASK, BID, CANCEL, NEW, POST_ONLY, Order, next_id, submit
from shm_layouts.records import ExecType, SyncState

QTY = 1  # lots
O_ID, O_PRICE, O_LIVE = range(3)


class JoinTouchState(NamedTuple):
    orders: np.ndarray  # int64 [symbol, side, O_ID..O_LIVE]


def make_state(n_symbols: int) -> JoinTouchState:
    return JoinTouchState(np.zeros((n_symbols, 2, 3), np.int64))


@njit(cache=True, _nrt=False)
def on_book(mm, sink, book, now):
    s, sent = book["symbol_id"], 0
    synced = book["state"] == SyncState.SYNCED and book["n_bids"] > 0 and book["n_asks"] > 0
    for side in (BID, ASK):
        o = mm.orders[s, side]
        touch = book["bid_px"][0] if side == BID else book["ask_px"][0]
        if o[O_LIVE] and (not synced or o[O_PRICE] != touch):  # off the touch: cancel
            if submit(sink, CANCEL, Order(s, side, o[O_PRICE], QTY, POST_ONLY), next_id(sink),
                      o[O_ID], book["t_origin_ns"], now):
                o[O_LIVE] = 0  # requoted once the venue confirms the cancel
                sent += 1
        elif not o[O_LIVE] and o[O_ID] == 0 and synced:
            cl = next_id(sink)
            if submit(sink, NEW, Order(s, side, touch, QTY, POST_ONLY), cl, 0,
                      book["t_origin_ns"], now):
                o[O_ID], o[O_PRICE], o[O_LIVE] = cl, touch, 1
                sent += 1
    return sent


@njit(cache=True, _nrt=False)
def on_exec(mm, sink, report, now):
    o = mm.orders[report["symbol_id"], report["side"]]
    if report["cl_ord_id"] == o[O_ID] and report["exec_type"] in (
            ExecType.FILL, ExecType.CANCELED, ExecType.REJECTED, ExecType.EXPIRED):
        o[O_ID] = o[O_LIVE] = 0
    return 0


@njit(cache=True, _nrt=False)
def on_trade(mm, sink, symbol_id, price, qty, now):
    return 0


@njit(cache=True, _nrt=False)
def on_timer(mm, sink, now):
    return 0


@njit(cache=True, _nrt=False)
def on_shutdown(mm, sink, now):
    return 0
