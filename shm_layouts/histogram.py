"""Log-linear latency histogram (HdrHistogram-style), one int64 array per histogram.

Values below 2**SUB_BITS get a bucket each; above, each power of two is split into
2**SUB_BITS equal buckets, so the relative error is below 1/2**SUB_BITS (6.25%) over the
whole int64 range with a fixed 1 KiB-page-sized array and no allocation.
"""

from __future__ import annotations

SUB_BITS = 4
SUB_COUNT = 1 << SUB_BITS
N_BUCKETS = (64 - SUB_BITS) * SUB_COUNT  # index of 2**63-1 is below this

# words of one histogram
H_COUNT = 0
H_SUM = 1
H_MIN = 2
H_MAX = 3
H_BUCKETS = 8  # buckets start here (words 4..7 reserved)
HISTOGRAM_WORDS = H_BUCKETS + N_BUCKETS
