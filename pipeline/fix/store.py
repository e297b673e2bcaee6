"""On-disk FIX session store: sequence numbers and the sent-message journal.

Three memory-mapped files under the store directory (mode 0600), written through
``MAP_SHARED`` so a kill -9 loses nothing that was stored before it (the page cache
outlives the process; a power cut is out of scope, there is no fsync on the hot path):

- ``seqnums``: int64 words ``NEXT_OUT``, ``NEXT_IN``, ``JOURNAL_END``;
- ``journal.dat``: outbound application messages, byte-appended as a circular log;
- ``journal.idx``: per sequence number (mod ``INDEX_SLOTS``) its seq, offset and length.

The outbound sequence number is taken (``take_seq``) before the bytes hit the socket, so
a restarted gateway never reuses one: at worst the peer sees a gap and asks for a resend,
which ``lookup`` answers with the journaled bytes or, for admin messages (not journaled:
a Logon carries the password), with a gap fill.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.transport.atomics import load_relaxed, store_release

NEXT_OUT, NEXT_IN, JOURNAL_END, CREATED = 0, 1, 2, 3
SEQ_WORDS = 16
INDEX_SLOTS = 1 << 16
IDX_SEQ, IDX_OFFSET, IDX_LEN = 0, 1, 2
JOURNAL_BYTES = 1 << 24


class StoreView(NamedTuple):
    """The store as one jitted argument: ``seqs`` (the int64 seqnums words, read and written
    through the atomic intrinsics, hence words and not a record), ``data``, ``index``."""

    seqs: np.ndarray
    data: np.ndarray
    index: np.ndarray


@njit(cache=True, _nrt=False)
def take_seq(words):
    """Claim the next outbound MsgSeqNum (persisted at once)."""
    seq = load_relaxed(words, NEXT_OUT)
    store_release(words, NEXT_OUT, seq + 1)
    return seq


@njit(cache=True, _nrt=False)
def journal_append(words, data, index, buf, start, end, seq):
    """Append ``buf[start:end]`` (message ``seq``) to the journal; length 0 marks an admin
    message that a resend answers with a gap fill."""
    n = end - start
    off = load_relaxed(words, JOURNAL_END)
    cap = data.shape[0]
    at = off % cap
    first = min(n, cap - at)  # two plain copies, not a division per byte (~1 us a message)
    for i in range(first):
        data[at + i] = buf[start + i]
    for i in range(first, n):
        data[i - first] = buf[start + i]
    slot = seq % index.shape[0]
    index[slot, IDX_OFFSET] = off
    index[slot, IDX_LEN] = n
    index[slot, IDX_SEQ] = seq  # written last: the entry is complete once its seq matches
    store_release(words, JOURNAL_END, off + n)


def _map(path: Path, dtype, shape) -> np.memmap:
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    fresh = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size != size:
            if not fresh:
                raise ValueError(f"FIX store file {path} has the wrong size for this layout")
            os.ftruncate(fd, size)
    finally:
        os.close(fd)
    # a plain ndarray view of the mapping: numba dispatches on it ~4x faster than on the
    # np.memmap subclass, and it keeps the mapping alive through ``.base``
    return np.memmap(path, dtype=dtype, mode="r+", shape=shape).view(np.ndarray)


class SessionStore:
    """The persisted state of one FIX session (one SenderCompID/TargetCompID pair)."""

    def __init__(self, directory: str | Path, journal_bytes: int = JOURNAL_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.words = _map(self.dir / "seqnums", np.int64, (SEQ_WORDS,))
        self.data = _map(self.dir / "journal.dat", np.uint8, (journal_bytes,))
        self.index = _map(self.dir / "journal.idx", np.int64, (INDEX_SLOTS, 3))
        if self.words[CREATED] == 0:
            self.reset()
        self.view = StoreView(self.words, self.data, self.index)

    @property
    def next_out(self) -> int:
        return int(self.words[NEXT_OUT])

    @property
    def next_in(self) -> int:
        return int(self.words[NEXT_IN])

    def set_next_in(self, seq: int) -> None:
        self.words[NEXT_IN] = seq

    def reset(self) -> None:
        """Start a new FIX session (both sides back to 1): only by explicit agreement."""
        self.index[:] = 0
        self.words[NEXT_OUT] = 1
        self.words[NEXT_IN] = 1
        self.words[JOURNAL_END] = 0
        self.words[CREATED] = 1

    def record(self, seq: int, raw: bytes | None) -> None:
        """Journal an outbound message sent from Python (``None``: admin, gap-filled)."""
        buf = np.frombuffer(raw, np.uint8) if raw else np.zeros(0, np.uint8)
        journal_append(self.words, self.data, self.index, buf, 0, len(buf), seq)

    def lookup(self, seq: int) -> bytes | None:
        """The journaled bytes of outbound message ``seq``; None means gap-fill it."""
        row = self.index[seq % INDEX_SLOTS]
        n, off = int(row[IDX_LEN]), int(row[IDX_OFFSET])
        cap = self.data.shape[0]
        if int(row[IDX_SEQ]) != seq or n == 0 or off < int(self.words[JOURNAL_END]) - cap:
            return None
        pos = np.arange(off, off + n) % cap
        return self.data[pos].tobytes()

    def flush(self) -> None:
        for m in (self.words, self.data, self.index):
            m.base.flush()
