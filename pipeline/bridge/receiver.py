"""The receiving half of a bridge: the producer of a local ring fed from an Aeron stream.

Each message is checked (magic, layout hash, record size) against the local ring, which
has the same name, stream and dtype as the sender's: a mismatch stops the receiver with
an error naming both layouts (``bridge.recv.<ring>.layout_mismatch``), never a garbage
record. Its records are written into the ring as its producer would write them (the ring
stamps them anew), so an agent cannot tell a bridged ring from a local one.

Exactly once: the next expected upstream sequence lives in shared memory (segment
``bridge_<ring>``, ``shm_layouts.bridge``), so records already written, resent by a
restarted sender or seen again by a restarted receiver, are dropped and counted
(``duplicates``); records the sender never sent (an observing sender lapped by its
producer) show up as a jump and are counted (``gaps``). Sequences count within one
upstream ring: every message carries that ring's creation time (``epoch``), and a new
one (the upstream instance was set up afresh) starts the count again
(``upstream_epochs``: upstream rings seen) rather than dropping the new ring's records as
old ones. A write-ahead pair of words (the ring cursor after the batch, and the expected
sequence then) makes a receiver killed between publish and the update of the expected
sequence resume correctly.

Times: records from a sender on another boot (another host) have their CLOCK_MONOTONIC
fields moved onto this host's clock (``pipeline.bridge.clock``), so ages and latencies
downstream (``max_book_age_ms``, tick-to-trade) mean what they mean for a local ring.

When the local ring is full the message stays staged and the subscription is not polled:
Aeron's flow control then holds the sender back (gating rings upstream stay gating).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.bridge import aeron
from pipeline.bridge.calls import STAGE_LENGTH_BYTES, aeron_poll, new_stage, stage_fragment
from pipeline.bridge.clock import boot_id, clock_offset_ns
from pipeline.bridge.rings import Bridged
from pipeline.metrics.counters import Counters, bump
from pipeline.runtime.agent import Agent
from pipeline.transport import ring as R
from pipeline.transport.atomics import load_relaxed, store_relaxed, store_release
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from pipeline.transport.segment import Layout, Segment, SegmentMissing
from shm_layouts import SegmentKind, layout_hash
from shm_layouts import bridge as B

log = logging.getLogger(__name__)

HEADER_WORDS = B.HEADER_BYTES // 8
STAGE_HEADER_WORD = STAGE_LENGTH_BYTES // 8  # the message's first int64 in the stage's view
STATE_LAYOUT = Layout(SegmentKind.STATE, "bridge_receiver",
                      layout_hash(B.RECEIVER_VERSION, B.RECEIVER_WORDS, B.MESSAGE_HEADER))
COUNTER_NAMES = ("messages", "records", "duplicates", "gaps", "layout_mismatch",
                 "bad_messages", "ring_full", "upstream_epochs")
# the duty cycle's verdict on a message it cannot take (Python raises)
F_NONE, F_LAYOUT, F_BAD, F_POLL = 0, 1, 2, 3
FAILURE_WORDS = {F_LAYOUT: "layout mismatch", F_BAD: "malformed message",
                 F_POLL: "aeron_subscription_poll failed"}


class RecvWords(NamedTuple):
    messages: int
    records: int
    duplicates: int
    gaps: int
    layout_mismatch: int
    bad_messages: int
    ring_full: int
    upstream_epochs: int


class RecvConfig(NamedTuple):
    sub: int  # aeron_subscription_t*
    handler: int  # stage_fragment's address
    clientd: int  # the stage's address
    layout_hash: int
    record_size: int
    time_fields: np.ndarray  # byte offsets of the records' CLOCK_MONOTONIC fields
    clock: np.ndarray  # [this boot's id, this host's realtime - monotonic] (housekeeping)


def state_segment_name(ring: str) -> str:
    return f"bridge_{ring}"


def attach_state(instance: Instance, ring: str) -> tuple[Segment, np.ndarray]:
    """The receiver's persistent words for ``ring`` (created, expected = -1, if absent)."""
    name = state_segment_name(ring)
    try:
        seg = instance.attach_segment(name, STATE_LAYOUT)
    except SegmentMissing:
        seg = instance.create_segment(name, STATE_LAYOUT, B.RECEIVER_WORDS * 8)
        seg.body[: B.RECEIVER_WORDS * 8].view(np.int64)[:] = 0
        seg.body[: B.RECEIVER_WORDS * 8].view(np.int64)[B.R_EXPECTED] = -1
        seg.mark_ready()
    return seg, seg.body[: B.RECEIVER_WORDS * 8].view(np.int64)


