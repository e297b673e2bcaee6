"""The smallest useful strategy: join the best bid and ask with one quote each.

It shows the whole strategy API in 40 lines: state is a tuple of arrays, callbacks are
``@njit`` functions, intents go out through ``intents.submit``. ``mm`` here is
``(orders,)`` where ``orders[symbol, side] = [cl_ord_id, price, live]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.strategy.intents import CANCEL, NEW, POST_ONLY, next_id, submit
from shm_layouts.records import ExecType, SyncState

QTY = 1  # lots


def make_state(n_symbols: int) -> tuple:
    return (np.zeros((n_symbols, 2, 3), np.int64),)


@njit(cache=True, _nrt=False)
def on_book(mm, sink, book, now):
    orders, s, sent = mm[0], book["symbol_id"], 0
    for side in range(2):
        o = orders[s, side]
        synced = book["state"] == SyncState.SYNCED and book["n_bids"] > 0 and book["n_asks"] > 0
        touch = book["bid_px"][0] if side == 0 else book["ask_px"][0]
        if o[2] and (not synced or o[1] != touch):  # off the touch: cancel, requote later
            if submit(sink[0], sink[1], sink[2], CANCEL, s, side, o[1], QTY, POST_ONLY,
                      next_id(sink[3]), o[0], book["t_origin_ns"], now):
                o[2] = 0
                sent += 1
        elif not o[2] and o[0] == 0 and synced:
            cl = next_id(sink[3])
            if submit(sink[0], sink[1], sink[2], NEW, s, side, touch, QTY, POST_ONLY, cl, 0,
                      book["t_origin_ns"], now):
                o[0], o[1], o[2] = cl, touch, 1
                sent += 1
    return sent


@njit(cache=True, _nrt=False)
def on_exec(mm, sink, report, now):
    o = mm[0][report["symbol_id"], report["side"]]
    if report["cl_ord_id"] == o[0] and report["exec_type"] in (
            ExecType.FILL, ExecType.CANCELED, ExecType.REJECTED, ExecType.EXPIRED):
        o[0] = o[2] = 0
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
