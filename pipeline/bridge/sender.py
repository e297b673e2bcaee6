"""The sending half of a bridge: a consumer of a local ring that offers its records to Aeron.

Records are packed per Aeron message, as many as fit in one frame of the publication's
MTU (``max_payload_length``: MTU minus Aeron's 32-byte frame header), so Aeron never
fragments a message (no reassembly on the far side, no message waiting for a lost
fragment) and the 64-byte bridge header costs one record's worth per frame. With the
default 1408-byte MTU: 20 order intents, 10 exec reports or md events, 5 book updates.

GATING rings (orders, execs): the records stay in the ring until Aeron took them (offer
returned a position > 0); only then is the slot released. A back-pressured, unconnected
or admin-action offer is retried on a later cycle and counted. A sender killed between
offer and release resends that message after its restart; the receiver drops it.

OBSERVING rings (md, book): records are copied out (``ring.observe``); a message Aeron
refused for back pressure waits and is retried, and whatever the producer overwrote
meanwhile is counted as lost (``bridge.send.<ring>.lost``), never waited for. With no
receiver connected at all (NOT_CONNECTED) the message is dropped and its records counted
as ``unsent``: nobody is there to lose them, and holding the message would only lap the
ring and report the whole wait as loss once a receiver comes.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.bridge import aeron
from pipeline.bridge.calls import aeron_offer
from pipeline.bridge.clock import boot_id, clock_offset_ns
from pipeline.bridge.rings import CONSUMER, Bridged
from pipeline.metrics.counters import Counters, bump
from pipeline.runtime.agent import Agent
from pipeline.transport import ring as R
from pipeline.transport.atomics import load_relaxed
from pipeline.transport.ring import Ring, RingView
from shm_layouts.bridge import (
    H_BOOT_ID,
    H_CLOCK_OFFSET,
    H_COUNT,
    H_EPOCH,
    H_FIRST_SEQ,
    H_LAYOUT_HASH,
    H_MAGIC,
    H_RECORD_SIZE,
    HEADER_BYTES,
    MAGIC,
)
from shm_layouts.ring import C_LOST, CONSUMER_BASE, LINE_WORDS, ConsumerMode

log = logging.getLogger(__name__)

GATING = int(ConsumerMode.GATING)
BACK_PRESSURED, NOT_CONNECTED, ADMIN_ACTION = (aeron.BACK_PRESSURED, aeron.NOT_CONNECTED,
                                               aeron.ADMIN_ACTION)
# sender state words (private to the process)
S_PENDING, S_FIRST, S_MODE, S_RECORD_SIZE, S_FAILED = range(5)
STATE_WORDS = 8
COUNTER_NAMES = ("messages", "records", "back_pressured", "not_connected", "admin_action",
                 "lost", "unsent")


class SendWords(NamedTuple):
    """Counter word indices (``Counters.counter``) of one sender."""

    messages: int
    records: int
    back_pressured: int
    not_connected: int
    admin_action: int
    lost: int
    unsent: int  # observed records dropped while no receiver was connected


@njit(cache=True, _nrt=False)
def _fill(ring, header, rows, st, words, cw):
    """Pack what the ring has (at most ``len(rows)`` records) into the message."""
    ctl = ring.ctl
    if st[S_MODE] == GATING:
        n = R.poll(ctl, ring.stamps, ring.slot, rows.shape[0])
        if n == 0:
            return 0
        first = R.cursor(ctl, ring.slot)
        mask = ctl[R.MASK]
        for i in range(n):
            src = (first + i) & mask
            for b in range(rows.shape[1]):
                rows[i, b] = ring.raw[src, b]
    else:
        lost_word = CONSUMER_BASE + ring.slot * LINE_WORDS + C_LOST
        lost_before = load_relaxed(ctl, lost_word)
        n = R.observe(ctl, ring.slot, ring.raw, rows)
        lost = load_relaxed(ctl, lost_word) - lost_before
        if lost:
            bump(words, cw.lost, lost)
        if n == 0:
            return 0
        first = R.cursor(ctl, ring.slot) - n
    header[H_MAGIC] = MAGIC
    header[H_FIRST_SEQ] = first
    header[H_COUNT] = n
    st[S_FIRST] = first
    st[S_PENDING] = n
    return n


@njit(cache=True, _nrt=False)
def send_cycle(ring, msg, header, rows, st, words, cw, pub):
    """One message: pack (unless one is pending), offer, release on success. Returns the
    records sent; ``-1`` (Python must act) when the publication failed for good."""
    n = st[S_PENDING]
    if n == 0:
        n = _fill(ring, header, rows, st, words, cw)
        if n == 0:
            return 0
    r = aeron_offer(pub, msg, 0, HEADER_BYTES + n * st[S_RECORD_SIZE])
    if r > 0:
        if st[S_MODE] == GATING:
            R.release(ring.ctl, ring.slot, st[S_FIRST] + n)
        st[S_PENDING] = 0
        bump(words, cw.messages, 1)
        bump(words, cw.records, n)
        return n
    if r == BACK_PRESSURED:
        bump(words, cw.back_pressured, 1)
    elif r == NOT_CONNECTED:
        bump(words, cw.not_connected, 1)
        if st[S_MODE] != GATING:  # an observed ring is not held for a receiver not there
            bump(words, cw.unsent, n)
            st[S_PENDING] = 0
    elif r == ADMIN_ACTION:
        bump(words, cw.admin_action, 1)
    else:
        st[S_FAILED] = r
        return -1
    return 0


def max_records(max_payload: int, record_size: int, limit: int | None = None) -> int:
    """Records per message: what one MTU frame holds after the bridge header."""
    n = (max_payload - HEADER_BYTES) // record_size
    if n < 1:
        raise ValueError(f"MTU payload {max_payload} bytes cannot hold the {HEADER_BYTES}-byte "
                         f"header and one {record_size}-byte record: raise the channel's mtu")
    return min(n, limit) if limit else n


class BridgeSender(Agent):
    """Forwards ring ``spec.ring`` of this instance to ``channel``/``stream_id``."""

    def __init__(self, spec: Bridged, ring: Ring, client: aeron.Client, channel: str,
                 stream_id: int, counters: Counters, batch: int | None = None):
        self.name = f"bridge_send_{spec.ring}"
        self.spec, self.ring, self.client = spec, ring, client
        self.channel, self.stream_id = channel, stream_id
        self.words = counters.words
        self.cw = SendWords(*(counters.counter(f"bridge.send.{spec.ring}.{n}")
                              for n in COUNTER_NAMES))
        self.batch = batch
        self.st = np.zeros(STATE_WORDS, np.int64)
        self.pub: aeron.Publication | None = None
        self.view: RingView | None = None
        self._args: tuple = ()

    def on_start(self) -> None:
        self.pub = self.client.add_publication(self.channel, self.stream_id)
        rs = self.spec.dtype.itemsize
        n = max_records(self.pub.max_payload_length, rs, self.batch)
        self.msg = np.zeros(HEADER_BYTES + n * rs, np.uint8)
        header = self.msg[:HEADER_BYTES].view(np.int64)
        header[H_MAGIC], header[H_LAYOUT_HASH], header[H_RECORD_SIZE] = (
            MAGIC, self.spec.layout_hash, rs)
        header[H_EPOCH] = int(self.ring.segment.header["created_ns"])
        header[H_BOOT_ID], header[H_CLOCK_OFFSET] = boot_id(), clock_offset_ns()
        self.header = header
        rows = self.msg[HEADER_BYTES:].reshape(n, rs)
        slot = self.ring.join(CONSUMER, self.spec.mode)
        self.view = self.ring.view(slot)
        self.st[S_MODE], self.st[S_RECORD_SIZE] = int(self.spec.mode), rs
        self._args = (self.view, self.msg, header, rows, self.st, self.words, self.cw,
                      self.pub.handle)
        log.info("%s: %s consumer of ring %r from seq %d, %d records per message "
                 "(MTU payload %d), to %s stream %d", self.name, self.spec.mode.name.lower(),
                 self.spec.ring, R.cursor(self.ring.ctl, slot), n, self.pub.max_payload_length,
                 self.channel, self.stream_id)

    def wait_ring(self) -> RingView | None:
        return self.view

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        work = self.poll_slice(send_cycle, self._args, idle_state, deadline_ns)
        if self.st[S_FAILED]:
            code = int(self.st[S_FAILED])
            raise aeron.AeronError(f"{self.name}: offer to {self.channel} stream "
                                   f"{self.stream_id} failed: "
                                   f"{aeron.OFFER_WORDS.get(code, code)}")
        return work

    def housekeeping(self, now_ns: int) -> bool:
        self.ring.heartbeat(self.view.slot)
        self.header[H_CLOCK_OFFSET] = clock_offset_ns()  # follows NTP/PTP steering
        return True

    def on_close(self) -> None:
        if self.view is not None:
            self.ring.leave(self.view.slot)  # an observer frees its slot; gating keeps it
        self.client.close()

