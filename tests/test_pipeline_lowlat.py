"""The opt-in low-latency layout: four agents in one busy-spinning process on core 1.

This is the one test that busy-spins (one process, on core 1, ~15 s): the layout exists to
spin, and one spinner on a 2-core machine leaves core 0 to everything else.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from numba import njit

from pipeline.runtime import idle as I
from pipeline.runtime.agent import Agent, CompositeAgent, run_slice
from tests.pipeline_checks import assert_traded_and_clean, run_pipeline
from tuning.profiles import ProfileError, load_profile, validate


@njit(cache=True)
def _count_cycle(cycles):
    cycles[0] += 1
    return 0


class _Counting(Agent):
    """Counts its duty cycles and records when it was closed."""

    def __init__(self, name: str, closed: list[str], fail_close: bool = False):
        self.name, self.closed, self.fail_close = name, closed, fail_close
        self.cycles = np.zeros(1, np.int64)

    def do_work(self, idle_state, deadline_ns):
        return run_slice(_count_cycle, (self.cycles,), idle_state, deadline_ns)

    def on_close(self):
        self.closed.append(self.name)
        if self.fail_close:
            raise RuntimeError(f"{self.name} failed to close")


@pytest.mark.parametrize("single, per_round", [(True, 1), (False, 64)])
def test_composite_rounds_run_one_or_a_slice_of_cycles_per_child(single, per_round):
    closed: list[str] = []
    kids = [_Counting(n, closed) for n in ("a", "b")]
    both = CompositeAgent(kids, single_cycle=single)
    both.do_work(I.noop(), 0)  # due at once: exactly one round
    assert [int(k.cycles[0]) for k in kids] == [per_round, per_round]
    both.do_work(I.noop(), time.monotonic_ns() + 2_000_000)
    assert kids[0].cycles[0] == kids[1].cycles[0] > per_round  # round-robin, in step


def test_composite_closes_in_the_given_order_even_when_one_fails():
    closed: list[str] = []
    kids = [_Counting("feed", closed), _Counting("strategy", closed, fail_close=True),
            _Counting("gateway", closed)]
    both = CompositeAgent(kids, "pipeline", close_order=["strategy", "gateway"])
    with pytest.raises(RuntimeError, match="strategy failed to close"):
        both.on_close()
    assert closed == ["strategy", "gateway", "feed"]  # the unnamed child closes last


def test_lowlat_profile_places_all_agents_in_one_spinning_process():
    p = load_profile("dev-2core-lowlat")
    assert p["pipeline"] == {"core": 1, "idle": "busy_spin", "agents": [
        "feed_handler", "book_builder", "strategy", "oms_gateway"]}
    assert [n for n, s in p.items() if s["idle"] == "busy_spin"] == ["pipeline"]
    assert "agents" not in load_profile("dev-2core")["strategy"]


@pytest.mark.parametrize("procs, why", [
    ({"pipeline": {"core": 1, "idle": "busy_spin", "agents": []}}, "non-empty list"),
    ({"pipeline": {"core": 1, "idle": "busy_spin", "agents": "strategy"}}, "non-empty list"),
    ({"a": {"core": 1, "idle": "backoff", "agents": ["strategy"]},
      "b": {"core": 0, "idle": "backoff", "agents": ["strategy"]}}, "more than once"),
    ({"a": {"core": 1, "idle": "backoff", "agents": ["strategy"]},
      "strategy": {"core": 0, "idle": "backoff"}}, "more than once"),
])
def test_bad_composite_profiles_are_refused(procs, why):
    with pytest.raises(ProfileError, match=why):
        validate({"processes": procs}, "bad")


@pytest.mark.timeout(240)
def test_lowlat_pipeline_quotes_fills_and_shuts_down_clean(tmp_path):
    name = f"lowlat{os.getpid()}"
    s = run_pipeline(name, tmp_path / "summary.json", 15, "--profile", "dev-2core-lowlat")
    assert_traded_and_clean(s, name)
    names = {p["name"] for p in s["processes"]}
    assert "pipeline" in names  # one composite process ...
    assert not names & {"feed_handler", "book_builder", "strategy", "oms_gateway"}  # ... only
