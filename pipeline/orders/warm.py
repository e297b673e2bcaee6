"""Keep the order path hot while no order goes out.

An order leaves a few times a second. Between two, the busy loop's own polling (recv
syscalls, ring stamps) pushes the order path's code and data out of the caches, and the
kernel's TCP send path goes cold: in the pipeline, send() to the venue measured 10-15 us
p50, against 1.2 us for the same send() repeated in a tight loop (BENCHMARKS.md).

- ``warm`` runs in the gateway's duty cycle every ``period`` ns while it has nothing to
  send: it encodes a NewOrderSingle or, every other pass, a cancel/replace into the
  scratch buffer (taking no sequence number), runs pre-trade risk on it (``risk.check``
  changes nothing), sends those bytes on a private loopback TCP connection (``WarmLink``)
  and drains them, so the syscall, TCP transmit and loopback receive paths stay warm.
  When the venue session is TLS, those bytes go through a shadow TLS session on the
  link (``pipeline.tls.shadow``, ``io.warm_ssl``): ``SSL_write`` stays warm too, and the
  real session's records and sequence numbers are never touched.
  The order it sends has the shape real orders have (``Out.shadow``: side, quantity,
  type, time in force and so ExecInst of the last real intent; before the first one,
  ``DEFAULT_SHAPE``: what the market maker sends), priced at the touch, so risk and the
  encoder take the branches real orders take (tag 44, ExecInst, the price band).
  This is what Onload's ``MSG_WARM`` does for its own stack; the kernel has no such flag,
  so the link is a real connection.
- ``touch``, in the same pass, reads a word of each line the next order will write (wire
  buffer, OMS slots around the last ClOrdID, journal and store append positions): their
  cache lines and TLB entries come back without a change.
- ``pretouch`` runs in housekeeping (Python, ~1 ms): it rewrites one word of each page
  just ahead of the OMS journal's and the FIX store's append positions (the value it
  already holds, so nothing changes), so the hot path's first write to a page of those
  file-backed maps never takes the page fault (Chronicle Queue's pretoucher). The
  rewrite is an atomic (relaxed) load and store: a plain ``a[i] = a[i]`` is a no-op
  LLVM deletes, which left the pretoucher empty.

Warming costs a core's time, so only a busy-spinning gateway does it (profile key
``warm_us``; 0 = off).
"""

from __future__ import annotations

import logging
import socket

import numpy as np
from numba import njit

from pipeline.fix import binance_spot as B
from pipeline.fix import codec as C
from pipeline.fix.sockio import EAGAIN, sock_recv
from pipeline.fix.store import IDX_SEQ, JOURNAL_END, NEXT_OUT
from pipeline.orders import journal as J
from pipeline.orders import risk
from pipeline.orders.views import WARM_RX
from pipeline.tls.client import TlsError
from pipeline.tls.io import clear_errors, wire_send
from pipeline.tls.shadow import ShadowTls
from pipeline.transport.atomics import load_relaxed, store_relaxed
from shm_layouts.records import FixDialect, OrderAction, OrderType, Side, TimeInForce

log = logging.getLogger(__name__)

PAGE = 4096
AHEAD_PAGES = 4  # pages kept touched ahead of each append position
TOUCH_IDS = 8  # OMS slots touched either side of the last ClOrdID
NEW, REPLACE = int(OrderAction.NEW), int(OrderAction.REPLACE)
BID = int(Side.BID)
BINANCE = int(FixDialect.BINANCE_SPOT)
# the order shape before the first real intent: the market maker's quotes
# (pipeline.strategy.market_maker: post-only limit orders of at least one lot)
DEFAULT_SHAPE = {"side": int(Side.BID), "qty": 1, "ord_type": int(OrderType.LIMIT),
                 "tif": int(TimeInForce.POST_ONLY)}


class WarmLink:
    """A loopback TCP connection to ourselves (non-blocking, TCP_NODELAY like the FIX
    socket): what ``warm`` sends on one end it reads back on the other."""

    def __init__(self) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            self.tx = socket.create_connection(listener.getsockname())
            self.rx, _ = listener.accept()
        for s in (self.tx, self.rx):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)

    def fds(self) -> tuple[int, int]:
        return self.tx.fileno(), self.rx.fileno()

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


def follow_tls(shadow: ShadowTls | None, io: np.ndarray, real_ssl: int) -> None:
    """Point the warm pass (``io``: GATEWAY_IO) at a shadow TLS session like the venue
    session ``real_ssl`` (0: plain TCP; the pass then sends plain bytes). Cold path, from
    housekeeping: a shadow handshake only when the venue session's version or cipher
    changed, or after a shadow write failed (the jitted pass then reset ``warm_ssl``)."""
    r = io[0]
    if shadow is None:
        r["warm_ssl"] = 0
        return
    if int(r["warm_tls_failed"]) != shadow.failures_seen:
        shadow.failures_seen = int(r["warm_tls_failed"])
        log.warning("shadow TLS write failed: a new shadow session")
        shadow.reset()
    try:
        r["warm_ssl"] = shadow.follow(real_ssl)
    except TlsError as e:
        r["warm_ssl"] = 0
        log.warning("warm pass without TLS (no shadow session): %s", e)


