"""Segment header: the first 128 bytes of every shared-memory segment."""

from __future__ import annotations

import enum

import numpy as np

MAGIC = int.from_bytes(b"HFTSHM01", "little")
LAYOUT_VERSION = 1
HEADER_SIZE = 128


class SegmentKind(enum.IntEnum):
    REGISTRY = 1
    RING = 2
    COUNTERS = 3
    LATEST = 4  # seqlock-protected "latest value" table
    STATE = 5  # process state that must survive a crash (OMS, sequence numbers)
    CONTROL = 6


class SegmentState(enum.IntEnum):
    CREATING = 0  # header written, body not yet initialised: attachers wait
    READY = 1
    CLOSED = 2  # owner shut down cleanly; about to be unlinked


SEGMENT_HEADER = np.dtype(
    [
        ("magic", "<u8"),
        ("layout_version", "<u4"),
        ("kind", "<u4"),
        ("layout_hash", "<i8"),
        ("creator_pid", "<i8"),
        ("created_ns", "<i8"),  # CLOCK_REALTIME
        ("state", "<i8"),  # SegmentState; int64 so it can be read atomically
        ("total_size", "<i8"),
        ("body_offset", "<i8"),
        ("layout_name", "S48"),  # human-readable name of what the body holds
    ],
    align=True,
)
# the state word as an index into the header viewed as int64 words
STATE_WORD = SEGMENT_HEADER.fields["state"][1] // 8
assert SEGMENT_HEADER.itemsize <= HEADER_SIZE
