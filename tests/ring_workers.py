"""Processes for the cross-process ring tests: each attaches to the ring by instance name.

Each record carries its sequence number and a checksum of its other fields, so a consumer
can prove it saw every record exactly once, in order and intact.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.runtime import idle as idle_strategies
from pipeline.runtime.idle import idle
from pipeline.runtime.libc import nanosleep
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from shm_layouts.ring import ConsumerMode

RECORD = np.dtype([("seq", "<i8"), ("a", "<i8"), ("b", "<i8"), ("c", "<i8"), ("d", "<i8"),
                   ("e", "<i8"), ("f", "<i8"), ("checksum", "<i8")])
STREAM = "stress"
MIX = 0x9E3779B97F4A7C15 - (1 << 64)  # golden-ratio constant as int64


@njit(cache=True)
def fill(rec, seq):
    """Every field but ``seq`` (the ring stamps that on publish); checksum covers seq."""
    rec["a"] = seq * 3
    rec["b"] = seq ^ 0x5555
    rec["c"] = -seq
    rec["d"] = seq * MIX
    rec["e"] = seq + 7
    rec["f"] = seq >> 3
    rec["checksum"] = checksum(rec, seq)


@njit(cache=True)
def checksum(rec, seq):
    return (seq * 31 + rec["a"] * 7 + rec["b"] * 13 + rec["c"] * 17 + rec["d"] * 19
            + rec["e"] * 23 + rec["f"] * 29)


@njit(cache=True)
def produce(ctl, stamps, records, total, batch, idle_state):
    """Publish sequences 0..total-1 in batches; returns how often the ring was full."""
    mask = records.shape[0] - 1
    seq = 0
    full = 0
    while seq < total:
        n = min(batch, total - seq)
        start = R.try_claim(ctl, n)
        if start < 0:
            full += 1
            idle(idle_state, 0)
            continue
        for i in range(n):
            fill(records[(start + i) & mask], start + i)
        R.publish(ctl, stamps, start + n)
        seq += n
        idle(idle_state, n)
    return full


@njit(cache=True)
def consume(ctl, stamps, records, slot, until, limit, seen, idle_state):
    """Gating consumer: check every record up to sequence ``until``; returns errors.

    ``seen[seq]`` counts deliveries (it may be None-sized 0 to skip that bookkeeping).
    """
    mask = records.shape[0] - 1
    errors = 0
    pos = R.cursor(ctl, slot)
    while pos < until:
        n = R.poll(ctl, stamps, slot, limit)
        if n == 0:
            idle(idle_state, 0)
            continue
        for i in range(n):
            rec = records[(pos + i) & mask]
            if rec["seq"] != pos + i or rec["checksum"] != checksum(rec, pos + i):
                errors += 1
            if seen.shape[0] > 0:
                seen[pos + i] += 1
        pos += n
        R.release(ctl, slot, pos)
        idle(idle_state, n)
    return errors


@njit(cache=True)
def observe_all(ctl, slot, raw, out, out_records, until, pause_ns, stats):
    """Slow observer: stats = [records seen, out-of-order or torn, last seq].

    ``out_records`` is ``out`` viewed as RECORD, so copied rows are checked field by field.
    """
    last = -1
    while R.cursor(ctl, slot) < until:
        n = R.observe(ctl, slot, raw, out)
        for i in range(n):
            rec = out_records[i]
            if rec["seq"] <= last or rec["checksum"] != checksum(rec, rec["seq"]):
                stats[1] += 1
            last = rec["seq"]
        stats[0] += n
        stats[2] = last
        nanosleep(pause_ns)


def attach(instance_name: str) -> tuple[Instance, R.Ring]:
    inst = Instance.attach(instance_name)
    return inst, R.Ring.attach(inst, "ring", STREAM, RECORD)


def producer_main(instance_name: str, total: int, batch: int, result) -> None:
    _, ring = attach(instance_name)
    ring.claim_producer()
    result.put(("producer", produce(ring.ctl, ring.stamps, ring.records, total, batch,
                                    idle_strategies.backoff())))


def consumer_main(instance_name: str, name: str, total: int, result, seen_name: str = "") -> None:
    _, ring = attach(instance_name)
    slot = ring.join(name)
    seen = np.zeros(0, np.int64)
    errors = consume(ring.ctl, ring.stamps, ring.records, slot, total, 256, seen,
                     idle_strategies.backoff())
    result.put((name, errors))


def observer_main(instance_name: str, total: int, result, ready) -> None:
    _, ring = attach(instance_name)
    slot = ring.join("observer", ConsumerMode.OBSERVING)
    ready.set()  # an observer starts at the producer's position when it joins
    out = np.zeros((64, RECORD.itemsize), np.uint8)
    stats = np.zeros(3, np.int64)
    observe_all(ring.ctl, slot, ring.raw, out, out.reshape(-1).view(RECORD), total, 200_000,
                stats)
    info = ring.consumer(slot)
    result.put(("observer", (int(stats[0]), int(stats[1]), int(stats[2]), info["lost"],
                             info["cursor"])))


def tracked_consumer_main(instance_name: str, name: str, total: int, seen_segment: str,
                          ready) -> None:
    """Consumer that counts deliveries per sequence in a shared array (crash test)."""
    inst, ring = attach(instance_name)
    from pipeline.transport.segment import Layout  # noqa: PLC0415
    from shm_layouts import SegmentKind  # noqa: PLC0415
    seg = inst.attach_segment(seen_segment, Layout(SegmentKind.STATE, "seen", 1))
    seen = seg.body[: total * 8].view(np.int64)
    slot = ring.join(name)
    ready.set()
    consume(ring.ctl, ring.stamps, ring.records, slot, total, 64, seen,
            idle_strategies.backoff(max_park_ns=200_000))