def default_shape(shadow: np.ndarray) -> None:
    """Give the warm pass's order (``Out.shadow``) the strategy's shape until a real
    intent replaces it."""
    for k, v in DEFAULT_SHAPE.items():
        shadow[0][k] = v


@njit(cache=True, _nrt=False)
def warm(fix, om, rk, now, wall_ns, replace):
    """One dry pass over the order path (see the module docstring): a NewOrderSingle or,
    with ``replace``, a cancel/replace of the last order (what a requote sends), shaped
    like the last real one and priced at the touch. Returns the risk verdict plus the
    bytes read back, so none of it is optimised away."""
    out = fix.out
    io = out.io[0]
    o = out.shadow[0]
    sid = o["symbol_id"]
    if sid < 0 or sid >= fix.syms.lens.shape[0]:
        sid = 0
    bid, ask, _ = risk.book_top(rk.marks, sid)
    last = io.warm_last_cl
    o["action"] = REPLACE if replace else NEW
    o["cl_ord_id"] = last + 1  # the next id: its OMS slot is the one a new order takes
    o["orig_cl_ord_id"] = last
    o["price"] = bid if o["side"] == BID else ask
    verdict = risk.check(om, rk, o, now)
    sym = fix.syms.names[sid, : fix.syms.lens[sid]]
    seq = load_relaxed(fix.store.seqs, NEXT_OUT)  # the next number, not taken
    if fix.dialect[0].kind == BINANCE:  # what this venue is sent: D, or XCN for a requote
        if replace:
            s, e = B.encode_cancel_new(out.scratch, fix.comp_ids, seq, wall_ns, o, o["qty"],
                                       0, fix.dialect[0].replace_mode, sym,
                                       fix.syms.grid[sid])
        else:
            s, e = B.encode_new_order(out.scratch, fix.comp_ids, seq, wall_ns, o, sym,
                                      fix.syms.grid[sid])
    elif replace:
        s, e = C.encode_replace(out.scratch, fix.comp_ids, seq, wall_ns, o, sym,
                                fix.syms.grid[sid])
    else:
        s, e = C.encode_new_order(out.scratch, fix.comp_ids, seq, wall_ns, o, sym,
                                  fix.syms.grid[sid])
    got = 0
    if io.warm_tx >= 0:
        # over TLS, the shadow session encrypts it (``tls.shadow``); the ciphertext is
        # drained raw, nothing decrypts it
        r = wire_send(io.warm_tx, io.warm_ssl, out.scratch, s, e - s)
        if r > 0:
            if io.warm_ssl != 0:
                io.warm_tls += 1
            got = sock_recv(io.warm_rx, out.scratch, WARM_RX, out.scratch.shape[0] - WARM_RX)
        elif r != -EAGAIN and io.warm_ssl != 0:
            io.warm_tls_failed += 1  # the owner drops the shadow (housekeeping)
            io.warm_ssl = 0
            clear_errors()  # the real session's next SSL_get_error must not see this
    return verdict + got


@njit(cache=True, _nrt=False)
def touch(fix, om):
    """Read a word of each line the next order will write: the wire buffer's head, the
    OMS slots of the ClOrdIDs around the last one (a requote replaces a recent id; a new
    quote takes the next), the journal's next row, the FIX store's append position and
    index slot. Loads only: the lines and their TLB entries come back, nothing changes.
    Returns their sum, so the loads are not optimised away."""
    out = fix.out
    acc = out.torig[0]
    for off in range(0, 512, 64):
        acc += out.wire[off]
    orders = om.orders
    mask = orders.shape[0] - 1
    last_cl = out.io[0].warm_last_cl
    for d in range(-TOUCH_IDS, TOUCH_IDS + 1):
        if last_cl + d > 0:
            acc += orders[(last_cl + d) & mask]["cl_ord_id"]
    j = om.journal
    row = min(J.HEADER_RECORDS + j[0, 0], j.shape[0] - 1)
    acc += j[row, 0]
    st = fix.store
    acc += st.data[st.seqs[JOURNAL_END] % st.data.shape[0]]
    acc += st.index[st.seqs[NEXT_OUT] % st.index.shape[0], IDX_SEQ]
    return acc


@njit(cache=True, _nrt=False)
def _touch(a, i):
    """Rewrite ``a[i]`` with the value it holds: an atomic load and store, which LLVM
    keeps (a plain ``a[i] = a[i]`` is deleted), so the page is mapped writable and no
    byte changes (the gateway is the only writer of these maps)."""
    store_relaxed(a, i, load_relaxed(a, i))


@njit(cache=True, _nrt=False)
def pretouch(j, seqs, jdata, jindex):
    """Map the next pages of the OMS journal and of the FIX store writable (see above)."""
    rows_per_page = max(PAGE // (j.shape[1] * 8), 1)
    row = J.HEADER_RECORDS + j[0, 0]
    for p in range(AHEAD_PAGES + 1):
        r = row + p * rows_per_page
        if r < j.shape[0]:
            _touch(j[r], 0)
    off = seqs[JOURNAL_END]
    for p in range(AHEAD_PAGES + 1):
        _touch(jdata, (off + p * PAGE) % jdata.shape[0])
    slots_per_page = max(PAGE // (jindex.shape[1] * 8), 1)
    for p in range(AHEAD_PAGES + 1):
        _touch(jindex[(seqs[NEXT_OUT] + p * slots_per_page) % jindex.shape[0]], IDX_SEQ)