def recover(state: np.ndarray, published: int) -> bool:
    """After a crash between publish and the expected-sequence update: finish the update
    if the batch did reach the ring. True when it did."""
    end = int(state[B.R_INTENT_END])
    if end > 0 and published >= end and state[B.R_EXPECTED] < state[B.R_INTENT_EXPECTED]:
        state[B.R_EXPECTED] = state[B.R_INTENT_EXPECTED]
        return True
    return False


@njit(cache=True, _nrt=False)
def recv_cycle(ring, stage, stage_words, state, fail, words, cw, cfg):
    """Take one message: poll one fragment into the stage (unless one waits there), check
    it, drop what was already written, write the rest into the ring. Returns records
    written; ``-1`` when Python must stop the receiver (``fail[0]`` says why)."""
    length = stage_words[0]
    if length == 0:
        if aeron_poll(cfg.sub, cfg.handler, cfg.clientd, 1) < 0:
            fail[0] = F_POLL
            return -1
        length = stage_words[0]
        if length == 0:
            return 0
    h = STAGE_HEADER_WORD
    if length < 0 or length < B.HEADER_BYTES or stage_words[h + B.H_MAGIC] != B.MAGIC:
        bump(words, cw.bad_messages, 1)
        fail[0] = F_BAD
        return -1
    if stage_words[h + B.H_LAYOUT_HASH] != cfg.layout_hash or \
            stage_words[h + B.H_RECORD_SIZE] != cfg.record_size:
        bump(words, cw.layout_mismatch, 1)
        fail[0] = F_LAYOUT
        return -1
    first = stage_words[h + B.H_FIRST_SEQ]
    count = stage_words[h + B.H_COUNT]
    rs = cfg.record_size
    if count < 1 or length != B.HEADER_BYTES + count * rs:
        bump(words, cw.bad_messages, 1)
        fail[0] = F_BAD
        return -1
    epoch = stage_words[h + B.H_EPOCH]
    if epoch != load_relaxed(state, B.R_EPOCH):  # a new upstream ring: its seqs restart
        bump(words, cw.upstream_epochs, 1)
        store_relaxed(state, B.R_INTENT_END, 0)
        store_release(state, B.R_EXPECTED, -1)
        store_release(state, B.R_EPOCH, epoch)
    expected = load_relaxed(state, B.R_EXPECTED)
    skip = 0
    if expected >= 0:
        if first + count <= expected:  # all seen: a resend after a sender restart
            bump(words, cw.duplicates, count)
            stage_words[0] = 0
            return 1
        if first < expected:
            skip = expected - first
            bump(words, cw.duplicates, skip)
    m = count - skip
    start = R.try_claim(ring.ctl, m)
    if start < 0:  # the ring is full: keep it staged, Aeron holds the sender back
        bump(words, cw.ring_full, 1)
        return 0
    if expected >= 0 and first > expected:
        bump(words, cw.gaps, first - expected)
    mask = ring.ctl[R.MASK]
    base = STAGE_LENGTH_BYTES + B.HEADER_BYTES + skip * rs
    shift = 0
    if stage_words[h + B.H_BOOT_ID] != cfg.clock[0]:  # another host's monotonic clock
        shift = stage_words[h + B.H_CLOCK_OFFSET] - cfg.clock[1]
    for i in range(m):
        dst = (start + i) & mask
        src = base + i * rs
        for b in range(8, rs):  # the first 8 bytes are the stamp: publish writes it
            ring.raw[dst, b] = stage[src + b]
        if shift != 0:
            _shift_times(ring.raw[dst], cfg.time_fields, shift)
    # write-ahead, then publish, then the expected sequence (see the module docstring)
    store_relaxed(state, B.R_INTENT_EXPECTED, first + count)
    store_release(state, B.R_INTENT_END, start + m)
    R.publish(ring.ctl, ring.stamps, start + m)
    store_release(state, B.R_EXPECTED, first + count)
    stage_words[0] = 0
    bump(words, cw.messages, 1)
    bump(words, cw.records, m)
    return m


