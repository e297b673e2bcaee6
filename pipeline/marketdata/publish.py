"""Publishing a batch of MD_EVENT records to the md ring, resumable under backpressure.

``st[OUT_POS]:st[OUT_N]`` of ``out`` are the records not yet published; a full ring
returns False and the caller retries later (its next duty cycle), nothing is lost.
"""

from __future__ import annotations

from numba import njit

from pipeline.transport import ring as R

OUT_POS, OUT_N = 1, 2  # words of the caller's state array
CHUNK = 256


@njit(cache=True, _nrt=False)
def push_records(ctl, recs, out, st):
    mask = recs.shape[0] - 1
    while st[OUT_POS] < st[OUT_N]:
        n = min(st[OUT_N] - st[OUT_POS], CHUNK)
        start = R.try_claim(ctl, n)
        if start < 0:
            return False
        for j in range(n):
            recs[(start + j) & mask] = out[st[OUT_POS] + j]
        R.publish(ctl, start + n)
        st[OUT_POS] += n
    return True
