"""Broadcast ring: one producer, gating and observing consumers, fixed-size records.

The hot operations are ``@njit`` functions on the control words (``ctl``, int64) and the
slot stamps, so duty cycles call them from jitted loops; ``Ring`` is the cold-path handle
that creates or attaches the segment and hands out the arrays (``shm_layouts.ring``).

Every record dtype begins with ``seq`` (int64): the ring's stamp, written by ``publish``
and never by the caller. A consumer learns that record ``s`` is complete from the stamp in
the record's own cache line (as Aeron subscribers read the frame header), so a small
message costs one cache-line transfer per hop; polling the producer cursor instead would
cost two dependent transfers (cursor, then payload).

Producer::

    start = try_claim(ctl, n)          # -1: a gating consumer is a whole ring behind
    records[(start + i) & mask] = ...  # write the batch, every field but ``seq``
    publish(ctl, stamps, start + n)    # stamp each slot (release), then the cursor;
                                       # wakes consumers asleep on the ring (notify.py)

Gating consumer (zero-copy; the producer cannot overwrite what it has not released)::

    n = poll(ctl, stamps, slot, limit); pos = cursor(ctl, slot)
    ... read records[(pos + i) & mask] for i < n ...
    release(ctl, slot, pos + n)

Observing consumer (copies, then validates; never slows the producer)::

    n = observe(ctl, slot, records_bytes, out_bytes)   # lost records counted in C_LOST

Memory ordering, after rigtorp/SPSCQueue, Disruptor and Aeron:
- producer: payload stores, then each slot's stamp with ``store_release``, then the cursor
  ``PUBLISHED`` with ``store_release``; a consumer ``load_acquire``s the stamp before
  reading the payload, so it never sees a partial record;
- consumer: payload loads, then ``store_release(cursor)``; the producer ``load_acquire``s
  the cursor before reusing a slot, so it never overwrites a record still being read;
- observers: the producer ``store_relaxed(CLAIMED)`` + release fence *before* writing a
  slot; the observer copies, then acquire fence + ``load_relaxed(CLAIMED)``: if the
  producer had claimed past ``seq + capacity`` the copy may be torn and is discarded;
- sleepers: after the cursor store a full fence, then one load of ``WAITERS``
  (``notify.wake_sleepers``); the consumer side is ``notify.wait_for_publish``.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import numpy as np
from numba import njit

from pipeline.transport.atomics import (
    fence_acquire,
    fence_release,
    fetch_add,
    load_acquire,
    load_relaxed,
    store_relaxed,
    store_release,
)
from pipeline.transport.notify import wake_sleepers
from pipeline.transport.registry import Instance
from pipeline.transport.segment import Layout, Segment, pid_alive, shm_name
from pipeline.transport.shared import atomic_add, atomic_cas, atomic_load, atomic_store
from shm_layouts import SegmentKind, layout_hash
from shm_layouts.ring import (
    C_ATTACHES,
    C_CURSOR,
    C_HEARTBEAT,
    C_LOST,
    C_MODE,
    C_PID,
    C_SLEEPS,
    C_TIMEOUTS,
    CAPACITY,
    CLAIMED,
    CONSUMER_BASE,
    CONSUMER_NAMES,
    CONTROL_WORDS,
    LINE_WORDS,
    MASK,
    MAX_CONSUMERS,
    N_CONSUMERS,
    NAME_BYTES,
    P_CACHED_MIN,
    P_FULL,
    P_HEARTBEAT,
    P_PID,
    P_WAKES,
    PUBLISHED,
    RECORD_SIZE,
    RING_VERSION,
    WAITERS,
    ConsumerMode,
    consumer_word,
)

GATING = int(ConsumerMode.GATING)
OBSERVING = int(ConsumerMode.OBSERVING)
FREE = int(ConsumerMode.FREE)


# ---------------------------------------------------------------------------- producer
@njit(cache=True, _nrt=False)
def slowest_gating(ctl, fallback):
    """Lowest cursor among gating consumers (``fallback`` if there are none)."""
    low = fallback
    for slot in range(ctl[N_CONSUMERS]):
        base = CONSUMER_BASE + slot * LINE_WORDS
        if load_acquire(ctl, base + C_MODE) == GATING:
            # acquire: the consumer's payload reads happened before it released this cursor
            low = min(low, load_acquire(ctl, base + C_CURSOR))
    return low


@njit(cache=True, _nrt=False)
def try_claim(ctl, n):
    """Reserve ``n`` consecutive slots; return the first sequence, or -1 if the slowest
    gating consumer would be overwritten (backpressure: retry later, nothing is lost)."""
    pub = load_relaxed(ctl, PUBLISHED)  # only this producer writes it
    end = pub + n
    wrap = end - ctl[CAPACITY]  # config words never change after creation
    if load_relaxed(ctl, P_CACHED_MIN) < wrap:
        low = slowest_gating(ctl, pub)
        store_relaxed(ctl, P_CACHED_MIN, low)
        if low < wrap:
            store_relaxed(ctl, P_FULL, load_relaxed(ctl, P_FULL) + 1)
            return -1
    # Observers must learn a slot is being overwritten before any byte of it changes:
    # claim store, then a release fence orders it before the payload stores that follow.
    store_relaxed(ctl, CLAIMED, end)
    fence_release()
    return pub


@njit(cache=True, _nrt=False)
def publish(ctl, stamps, end):
    """Make every claimed record before sequence ``end`` visible: stamp each slot with its
    sequence (release: the payload is complete first), then advance the cursor and wake
    any consumer asleep on the ring."""
    mask = ctl[MASK]
    for seq in range(load_relaxed(ctl, PUBLISHED), end):
        store_release(stamps, seq & mask, seq)
    store_release(ctl, PUBLISHED, end)
    wake_sleepers(ctl)


# ---------------------------------------------------------------------------- consumers
@njit(cache=True, _nrt=False)
def cursor(ctl, slot):
    return load_relaxed(ctl, CONSUMER_BASE + slot * LINE_WORDS + C_CURSOR)


@njit(cache=True, _nrt=False)
def poll(ctl, stamps, slot, limit):
    """Records ready for a gating consumer, at most ``limit``, from ``cursor(ctl, slot)``.

    Scans slot stamps: the acquire load of a stamp makes that record's payload visible.
    """
    pos = load_relaxed(ctl, CONSUMER_BASE + slot * LINE_WORDS + C_CURSOR)
    mask = ctl[MASK]
    n = 0
    while n < limit and load_acquire(stamps, (pos + n) & mask) == pos + n:
        n += 1
    return n


@njit(cache=True, _nrt=False)
def release(ctl, slot, new_cursor):
    """Hand slots before ``new_cursor`` back to the producer (release: our reads are done)."""
    store_release(ctl, CONSUMER_BASE + slot * LINE_WORDS + C_CURSOR, new_cursor)


@njit(cache=True, _nrt=False, inline="always")
def _copy_row(dst, i, src, j):
    """``dst[i, :] = src[j, :]`` as a plain loop: a slice assignment may allocate a temporary
    (numba cannot prove the rows apart), which needs NRT."""
    for b in range(dst.shape[1]):
        dst[i, b] = src[j, b]


# _nrt=False explicitly: numba compiles a callee that does not set it with its first
# caller's setting, so a cold cache plus a no-NRT caller (the fused loop) would otherwise
# decide how this compiles
@njit(cache=True, _nrt=False)
def observe(ctl, slot, records, out):
    """Copy up to ``len(out)`` records (uint8 rows) for an observing consumer.

    Returns how many rows of ``out`` are valid. Records overwritten before or while being
    copied are skipped and added to the slot's lost count; a torn record is never returned.
    """
    base = CONSUMER_BASE + slot * LINE_WORDS
    cap = ctl[CAPACITY]
    mask = ctl[MASK]
    pos = load_relaxed(ctl, base + C_CURSOR)
    pub = load_acquire(ctl, PUBLISHED)
    lost = 0
    if pub - pos > cap:  # lapped before we even looked
        lost = pub - cap - pos
        pos = pub - cap
    n = min(pub - pos, out.shape[0])
    for i in range(n):
        _copy_row(out, i, records, (pos + i) & mask)
    fence_acquire()  # the copies above complete before we re-check the claim cursor
    first_intact = load_relaxed(ctl, CLAIMED) - cap
    end = pos + n
    if first_intact > pos:  # the producer may have been writing these slots as we copied
        skip = min(first_intact, end) - pos
        for i in range(n - skip):  # forward copy: destination is below the source
            _copy_row(out, i, out, i + skip)
        n -= skip
        lost += first_intact - pos
        end = max(end, first_intact)
    if lost:
        fetch_add(ctl, base + C_LOST, lost)
    store_release(ctl, base + C_CURSOR, end)
    return n


@njit(cache=True)
def offer_row(ctl, stamps, raw, row):
    """Copy one record (uint8 row, its ``seq`` bytes ignored) into the ring; False if full."""
    start = try_claim(ctl, 1)
    if start < 0:
        return False
    slot = raw[start & ctl[MASK]]
    for i in range(8, row.shape[0]):  # the first 8 bytes are the stamp: publish writes it
        slot[i] = row[i]
    publish(ctl, stamps, start + 1)
    return True


@njit(cache=True)
def take_rows(ctl, stamps, raw, slot, out):
    """Copy what a gating consumer has ready into ``out`` rows and release it."""
    n = poll(ctl, stamps, slot, out.shape[0])
    pos = cursor(ctl, slot)
    for i in range(n):
        out[i, :] = raw[(pos + i) & ctl[MASK], :]
    release(ctl, slot, pos + n)
    return n


# ---------------------------------------------------------------------------- cold path
def ring_layout(stream: str, dtype: np.dtype) -> Layout:
    return Layout(SegmentKind.RING, f"ring:{stream}",
                  layout_hash(RING_VERSION, CONTROL_WORDS, MAX_CONSUMERS, stream, dtype))


class RingError(RuntimeError):
    pass


class RingView(NamedTuple):
    """What a jitted stage needs of one ring, as one argument (numba compiles each field
    access to a load): the control words, the slot stamps, the records (structured and as
    uint8 rows) and this stage's consumer slot (-1 for the producer)."""

    ctl: np.ndarray
    stamps: np.ndarray
    records: np.ndarray
    raw: np.ndarray
    slot: int