@njit(cache=True, _nrt=False)
def _shift_times(row, offsets, shift):
    """Add ``shift`` to the int64 times at ``offsets`` of one record (0: not set, kept)."""
    words = row.view(np.int64)
    for k in range(offsets.shape[0]):
        w = offsets[k] >> 3
        if words[w] != 0:
            words[w] += shift


class LayoutMismatchError(aeron.AeronError):
    pass


class BridgeReceiver(Agent):
    """Writes what arrives on ``channel``/``stream_id`` into ring ``spec.ring``."""

    def __init__(self, spec: Bridged, ring: Ring, state: np.ndarray, client: aeron.Client,
                 channel: str, stream_id: int, counters: Counters):
        self.name = f"bridge_recv_{spec.ring}"
        self.spec, self.ring, self.state, self.client = spec, ring, state, client
        self.channel, self.stream_id = channel, stream_id
        self.words = counters.words
        self.cw = RecvWords(*(counters.counter(f"bridge.recv.{spec.ring}.{n}")
                              for n in COUNTER_NAMES))
        self.stage, self.stage_words = new_stage()
        self.fail = np.zeros(1, np.int64)
        self.sub: aeron.Subscription | None = None
        self._args: tuple = ()

    def on_start(self) -> None:
        self.ring.claim_producer()
        if recover(self.state, self.ring.published()):
            log.info("%s: completed the batch in hand at the crash", self.name)
        self.sub = self.client.add_subscription(self.channel, self.stream_id)
        self.clock = np.array([boot_id(), clock_offset_ns()], np.int64)
        cfg = RecvConfig(self.sub.handle, stage_fragment.address, self.stage.ctypes.data,
                         self.spec.layout_hash, self.spec.dtype.itemsize,
                         B.monotonic_offsets(self.spec.dtype), self.clock)
        self._args = (self.ring.view(), self.stage, self.stage_words, self.state, self.fail,
                      self.words, self.cw, cfg)
        log.info("%s: producer of ring %r (published %d), expecting upstream seq %d, from %s "
                 "stream %d", self.name, self.spec.ring, self.ring.published(),
                 int(self.state[B.R_EXPECTED]), self.channel, self.stream_id)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        work = self.poll_slice(recv_cycle, self._args, idle_state, deadline_ns)
        if self.fail[0]:
            raise self._failure()
        return work

    def _failure(self) -> aeron.AeronError:
        why = int(self.fail[0])
        hdr = self.stage_words[STAGE_HEADER_WORD: STAGE_HEADER_WORD + HEADER_WORDS]
        if why == F_LAYOUT:
            return LayoutMismatchError(
                f"{self.name}: layout mismatch on {self.channel} stream {self.stream_id}: "
                f"the sender's ring has layout hash {int(hdr[B.H_LAYOUT_HASH])} and "
                f"{int(hdr[B.H_RECORD_SIZE])}-byte records, local ring {self.spec.ring!r} "
                f"(stream {self.spec.stream}) has layout hash {self.spec.layout_hash} and "
                f"{self.spec.dtype.itemsize}-byte records")
        if why == F_BAD:
            return aeron.AeronError(
                f"{self.name}: malformed message on {self.channel} stream {self.stream_id} "
                f"({int(self.stage_words[0])} bytes, magic {int(hdr[B.H_MAGIC]):#x}): "
                "not an hft bridge sender")
        return aeron.AeronError(f"{self.name}: {FAILURE_WORDS.get(why, why)}: "
                                f"{aeron.lib().aeron_errmsg().decode(errors='replace')}")

    def housekeeping(self, now_ns: int) -> bool:
        self.ring.heartbeat()
        self.clock[1] = clock_offset_ns()
        return True

    def on_close(self) -> None:
        self.client.close()
