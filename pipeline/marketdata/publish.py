"""Publishing a batch of records to a ring, resumable under backpressure.

``st[OUT_POS]:st[OUT_N]`` of ``out`` are the records not yet published; a full ring
returns False and the caller retries later (its next duty cycle), nothing is lost.
Records are copied as int64 words *after* the leading ``seq`` word: that word is the ring's
stamp, written only by ``ring.publish`` (a consumer must never see a stale or partial
stamp while the payload is being written).
"""

from __future__ import annotations

from numba import njit

from pipeline.transport import ring as R

OUT_POS, OUT_N = 1, 2  # words of the caller's state array
CHUNK = 256


@njit(cache=True, _nrt=False, inline="always")
def copy_payload(dst_words, di, src_words, si):
    """Copy record ``si`` of ``src_words`` to slot ``di`` of ``dst_words`` (int64 rows),
    every word but the stamp (word 0)."""
    for w in range(1, dst_words.shape[1]):
        dst_words[di, w] = src_words[si, w]


@njit(cache=True, _nrt=False)
def push_records(ctl, stamps, raw, out_raw, st):
    """Publish ``out_raw`` rows ``st[OUT_POS]:st[OUT_N]`` to the ring (``raw``: its slots
    as int64 rows, ``words(ring.raw)``); False on backpressure."""
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
    """A structured array as int64 rows (a view; records are 64-byte multiples)."""
    return records.view("<i8").reshape(len(records), records.dtype.itemsize // 8)


def words(raw):
    """A ring's uint8 slot rows (``Ring.raw``) as int64 rows (a view)."""
    return raw.view("<i8")
