"""PROBE_RECORD: the 64-byte record of the transport demo and benchmarks."""

from __future__ import annotations

import numpy as np

PROBE_RECORD = np.dtype([
    ("seq", "<i8"),
    ("t_send_ns", "<i8"),  # CLOCK_MONOTONIC just before publish
    ("payload", "<i8", (6,)),
])
assert PROBE_RECORD.itemsize == 64
