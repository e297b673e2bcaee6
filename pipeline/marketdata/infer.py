"""Tick and lot sizes inferred from a capture, for symbols nobody configured.

The grid of a symbol is the finest increment its data shows: the most decimals any price
(quantity) carries, and the gcd of all of them at that scale. Real Binance data quotes
every level on the tick grid, so this recovers the tick (or a multiple of it, which
converts the same data exactly). Futures are told apart from spot by ``pu`` in depth
diffs; COIN-M symbols carry an underscore (``BTCUSD_PERP``).
"""

from __future__ import annotations

from math import gcd

import numpy as np
from numba import njit

from pipeline.instruments import Instrument, SymbolTable, from_units
from pipeline.marketdata import parser as P
from pipeline.marketdata.decimal import gcd as jgcd
from pipeline.marketdata.files import Capture
from pipeline.units import POW10

# per-message columns
C_SYM_OFF, C_SYM_LEN, C_PD, C_PG, C_QD, C_QG, C_FUT, C_OK = range(8)


@njit(cache=True)
def _merge(d, g, m, dm):
    """Fold value ``m * 10**-dm`` into the running (decimals, gcd) pair."""
    if m == 0:
        return d, g
    if dm > d:
        g = g * POW10[dm - d]
        d = dm
    return d, jgcd(g, m * POW10[d - dm])


@njit(cache=True)
def _scan(data, start, end, hdr, lv, cols):
    for i in range(start.shape[0]):
        kind = P.parse_message(data, start[i], end[i], hdr, lv)
        if kind <= 0 or kind == P.K_OTHER:
            continue
        pd, pg, qd, qg = 0, 0, 0, 0
        for j in range(hdr[P.H_NLEV]):
            pd, pg = _merge(pd, pg, lv[j, P.L_PM], lv[j, P.L_PD])
            qd, qg = _merge(qd, qg, lv[j, P.L_QM], lv[j, P.L_QD])
        pd, pg = _merge(pd, pg, hdr[P.H_PX_M], hdr[P.H_PX_D])
        pd, pg = _merge(pd, pg, hdr[P.H_PX2_M], hdr[P.H_PX2_D])
        qd, qg = _merge(qd, qg, hdr[P.H_QTY_M], hdr[P.H_QTY_D])
        qd, qg = _merge(qd, qg, hdr[P.H_QTY2_M], hdr[P.H_QTY2_D])
        c = cols[i]
        c[C_SYM_OFF] = hdr[P.H_SYM_OFF]
        c[C_SYM_LEN] = hdr[P.H_SYM_LEN]
        c[C_PD], c[C_PG], c[C_QD], c[C_QG] = pd, pg, qd, qg
        c[C_FUT] = 1 if (kind == P.K_DEPTH and hdr[P.H_PREV] >= 0) else 0
        c[C_OK] = 1


class _Grid:
    def __init__(self):
        self.d = 0
        self.g = 0

    def add(self, d: int, g: int) -> None:
        if g == 0:
            return
        if d > self.d:
            self.g *= 10 ** (d - self.d)
            self.d = d
        self.g = gcd(self.g, g * 10 ** (self.d - d))

    def step(self) -> str:
        return from_units(self.g or 1, self.d, 1)


def infer_symbols(capture: Capture, known: SymbolTable | None = None) -> SymbolTable:
    """``known`` instruments as configured, plus every other symbol the capture names,
    with tick/lot inferred from its data."""
    hdr, lv = P.new_buffers()
    cols = np.zeros((len(capture), 8), np.int64)
    _scan(capture.data, capture.start, capture.end, hdr, lv, cols)
    grids: dict[str, tuple[_Grid, _Grid]] = {}
    futures: set[str] = set()
    for i in np.flatnonzero(cols[:, C_OK]):
        c = cols[i]
        if c[C_SYM_OFF] >= 0:
            off = int(c[C_SYM_OFF])
            sym = capture.data[off: off + int(c[C_SYM_LEN])].tobytes().decode(errors="replace")
        else:
            sym = capture.snap_symbol[i]
        if not sym:
            continue
        px, qty = grids.setdefault(sym.upper(), (_Grid(), _Grid()))
        px.add(int(c[C_PD]), int(c[C_PG]))
        qty.add(int(c[C_QD]), int(c[C_QG]))
        if c[C_FUT]:
            futures.add(sym.upper())
    instruments = list(known) if known else []
    have = {i.symbol for i in instruments}
    for sym, (px, qty) in grids.items():
        if sym in have:
            continue
        venue = ("coinm" if "_" in sym else "usdm") if sym in futures else "spot"
        instruments.append(Instrument(sym, venue, px.step(), qty.step()))
    return SymbolTable(instruments)
