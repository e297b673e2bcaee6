"""The bridge's binary layouts: the Aeron message header and the receiver's state words.

A message is ``MESSAGE_HEADER`` (64 bytes, so the records after it stay 64-byte aligned)
followed by ``count`` records copied byte-for-byte from the upstream ring, ``seq`` included
(the upstream stamp; the receiver's own ring stamps its copies anew).
"""

from __future__ import annotations

import numpy as np

MAGIC = 0x32474449_52425446  # b"FTBRIDG2" little-endian: an hft bridge message, version 2
MESSAGE_HEADER = np.dtype([
    ("magic", "<i8"),
    ("layout_hash", "<i8"),  # transport.ring.ring_layout(stream, dtype).hash of the sender's ring
    ("record_size", "<i8"),
    ("first_seq", "<i8"),  # upstream ring sequence of the first record
    ("count", "<i8"),  # records that follow, consecutive upstream sequences
    ("epoch", "<i8"),  # the upstream ring's creation time (CLOCK_REALTIME ns): a new ring
                       # restarts its sequences at 0, so the receiver starts afresh
    # CLOCK_MONOTONIC is per boot: the sender's boot (a hash of its kernel's boot_id) and
    # its CLOCK_REALTIME - CLOCK_MONOTONIC when it sent, so a receiver on another host moves
    # the records' monotonic times onto its own clock through the (PTP/NTP-synced) realtime
    ("boot_id", "<i8"),
    ("clock_offset_ns", "<i8"),
])
assert MESSAGE_HEADER.itemsize == 64
HEADER_BYTES = MESSAGE_HEADER.itemsize
# int64 word indices of MESSAGE_HEADER (jitted code reads the header as int64 words)
H_MAGIC, H_LAYOUT_HASH, H_RECORD_SIZE, H_FIRST_SEQ, H_COUNT, H_EPOCH, H_BOOT_ID, \
    H_CLOCK_OFFSET = range(8)
# the record fields that hold CLOCK_MONOTONIC times (the others are the venue's realtime)
MONOTONIC_FIELDS = ("t_origin_ns", "t_book_ns", "t_decision_ns", "t_recv_ns")


def monotonic_offsets(dtype: np.dtype) -> np.ndarray:
    """Byte offsets of ``dtype``'s CLOCK_MONOTONIC fields (int64 each)."""
    return np.array([dtype.fields[f][1] for f in MONOTONIC_FIELDS if f in dtype.fields],
                    np.int64)

# receiver state (segment "bridge_<ring>" of the receiving instance, kind STATE): survives a
# receiver restart, so duplicates are dropped across it
RECEIVER_VERSION = 2
R_EXPECTED = 0  # next upstream sequence wanted (-1: none seen yet)
R_INTENT_END = 1  # write-ahead: the local ring's published cursor once the batch in hand is in
R_INTENT_EXPECTED = 2  # ... and R_EXPECTED then
R_EPOCH = 3  # the upstream ring's epoch R_EXPECTED counts in (0: none yet)
RECEIVER_WORDS = 8
