"""A bridged record's CLOCK_MONOTONIC times land on the receiver's clock: unchanged from a
sender on this boot, moved by the two hosts' realtime-monotonic offsets from another one
(the receiver's duty cycle on a message placed in its stage, no Aeron needed)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.bridge.calls import STAGE_LENGTH_BYTES, new_stage
from pipeline.bridge.clock import boot_id, clock_offset_ns
from pipeline.bridge.receiver import COUNTER_NAMES, RecvConfig, RecvWords, recv_cycle
from pipeline.bridge.rings import RINGS
from pipeline.metrics.counters import Counters
from pipeline.transport.ring import Ring
from shm_layouts import bridge as B

BOOK = RINGS["book"]
T_ORIGIN, T_BOOK, T_EXCH = 1_000_000, 1_500_000, 1_764_000_000_000_000_000


def receive_one(instance, sender_boot: int, sender_offset: int, local_offset: int) -> np.void:
    ring = Ring.create(instance, "book", BOOK.stream, BOOK.dtype, 64)
    counters = Counters.create(instance)
    cw = RecvWords(*(counters.counter(f"bridge.recv.book.{n}") for n in COUNTER_NAMES))
    rec = np.zeros(1, BOOK.dtype)
    rec["t_origin_ns"], rec["t_book_ns"], rec["exch_time_ns"] = T_ORIGIN, T_BOOK, T_EXCH
    header = np.zeros(B.HEADER_BYTES // 8, np.int64)
    header[[B.H_MAGIC, B.H_LAYOUT_HASH, B.H_RECORD_SIZE, B.H_FIRST_SEQ, B.H_COUNT, B.H_EPOCH,
            B.H_BOOT_ID, B.H_CLOCK_OFFSET]] = (B.MAGIC, BOOK.layout_hash, BOOK.dtype.itemsize,
                                               0, 1, 7, sender_boot, sender_offset)
    message = np.concatenate([header.view(np.uint8), rec.view(np.uint8)])
    stage, words = new_stage()
    stage[STAGE_LENGTH_BYTES: STAGE_LENGTH_BYTES + message.size] = message
    words[0] = message.size
    state = np.zeros(B.RECEIVER_WORDS, np.int64)
    state[B.R_EXPECTED] = -1
    clock = np.array([boot_id(), local_offset], np.int64)
    cfg = RecvConfig(0, 0, 0, BOOK.layout_hash, BOOK.dtype.itemsize,
                     B.monotonic_offsets(BOOK.dtype), clock)
    fail = np.zeros(1, np.int64)
    assert recv_cycle(ring.view(), stage, words, state, fail, counters.words, cw, cfg) == 1
    assert fail[0] == 0 and ring.published() == 1
    return ring.records[0].copy()


def test_the_monotonic_fields_are_the_records_clock_times():
    assert [BOOK.dtype.names[i] for i in range(len(BOOK.dtype.names))
            if BOOK.dtype.fields[BOOK.dtype.names[i]][1] in B.monotonic_offsets(BOOK.dtype)
            ] == ["t_origin_ns", "t_book_ns"]  # exch_time_ns is the venue's realtime


def test_a_sender_on_this_boot_keeps_every_time_to_the_nanosecond(instance):
    got = receive_one(instance, boot_id(), clock_offset_ns() + 12_345, clock_offset_ns())
    assert (got["t_origin_ns"], got["t_book_ns"], got["exch_time_ns"]) == (
        T_ORIGIN, T_BOOK, T_EXCH)


@pytest.mark.parametrize("sender_ahead_ns", [250_000_000, -3_000_000_000])
def test_a_sender_on_another_boot_is_moved_onto_our_clock(instance, sender_ahead_ns):
    """The sender's monotonic clock reads ``t``; its realtime is ``t + offset_s``; ours is
    ``t' + offset_r``: the same instant is ``t + offset_s - offset_r`` on our clock."""
    local = 1_700_000_000_000_000_000
    got = receive_one(instance, boot_id() ^ 1, local + sender_ahead_ns, local)
    assert got["t_origin_ns"] == T_ORIGIN + sender_ahead_ns
    assert got["t_book_ns"] == T_BOOK + sender_ahead_ns
    assert got["exch_time_ns"] == T_EXCH  # realtime already: untouched
