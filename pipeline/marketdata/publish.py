"""Publishing a batch of records to a ring, resumable under backpressure.

``st[0].out_pos:st[0].out_n`` of the caller's records are not yet published (``st``: a
1-element record array whose dtype begins with ``PUSH_FIELDS``); a full ring returns False
and the caller retries later (its next duty cycle), nothing is lost. Records are copied as
int64 words *after* the leading ``seq`` word: that word is the ring's stamp, written only
by ``ring.publish`` (a consumer must never see a stale or partial stamp while the payload
is being written).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.transport import ring as R

# a publishing stage's cursor over its pending records (its state record begins with these)
PUSH_FIELDS = [("out_pos", "<i8"), ("out_n", "<i8")]
CHUNK = 256


@njit(cache=True, _nrt=False, inline="always")
def copy_payload(dst_row, src_words, si):
    """Copy record ``si`` of ``src_words`` (int64 rows) to ring slot row ``dst_row`` (its
    uint8 bytes, ``RingView.raw[slot]``), every word but the stamp (word 0)."""
    dst = dst_row.view(np.int64)
    for w in range(1, dst.shape[0]):
        dst[w] = src_words[si, w]


@njit(cache=True, _nrt=False)
def push_records(ring, src_rows, st):
    """Publish ``src_rows`` ``st[0].out_pos:st[0].out_n`` to ``ring`` (a producer
    ``RingView``); False on backpressure."""
    s = st[0]
    mask = ring.raw.shape[0] - 1
    while s.out_pos < s.out_n:
        n = min(s.out_n - s.out_pos, CHUNK)
        start = R.try_claim(ring.ctl, n)
        if start < 0:
            return False
        for j in range(n):
            copy_payload(ring.raw[(start + j) & mask], src_rows, s.out_pos + j)
        R.publish(ring.ctl, ring.stamps, start + n)
        s.out_pos += n
    return True


@njit(cache=True, _nrt=False, inline="always")
def start_batch(st, n):
    """``n`` new records at the start of the caller's buffer are to be published."""
    s = st[0]
    s.out_pos = 0
    s.out_n = n


def pending(st: np.ndarray) -> bool:
    """Records of the last batch not yet published (cold path)."""
    return bool(st[0]["out_pos"] < st[0]["out_n"])


def rows(records):
    """A structured array as int64 rows (a view; records are 64-byte multiples)."""
    return records.view("<i8").reshape(len(records), records.dtype.itemsize // 8)
