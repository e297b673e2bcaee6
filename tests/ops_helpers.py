"""Helpers for the ops tests: publishing probe records, copying segments."""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.runtime.clock import monotonic_ns
from pipeline.transport import ring as R


@njit(cache=True)
def publish_probes(ctl, stamps, records, n):
    """Publish ``n`` timestamped probe records (the ring must have room)."""
    start = R.try_claim(ctl, n)
    if start < 0:
        return -1
    now = monotonic_ns()
    for i in range(n):
        records[(start + i) & (records.shape[0] - 1)]["t_send_ns"] = now
    R.publish(ctl, stamps, start + n)
    return start


def segment_bytes(inst) -> dict[str, bytes]:
    """A copy of every segment of ``inst`` (read-only mappings)."""
    from pipeline.transport.segment import Segment, shm_name
    out = {}
    for e in inst.segments():
        seg = Segment.open(shm_name(inst.name, e.name), readonly=True)
        out[e.name] = np.array(seg.body, copy=True).tobytes() + np.array(
            seg.words, copy=True).tobytes()
        seg.close()
    return out
