"""Broadcast ring control block: int64 words, one 128-byte line (16 words) per writer.

128 bytes, not 64: the adjacent-line prefetcher pulls cache lines in pairs, so two
writers 64 bytes apart still false-share on most x86 parts.

    line 0            config (written once at creation)
    line 1            PUBLISHED: producer cursor, read by every consumer
    line 2            CLAIMED: producer's claim cursor, read by observing consumers
    line 3            producer-private: cached slowest gating cursor, stats
    line 4            WAITERS: one bit per consumer asleep on the ring's futex (written
                      only when a consumer goes to sleep or wakes, read on every publish)
    line 5 + i        consumer i: its cursor and private state
    after the lines   consumer names (S32 each), then records at a page boundary

Cursors are sequence numbers of records (0, 1, 2, ...): the record with sequence ``s``
lives at slot ``s & mask``; a cursor is the sequence of the next record to write/read.

The ring's futex is the low 32 bits of PUBLISHED (little-endian: the word's first four
bytes), so a publish is itself the change a sleeping consumer waits for
(``pipeline.transport.notify``).
"""

from __future__ import annotations

import enum

import numpy as np

LINE_WORDS = 16  # 128 bytes of int64
MAX_CONSUMERS = 8
RING_VERSION = 3  # bump when the meaning of a word changes (3: WAITERS line, wake counts)

# line 0: config
CAPACITY = 0
MASK = 1
RECORD_SIZE = 2
N_CONSUMERS = 3  # slots in use (gating slots are reserved at creation)
# line 1, line 2
PUBLISHED = 1 * LINE_WORDS
CLAIMED = 2 * LINE_WORDS
# line 3: producer-private
P_CACHED_MIN = 3 * LINE_WORDS  # slowest gating cursor last seen
P_PID = P_CACHED_MIN + 1
P_HEARTBEAT = P_CACHED_MIN + 2
P_FULL = P_CACHED_MIN + 3  # claims refused because the ring was full (backpressure)
P_WAKES = P_CACHED_MIN + 4  # FUTEX_WAKE calls made by publish (a sleeper was flagged)
# line 4: consumers asleep on the futex, bit ``1 << slot`` each
WAITERS = 4 * LINE_WORDS

CONSUMER_BASE = 5 * LINE_WORDS
# offsets inside a consumer line
C_CURSOR = 0  # next sequence to read; read by the producer (gating)
C_MODE = 1  # ConsumerMode
C_LOST = 2  # records lost to overrun (observing consumers)
C_PID = 3
C_HEARTBEAT = 4
C_ATTACHES = 5  # how many times a process attached to this slot
C_SLEEPS = 6  # times this consumer slept on the ring's futex (notify.wait_for_publish)
C_TIMEOUTS = 7  # of those, sleeps that ended at their timeout, not woken by a publish

CONTROL_WORDS = CONSUMER_BASE + MAX_CONSUMERS * LINE_WORDS
NAME_BYTES = 32
CONSUMER_NAMES = np.dtype((np.bytes_, NAME_BYTES))


class ConsumerMode(enum.IntEnum):
    FREE = 0
    GATING = 1  # the producer waits for it: backpressure, nothing lost
    OBSERVING = 2  # never slows the producer; detects and counts overrun


def consumer_word(slot: int, offset: int) -> int:
    return CONSUMER_BASE + slot * LINE_WORDS + offset
