"""Binance SBE market-data frames -> MD_EVENT records, in numba, no Python per message.

Schema: ``../shared/data/binance/api/sbe/stream_1_0.xml`` (id 1, version 0, little-endian).
One WebSocket binary frame holds one message: an 8-byte ``messageHeader`` (blockLength,
templateId, schemaId, version), the root block, the repeating groups, then the ``symbol``
(``varString8``). Four templates: 10000 TradesStreamEvent, 10001 BestBidAskStreamEvent,
10002 DepthSnapshotStreamEvent (``@depth20``), 10003 DepthDiffStreamEvent (``@depth``).

Compatibility (SBE's rules): ``blockLength`` in the header and in every group header is
authoritative, so a newer version's longer root blocks and group entries still decode (we
read the fields we know at their fixed offsets and skip the rest); a newer version may also
append fields after the symbol. A different ``schemaId`` is a different, incompatible schema.

Values are ``mantissa * 10**exponent`` with one exponent per frame for prices and one for
quantities; ``to_grid`` converts them exactly to ticks/lots of the instrument or rejects the
frame (never rounds). Every rejected frame is counted under one reason in ``SBE_STATS`` and
nothing is read at or past ``end``: each read is preceded by a length check against it.

The records are those ``normalize.on_message`` builds from the equivalent JSON event before
the sync stage: a diff gives its DIFF_LEVELs (bids, then asks) and a DIFF_END, a snapshot its
SNAPSHOT_BEGIN and SNAPSHOT_LEVELs (``sync.on_snapshot`` adds SNAPSHOT_END), a trades event
one TRADE per trade, a best bid/ask two BBO records. ``exch_time_ns`` is the frame's
``eventTime`` (µs) * 1000; ``t_origin_ns`` the caller's receive time.
"""

from __future__ import annotations

import enum
import sys
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.instruments import SymbolTable, symbol_matrix
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
    copy_record,
    put,
)
from pipeline.marketdata.normalize import (
    M_BBO,
    M_BYTES,
    M_DEPTH,
    M_LEVELS,
    M_MESSAGES,
    M_OTHER,
    M_REJECTED,
    M_TRADE,
    SYMBOL_BYTES,
    lookup_symbol,
)
from pipeline.marketdata.parser import INV5
from pipeline.units import to_units

assert sys.byteorder == "little"  # noqa: S101 (the schema's byteOrder; reads assemble bytes)

SCHEMA_ID = 1
SCHEMA_VERSION = 0
HEADER_LEN = 8  # messageHeader: four uint16


class Template(enum.IntEnum):
    TRADES = 10000
    BEST_BID_ASK = 10001
    DEPTH_SNAPSHOT = 10002
    DEPTH_DIFF = 10003


T_TRADES = int(Template.TRADES)
T_BBA = int(Template.BEST_BID_ASK)
T_SNAPSHOT = int(Template.DEPTH_SNAPSHOT)
T_DIFF = int(Template.DEPTH_DIFF)

# root block lengths and field offsets of schema version 0 (fields packed in order)
TRADES_BLOCK = 18  # eventTime, transactTime, priceExponent @16, qtyExponent @17
TRADE_ENTRY = 25  # id, price @8, qty @16, isBuyerMaker @24 (isBestMatch is constant)
BBA_BLOCK = 50  # eventTime, bookUpdateId, pExp @16, qExp @17, bid px/qty @18/26, ask @34/42
SNAPSHOT_BLOCK = 18  # eventTime, bookUpdateId, priceExponent @16, qtyExponent @17
DIFF_BLOCK = 26  # eventTime, first @8, last @16, priceExponent @24, qtyExponent @25
LEVEL_ENTRY = 16  # price, qty
GROUP_HDR = 6  # groupSizeEncoding: blockLength uint16, numInGroup uint32
GROUP16_HDR = 4  # groupSize16Encoding: blockLength uint16, numInGroup uint16
US = 1000  # ns per µs: SBE times are microseconds


