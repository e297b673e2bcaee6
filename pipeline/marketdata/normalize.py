"""The feed handler's per-message core: parse, map the symbol, convert to ticks/lots,
run the sync rules, emit MD_EVENT records. Jitted; one call per message.

``on_message`` returns how many records it wrote to ``out`` (0 for a dropped, buffered or
rejected message). Its state travels as three named views built once per ``FeedCore``:
``Parse`` (parser buffers, symbol keys, depth scratch), ``Symbols`` (per-symbol grid, sync
words, pending events) and ``Emit`` (the out records, as records and int64 rows, and the
message statistics). A message with any value off its instrument's grid is rejected whole
(reason ``off_grid``): never rounded, never a partial book change.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.instruments import VENUE_KINDS, SymbolTable
from pipeline.marketdata import parser as P
from pipeline.marketdata import sync as S
from pipeline.marketdata.events import (
    ASK,
    BBO,
    BID,
    DIFF_END,
    DIFF_LEVEL,
    NO_SIDE,
    SNAPSHOT_BEGIN,
    SNAPSHOT_LEVEL,
    TRADE,
    Head,
    put,
)
from pipeline.marketdata.publish import rows
from pipeline.units import to_units
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
MS = 1_000_000


class Parse(NamedTuple):
    """The parser's buffers, the symbol keys it matches and the depth-event scratch."""

    hdr: np.ndarray  # int64 header words (parser.H_*)
    lv: np.ndarray  # int64 level rows (parser.L_*)
    keys: np.ndarray  # symbol bytes per symbol id
    lens: np.ndarray  # their lengths
    scratch: np.ndarray  # MD_EVENT records of one depth event before the sync rules


class Symbols(NamedTuple):
    """Per-symbol state: grid (``instruments.INSTRUMENT_ROW``), sync rules' state
    (``sync.SYNC``), buffered events."""

    grid: np.ndarray
    sync: np.ndarray
    pend: np.ndarray


class Emit(NamedTuple):
    """Where a stage's records go: ``recs`` (MD_EVENT), the same as int64 ``rows`` (ring
    copies) and the message statistics (M_* words)."""

    recs: np.ndarray
    rows: np.ndarray
    stats: np.ndarray


def new_emit(n: int, stats_words: int = 0) -> Emit:
    recs = np.zeros(n, MD_EVENT)
    return Emit(recs, rows(recs), np.zeros(stats_words or STATS_WORDS, np.int64))


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
def _levels(lv, nlev, grid, h, out, k):
    """Convert parsed levels to records ``h`` at ``out[k:]``; -1 if any is off the grid."""
    g = grid[h.sid]
    for i in range(nlev):
        px = to_units(lv[i, P.L_PM], lv[i, P.L_PD], g.price_decimals, g.tick_units)
        qty = to_units(lv[i, P.L_QM], lv[i, P.L_QD], g.qty_decimals, g.lot_units)
        if px < 0 or qty < 0:
            return -1
        k = put(out, k, h, lv[i, P.L_SIDE], px, qty)
    return k


@njit(cache=True, _nrt=False)
def _reject(stats, reason):
    stats[M_REJECTED] += 1
    stats[M_REJECT_BASE + reason] += 1
    return 0


