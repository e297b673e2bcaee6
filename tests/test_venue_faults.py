"""Fault switches: validation and one-shot counts (their effects are tested end to end
in test_venue_mdsync.py and test_venue_fix.py)."""

from __future__ import annotations

import pytest

from pipeline.venue.faults import Faults


def test_update_validates_and_converts():
    f = Faults()
    assert f.update({"md_drop": "0.5", "reject_orders": "false", "exec_delay_ms": 3}) == []
    assert f.md_drop == 0.5 and f.reject_orders is False and f.exec_delay_ms == 3
    assert f.update({"reject_orders": "true", "drop_fix": True, "garble_fix": False}) == [
        "drop_fix"]
    assert f.reject_orders is True
    for bad in ({"nosuch": 1}, {"md_drop": "x"}, {"md_drop": -1}, {"reject_orders": "maybe"},
                {"md_stall_until": 5}):
        with pytest.raises(ValueError):
            f.update(bad)


def test_one_shot_reject_and_stall():
    f = Faults()
    f.update({"reject_next": 2})
    assert [f.take_reject() for _ in range(3)] == [True, True, False]
    f.update({"md_stall_ms": 60_000})
    assert f.stalled() and f.to_dict()["md_stalled"]
    f.update({"md_stall_ms": 0})
    assert not f.stalled()
