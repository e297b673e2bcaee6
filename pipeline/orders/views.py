"""The order path's named views: what travels together, as one jitted argument each.

numba compiles a field access on a ``NamedTuple`` to a load, so a jitted signature reads
``duty(fd, intents, oms, risk, fix, execs, book, hists)`` instead of forty positional
arrays, two of which could be swapped without a type error. Each view is built once, by
the gateway (or a test), from the arrays it owns; a ring is a ``RingView``.

``GATEWAY_IO`` is the gateway's own record (process-local, so declared here and not in
``shm_layouts``): the wire buffer's cursors, why a jitted pass stopped, the order path's
counters, the warm pass's link (and its shadow TLS session) and clock, and the shape of
the last real order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pipeline.fix.binance_spot import dialect_record
from pipeline.fix.codec import Symbols
from pipeline.fix.session import Inbound
from pipeline.fix.store import StoreView
from pipeline.runtime import warming
from pipeline.transport.ring import RingView
from shm_layouts.oms import RiskReason
from shm_layouts.records import BOOK_UPDATE, EXEC_REPORT, ORDER_INTENT

DENIAL_REASONS = 32  # room for every RiskReason
VENUE_CODES = 16  # distinct venue reject codes counted one by one (the rest: the total)
REJECT_TEXT = 120
assert max(RiskReason) < DENIAL_REASONS

GATEWAY_IO = np.dtype(warming.WARM_CLOCK_FIELDS + [  # the warm pass's clock comes first:
    # ``warming.is_due`` reads period_ns, last_ns, passes, ready
    ("end", "<i8"),  # bytes encoded into the wire buffer this pass
    ("norig", "<i8"),  # t_origin entries in ``torig``
    ("sent", "<i8"),  # messages encoded (orders, cancels, status requests)
    ("sent_bytes", "<i8"),  # what a partial send() took (stop == STOP_PARTIAL)
    ("stop", "<i8"),  # why a jitted pass handed control back to Python (STOP_*)
    ("last_kind", "<i8"),  # the inbound kind (session K_*) that ended the jitted pump
    ("ring_full", "<i8"),  # exec reports not published: the strategy a whole ring behind
    ("journal_full", "<i8"),  # OMS journal appends refused
    ("denied", "<i8"),  # intents refused before the wire; denied_by[reason] sums to it
    ("bad_reports", "<i8"),  # unusable application messages
    ("exec_blocked", "<i8"),  # pumps stopped by a full exec ring (backpressure)
    ("warm_tx", "<i8"), ("warm_rx", "<i8"),  # the warm link's fds (-1: no warming)
    ("warm_ssl", "<i8"),  # the shadow TLS session's SSL* on the link (0: plain bytes)
    ("warm_tls", "<i8"),  # warm passes that encrypted on the shadow session
    ("warm_tls_failed", "<i8"),  # shadow writes that failed (warm_ssl is then reset to 0)
    ("warm_result", "<i8"),  # the last warm pass's result (keeps it from being elided)
    ("warm_last_cl", "<i8"),  # ClOrdID of the last intent handled
    ("denied_by", "<i8", (DENIAL_REASONS,)),  # per RiskReason
    # rejects the venue gave a reason code for (Binance 25016 ErrorCode), per code
    ("venue_rejects", "<i8"),
    ("reject_codes", "<i8", (VENUE_CODES,)), ("reject_counts", "<i8", (VENUE_CODES,)),
    ("reject_text_len", "<i8"), ("reject_text", "u1", (REJECT_TEXT,)),  # the last one's 58
])


class OmsView(NamedTuple):
    """The OMS (shared segment: control words, order table, positions) and its journal
    (rows, and the payload scratch an append is built in)."""

    words: np.ndarray
    orders: np.ndarray
    positions: np.ndarray
    journal: np.ndarray
    jpay: np.ndarray


class Out(NamedTuple):
    """The FIX out path: ``wire`` (this pass's bytes, one send), ``io`` (a GATEWAY_IO
    record), ``torig`` (each message's t_origin, for tick-to-trade when the bytes leave),
    ``scratch`` (encoding, and the warm link's reads) and ``shadow`` (the ORDER_INTENT the
    warm pass sends: the shape of the last real order)."""

    wire: np.ndarray
    io: np.ndarray
    torig: np.ndarray
    scratch: np.ndarray
    shadow: np.ndarray


FIX44 = dialect_record()  # the default dialect record (read only)


class Fix(NamedTuple):
    """Everything FIX: the out path, the session store, the instruments, the inbound side,
    the prebuilt ``49=..|56=..|`` header block and the dialect (a ``binance_spot.DIALECT``
    record: which encoders, the XCN mode)."""

    out: Out
    store: StoreView
    syms: Symbols
    inb: Inbound
    comp_ids: np.ndarray
    dialect: np.ndarray = FIX44


class Execs(NamedTuple):
    """The exec ring (we are its producer) and the draft record a report is built in."""

    ring: RingView
    draft: np.ndarray


class Book(NamedTuple):
    """The observed BOOK_UPDATE ring (``ring.slot`` -1: none attached yet) and the rows
    ``observe`` copies into (``out`` raw, ``recs`` the same as BOOK_UPDATE)."""

    ring: RingView
    out: np.ndarray
    recs: np.ndarray


class Hists(NamedTuple):
    """Latency histograms: tick-to-trade, the send() call, a sending pass's work up to
    it, the order-ring hop (strategy decision -> read by the gateway), and the part of
    that pass after the book marks (poll, risk, OMS, encode, journals)."""

    tick_to_trade: np.ndarray
    send: np.ndarray
    work: np.ndarray
    order_hop: np.ndarray
    intents: np.ndarray


WARM_RX = 1024  # the warm link's bytes are drained into scratch[WARM_RX:] (encoding below)
SCRATCH_BYTES = 2 * WARM_RX


def out_path(size: int = 1 << 20, origins: int = 4096, warm_ns: int = 0) -> Out:
    """A fresh out path; its warming clock's period ``warm_ns`` (0: never warm), not yet
    ready, and no warm link (``io.warm_tx`` -1) until the owner gives it one."""
    io = warming.clock_record(warm_ns, GATEWAY_IO)
    io[0]["warm_tx"] = io[0]["warm_rx"] = -1
    return Out(np.zeros(size, np.uint8), io, np.zeros(origins, np.int64),
               np.zeros(SCRATCH_BYTES, np.uint8), np.zeros(1, ORDER_INTENT))


def execs_view(ring: RingView) -> Execs:
    return Execs(ring, np.zeros(1, EXEC_REPORT))


def book_view(ring: RingView | None, rows: int = 256) -> Book:
    """The book ring's view, or (``ring`` None) a placeholder of the same types."""
    if ring is None:  # two rows: ``stamps`` is strided like a real ring's (same numba type)
        raw = np.zeros((2, BOOK_UPDATE.itemsize), np.uint8)
        ring = RingView(np.zeros(1, np.int64), raw.view(np.int64)[:, 0],
                        raw.view(BOOK_UPDATE).reshape(-1), raw, -1)
    out = np.zeros((rows, BOOK_UPDATE.itemsize), np.uint8)
    return Book(ring, out, out.view(BOOK_UPDATE).reshape(-1))


def venue_rejects_by_code(io: np.ndarray) -> dict[str, int]:
    """``orders.venue_rejects.<code>`` (the venue's ErrorCode without its sign) -> count."""
    r = io[0]
    return {f"orders.venue_rejects.{abs(int(c))}": int(n)
            for c, n in zip(r["reject_codes"], r["reject_counts"], strict=True) if c}


def denials_by_reason(io: np.ndarray) -> dict[str, int]:
    """``orders.denied.<reason>`` (lower-case RiskReason name) -> count, every reason."""
    by = io[0]["denied_by"]
    return {f"orders.denied.{r.name.lower()}": int(by[r]) for r in RiskReason
            if r != RiskReason.OK}
