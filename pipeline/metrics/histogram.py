"""Log-linear histogram operations (layout: ``shm_layouts.histogram``).

``record`` is jitted and single-writer: relaxed atomic read-modify-write per word keeps
concurrent readers from seeing torn words without paying for a locked instruction.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from pipeline.transport.atomics import load_relaxed, store_relaxed
from shm_layouts.histogram import (
    H_BUCKETS,
    H_COUNT,
    H_MAX,
    H_MIN,
    H_SUM,
    HISTOGRAM_WORDS,
    N_BUCKETS,
    SUB_BITS,
    SUB_COUNT,
)


@njit(cache=True, _nrt=False)
def bucket_of(value):
    if value < SUB_COUNT:
        return max(value, 0)
    exp = 63 - leading_zeros(value)  # floor(log2(value)) >= SUB_BITS
    sub = (value >> (exp - SUB_BITS)) & (SUB_COUNT - 1)
    return (exp - SUB_BITS + 1) * SUB_COUNT + sub


@njit(cache=True)
def bucket_low(index):
    """Smallest value that falls into bucket ``index``."""
    if index < SUB_COUNT:
        return index
    exp = index // SUB_COUNT + SUB_BITS - 1
    return (SUB_COUNT + index % SUB_COUNT) << (exp - SUB_BITS)


@njit(cache=True, _nrt=False)
def record(h, value):
    """Add one value to histogram ``h`` (an int64 array of HISTOGRAM_WORDS)."""
    b = H_BUCKETS + bucket_of(value)
    store_relaxed(h, b, load_relaxed(h, b) + 1)
    n = load_relaxed(h, H_COUNT)
    store_relaxed(h, H_SUM, load_relaxed(h, H_SUM) + value)
    if n == 0 or value < load_relaxed(h, H_MIN):
        store_relaxed(h, H_MIN, value)
    if n == 0 or value > load_relaxed(h, H_MAX):
        store_relaxed(h, H_MAX, value)
    store_relaxed(h, H_COUNT, n + 1)


def new() -> np.ndarray:
    return np.zeros(HISTOGRAM_WORDS, np.int64)


def percentiles(h: np.ndarray, qs=(50.0, 99.0, 99.9)) -> dict[str, float]:
    """Percentiles from a snapshot (copy) of ``h``; each is its bucket's midpoint,
    clamped to the recorded min/max."""
    h = np.array(h, copy=True)
    count = int(h[H_COUNT])
    out: dict[str, float] = {"count": count}
    if count == 0:
        return out | {f"p{q:g}": 0.0 for q in qs} | {"min": 0, "max": 0, "mean": 0.0}
    cum = np.cumsum(h[H_BUCKETS:H_BUCKETS + N_BUCKETS])
    total = int(cum[-1])
    for q in qs:
        idx = int(np.searchsorted(cum, max(1, int(np.ceil(total * q / 100.0)))))
        mid = (bucket_low(idx) + bucket_low(idx + 1) - 1) / 2.0
        out[f"p{q:g}"] = float(min(max(mid, h[H_MIN]), h[H_MAX]))
    out["min"], out["max"] = int(h[H_MIN]), int(h[H_MAX])
    out["mean"] = float(h[H_SUM]) / count
    return out


def merge(into: np.ndarray, other: np.ndarray) -> None:
    n_into, n_other = int(into[H_COUNT]), int(other[H_COUNT])
    if n_other == 0:
        return
    into[H_MIN] = other[H_MIN] if n_into == 0 else min(into[H_MIN], other[H_MIN])
    into[H_MAX] = max(into[H_MAX], other[H_MAX])
    into[H_COUNT] += n_other
    into[H_SUM] += other[H_SUM]
    into[H_BUCKETS:] += other[H_BUCKETS:]


def since(now: np.ndarray, then: np.ndarray) -> np.ndarray:
    """What was recorded between two snapshots of one histogram (a steady-state window
    after start-up). Min and max become the bounds of the lowest and highest bucket used:
    the snapshots do not say which exact values fell in between."""
    out = np.array(now, copy=True)
    out[H_COUNT] -= then[H_COUNT]
    out[H_SUM] -= then[H_SUM]
    out[H_BUCKETS:] -= then[H_BUCKETS:]
    used = np.nonzero(out[H_BUCKETS:H_BUCKETS + N_BUCKETS])[0]
    if len(used):
        out[H_MIN] = max(bucket_low(int(used[0])), int(now[H_MIN]))
        out[H_MAX] = min(bucket_low(int(used[-1]) + 1) - 1, int(now[H_MAX]))
    else:
        out[H_MIN] = out[H_MAX] = 0
    return out
