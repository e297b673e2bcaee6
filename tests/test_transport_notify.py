"""Sleeping on a ring's futex across processes (pipeline/transport/notify.py): a sleeper
is woken by a publish, no wakeup is lost over thousands of publish/sleep cycles, a busy
ring makes no FUTEX_WAKE call, a consumer that died asleep leaves no stale flag; the
``block`` idle strategy, the profiles and the runner that wire it up."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time

import notify_workers as W
import numpy as np
import pytest
from waiting import until

from pipeline.launch.launcher import Launcher, RunOptions
from pipeline.runtime import idle as I
from pipeline.runtime.agent import Agent
from pipeline.runtime.runner import AgentRunner, RunnerConfig
from pipeline.transport.futex import EAGAIN, ETIMEDOUT
from pipeline.transport.notify import is_asleep
from pipeline.transport.ring import Ring
from procs import _common
from tuning.profiles import ProfileError, load_profile

CTX = mp.get_context("spawn")
CYCLES = 3000


def _collect(result, procs, timeout: float = 120) -> dict:
    out: dict = {}
    deadline = time.monotonic() + timeout
    while len(out) < len(procs):
        try:
            out.update([result.get(timeout=0.2)])
        except queue.Empty:
            crashed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not crashed, f"worker died with exit codes {crashed}"
            assert time.monotonic() < deadline, f"timed out; results so far {out}"
    return out


def _stop(procs) -> None:
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()


def _started(target, *args):
    p = CTX.Process(target=target, args=args)
    p.start()
    return p


@pytest.mark.timeout(180)
def test_a_consumer_asleep_on_the_ring_is_woken_by_a_publish(instance):
    ring = Ring.create(instance, "ring", W.STREAM, W.RECORD, 64, gating=("sleeper",))
    result = CTX.Queue()
    p = _started(W.sleeper_main, instance.name, result)
    try:
        until(lambda: ring.consumer(0)["sleeps"] >= 1 and is_asleep(ring.ctl, 0), 120,
              "the consumer asleep on the futex")
        assert ring.wake_count() == 0
        rec = np.zeros(1, W.RECORD)
        rec["value"] = 42
        assert ring.offer(rec)
        # its sleep is 60 s long: only the publish's FUTEX_WAKE ends it within this wait
        assert _collect(result, [p], timeout=30) == {"sleeper": 42}
    finally:
        _stop([p])
    c = ring.consumer(0)
    assert ring.wake_count() == 1 and c["sleeps"] == 1 and c["sleep_timeouts"] == 0
    assert not is_asleep(ring.ctl, 0)


@pytest.mark.timeout(300)
def test_no_wakeup_is_lost_over_thousands_of_publish_sleep_cycles(instance):
    """Ping-pong where both sides sleep whenever their input is empty: a lost wakeup
    would stall a side until its 60 s timeout, counted in ``sleep_timeouts``."""
    ping = Ring.create(instance, "ping", W.STREAM, W.RECORD, 64, gating=("pong",))
    pong = Ring.create(instance, "pong", W.STREAM, W.RECORD, 64, gating=("ping",))
    result = CTX.Queue()
    p = _started(W.pong_main, instance.name, CYCLES, result)
    try:
        got = np.zeros(CYCLES, np.int64)
        W.ping(ping.view(), pong.view(pong.join("ping")), CYCLES, W.blocking_on(pong, 0), got)
        assert _collect(result, [p]) == {"pong": True}
    finally:
        _stop([p])
    assert (got == np.arange(CYCLES)).all()
    a, b = ping.consumer(0), pong.consumer(0)
    assert a["sleep_timeouts"] == 0 and b["sleep_timeouts"] == 0
    # they really slept, and were really woken (not just never asleep)
    assert a["sleeps"] > 0 and b["sleeps"] > 0
    assert ping.wake_count() > 0 and pong.wake_count() > 0
    assert not is_asleep(ping.ctl, 0) and not is_asleep(pong.ctl, 0)


@pytest.mark.timeout(180)
def test_a_busy_ring_makes_no_futex_wake_call(instance):
    total = 20_000
    ring = Ring.create(instance, "ring", W.STREAM, W.RECORD, 1 << 10, gating=("spinner",))
    result = CTX.Queue()
    p = _started(W.spinner_main, instance.name, total, result)
    try:
        view = ring.view()
        for value in range(total):
            while not W.send(view, value):
                time.sleep(0.0001)  # ring full: the spinner catches up
        assert _collect(result, [p]) == {"spinner": True}
    finally:
        _stop([p])
    assert ring.published() == total
    assert ring.wake_count() == 0 and ring.consumer(0)["sleeps"] == 0


@pytest.mark.timeout(180)
def test_a_consumer_that_died_asleep_leaves_no_flag_behind(instance):
    ring = Ring.create(instance, "ring", W.STREAM, W.RECORD, 64, gating=("sleeper",))
    result = CTX.Queue()
    p = _started(W.sleeper_main, instance.name, result)
    try:
        until(lambda: is_asleep(ring.ctl, 0), 120, "the consumer asleep")
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=10)
    finally:
        _stop([p])
    assert is_asleep(ring.ctl, 0)  # its flag outlived it: publishes would wake no one
    assert ring.join("sleeper") == 0  # its restart takes the slot back and clears the flag
    assert not is_asleep(ring.ctl, 0)
    assert ring.offer(np.zeros(1, W.RECORD)) and ring.wake_count() == 0


def test_futex_wait_compares_the_low_half_of_the_word_first():
    words = np.zeros(4, np.int64)
    words[1] = (7 << 32) | 5
    assert W.futex_wait_once(words, 1, 4, 1_000_000) == -EAGAIN  # changed: no sleep
    assert W.futex_wait_once(words, 1, 5, 1_000_000) == -ETIMEDOUT  # low half matches


# ------------------------------------------------------------ the idle strategy, wired up
def test_block_is_an_idle_strategy_by_name_and_parks_as_backoff_without_a_ring():
    s = I.from_name("block")
    assert int(s.state[0]["kind"]) == I.BLOCK and s.slot == -1
    short = I.blocking(max_spins=2, max_yields=1, min_park_ns=1_000, max_park_ns=2_000)
    assert [I.idle(short, 0) for _ in range(5)] == [False, False, True, True, True]
    assert int(short.state[0]["park_ns"]) == 2_000  # the backoff's doubling nanosleep
    assert not I.idle(short, 1) and int(short.state[0]["spins"]) == 0


def test_wait_on_takes_a_consumer_view_and_leaves_other_strategies_alone(instance):
    ring = Ring.create(instance, "ring", W.STREAM, W.RECORD, 64, gating=("c",))
    view = ring.view(ring.join("c"))
    s = I.wait_on(I.blocking(), view)
    assert s.ring is ring.ctl and s.slot == 0
    backoff = I.backoff()
    assert I.wait_on(backoff, view) is backoff and I.wait_on(s, None) is s
    with pytest.raises(ValueError, match="producer"):
        I.wait_on(I.blocking(), ring.view())


def test_the_default_profile_blocks_on_rings_and_on_sockets():
    dev = load_profile("dev-2core")
    for proc in ("book_builder", "strategy", "oms_gateway", "feed_handler"):  # feed: socket
        assert dev[proc]["idle"] == "block", proc
    assert load_profile("dev-2core-lowlat")["pipeline"]["idle"] == "busy_spin"


class _OneSlice(Agent):
    """Joins a ring at start, runs one slice, finishes."""

    name = "one_slice"

    def __init__(self, ring: Ring):
        self.ring, self.view, self.seen = ring, None, None

    def on_start(self) -> None:
        self.view = self.ring.view(self.ring.join("c"))

    def wait_ring(self):
        return self.view

    def do_work(self, idle_state, deadline_ns: int) -> int:
        self.seen = idle_state
        return 0

    def housekeeping(self, now_ns: int) -> bool:
        return False


def test_the_runner_hands_a_blocking_strategy_the_agents_main_ring(instance):
    ring = Ring.create(instance, "ring", W.STREAM, W.RECORD, 64, gating=("c",))
    agent = _OneSlice(ring)
    AgentRunner(agent, I.blocking(), RunnerConfig()).run()
    assert agent.seen.ring is ring.ctl and agent.seen.slot == 0


def test_a_profile_sets_the_ladder_of_backoff_and_block_only(tmp_path):
    good = tmp_path / "ladder.toml"
    good.write_text('[processes.strategy]\ncore = 1\nidle = "block"\nidle_spins = 3\n'
                    'idle_yields = 0\nidle_park_us = 500\n')
    spec = load_profile(str(good))["strategy"]
    assert (spec["idle_spins"], spec["idle_yields"], spec["idle_park_us"]) == (3, 0, 500)
    args = Launcher(RunOptions(profile=str(good), instance="ladder"))._child("strategy").args
    assert args[args.index("--idle-spins") + 1] == "3"
    assert args[args.index("--idle-park-us") + 1] == "500"
    bad = tmp_path / "spin.toml"
    bad.write_text('[processes.strategy]\ncore = 1\nidle = "busy_spin"\nidle_spins = 3\n')
    with pytest.raises(ProfileError, match="idle_spins needs idle"):
        load_profile(str(bad))


def test_the_process_options_set_the_ladder_of_its_strategy():
    args = _common.parser("t").parse_args(
        ["--instance", "x", "--idle", "block", "--idle-spins", "3", "--idle-yields", "0",
         "--idle-park-us", "500"])
    s = _common.idle_strategy(args).state[0]
    assert int(s["kind"]) == I.BLOCK
    assert (int(s["max_spins"]), int(s["max_yields"]), int(s["max_park_ns"])) == (3, 0, 500_000)
    plain = _common.parser("t").parse_args(["--instance", "x", "--idle", "backoff"])
    assert int(_common.idle_strategy(plain).state[0]["max_spins"]) == 100  # the default
    with pytest.raises(ValueError, match="backoff and block only"):
        I.with_ladder(I.busy_spin(), spins=3)
