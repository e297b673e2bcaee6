"""Publishing a batch of records to a ring, resumable under backpressure.

``st[OUT_POS]:st[OUT_N]`` of ``out`` are the records not yet published; a full ring
returns False and the caller retries later (its next duty cycle), nothing is lost.
Records are copied as bytes *after* the leading ``seq`` word: that word is the ring's
stamp, written only by ``ring.publish`` (a consumer must never see a stale or partial
stamp while the payload is being written).
"""

from __future__ import annotations

from numba import njit

from pipeline.transport import ring as R

OUT_POS, OUT_N = 1, 2  # words of the caller's state array
CHUNK = 256
STAMP_BYTES = 8


@njit(cache=True, _nrt=False, inline="always")
def copy_payload(dst_raw, di, src_raw, si):
    """Copy record ``si`` of ``src_raw`` to slot ``di`` of ``dst_raw`` (uint8 rows),
    every byte but the stamp."""
    for b in range(STAMP_BYTES, dst_raw.shape[1]):
        dst_raw[di, b] = src_raw[si, b]


@njit(cache=True, _nrt=False)
def push_records(ctl, stamps, raw, out_raw, st):
    """Publish ``out_raw`` rows ``st[OUT_POS]:st[OUT_N]`` to the ring (``raw``: its uint8
    rows); False on backpressure."""
    mask = raw.shape[0] - 1
    while st[OUT_POS] < st[OUT_N]:
        n = min(st[OUT_N] - st[OUT_POS], CHUNK)
        start = R.try_claim(ctl, n)
        if start < 0:
            return False
        for j in range(n):
            copy_payload(raw, (start + j) & mask, out_raw, st[OUT_POS] + j)
        R.publish(ctl, stamps, start + n)
        st[OUT_POS] += n
    return True


def rows(records):
    """A structured array as uint8 rows (a view)."""
    return records.view("u1").reshape(len(records), records.dtype.itemsize)
