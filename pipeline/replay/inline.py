"""Replay captures through parser -> sync -> book builder.

``--inline`` runs every stage in one jitted loop (``run_inline``); the default runs the
book builder as its own process behind the md ring (``pipeline.marketdata.pipeline``).
Both share the stage code with the live feed handler, so a capture with a mid-stream
re-snapshot resyncs exactly as live would. Pacing: ``speed`` 0 is as fast as possible,
1 the recorded pace, 10 ten times faster.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.instruments import SymbolTable
from pipeline.marketdata import apply as A
from pipeline.marketdata import book as B
from pipeline.marketdata import files, sbe
from pipeline.marketdata.infer import infer_symbols
from pipeline.marketdata.normalize import FeedCore, on_message
from pipeline.runtime.clock import monotonic_ns
from pipeline.runtime.libc import nanosleep
from shm_layouts.records import BOOK_UPDATE

# bbo log columns
(R_SID, R_UID, R_BPX, R_BQ, R_APX, R_AQ) = range(6)


class Messages(NamedTuple):
    """A capture's messages for a jitted replay loop: message ``i`` is
    ``data[start[i]:end[i]]``, received at ``recv[i]``; ``snap_sid[i]`` the symbol of a
    symbol-less snapshot, else -1."""

    data: np.ndarray
    start: np.ndarray
    end: np.ndarray
    recv: np.ndarray
    snap_sid: np.ndarray
    binary: np.ndarray  # bool: an SBE frame (through ``dec``), else JSON text
    dec: sbe.SbeDecoder


@dataclass
class Prepared:
    capture: files.Capture
    symbols: SymbolTable
    snap_sid: np.ndarray  # per message: symbol id of a symbol-less snapshot, else -1
    dec: sbe.SbeDecoder | None = None  # the SBE rows' decoder (made on first use)

    def messages(self) -> Messages:
        cap = self.capture
        if self.dec is None:
            self.dec = sbe.new_decoder(self.symbols)
        return Messages(cap.data, cap.start, cap.end, cap.recv_ns, self.snap_sid, cap.binary,
                        self.dec)


def prepare(paths: list[str | Path], configured: SymbolTable | None = None) -> Prepared:
    cap = files.load(paths)
    symbols = infer_symbols(cap, configured)
    snap = np.array([symbols[s].symbol_id if s and s in symbols else -1
                     for s in cap.snap_symbol], np.int64)
    return Prepared(cap, symbols, snap)


@njit(cache=True, _nrt=False)
def stage(msgs, i, ps, sy, em):
    """Message ``i`` through the feed's stage: an SBE frame through the decoder, text
    through ``on_message``; returns the records written to ``em.recs``."""
    if msgs.binary[i]:
        return sbe.on_frame(msgs.data, msgs.start[i], msgs.end[i], msgs.recv[i], msgs.dec, ps,
                            sy, em)
    return on_message(msgs.data, msgs.start[i], msgs.end[i], msgs.recv[i], msgs.snap_sid[i],
                      ps, sy, em)


@njit(cache=True, _nrt=False)
def pace(recv_ns, first_recv, t0, speed):
    """Sleep until ``recv_ns`` is due at ``speed`` times the recorded pace."""
    due = t0 + int((recv_ns - first_recv) / speed)
    while True:
        now = monotonic_ns()
        if now >= due:
            return
        nanosleep(min(due - now, 1_000_000))


@njit(cache=True, _nrt=False)
def log_update(u, log, nlog):
    """Append a BBO row for a BOOK_UPDATE of an applied depth event; returns the count."""
    if u.flags & A.F_DIFF and nlog < log.shape[0]:
        row = log[nlog]
        row[R_SID] = u.symbol_id
        row[R_UID] = u.update_id
        row[R_BPX] = u.bid_px[0] if u.n_bids else 0
        row[R_BQ] = u.bid_qty[0] if u.n_bids else 0
        row[R_APX] = u.ask_px[0] if u.n_asks else 0
        row[R_AQ] = u.ask_qty[0] if u.n_asks else 0
        nlog += 1
    return nlog


@njit(cache=True, _nrt=False)
def run_inline(msgs, ps, sy, em, bk, bst, upd, log, speed):
    """Every message (``Messages``) through on_message -> apply_records (``normalize``'s
    views, ``book.BookArrays``); returns BBO rows logged."""
    nlog = 0
    t0 = monotonic_ns()
    recv, out = msgs.recv, em.recs
    for i in range(msgs.start.shape[0]):
        if speed > 0:
            pace(recv[i], recv[0], t0, speed)
        n = stage(msgs, i, ps, sy, em)
        pos = 0
        while pos < n:
            used, k = A.apply_records(out, pos, n - pos, -1, bk, bst, upd, 0)
            pos += used
            for j in range(k if log.shape[0] else 0):
                nlog = log_update(upd[j], log, nlog)
    return nlog


@dataclass
class ReplayResult:
    symbols: SymbolTable
    summary: dict[str, int]
    final: dict[str, dict] = field(default_factory=dict)  # symbol -> state, BBO strings
    bbo_rows: np.ndarray | None = None
    seconds: float = 0.0


class InlineReplay:
    """Feed core + books in one process, reusable over several runs (benchmarks)."""

    def __init__(self, prepared: Prepared, window: int = 1 << 16):
        self.p = prepared
        n = len(prepared.symbols)
        self.core = FeedCore(prepared.symbols)
        self.books = B.Books(n, window=window)
        self.bst = A.new_state(self.core.sync["futures"])
        self.upd = np.zeros(1024, BOOK_UPDATE)

    def run(self, speed: float = 0.0, log_bbo: bool = False) -> ReplayResult:
        c = self.core
        log = np.zeros((len(self.p.capture) if log_bbo else 0, 6), np.int64)
        t = time.perf_counter()
        nlog = run_inline(self.p.messages(), c.parse, c.syms, c.emit, self.books.view(),
                          self.bst, self.upd, log, float(speed))
        seconds = time.perf_counter() - t
        return ReplayResult(self.p.symbols, self.summary(), self.final(), log[:nlog], seconds)

    def summary(self) -> dict[str, int]:
        out = self.core.summary()
        for name, f in A.COUNTER_FIELDS.items():
            out[name] = int(self.bst[f].sum())
        return out

    def final(self) -> dict[str, dict]:
        return final_books(self.p.symbols, self.bst, self.books)


def final_books(symbols: SymbolTable, bst: np.ndarray, books: B.Books) -> dict[str, dict]:
    out = {}
    for ins in symbols:
        sid = ins.symbol_id
        bid = B.best(books.qty, books.meta, sid, 0)
        ask = B.best(books.qty, books.meta, sid, 1)
        out[ins.symbol] = {
            "state": int(bst[sid]["state"]), "update_id": int(bst[sid]["update_id"]),
            "bid_px": ins.price_str(bid[0]), "bid_qty": ins.qty_str(bid[1]),
            "ask_px": ins.price_str(ask[0]), "ask_qty": ins.qty_str(ask[1])}
    return out


def write_bbo_csv(path: str | Path, symbols: SymbolTable, rows: np.ndarray) -> None:
    """One row per applied depth event: decimal strings as on the wire."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["symbol", "update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"])
        for sid, uid, bpx, bq, apx, aq in rows.tolist():
            ins = symbols[int(sid)]
            w.writerow([ins.symbol, uid, ins.price_str(bpx), ins.qty_str(bq),
                        ins.price_str(apx), ins.qty_str(aq)])
