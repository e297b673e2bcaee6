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
  This is what Onload's ``MSG_WARM`` does for its own stack; the kernel has no such flag,
  so the link is a real connection.
- ``touch``, in the same pass, reads a word of each line the next order will write (wire
  buffer, OMS slots around the last ClOrdID, journal and store append positions): their
  cache lines and TLB entries come back without a change.
- ``pretouch`` runs in housekeeping (Python, ~1 ms): it rewrites one word of each page
  just ahead of the OMS journal's and the FIX store's append positions (the value it
  already holds, so nothing changes), so the hot path's first write to a page of those
  file-backed maps never takes the page fault (Chronicle Queue's pretoucher).

Warming costs a core's time, so only a busy-spinning gateway does it (profile key
``warm_us``; 0 = off).
"""

from __future__ import annotations

import socket

import numpy as np
from numba import njit

from pipeline.fix import codec as C
from pipeline.fix.sockio import sock_recv, sock_send
from pipeline.fix.store import IDX_SEQ, JOURNAL_END, NEXT_OUT
from pipeline.orders import journal as J
from pipeline.orders import risk

PAGE = 4096
AHEAD_PAGES = 4  # pages kept touched ahead of each append position
TOUCH_IDS = 8  # OMS slots touched either side of the last ClOrdID
WARM_RX = 1024  # the link's bytes are drained into scratch[WARM_RX:] (encoding uses below)
SCRATCH_BYTES = 2 * WARM_RX


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


@njit(cache=True, _nrt=False)
def warm(tx, rx, scratch, seqs, comp_ids, syms, sym_lens, grid, words, orders, positions,
         limits, g, marks, rates, now, wall_ns, replace):
    """One dry pass over the order path for instrument 0 (see the module docstring): a
    NewOrderSingle, or with ``replace`` a cancel/replace (what a requote sends). Returns
    the risk verdict plus the bytes read back, so none of it is optimised away."""
    bid = marks[0, risk.M_BID]
    action = 3 if replace else 1
    verdict = risk.check(words, orders, positions, limits, g, marks, rates, action, 1, 0, 0,
                         0, bid, 1, 2, now)
    sym = syms[0, : sym_lens[0]]
    if replace:
        s, e = C.encode_replace(scratch, comp_ids, seqs[NEXT_OUT], wall_ns, 2, 1, sym, 0, bid,
                                1, 2, 1, grid[0])
    else:
        s, e = C.encode_new_order(scratch, comp_ids, seqs[NEXT_OUT], wall_ns, 1, sym, 0, bid,
                                  1, 2, 1, grid[0])
    got = 0
    if tx >= 0 and sock_send(tx, scratch, s, e - s) > 0:
        got = sock_recv(rx, scratch, WARM_RX, scratch.shape[0] - WARM_RX)
    return verdict + got


@njit(cache=True, _nrt=False)
def touch(wire, torig, orders, last_cl, j, seqs, jdata, jindex):
    """Read a word of each line the next order will write: the wire buffer's head, the
    OMS slots of the ClOrdIDs around the last one (a requote replaces a recent id; a new
    quote takes the next), the journal's next row, the FIX store's append position and
    index slot. Loads only: the lines and their TLB entries come back, nothing changes.
    Returns their sum, so the loads are not optimised away."""
    acc = torig[0]
    for off in range(0, 512, 64):
        acc += wire[off]
    mask = orders.shape[0] - 1
    for d in range(-TOUCH_IDS, TOUCH_IDS + 1):
        if last_cl + d > 0:
            acc += orders[(last_cl + d) & mask]["cl_ord_id"]
    row = min(J.HEADER_RECORDS + j[0, 0], j.shape[0] - 1)
    acc += j[row, 0]
    acc += jdata[seqs[JOURNAL_END] % jdata.shape[0]]
    acc += jindex[seqs[NEXT_OUT] % jindex.shape[0], IDX_SEQ]
    return acc


@njit(cache=True, _nrt=False)
def _touch(a, i):
    a[i] = a[i]  # a write of the value already there: the page is mapped writable, no change


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


def scratch_buffer() -> np.ndarray:
    return np.zeros(SCRATCH_BYTES, np.uint8)
