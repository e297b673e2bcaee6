"""The feed handler's per-message core: parse, map the symbol, convert to ticks/lots,
run the sync rules, emit MD_EVENT records. Jitted; one call per message.

``on_message`` returns how many records it wrote to ``out`` (0 for a dropped, buffered or
rejected message). A message with any value off its instrument's grid is rejected whole
(reason ``off_grid``): never rounded, never a partial book change.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.instruments import VENUE_KINDS, SymbolTable
from pipeline.marketdata import parser as P
from pipeline.marketdata import sync as S
from pipeline.marketdata.decimal import to_units
from pipeline.marketdata.events import (
    ASK,
    BBO,
    BID,
    DIFF_END,
    DIFF_LEVEL,
    SNAPSHOT_BEGIN,
    SNAPSHOT_LEVEL,
    TRADE,
    put,
)
from pipeline.marketdata.publish import rows
from shm_layouts.records import MD_EVENT

# message statistics (int64 words of ``stats``)
(M_MESSAGES, M_BYTES, M_DEPTH, M_SNAPSHOT, M_TRADE, M_BBO, M_OTHER, M_REJECTED,
 M_LEVELS) = range(9)
M_REJECT_BASE = 16  # + reason
STATS_WORDS = M_REJECT_BASE + P.N_REASONS
STAT_NAMES = {"messages": M_MESSAGES, "bytes": M_BYTES, "depth": M_DEPTH,
              "snapshots_received": M_SNAPSHOT, "trades": M_TRADE, "bbo": M_BBO,
              "other": M_OTHER, "rejected": M_REJECTED, "levels": M_LEVELS}

SYMBOL_BYTES = 32
G_PD, G_TU, G_QD, G_LU, G_VENUE = range(5)
MS = 1_000_000


@njit(cache=True, _nrt=False)
def lookup_symbol(b, off, length, keys, lens):
    if off < 0:
        return -1
    for sid in range(keys.shape[0]):
        if lens[sid] != length:
            continue
        same = True
        for j in range(length):
            if b[off + j] != keys[sid, j]:
                same = False
                break
        if same:
            return sid
    return -1


@njit(cache=True, _nrt=False)
def _levels(lv, nlev, grid, sid, kind, first, last, prev, t, exch, out, k):
    """Convert parsed levels to records at ``out[k:]``; -1 if any is off the grid."""
    g = grid[sid]
    for i in range(nlev):
        px = to_units(lv[i, P.L_PM], lv[i, P.L_PD], g[G_PD], g[G_TU])
        qty = to_units(lv[i, P.L_QM], lv[i, P.L_QD], g[G_QD], g[G_LU])
        if px < 0 or qty < 0:
            return -1
        k = put(out, k, kind, sid, lv[i, P.L_SIDE], px, qty, first, last, prev, t, exch)
    return k


@njit(cache=True, _nrt=False)
def _reject(stats, reason):
    stats[M_REJECTED] += 1
    stats[M_REJECT_BASE + reason] += 1
    return 0


@njit(cache=True, _nrt=False)
def on_message(b, start, end, recv_ns, snap_sid, hdr, lv, keys, lens, grid, sync, pend,
               scratch, out, stats):
    """One raw message -> records in ``out`` (returns the count). ``snap_sid`` is the
    symbol a symbol-less snapshot belongs to (-1: unknown)."""
    stats[M_MESSAGES] += 1
    stats[M_BYTES] += end - start
    kind = P.parse_message(b, start, end, hdr, lv)
    if kind < 0:
        return _reject(stats, -kind)
    if kind == P.K_OTHER:
        stats[M_OTHER] += 1
        return 0
    sid = lookup_symbol(b, hdr[P.H_SYM_OFF], hdr[P.H_SYM_LEN], keys, lens)
    if kind == P.K_SNAPSHOT and hdr[P.H_SYM_OFF] < 0:
        sid = snap_sid
    if sid < 0:
        return _reject(stats, P.R_UNKNOWN_SYMBOL)
    exch = hdr[P.H_E] * MS
    nlev = hdr[P.H_NLEV]
    if kind == P.K_DEPTH:
        first, last, prev = hdr[P.H_FIRST], hdr[P.H_LAST], hdr[P.H_PREV]
        n = _levels(lv, nlev, grid, sid, DIFF_LEVEL, first, last, prev, recv_ns, exch,
                    scratch, 0)
        if n < 0:
            return _reject(stats, P.R_OFF_GRID)
        n = put(scratch, n, DIFF_END, sid, 0, 0, 0, first, last, prev, recv_ns, exch)
        stats[M_DEPTH] += 1
        stats[M_LEVELS] += nlev
        k, _ = S.on_diff(sync, pend, sid, scratch, 0, n, out, 0)
        return k
    if kind == P.K_SNAPSHOT:
        snap_id = hdr[P.H_SNAP_ID]
        k = put(out, 0, SNAPSHOT_BEGIN, sid, 0, 0, 0, snap_id, snap_id, -1, recv_ns, exch)
        k = _levels(lv, nlev, grid, sid, SNAPSHOT_LEVEL, snap_id, snap_id, -1, recv_ns, exch,
                    out, k)
        if k < 0:
            return _reject(stats, P.R_OFF_GRID)
        stats[M_SNAPSHOT] += 1
        stats[M_LEVELS] += nlev
        k = S.on_snapshot(sync, pend, sid, snap_id, out, k, recv_ns)
        return max(k, 0)
    g = grid[sid]
    px = to_units(hdr[P.H_PX_M], hdr[P.H_PX_D], g[G_PD], g[G_TU])
    qty = to_units(hdr[P.H_QTY_M], hdr[P.H_QTY_D], g[G_QD], g[G_LU])
    if px < 0 or qty < 0:
        return _reject(stats, P.R_OFF_GRID)
    if kind == P.K_BOOKTICKER:
        px2 = to_units(hdr[P.H_PX2_M], hdr[P.H_PX2_D], g[G_PD], g[G_TU])
        qty2 = to_units(hdr[P.H_QTY2_M], hdr[P.H_QTY2_D], g[G_QD], g[G_LU])
        if px2 < 0 or qty2 < 0:
            return _reject(stats, P.R_OFF_GRID)
        u = hdr[P.H_LAST]
        stats[M_BBO] += 1
        k = put(out, 0, BBO, sid, BID, px, qty, u, u, -1, recv_ns, exch)
        return put(out, k, BBO, sid, ASK, px2, qty2, u, u, -1, recv_ns, exch)
    # trade / aggTrade: side is the aggressor's (buyer is maker -> a sell hit the bid)
    side = ASK if hdr[P.H_BUYER_MAKER] else BID
    tid = hdr[P.H_TRADE_ID]
    stats[M_TRADE] += 1
    return put(out, 0, TRADE, sid, side, px, qty, tid, tid, -1, recv_ns, exch)


class FeedCore:
    """The arrays ``on_message`` works on, for one symbol table (cold-path set-up)."""

    def __init__(self, symbols: SymbolTable, max_levels: int = 10_240,
                 pending_capacity: int = 16_384):
        self.symbols = symbols
        n = len(symbols)
        self.keys = np.zeros((n, SYMBOL_BYTES), np.uint8)
        self.lens = np.zeros(n, np.int64)
        for ins in symbols:
            raw = ins.symbol.encode()
            if len(raw) > SYMBOL_BYTES:
                raise ValueError(f"symbol {ins.symbol!r} longer than {SYMBOL_BYTES} bytes")
            self.keys[ins.symbol_id, : len(raw)] = np.frombuffer(raw, np.uint8)
            self.lens[ins.symbol_id] = len(raw)
        self.grid = grid_array(symbols)
        futures = self.grid[:, G_VENUE] != VENUE_KINDS.index("spot")
        self.sync, self.pend = S.new_state(futures, pending_capacity)
        self.hdr, self.lv = P.new_buffers(max_levels)
        self.scratch = np.zeros(max_levels + 2, MD_EVENT)
        self.out = np.zeros(max_levels + pending_capacity + 16, MD_EVENT)
        self.out_raw = rows(self.out)  # the same records as uint8 rows (ring copies)
        self.stats = np.zeros(STATS_WORDS, np.int64)

    def feed(self, raw: bytes | np.ndarray, recv_ns: int, snap_symbol: str = "") -> np.ndarray:
        """Cold-path convenience (tests, snapshots): one message -> its records."""
        b = np.frombuffer(raw, np.uint8) if isinstance(raw, bytes) else raw
        sid = self.symbols[snap_symbol].symbol_id if snap_symbol in self.symbols else -1
        n = on_message(b, 0, len(b), recv_ns, sid, self.hdr, self.lv, self.keys, self.lens,
                       self.grid, self.sync, self.pend, self.scratch, self.out, self.stats)
        return self.out[:n].copy()

    def summary(self) -> dict[str, int]:
        out = {name: int(self.stats[w]) for name, w in STAT_NAMES.items()}
        for name, w in S.COUNTER_WORDS.items():
            out[name] = int(self.sync[:, w].sum())
        for r in range(1, P.N_REASONS):
            out[f"reject_{P.REASON_NAMES[r]}"] = int(self.stats[M_REJECT_BASE + r])
        return out


def grid_array(symbols: SymbolTable) -> np.ndarray:
    t = symbols.table()
    return np.stack([t["price_decimals"], t["tick_units"], t["qty_decimals"], t["lot_units"],
                     t["venue_kind"]], axis=1).astype(np.int64)