class Reject(enum.IntEnum):
    """Why a frame was skipped (one ``SBE_STATS`` field each, same name in lower case)."""

    TRUNCATED = 1  # the frame ends inside the header, root block, a group header or symbol
    BAD_SCHEMA = 2  # schemaId is not 1: another, incompatible schema
    OLD_VERSION = 3  # older than the version we decode: fields we read may be absent
    UNKNOWN_TEMPLATE = 4
    SHORT_BLOCK = 5  # root blockLength below the schema's
    SHORT_ENTRY = 6  # a group's blockLength below the schema's entry size
    GROUP_OVERRUN = 7  # numInGroup * blockLength runs past the frame
    TRAILING = 8  # bytes after the symbol in a frame of our own version
    UNKNOWN_SYMBOL = 9
    OFF_GRID = 10  # a price/qty that is not a non-negative whole number of ticks/lots
    BAD_VALUE = 11  # a boolEnum that is neither 0 nor 1
    OUT_FULL = 12  # the caller's ``out`` cannot hold the frame's records


SBE_STATS = np.dtype(
    [("frames", "<i8"), ("bytes", "<i8"), ("records", "<i8"), ("trade_events", "<i8"),
     ("trades", "<i8"), ("bbo", "<i8"), ("snapshots", "<i8"), ("diffs", "<i8"),
     ("levels", "<i8"), ("rejected", "<i8")]
    + [(r.name.lower(), "<i8") for r in Reject])
# the reason counters are consecutive int64 words: jitted code bumps word REJECT_WORD0+r-1
REJECT_WORD0 = SBE_STATS.names.index(Reject(1).name.lower())

R_TRUNCATED = int(Reject.TRUNCATED)
R_BAD_SCHEMA = int(Reject.BAD_SCHEMA)
R_OLD_VERSION = int(Reject.OLD_VERSION)
R_UNKNOWN_TEMPLATE = int(Reject.UNKNOWN_TEMPLATE)
R_SHORT_BLOCK = int(Reject.SHORT_BLOCK)
R_SHORT_ENTRY = int(Reject.SHORT_ENTRY)
R_GROUP_OVERRUN = int(Reject.GROUP_OVERRUN)
R_TRAILING = int(Reject.TRAILING)
R_UNKNOWN_SYMBOL = int(Reject.UNKNOWN_SYMBOL)
R_OFF_GRID = int(Reject.OFF_GRID)
R_BAD_VALUE = int(Reject.BAD_VALUE)
R_OUT_FULL = int(Reject.OUT_FULL)