class Ring:
    """Handle on a ring segment: ``ctl`` (int64 control words), ``records`` (structured
    array), ``raw`` (the same records as uint8 rows) and ``mask``."""

    def __init__(self, seg: Segment, dtype: np.dtype):
        self.segment = seg
        self.dtype = dtype
        body = seg.body
        self.ctl = body[: CONTROL_WORDS * 8].view(np.int64)
        names_end = CONTROL_WORDS * 8 + MAX_CONSUMERS * NAME_BYTES
        self._names = body[CONTROL_WORDS * 8: names_end].view(CONSUMER_NAMES)
        capacity = int(self.ctl[CAPACITY])
        start = _records_offset()
        area = body[start: start + capacity * dtype.itemsize]
        self.records = area.view(dtype)
        self.raw = area.reshape(capacity, dtype.itemsize)
        # the leading ``seq`` of every slot, as a strided int64 array for the atomics
        self.stamps = self.raw.view(np.int64)[:, 0]
        self.capacity = capacity
        self.mask = capacity - 1

    def view(self, slot: int = -1) -> RingView:
        """The jitted stages' handle: ``slot`` is the consumer slot, -1 for the producer."""
        return RingView(self.ctl, self.stamps, self.records, self.raw, int(slot))

    # -- creation / attach
    @classmethod
    def create(cls, instance: Instance, name: str, stream: str, dtype: np.dtype,
               capacity: int, gating: tuple[str, ...] = ()) -> Ring:
        """Create the ring with ``gating`` consumer slots reserved by name, so backpressure
        applies from the first record even before those consumers start."""
        if capacity < 2 or capacity & (capacity - 1):
            raise RingError(f"ring {name}: capacity {capacity} is not a power of two >= 2")
        if dtype.itemsize % 64:
            raise RingError(f"ring {name}: record size {dtype.itemsize} is not a multiple of 64")
        if not dtype.names or dtype.names[0] != "seq" or dtype.fields["seq"] != (
                np.dtype("<i8"), 0):
            raise RingError(f"ring {name}: record dtype must begin with int64 'seq' (the stamp)")
        if len(gating) > MAX_CONSUMERS:
            raise RingError(f"ring {name}: {len(gating)} gating consumers, max {MAX_CONSUMERS}")
        seg = instance.create_segment(name, ring_layout(stream, dtype),
                                      _records_offset() + capacity * dtype.itemsize)
        ring = cls.__new__(cls)
        ctl = seg.body[: CONTROL_WORDS * 8].view(np.int64)
        ctl[CAPACITY], ctl[MASK], ctl[RECORD_SIZE] = capacity, capacity - 1, dtype.itemsize
        ctl[N_CONSUMERS] = len(gating)
        ctl[P_PID] = os.getpid()
        ring.__init__(seg, dtype)
        ring.stamps[:] = -1  # no slot holds a published sequence yet
        for slot, consumer in enumerate(gating):
            ring._names[slot] = _name_bytes(consumer)
            ctl[consumer_word(slot, C_MODE)] = GATING
        seg.mark_ready()  # release store: the config words above are visible to attachers
        return ring

    @classmethod
    def attach(cls, instance: Instance, name: str, stream: str, dtype: np.dtype,
               readonly: bool = False) -> Ring:
        seg = instance.attach_segment(name, ring_layout(stream, dtype), readonly=readonly)
        if int(seg.body[RECORD_SIZE * 8: RECORD_SIZE * 8 + 8].view(np.int64)[0]) != dtype.itemsize:
            raise RingError(f"ring {name}: record size mismatch")
        return cls(seg, dtype)

    # -- consumers
    def join(self, consumer: str, mode: ConsumerMode = ConsumerMode.GATING) -> int:
        """Attach a consumer and return its slot.

        A gating consumer reserved at creation (or one that crashed) gets its old slot and
        resumes at its persisted cursor: nothing is lost or skipped. A new consumer takes a
        free slot and starts at the current producer position.
        """
        for slot in range(int(atomic_load(self.ctl, N_CONSUMERS))):
            if self.consumer_name(slot) == consumer and \
                    atomic_load(self.ctl, consumer_word(slot, C_MODE)) == mode:
                self._claimed(slot)
                return slot
        for slot in range(MAX_CONSUMERS):
            if atomic_cas(self.ctl, consumer_word(slot, C_MODE), FREE, -1):  # -1: being set up
                self._names[slot] = _name_bytes(consumer)
                pub = atomic_load(self.ctl, PUBLISHED)
                atomic_store(self.ctl, consumer_word(slot, C_CURSOR), pub)
                atomic_store(self.ctl, consumer_word(slot, C_LOST), 0)
                atomic_store(self.ctl, consumer_word(slot, C_MODE), int(mode))
                while True:  # N_CONSUMERS = max(N_CONSUMERS, slot + 1)
                    n = atomic_load(self.ctl, N_CONSUMERS)
                    if n > slot or atomic_cas(self.ctl, N_CONSUMERS, n, slot + 1):
                        break
                self._claimed(slot)
                return slot
        raise RingError(f"ring {self.segment.name}: no free consumer slot for {consumer!r}")

    def leave(self, slot: int) -> None:
        """An observer frees its slot; a gating slot stays reserved with its cursor."""
        if atomic_load(self.ctl, consumer_word(slot, C_MODE)) == OBSERVING:
            atomic_store(self.ctl, consumer_word(slot, C_MODE), FREE)

    def _claimed(self, slot: int) -> None:
        flag = 1 << slot  # a process that died asleep left its bit set: clear it
        if atomic_load(self.ctl, WAITERS) & flag:
            atomic_add(self.ctl, WAITERS, -flag)
        atomic_store(self.ctl, consumer_word(slot, C_PID), os.getpid())
        atomic_store(self.ctl, consumer_word(slot, C_HEARTBEAT), time.monotonic_ns())
        atomic_store(self.ctl, consumer_word(slot, C_ATTACHES),
                     atomic_load(self.ctl, consumer_word(slot, C_ATTACHES)) + 1)

    def heartbeat(self, slot: int | None = None) -> None:
        """Producer (``slot=None``) or consumer liveness, written from housekeeping."""
        word = P_HEARTBEAT if slot is None else consumer_word(slot, C_HEARTBEAT)
        atomic_store(self.ctl, word, time.monotonic_ns())

    def offer(self, rec: np.ndarray) -> bool:
        """Cold-path publish of one record (tools, tests, replay set-up)."""
        row = np.ascontiguousarray(rec, dtype=self.dtype).reshape(1).view(np.uint8)
        return bool(offer_row(self.ctl, self.stamps, self.raw, row))

    def take(self, slot: int, limit: int = 1024) -> np.ndarray:
        """Cold-path read of what is ready for gating consumer ``slot`` (a copy)."""
        out = np.zeros((limit, self.dtype.itemsize), np.uint8)
        n = take_rows(self.ctl, self.stamps, self.raw, slot, out)
        return out[:n].reshape(-1).view(self.dtype).copy()

    def claim_producer(self) -> None:
        atomic_store(self.ctl, P_PID, os.getpid())
        self.heartbeat()

    # -- inspection (monitor, supervisor, tests)
    def consumer_name(self, slot: int) -> str:
        return self._names[slot].decode(errors="replace")

    def published(self) -> int:
        return int(atomic_load(self.ctl, PUBLISHED))

    def consumer(self, slot: int) -> dict:
        w = {k: int(atomic_load(self.ctl, consumer_word(slot, off))) for k, off in
             (("cursor", C_CURSOR), ("mode", C_MODE), ("lost", C_LOST), ("pid", C_PID),
              ("heartbeat_ns", C_HEARTBEAT), ("attaches", C_ATTACHES), ("sleeps", C_SLEEPS),
              ("sleep_timeouts", C_TIMEOUTS))}
        w["name"] = self.consumer_name(slot)
        w["lag"] = self.published() - w["cursor"]
        return w

    def consumers(self) -> list[dict]:
        n = int(atomic_load(self.ctl, N_CONSUMERS))
        return [dict(self.consumer(s), slot=s) for s in range(n)
                if atomic_load(self.ctl, consumer_word(s, C_MODE)) in (GATING, OBSERVING)]

    def full_count(self) -> int:
        return int(atomic_load(self.ctl, P_FULL))

    def wake_count(self) -> int:
        """FUTEX_WAKE calls the producer made (a busy ring makes none)."""
        return int(atomic_load(self.ctl, P_WAKES))

    def stale_consumers(self, timeout_ns: int) -> list[int]:
        """Gating slots whose process is gone or whose heartbeat is older than ``timeout_ns``:
        they hold the producer back and need a restart."""
        now = time.monotonic_ns()
        stale = []
        for c in self.consumers():
            if c["mode"] != GATING:
                continue
            if now - c["heartbeat_ns"] > timeout_ns or not pid_alive(c["pid"]):
                stale.append(c["slot"])
        return stale

    def close(self) -> None:
        self.ctl = self.records = self.raw = self.stamps = None  # type: ignore[assignment]
        self._names = None
        self.segment.close()


