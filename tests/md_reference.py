"""Reference implementations for the market-data tests: json.loads + Decimal parsing and
a dict-based order book. Slow and obviously right."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np

from pipeline.marketdata import parser as P

EVENT_KINDS = {"depthUpdate": P.K_DEPTH, "trade": P.K_TRADE, "aggTrade": P.K_AGGTRADE,
               "bookTicker": P.K_BOOKTICKER}


class DuplicateKey(ValueError):
    """A key twice in one object: the parser rejects the frame (json.loads would merge)."""


def _no_duplicates(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise DuplicateKey(keys)
    return dict(pairs)


def reference_parse(raw: bytes) -> dict | None:
    """Summary of a message as ``ours`` gives it, or None if json.loads rejects it (or it
    repeats a key in an object)."""
    try:
        msg = json.loads(raw, parse_float=Decimal, parse_int=int,
                         object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        return None
    if isinstance(msg, dict) and "data" in msg and isinstance(msg["data"], dict):
        msg = msg["data"]
    if not isinstance(msg, dict):
        return None
    e = msg.get("e")
    if e is None and "lastUpdateId" in msg:
        kind = P.K_SNAPSHOT
    elif e is None and isinstance(msg.get("b"), str) and "u" in msg:
        kind = P.K_BOOKTICKER
    else:
        kind = EVENT_KINDS.get(e, P.K_OTHER)
    out: dict = {"kind": kind}
    if kind in (P.K_DEPTH, P.K_SNAPSHOT):
        bids, asks = ("bids", "asks") if kind == P.K_SNAPSHOT else ("b", "a")
        out["levels"] = sorted([(0, Decimal(p), Decimal(q)) for p, q in msg[bids]]
                               + [(1, Decimal(p), Decimal(q)) for p, q in msg[asks]])
    if kind == P.K_DEPTH:
        out.update(U=msg["U"], u=msg["u"], pu=msg.get("pu", -1), s=msg["s"], E=msg.get("E", 0))
    elif kind == P.K_SNAPSHOT:
        out.update(id=msg["lastUpdateId"])
    elif kind == P.K_BOOKTICKER:
        out.update(u=msg["u"], s=msg["s"], b=Decimal(msg["b"]), B=Decimal(msg["B"]),
                   a=Decimal(msg["a"]), A=Decimal(msg["A"]))
    elif kind in (P.K_TRADE, P.K_AGGTRADE):
        out.update(s=msg["s"], p=Decimal(msg["p"]), q=Decimal(msg["q"]),
                   id=msg["t" if kind == P.K_TRADE else "a"])
    return out


def _dec(m: int, d: int) -> Decimal:
    return Decimal(int(m)).scaleb(-int(d))


def ours(raw: bytes, max_levels: int = 10_240) -> dict | int:
    """Our parser's summary, or the (negative) reject code."""
    hdr, lv = P.new_buffers(max_levels)
    b = np.frombuffer(raw, np.uint8)
    kind = P.parse_message(b, 0, len(b), hdr, lv)
    if kind < 0:
        return int(kind)
    out: dict = {"kind": int(kind)}
    sym = raw[hdr[P.H_SYM_OFF]: hdr[P.H_SYM_OFF] + hdr[P.H_SYM_LEN]].decode("latin-1") \
        if hdr[P.H_SYM_OFF] >= 0 else None
    if kind in (P.K_DEPTH, P.K_SNAPSHOT):
        out["levels"] = sorted(
            (int(r[P.L_SIDE]), _dec(r[P.L_PM], r[P.L_PD]), _dec(r[P.L_QM], r[P.L_QD]))
            for r in lv[: hdr[P.H_NLEV]])
    if kind == P.K_DEPTH:
        out.update(U=int(hdr[P.H_FIRST]), u=int(hdr[P.H_LAST]), pu=int(hdr[P.H_PREV]), s=sym,
                   E=int(hdr[P.H_E]))
    elif kind == P.K_SNAPSHOT:
        out.update(id=int(hdr[P.H_SNAP_ID]))
    elif kind == P.K_BOOKTICKER:
        out.update(u=int(hdr[P.H_LAST]), s=sym, b=_dec(hdr[P.H_PX_M], hdr[P.H_PX_D]),
                   B=_dec(hdr[P.H_QTY_M], hdr[P.H_QTY_D]), a=_dec(hdr[P.H_PX2_M], hdr[P.H_PX2_D]),
                   A=_dec(hdr[P.H_QTY2_M], hdr[P.H_QTY2_D]))
    elif kind in (P.K_TRADE, P.K_AGGTRADE):
        out.update(s=sym, p=_dec(hdr[P.H_PX_M], hdr[P.H_PX_D]),
                   q=_dec(hdr[P.H_QTY_M], hdr[P.H_QTY_D]), id=int(hdr[P.H_TRADE_ID]))
    return out


class DictBook:
    """The obvious L2 book: price -> qty per side."""

    def __init__(self):
        self.sides: tuple[dict[int, int], dict[int, int]] = ({}, {})

    def apply(self, side: int, price: int, qty: int) -> None:
        if qty:
            self.sides[side][price] = qty
        else:
            self.sides[side].pop(price, None)

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        levels = sorted(self.sides[side].items(), reverse=(side == 0))
        return levels[:n]