# exact division by 10**k = 2**k * 5**k: low k bits zero, then multiply by 5**-k mod 2**64;
# the quotient is exact iff the product is at most (2**64 - 1) // 5**k (no divide instruction)
INV5_U = INV5.view(np.uint64)
MAX5_U = np.array([(2**64 - 1) // 5**k for k in range(INV5.shape[0])], np.uint64)
MAX_SHIFT = INV5.shape[0] - 1


class SbeDecoder(NamedTuple):
    """What the decoder needs, as one argument: the symbol table (``keys`` rows of symbol
    bytes, ``lens``), the instruments' grid (``INSTRUMENT_ROW``) and the counters (``stats``,
    one SBE_STATS record, and ``words``, the same memory as int64 words)."""

    keys: np.ndarray
    lens: np.ndarray
    grid: np.ndarray
    stats: np.ndarray
    words: np.ndarray


class Frame(NamedTuple):
    """One message's extent once its header is checked."""

    root: int  # first byte of the root block
    body: int  # first byte after it (the header's blockLength): groups, then the symbol
    end: int  # one past the frame's last byte
    strict: bool  # our own schema version: nothing may follow the symbol
    recv_ns: int
    exch_ns: int  # eventTime in ns


def new_decoder(symbols: SymbolTable) -> SbeDecoder:
    """A decoder for ``symbols`` (cold path); counters start at zero."""
    names = [ins.symbol for ins in symbols]
    stats = np.zeros(1, SBE_STATS)
    return SbeDecoder(symbol_matrix(names, SYMBOL_BYTES),
                      np.array([len(s.encode()) for s in names], np.int64),
                      symbols.table(), stats, stats.view(np.int64))


def summary(dec: SbeDecoder) -> dict[str, int]:
    return {name: int(dec.stats[0][name]) for name in SBE_STATS.names}


# ---------------------------------------------------------------- little-endian reads
@njit(cache=True, _nrt=False, inline="always")
def u16(b, p):
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@njit(cache=True, _nrt=False, inline="always")
def u32(b, p):
    return u16(b, p) | (u16(b, p + 2) << 16)


@njit(cache=True, _nrt=False, inline="always")
def i64(b, p):
    return u32(b, p) | (u32(b, p + 4) << 32)  # the shift wraps into the sign bit: two's c.


@njit(cache=True, _nrt=False, inline="always")
def i8(b, p):
    v = np.int64(b[p])
    return v - 256 if v > 127 else v


@njit(cache=True, _nrt=False, inline="always")
def to_grid(mant, exp, grid_decimals, grid_units):
    """``mant * 10**exp`` as a whole number of ``grid_units * 10**-grid_decimals``, or -1
    (negative, off the grid, or not an int64 in units of ``10**-grid_decimals``: the JSON
    path's ``units.to_units`` limit). Mantissas may carry trailing zeros (a frame's
    exponent is shared by all its values), so a finer exponent than the grid is fine when
    the digits it adds are zeros: they are divided out exactly, never rounded."""
    if mant <= 0:
        return mant if mant == 0 else -1  # zero is on every grid at any exponent
    shift = grid_decimals + exp
    if shift >= 0:
        v = to_units(mant, -exp, grid_decimals, grid_units)
        return v if v >= 0 else -1  # TOO_LARGE/OFF_STEP: one reason here (off_grid)
    k = -shift
    if k > MAX_SHIFT:
        return -1  # 10**19 > any int64: only zero would divide
    u = np.uint64(mant)
    if (u & ((np.uint64(1) << np.uint64(k)) - np.uint64(1))) != 0:
        return -1
    q = (u >> np.uint64(k)) * INV5_U[k]
    if q > MAX5_U[k]:
        return -1
    v = to_units(np.int64(q), grid_decimals, grid_decimals, grid_units)
    return v if v >= 0 else -1


# ---------------------------------------------------------------- frame structure
@njit(cache=True, _nrt=False, inline="always")
def _group(b, p, end, entry, wide):
    """Group header at ``p`` -> (numInGroup, blockLength, first entry) or (-reason, 0, 0);
    ``wide`` is groupSizeEncoding (uint32 count), else groupSize16Encoding."""
    hdr = GROUP_HDR if wide else GROUP16_HDR
    if p + hdr > end:
        return -R_TRUNCATED, 0, 0
    bl = u16(b, p)
    n = u32(b, p + 2) if wide else u16(b, p + 2)
    if bl < entry:
        return -R_SHORT_ENTRY, 0, 0
    if n * bl > end - p - hdr:  # at most 2**32 * 2**16: no int64 overflow
        return -R_GROUP_OVERRUN, 0, 0
    return n, bl, p + hdr


@njit(cache=True, _nrt=False, inline="always")
def _symbol(b, p, f, dec):
    """The varString8 at ``p`` -> symbol_id (or -reason)."""
    if p + 1 > f.end:
        return -R_TRUNCATED
    n = np.int64(b[p])
    if p + 1 + n > f.end:
        return -R_TRUNCATED
    if f.strict and p + 1 + n != f.end:
        return -R_TRAILING
    sid = lookup_symbol(b, p + 1, n, dec.keys, dec.lens)
    return sid if sid >= 0 else -R_UNKNOWN_SYMBOL


@njit(cache=True, _nrt=False)
def _trades(b, f, dec, out, k):
    pexp = i8(b, f.root + 16)
    qexp = i8(b, f.root + 17)
    n, bl, p = _group(b, f.body, f.end, TRADE_ENTRY, True)
    if n < 0:
        return n
    sid = _symbol(b, p + n * bl, f, dec)
    if sid < 0:
        return sid
    if k + n > out.shape[0]:
        return -R_OUT_FULL
    g = dec.grid[sid]
    for i in range(n):
        e = p + i * bl
        px = to_grid(i64(b, e + 8), pexp, g.price_decimals, g.tick_units)
        qty = to_grid(i64(b, e + 16), qexp, g.qty_decimals, g.lot_units)
        if px < 0 or qty < 0:
            return -R_OFF_GRID
        maker = b[e + 24]
        if maker > 1:
            return -R_BAD_VALUE
        side = ASK if maker else BID  # the buyer is the maker: a sell hit the bid
        tid = i64(b, e)
        put(out, k + i, Head(TRADE, sid, tid, tid, -1, f.recv_ns, f.exch_ns), side, px, qty)
    st = dec.stats[0]
    st.trade_events += 1
    st.trades += n
    return n


@njit(cache=True, _nrt=False)
def _best_bid_ask(b, f, dec, out, k):
    sid = _symbol(b, f.body, f, dec)
    if sid < 0:
        return sid
    if k + 2 > out.shape[0]:
        return -R_OUT_FULL
    r = f.root
    pexp = i8(b, r + 16)
    qexp = i8(b, r + 17)
    g = dec.grid[sid]
    bid = to_grid(i64(b, r + 18), pexp, g.price_decimals, g.tick_units)
    bid_qty = to_grid(i64(b, r + 26), qexp, g.qty_decimals, g.lot_units)
    ask = to_grid(i64(b, r + 34), pexp, g.price_decimals, g.tick_units)
    ask_qty = to_grid(i64(b, r + 42), qexp, g.qty_decimals, g.lot_units)
    if bid < 0 or bid_qty < 0 or ask < 0 or ask_qty < 0:
        return -R_OFF_GRID
    u = i64(b, r + 8)
    h = Head(BBO, sid, u, u, -1, f.recv_ns, f.exch_ns)
    put(out, k, h, BID, bid, bid_qty)
    put(out, k + 1, h, ASK, ask, ask_qty)
    dec.stats[0].bbo += 1
    return 2


@njit(cache=True, _nrt=False)
def _depth(b, f, dec, out, k, diff):
    """A depth diff (DIFF_LEVELs, DIFF_END) or a snapshot (SNAPSHOT_BEGIN, levels)."""
    r = f.root
    first = i64(b, r + 8)
    last = i64(b, r + 16) if diff else first
    ex = r + 24 if diff else r + 16
    pexp = i8(b, ex)
    qexp = i8(b, ex + 1)
    nb, blb, pb = _group(b, f.body, f.end, LEVEL_ENTRY, False)
    if nb < 0:
        return nb
    na, bla, pa = _group(b, pb + nb * blb, f.end, LEVEL_ENTRY, False)
    if na < 0:
        return na
    sid = _symbol(b, pa + na * bla, f, dec)
    if sid < 0:
        return sid
    if k + nb + na + 1 > out.shape[0]:
        return -R_OUT_FULL
    j = k
    if not diff:
        j = put(out, j, Head(SNAPSHOT_BEGIN, sid, first, last, -1, f.recv_ns, f.exch_ns),
                NO_SIDE, 0, 0)
    h = Head(DIFF_LEVEL if diff else SNAPSHOT_LEVEL, sid, first, last, -1, f.recv_ns, f.exch_ns)
    g = dec.grid[sid]
    # the grid in registers: stores to ``out`` might alias it, so LLVM may reload it per level
    pd, tu, qd, lu = g.price_decimals, g.tick_units, g.qty_decimals, g.lot_units
    for side in (BID, ASK):
        p, n, bl = (pb, nb, blb) if side == BID else (pa, na, bla)
        for i in range(n):
            e = p + i * bl
            px = to_grid(i64(b, e), pexp, pd, tu)
            qty = to_grid(i64(b, e + 8), qexp, qd, lu)
            if px < 0 or qty < 0:
                return -R_OFF_GRID
            j = put(out, j, h, side, px, qty)
    if diff:
        j = put(out, j, Head(DIFF_END, sid, first, last, -1, f.recv_ns, f.exch_ns),
                NO_SIDE, 0, 0)
    st = dec.stats[0]
    if diff:
        st.diffs += 1
    else:
        st.snapshots += 1
    st.levels += nb + na
    return j - k


@njit(cache=True, _nrt=False)
def _frame(b, start, end, recv_ns, dec, out, k):
    """Header checks and dispatch -> (records or -reason, templateId)."""
    if start < 0 or end > b.shape[0] or end - start < HEADER_LEN:
        return -R_TRUNCATED, 0
    block = u16(b, start)
    template = u16(b, start + 2)
    if u16(b, start + 4) != SCHEMA_ID:
        return -R_BAD_SCHEMA, template
    version = u16(b, start + 6)
    if version < SCHEMA_VERSION:
        return -R_OLD_VERSION, template
    if template == T_DIFF:
        need = DIFF_BLOCK
    elif template == T_SNAPSHOT:
        need = SNAPSHOT_BLOCK
    elif template == T_TRADES:
        need = TRADES_BLOCK
    elif template == T_BBA:
        need = BBA_BLOCK
    else:
        return -R_UNKNOWN_TEMPLATE, template
    if block < need:
        return -R_SHORT_BLOCK, template
    root = start + HEADER_LEN
    if block > end - root:
        return -R_TRUNCATED, template
    f = Frame(root, root + block, end, version == SCHEMA_VERSION, recv_ns, i64(b, root) * US)
    if template == T_DIFF or template == T_SNAPSHOT:
        return _depth(b, f, dec, out, k, template == T_DIFF), template
    if template == T_TRADES:
        return _trades(b, f, dec, out, k), template
    return _best_bid_ask(b, f, dec, out, k), template


@njit(cache=True, _nrt=False)
def decode(b, start, end, recv_ns, dec, out, k):
    """The message in ``b[start:end]`` -> records at ``out[k:]``. Returns ``(n, template)``:
    ``n`` records written (0 for a trades event without trades) or ``-reason`` (a Reject;
    the frame is skipped and counted, ``out[k:]`` holds nothing meaningful)."""
    st = dec.stats[0]
    st.frames += 1
    st.bytes += end - start
    n, template = _frame(b, start, end, recv_ns, dec, out, k)
    if n < 0:
        st.rejected += 1
        dec.words[REJECT_WORD0 - 1 - n] += 1
    else:
        st.records += n
    return n, template


@njit(cache=True, _nrt=False)
def on_frame(b, start, end, recv_ns, dec, ps, sy, em):
    """One SBE frame through the feed handler's stage, as ``normalize.on_message`` takes a
    JSON one (same views, same message statistics; the reject reasons are ``dec.stats``'):
    a diff goes through the sync rules (spot: ``U``/``u``, no ``pu``), trades and best
    bid/ask are emitted as they are, and ``@depth20`` emits nothing: a top-20 picture is not
    a book to sync from (the book comes from ``@depth`` and the REST snapshot)."""
    stats = em.stats
    stats[M_MESSAGES] += 1
    stats[M_BYTES] += end - start
    n, template = decode(b, start, end, recv_ns, dec, ps.scratch, 0)
    if n < 0:
        stats[M_REJECTED] += 1
        return 0
    if template == T_DIFF:
        stats[M_DEPTH] += 1
        stats[M_LEVELS] += n - 1
        k, _ = S.on_diff(sy.sync, sy.pend, ps.scratch[0].symbol_id, ps.scratch, 0, n, em.recs,
                         0)
        return k
    if template == T_SNAPSHOT:
        stats[M_OTHER] += 1
        return 0
    stats[M_TRADE if template == T_TRADES else M_BBO] += 1
    for i in range(n):
        copy_record(ps.scratch, i, em.recs, i)
    return n


SHUTDOWN = np.frombuffer(b'"serverShutdown"', np.uint8).copy()


@njit(cache=True, _nrt=False)
def is_shutdown(b, start, end):
    """Does the text frame ``b[start:end]`` name ``serverShutdown`` (Binance's notice that
    the connection will close; a JSON text frame on the SBE streams)?"""
    m = SHUTDOWN.shape[0]
    for i in range(start, end - m + 1):
        j = 0
        while j < m and b[i + j] == SHUTDOWN[j]:
            j += 1
        if j == m:
            return True
    return False


def symbol_of(frame: bytes) -> str:
    """The symbol a well-formed frame names ('' if it names none: cold path, capture
    routing). Walks header, root block and groups by their lengths, like ``decode``."""
    if len(frame) < HEADER_LEN:
        return ""
    block, template = int.from_bytes(frame[0:2], "little"), int.from_bytes(frame[2:4], "little")
    groups = {T_TRADES: (GROUP_HDR,), T_BBA: (), T_SNAPSHOT: (GROUP16_HDR, GROUP16_HDR),
              T_DIFF: (GROUP16_HDR, GROUP16_HDR)}.get(template)
    if groups is None:
        return ""
    p = HEADER_LEN + block
    for hdr in groups:
        if p + hdr > len(frame):
            return ""
        bl = int.from_bytes(frame[p: p + 2], "little")
        p += hdr + bl * int.from_bytes(frame[p + 2: p + hdr], "little")
    if p >= len(frame) or p + 1 + frame[p] > len(frame):
        return ""
    return frame[p + 1: p + 1 + frame[p]].decode(errors="replace")


def decode_bytes(dec: SbeDecoder, raw: bytes | np.ndarray, recv_ns: int,
                 out: np.ndarray) -> tuple[int, int]:
    """Cold-path convenience (tests, tools): one whole frame into ``out`` from 0. Bytes are
    copied: a read-only buffer would compile a second specialization of the decoder."""
    b = np.frombuffer(raw, np.uint8).copy() if isinstance(raw, bytes) else raw
    n, template = decode(b, 0, len(b), recv_ns, dec, out, 0)
    return int(n), int(template)