@njit(cache=True, _nrt=False)
def on_message(b, start, end, recv_ns, snap_sid, ps, sy, em):
    """One raw message -> records in ``em.recs`` (returns the count). ``snap_sid`` is the
    symbol a symbol-less snapshot belongs to (-1: unknown); ``ps``, ``sy``, ``em``: the
    ``Parse``, ``Symbols`` and ``Emit`` views."""
    stats, hdr, out = em.stats, ps.hdr, em.recs
    stats[M_MESSAGES] += 1
    stats[M_BYTES] += end - start
    kind = P.parse_message(b, start, end, hdr, ps.lv)
    if kind < 0:
        return _reject(stats, -kind)
    if kind == P.K_OTHER:
        stats[M_OTHER] += 1
        return 0
    sid = lookup_symbol(b, hdr[P.H_SYM_OFF], hdr[P.H_SYM_LEN], ps.keys, ps.lens)
    if kind == P.K_SNAPSHOT and hdr[P.H_SYM_OFF] < 0:
        sid = snap_sid
    if sid < 0:
        return _reject(stats, P.R_UNKNOWN_SYMBOL)
    exch = hdr[P.H_E] * MS
    nlev = hdr[P.H_NLEV]
    if kind == P.K_DEPTH:
        h = Head(DIFF_LEVEL, sid, hdr[P.H_FIRST], hdr[P.H_LAST], hdr[P.H_PREV], recv_ns, exch)
        n = _levels(ps.lv, nlev, sy.grid, h, ps.scratch, 0)
        if n < 0:
            return _reject(stats, P.R_OFF_GRID)
        end_h = Head(DIFF_END, sid, h.first, h.last, h.prev, recv_ns, exch)
        n = put(ps.scratch, n, end_h, NO_SIDE, 0, 0)
        stats[M_DEPTH] += 1
        stats[M_LEVELS] += nlev
        k, _ = S.on_diff(sy.sync, sy.pend, sid, ps.scratch, 0, n, out, 0)
        return k
    if kind == P.K_SNAPSHOT:
        snap_id = hdr[P.H_SNAP_ID]
        h = Head(SNAPSHOT_BEGIN, sid, snap_id, snap_id, -1, recv_ns, exch)
        k = put(out, 0, h, NO_SIDE, 0, 0)
        h = Head(SNAPSHOT_LEVEL, sid, snap_id, snap_id, -1, recv_ns, exch)
        k = _levels(ps.lv, nlev, sy.grid, h, out, k)
        if k < 0:
            return _reject(stats, P.R_OFF_GRID)
        stats[M_SNAPSHOT] += 1
        stats[M_LEVELS] += nlev
        k = S.on_snapshot(sy.sync, sy.pend, sid, snap_id, out, k, recv_ns)
        return max(k, 0)
    g = sy.grid[sid]
    px = to_units(hdr[P.H_PX_M], hdr[P.H_PX_D], g.price_decimals, g.tick_units)
    qty = to_units(hdr[P.H_QTY_M], hdr[P.H_QTY_D], g.qty_decimals, g.lot_units)
    if px < 0 or qty < 0:
        return _reject(stats, P.R_OFF_GRID)
    if kind == P.K_BOOKTICKER:
        px2 = to_units(hdr[P.H_PX2_M], hdr[P.H_PX2_D], g.price_decimals, g.tick_units)
        qty2 = to_units(hdr[P.H_QTY2_M], hdr[P.H_QTY2_D], g.qty_decimals, g.lot_units)
        if px2 < 0 or qty2 < 0:
            return _reject(stats, P.R_OFF_GRID)
        u = hdr[P.H_LAST]
        stats[M_BBO] += 1
        h = Head(BBO, sid, u, u, -1, recv_ns, exch)
        k = put(out, 0, h, BID, px, qty)
        return put(out, k, h, ASK, px2, qty2)
    # trade / aggTrade: side is the aggressor's (buyer is maker -> a sell hit the bid)
    side = ASK if hdr[P.H_BUYER_MAKER] else BID
    tid = hdr[P.H_TRADE_ID]
    stats[M_TRADE] += 1
    return put(out, 0, Head(TRADE, sid, tid, tid, -1, recv_ns, exch), side, px, qty)


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
        self.grid = symbols.table()
        futures = self.grid["venue_kind"] != VENUE_KINDS.index("spot")
        self.sync, self.pend = S.new_state(futures, pending_capacity)
        self.hdr, self.lv = P.new_buffers(max_levels)
        self.scratch = np.zeros(max_levels + 2, MD_EVENT)
        self.emit = new_emit(max_levels + pending_capacity + 16)
        self.out, self.out_raw, self.stats = self.emit
        # the jitted stages' views, built once (numba types a named tuple per call)
        self.parse = Parse(self.hdr, self.lv, self.keys, self.lens, self.scratch)
        self.syms = Symbols(self.grid, self.sync, self.pend)

    def feed(self, raw: bytes | np.ndarray, recv_ns: int, snap_symbol: str = "") -> np.ndarray:
        """Cold-path convenience (tests, snapshots): one message -> its records."""
        b = np.frombuffer(raw, np.uint8) if isinstance(raw, bytes) else raw
        sid = self.symbols[snap_symbol].symbol_id if snap_symbol in self.symbols else -1
        n = on_message(b, 0, len(b), recv_ns, sid, self.parse, self.syms, self.emit)
        return self.out[:n].copy()

    def summary(self) -> dict[str, int]:
        out = {name: int(self.stats[w]) for name, w in STAT_NAMES.items()}
        for name in S.COUNTERS:
            out[name] = int(self.sync[name].sum())
        for r in range(1, P.N_REASONS):
            out[f"reject_{P.REASON_NAMES[r]}"] = int(self.stats[M_REJECT_BASE + r])
        return out

