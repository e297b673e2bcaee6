"""The fused layout that blocks (tuning/profiles/dev-2core-fused.toml): the four agents in
one process asleep in ppoll on the md and FIX sockets when idle, woken by data; it trades
end to end and shuts down clean."""

from __future__ import annotations

import os

import pytest
from pipeline_checks import assert_traded_and_clean, run_pipeline

from tuning.profiles import load_profile

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
PROFILE = "dev-2core-fused"


def test_the_fused_profile_blocks_one_process_on_core_1():
    p = load_profile(PROFILE)
    assert p["pipeline"]["agents"] == ["feed_handler", "book_builder", "strategy",
                                       "oms_gateway"]
    assert p["pipeline"]["idle"] == "block" and not p["pipeline"].get("warm_us")
    assert all(s["idle"] != "busy_spin" for s in p.values())


@pytest.mark.timeout(300)
def test_fused_blocking_pipeline_trades_and_sleeps_on_its_sockets(tmp_path):
    name = f"fusedblock{os.getpid()}"
    s = run_pipeline(name, tmp_path / "summary.json", 15, "--profile", PROFILE)
    assert_traded_and_clean(s, name)
    names = {p["name"] for p in s["processes"]}
    assert "pipeline" in names and not names & {"feed_handler", "oms_gateway"}
    c = s["counters"]
    assert c["pipeline.idle_fd_sleeps"] > 0  # it slept in ppoll ...
    assert c["pipeline.idle_fd_wakes"] > 0  # ... and data (frames, reports) woke it
