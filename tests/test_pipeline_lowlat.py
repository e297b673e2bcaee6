"""The opt-in low-latency layout: four agents in one busy-spinning process on core 1.

This is the one test that busy-spins (~15 s): the layout exists to spin. It spins one process
per core, never more: the pipeline on core 1, the simulator (``--busy-poll``) on core 0,
which the launcher and pytest share with it (both mostly asleep, waiting).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from numba import njit
from pipeline_checks import assert_traded_and_clean, run_pipeline

from pipeline.launch.launcher import Launcher, RunOptions
from pipeline.runtime import idle as I
from pipeline.runtime.agent import Agent, run_slice
from pipeline.runtime.composite import CompositeAgent
from tuning.profiles import ProfileError, load_profile, validate


@njit(cache=True)
def _count_cycle(cycles):
    """Counts; on the cycle numbered ``cycles[1]`` it asks Python to act (-1 - work)."""
    cycles[0] += 1
    return -1 if cycles[0] == cycles[1] else 0


class _Counting(Agent):
    """Counts its duty cycles and records when it was closed."""

    def __init__(self, name: str, closed: list[str], fail_close: bool = False):
        self.name, self.closed, self.fail_close = name, closed, fail_close
        self.cycles = np.zeros(2, np.int64)
        self.hot, self.after = True, 0

    def hot_duty(self):
        return (_count_cycle, (self.cycles,)) if self.hot else None

    def after_hot(self):
        self.after += 1

    def do_work(self, idle_state, deadline_ns):
        return run_slice(_count_cycle, (self.cycles,), idle_state, deadline_ns)

    def on_close(self):
        self.closed.append(self.name)
        if self.fail_close:
            raise RuntimeError(f"{self.name} failed to close")


@pytest.mark.parametrize("rounds, per_round", [("single", 1), ("slice", 64), ("fused", 64)])
def test_composite_rounds_run_one_or_a_slice_of_cycles_per_child(rounds, per_round):
    closed: list[str] = []
    kids = [_Counting(n, closed) for n in ("a", "b")]
    both = CompositeAgent(kids, rounds=rounds)
    both.do_work(I.noop(), 0)  # due at once: one round (fused: one clock check's worth)
    assert [int(k.cycles[0]) for k in kids] == [per_round, per_round]
    both.do_work(I.noop(), time.monotonic_ns() + 2_000_000)
    assert kids[0].cycles[0] == kids[1].cycles[0] > per_round  # round-robin, in step
    # fused: the Python side of each child ran once after each of the two jitted slices
    assert [k.after for k in kids] == ([2, 2] if rounds == "fused" else [0, 0])


def test_fused_round_ends_the_slice_when_a_duty_asks_for_python():
    kids = [_Counting(n, []) for n in ("a", "b")]
    kids[1].cycles[1] = 3  # b's third cycle returns -1: Python must act
    both = CompositeAgent(kids, rounds="fused")
    work = both.do_work(I.noop(), 0)
    assert [int(k.cycles[0]) for k in kids] == [3, 3]  # that round finished, then returned
    assert work == 0 and [k.after for k in kids] == [1, 1]
    assert both.fused_rounds() == 3


def test_fused_composite_falls_back_to_single_rounds_while_a_child_has_no_hot_duty():
    kids = [_Counting(n, []) for n in ("a", "b")]
    kids[0].hot = False  # e.g. the feed while disconnected
    both = CompositeAgent(kids, rounds="fused")
    both.do_work(I.noop(), 0)
    assert [int(k.cycles[0]) for k in kids] == [1, 1] and [k.after for k in kids] == [0, 0]


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
    assert p["pipeline"] == {"core": 1, "idle": "busy_spin", "lock_memory": True,
                             "slice_us": 20000, "warm_us": 50, "agents": [
                                 "feed_handler", "book_builder", "strategy", "oms_gateway"]}
    # the simulator busy-polls the other core, so no send() has to wake it
    assert p["simulator"] == {"core": 0, "idle": "busy_spin"}
    assert "agents" not in load_profile("dev-2core")["strategy"]


@pytest.mark.parametrize("procs, why", [
    ({"pipeline": {"core": 1, "idle": "busy_spin", "agents": []}}, "non-empty list"),
    ({"pipeline": {"core": 1, "idle": "busy_spin", "agents": "strategy"}}, "non-empty list"),
    ({"a": {"core": 1, "idle": "backoff", "agents": ["strategy"]},
      "b": {"core": 0, "idle": "backoff", "agents": ["strategy"]}}, "more than once"),
    ({"a": {"core": 1, "idle": "backoff", "agents": ["strategy"]},
      "strategy": {"core": 0, "idle": "backoff"}}, "more than once"),
    ({"oms_gateway": {"core": 0, "idle": "backoff", "warm_us": 50}}, "needs idle"),
    ({"oms_gateway": {"core": 0, "idle": "busy_spin", "warm_us": -1}}, "number >= 0"),
    ({"oms_gateway": {"core": 0, "idle": "busy_spin", "slice_us": 0}}, "number > 0"),
])
def test_bad_composite_profiles_are_refused(procs, why):
    with pytest.raises(ProfileError, match=why):
        validate({"processes": procs}, "bad")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.spin
@pytest.mark.timeout(240)
def test_lowlat_pipeline_quotes_fills_and_shuts_down_clean(tmp_path):
    name = f"lowlat{os.getpid()}"
    s = run_pipeline(name, tmp_path / "summary.json", 15, "--profile", "dev-2core-lowlat")
    assert_traded_and_clean(s, name)
    names = {p["name"] for p in s["processes"]}
    assert "pipeline" in names  # one composite process ...
    assert not names & {"feed_handler", "book_builder", "strategy", "oms_gateway"}  # ... only
    c = s["counters"]
    assert c["gateway.warm_passes"] > 0  # the profile's warm_us reached the gateway
    assert c["strategy.warm_passes"] > 0  # ... and the strategy, the book builder and feed
    assert c["book.warm_passes"] > 0 and c["feed.warm_passes"] > 0
    assert c["book.bbo_updates"] > 0  # bookTickers are published over the books


def test_lowlat_launcher_starts_one_composite_child_that_locks_its_memory():
    launcher = Launcher(RunOptions(profile="dev-2core-lowlat", instance="lowlatargs"))
    child = launcher._child("pipeline")
    assert child.module == "procs.composite"
    assert "--lock-memory" in child.args and child.args[child.args.index("--core") + 1] == "1"
    assert "--lock-memory" not in Launcher(RunOptions(profile="dev-2core", instance="devargs")
                                           )._child("strategy").args
