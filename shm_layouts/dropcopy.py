"""The drop copy's message layout: one JetStream message carries a batch of ring records.

A message is ``BATCH_HEADER`` (48 bytes) followed by ``count`` records of ``record_size``
bytes each, exactly as they sat in the ring (the record dtypes of ``shm_layouts.records``,
little-endian, ``seq`` the ring stamp). A reader decodes it without this code base as::

    (magic, version, header_size, record_size, layout_hash, epoch_ns, first_seq, count,
     _) = struct.unpack_from("<QHHIqqqII", data)      # the records start at header_size

and checks ``layout_hash`` against ``batch_hash(stream, dtype)`` before trusting a byte.
"""

from __future__ import annotations

import numpy as np

from shm_layouts.hashing import layout_hash

BATCH_MAGIC = int.from_bytes(b"HFTDCP01", "little")
BATCH_VERSION = 1

BATCH_HEADER = np.dtype(
    [
        ("magic", "<u8"),
        ("version", "<u2"),
        ("header_size", "<u2"),  # records start here (lets a later version grow the header)
        ("record_size", "<u4"),
        ("layout_hash", "<i8"),  # batch_hash(stream, record dtype)
        ("epoch_ns", "<i8"),  # the ring segment's created_ns: one ring life (seq restarts)
        ("first_seq", "<i8"),  # ring sequence of the first record
        ("count", "<u4"),
        ("_reserved", "<u4"),  # 0; keeps the records 8-byte aligned
    ]
)
HEADER_SIZE = BATCH_HEADER.itemsize
assert HEADER_SIZE == 48


def batch_hash(stream: str, dtype: np.dtype) -> int:
    """What a reader compares before decoding: the record dtype and the stream it came from."""
    return layout_hash(BATCH_VERSION, "dropcopy", stream, dtype)