def inspect_ring(instance: Instance, name: str) -> dict:
    """Read-only state of any ring of ``instance`` without knowing its record dtype
    (monitor, summary): never joins, never writes."""
    seg = Segment.open(shm_name(instance.name, name), readonly=True)
    if int(seg.header["kind"]) != int(SegmentKind.RING):
        raise RingError(f"{seg.name} is not a ring")
    ctl = seg.body[: CONTROL_WORDS * 8].view(np.int64)
    names = seg.body[CONTROL_WORDS * 8: CONTROL_WORDS * 8 + MAX_CONSUMERS * NAME_BYTES]
    names = names.view(CONSUMER_NAMES)
    published = int(atomic_load(ctl, PUBLISHED))
    consumers = []
    for slot in range(int(atomic_load(ctl, N_CONSUMERS))):
        mode = int(atomic_load(ctl, consumer_word(slot, C_MODE)))
        if mode not in (GATING, OBSERVING):
            continue
        cur = int(atomic_load(ctl, consumer_word(slot, C_CURSOR)))
        consumers.append({"slot": slot, "name": names[slot].decode(errors="replace"),
                          "mode": ConsumerMode(mode).name.lower(), "cursor": cur,
                          "lag": published - cur,
                          "lost": int(atomic_load(ctl, consumer_word(slot, C_LOST))),
                          "pid": int(atomic_load(ctl, consumer_word(slot, C_PID))),
                          "sleeps": int(atomic_load(ctl, consumer_word(slot, C_SLEEPS))),
                          "sleep_timeouts": int(atomic_load(ctl,
                                                            consumer_word(slot, C_TIMEOUTS)))})
    return {"stream": seg.header["layout_name"].decode(), "capacity": int(ctl[CAPACITY]),
            "record_size": int(ctl[RECORD_SIZE]), "published": published,
            "full": int(atomic_load(ctl, P_FULL)), "wakes": int(atomic_load(ctl, P_WAKES)),
            "consumers": consumers}


def _records_offset() -> int:
    base = CONTROL_WORDS * 8 + MAX_CONSUMERS * NAME_BYTES
    return (base + 4095) // 4096 * 4096


def _name_bytes(name: str) -> bytes:
    raw = name.encode()
    if not raw or len(raw) > NAME_BYTES:
        raise RingError(f"consumer name {name!r} must be 1..{NAME_BYTES} bytes")
    return raw
