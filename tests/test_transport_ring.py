"""Ring semantics in one process: wrap-around, full, empty, batches, observers, errors."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from pipeline.transport import ring as R
from pipeline.transport.ring import Ring, RingError
from pipeline.transport.segment import LayoutMismatch
from shm_layouts.ring import ConsumerMode

REC = np.dtype([("seq", "<i8"), ("value", "<i8"), ("pad", "<i8", (6,))])


@njit(cache=True)
def offer(ctl, stamps, records, first_value, n):
    """Claim ``n`` slots, write values, publish; -1 when full."""
    start = R.try_claim(ctl, n)
    if start < 0:
        return -1
    for i in range(n):
        records[(start + i) & (records.shape[0] - 1)]["value"] = first_value + i
    R.publish(ctl, stamps, start + n)
    return start


@njit(cache=True)
def take(ctl, stamps, records, slot, limit, out):
    n = R.poll(ctl, stamps, slot, limit)
    pos = R.cursor(ctl, slot)
    for i in range(n):
        out[i] = records[(pos + i) & (records.shape[0] - 1)]["value"]
    R.release(ctl, slot, pos + n)
    return n


@pytest.fixture
def ring(instance):
    return Ring.create(instance, "r", "test", REC, 8, gating=("g",))


def _take(ring, slot, limit=100):
    out = np.zeros(limit, np.int64)
    n = take(ring.ctl, ring.stamps, ring.records, slot, limit, out)
    return list(out[:n])


def test_empty_ring_polls_nothing(ring):
    assert _take(ring, ring.join("g")) == []


def test_full_ring_refuses_claims_until_the_gating_consumer_releases(ring):
    slot = ring.join("g")
    assert offer(ring.ctl, ring.stamps, ring.records, 0, 8) == 0
    assert offer(ring.ctl, ring.stamps, ring.records, 8, 1) == -1
    assert ring.full_count() == 1
    assert _take(ring, slot, 3) == [0, 1, 2]
    assert offer(ring.ctl, ring.stamps, ring.records, 8, 3) == 8
    assert offer(ring.ctl, ring.stamps, ring.records, 11, 1) == -1


def test_wrap_around_keeps_order_over_many_laps(ring):
    slot = ring.join("g")
    got, value = [], 0
    for lap in range(50):
        n = 1 + lap % 8
        assert offer(ring.ctl, ring.stamps, ring.records, value, n) >= 0
        value += n
        got += _take(ring, slot)
    assert got == list(range(value))


def test_batch_is_invisible_until_published(ring):
    slot = ring.join("g")
    start = R.try_claim(ring.ctl, 4)
    ring.records["value"][:4] = [10, 11, 12, 13]
    assert _take(ring, slot) == []
    R.publish(ring.ctl, ring.stamps, start + 4)
    assert _take(ring, slot) == [10, 11, 12, 13]


def test_two_gating_consumers_each_see_everything_and_the_slowest_gates(instance):
    ring = Ring.create(instance, "r2", "test", REC, 4, gating=("a", "b"))
    a, b = ring.join("a"), ring.join("b")
    assert offer(ring.ctl, ring.stamps, ring.records, 0, 4) == 0
    assert _take(ring, a) == [0, 1, 2, 3]
    assert offer(ring.ctl, ring.stamps, ring.records, 4, 1) == -1  # b still holds the whole ring
    assert _take(ring, b, 2) == [0, 1]
    assert offer(ring.ctl, ring.stamps, ring.records, 4, 2) == 4
    assert _take(ring, a) == [4, 5]
    assert _take(ring, b) == [2, 3, 4, 5]


def test_observer_never_slows_the_producer_and_counts_what_it_lost(instance):
    ring = Ring.create(instance, "r3", "test", REC, 8)
    obs = ring.join("monitor", ConsumerMode.OBSERVING)
    for v in range(0, 20, 4):
        # no gating consumer: never full
        assert offer(ring.ctl, ring.stamps, ring.records, v, 4) >= 0
    out = np.zeros((8, REC.itemsize), np.uint8)
    n = R.observe(ring.ctl, obs, ring.raw, out)
    assert list(out[:n].view(REC)["value"].ravel()) == list(range(12, 20))
    assert ring.consumer(obs)["lost"] == 12
    assert R.observe(ring.ctl, obs, ring.raw, out) == 0


def test_observer_discards_a_slot_claimed_while_it_was_copying(instance):
    ring = Ring.create(instance, "r4", "test", REC, 8)
    obs = ring.join("monitor", ConsumerMode.OBSERVING)
    offer(ring.ctl, ring.stamps, ring.records, 0, 8)
    # the producer has claimed (and may be writing) slot of seq 8 == seq 0's slot
    R.try_claim(ring.ctl, 1)
    out = np.zeros((8, REC.itemsize), np.uint8)
    n = R.observe(ring.ctl, obs, ring.raw, out)
    assert list(out[:n].view(REC)["value"].ravel()) == list(range(1, 8))
    assert ring.consumer(obs)["lost"] == 1


def test_observer_slot_is_freed_and_gating_slot_is_kept(instance):
    ring = Ring.create(instance, "r5", "test", REC, 8, gating=("g",))
    obs = ring.join("monitor", ConsumerMode.OBSERVING)
    assert {c["name"] for c in ring.consumers()} == {"g", "monitor"}
    ring.leave(obs)
    ring.leave(ring.join("g"))
    assert [c["name"] for c in ring.consumers()] == ["g"]


@pytest.mark.parametrize("capacity", [0, 1, 6, 1000])
def test_capacity_must_be_a_power_of_two(instance, capacity):
    with pytest.raises(RingError, match="not a power of two"):
        Ring.create(instance, "bad", "test", REC, capacity)


def test_record_size_must_be_a_multiple_of_64(instance):
    with pytest.raises(RingError, match="record size 72 is not a multiple of 64"):
        Ring.create(instance, "bad", "test", np.dtype([("x", "<i8", (9,))]), 8)


def test_attach_with_another_record_layout_fails(ring, instance):
    other = np.dtype([("seq", "<i8"), ("pad", "<i8", (15,))])
    with pytest.raises(LayoutMismatch, match="ring:test"):
        Ring.attach(instance, "r", "test", other)
    with pytest.raises(LayoutMismatch, match="ring:test"):
        Ring.attach(instance, "r", "test", np.dtype([("other", "<i8", (8,))]))
    Ring.attach(instance, "r", "test", REC)  # the right layout attaches


def test_missing_ring_is_a_clear_error(instance):
    from pipeline.transport.segment import SegmentMissing

    with pytest.raises(SegmentMissing, match="does not exist"):
        Ring.attach(instance, "absent", "test", REC)


def test_record_dtype_must_begin_with_the_seq_stamp(instance):
    with pytest.raises(RingError, match="must begin with int64 'seq'"):
        Ring.create(instance, "bad", "test", np.dtype([("x", "<i8", (8,))]), 8)


def test_consumers_go_by_the_slot_stamp_not_the_cursor(ring):
    slot = ring.join("g")
    start = R.try_claim(ring.ctl, 2)
    ring.records["value"][:2] = [7, 8]
    ring.stamps[0] = 0  # slot 0 stamped, slot 1 not yet: exactly one record is complete
    assert _take(ring, slot) == [7]
    R.publish(ring.ctl, ring.stamps, start + 2)
    assert _take(ring, slot) == [8]
    assert list(ring.records["seq"][:2]) == [0, 1]
