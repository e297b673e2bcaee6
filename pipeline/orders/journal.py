"""The OMS journal: an append-only file of every input the OMS applied.

Records are int64[RECORD_WORDS]: kind, time, then the payload (an accepted intent's fields
or a decoded report's field vector). Shared memory already survives a crash of the gateway;
the journal is what rebuilds the OMS when the segment itself is gone (host restart, new
instance) and what an audit reads. Appends are jitted and go through ``MAP_SHARED``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numba import njit

from pipeline.fix.codec import N_FIELDS
from pipeline.transport.atomics import load_relaxed, store_release

RECORD_WORDS = 2 + N_FIELDS + 6  # 328 bytes
K_INTENT, K_REPORT = 1, 2
J_KIND, J_TIME, J_PAYLOAD = 0, 1, 2
# intent payload words
(I_ACTION, I_CL, I_ORIG, I_SID, I_SIDE, I_PRICE, I_QTY, I_TIF, I_TYPE, I_STRATEGY,
 I_T_ORIGIN) = range(11)
HEADER_RECORDS = 1  # record 0 holds the append count in word 0
DEFAULT_RECORDS = 1 << 20  # 328 MiB, a sparse file: pages are allocated as written
RESERVE = 1024  # records kept for the reports and cancels of orders already out


@njit(cache=True, _nrt=False)
def append(j, kind, now, payload):
    """Append one record; returns False (and writes nothing) when the journal is full."""
    n = load_relaxed(j[0], 0)
    row = HEADER_RECORDS + n
    if row >= j.shape[0]:
        return False
    j[row, J_KIND] = kind
    j[row, J_TIME] = now
    for i in range(payload.shape[0]):
        j[row, J_PAYLOAD + i] = payload[i]
    store_release(j[0], 0, n + 1)
    return True


@njit(cache=True, _nrt=False)
def full(j):
    """No room for one more intent and its reports: new orders are refused before that."""
    return HEADER_RECORDS + load_relaxed(j[0], 0) + RESERVE >= j.shape[0]


def open_journal(path: str | Path, records: int = DEFAULT_RECORDS) -> np.memmap:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shape = (records + HEADER_RECORDS, RECORD_WORDS)
    size = shape[0] * RECORD_WORDS * 8
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        have = os.fstat(fd).st_size
        if have == 0:
            os.ftruncate(fd, size)
        elif have % (RECORD_WORDS * 8):
            raise ValueError(f"OMS journal {path} is not a whole number of records")
        else:
            shape = (have // (RECORD_WORDS * 8), RECORD_WORDS)
    finally:
        os.close(fd)
    return np.memmap(path, dtype=np.int64, mode="r+", shape=shape).view(np.ndarray)


def records(j: np.ndarray) -> np.ndarray:
    """The appended records (a view)."""
    return j[HEADER_RECORDS: HEADER_RECORDS + int(j[0, 0])]
