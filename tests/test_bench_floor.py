"""The C tick-to-trade floor that ``hft bench e2e`` compares against: it builds, runs the
traffic shape it claims (frames at the asked rate, an order every N-th frame) and reports
what the benchmark reads. No timing is asserted: only counts and shape."""

from __future__ import annotations

import pytest

from bench.e2e import c_floor

pytestmark = pytest.mark.spin  # the floor busy-polls (both of its processes on core 0)


def test_floor_streams_frames_and_sends_orders_at_the_asked_rates():
    got = c_floor([0, 0], seconds=1.5, frames_per_s=2_000, orders_per_s=40, frame_bytes=180)
    assert got is not None
    # one order per 50 frames: ~3,000 frames and ~60 orders in 1.5 s (loose: a shared host)
    assert 1_000 < got["frames_per_s"] <= 2_100
    assert 20 <= got["n"] <= 70
    assert 0 < got["p50"] <= got["p99"] <= got["p99.9"] <= got["max"]


def test_floor_refuses_to_match_a_run_without_orders():
    assert c_floor([0, 0], seconds=1, frames_per_s=2_000, orders_per_s=0, frame_bytes=180) is None
