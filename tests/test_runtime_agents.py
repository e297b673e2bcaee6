"""Idle strategies, composite agents and the process runner (pinning, heartbeat, signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from numba import njit

from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters
from pipeline.probe.agents import ProbeConsumer, ProbeProducer
from pipeline.runtime import idle as I
from pipeline.runtime.agent import ONE_CYCLE, SameArgsCall, _same_type, run_slice
from pipeline.runtime.composite import CompositeAgent
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.ring import Ring
from shm_layouts.counters import ProcessState
from shm_layouts.probe import PROBE_RECORD


def test_backoff_spins_then_yields_then_parks_with_bounded_doubling():
    s = I.backoff(max_spins=3, max_yields=2, min_park_ns=1_000, max_park_ns=4_000)
    blocked = [I.idle(s, 0) for _ in range(5)]
    assert blocked == [False, False, False, True, True]  # 3 spins, 2 yields
    parks = []
    for _ in range(4):
        parks.append(int(s.state["park_ns"][0]))
        assert I.idle(s, 0)
    assert parks == [1_000, 2_000, 4_000, 4_000]
    assert not I.idle(s, 5)  # work resets the whole ladder
    st = s.state
    assert (st["spins"][0], st["yields"][0], st["park_ns"][0]) == (0, 0, 1_000)


def test_each_strategy_reports_whether_it_gave_up_the_core():
    assert not I.idle(I.busy_spin(), 0)
    assert not I.idle(I.noop(), 0)
    assert I.idle(I.yielding(), 0)
    t = time.monotonic_ns()
    assert I.idle(I.sleeping(2_000_000), 0)
    assert time.monotonic_ns() - t >= 2_000_000
    with pytest.raises(ValueError, match="unknown idle strategy 'spinny'"):
        I.from_name("spinny")


def test_composite_runs_producer_and_consumer_in_one_thread(instance):
    counters = Counters.create(instance)
    ring = Ring.create(instance, "probe", "probe", PROBE_RECORD, 1024, gating=("c",))
    producer = ProbeProducer(ring, rate=0, batch=32)
    consumer = ProbeConsumer(ring, counters, "c")
    both = CompositeAgent([producer, consumer])
    both.on_start()
    deadline = time.monotonic() + 30
    while counters.values()["c.records"] < 100_000:
        both.do_work(I.backoff(), time.monotonic_ns() + 1_000_000)
        assert time.monotonic() < deadline
    values = counters.values()
    assert values["c.sequence_errors"] == 0
    assert histogram.percentiles(consumer.hist)["count"] == values["c.records"]
    assert both.name == "probe_producer+c"


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_runner_pins_heartbeats_and_stops_cleanly_on_sigterm(instance):
    counters = Counters.create(instance)
    Ring.create(instance, "probe", "probe", PROBE_RECORD, 1024, gating=("c",))
    core = max(os.sched_getaffinity(0))
    child = Child("c", "procs.probe_consumer",
                  ["--instance", instance.name, "--core", str(core), "--name", "c"]).start()
    try:
        wait_running(counters, [child])
        assert os.sched_getaffinity(child.pid) == {core}
        row = next(p for p in counters.processes() if p["name"] == "c")
        assert row["core"] == core and row["pid"] == child.pid
        beat = row["heartbeat_ns"]
        time.sleep(0.1)
        row = next(p for p in counters.processes() if p["name"] == "c")
        assert row["heartbeat_ns"] > beat and row["slices"] > 0
        child.popen.send_signal(signal.SIGTERM)
        assert child.popen.wait(30) == 0
        row = next(p for p in counters.processes() if p["name"] == "c")
        assert row["state"] == ProcessState.STOPPED
    finally:
        stop([child])


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_demo_runs_end_to_end_and_leaves_no_segment_behind(tmp_path):
    name = f"demo{os.getpid()}x"
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--duration", "2",
                          "--rate", "200000", "--instance", name],
                         capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr
    assert "summary:" in out.stdout
    lines = [line for line in out.stdout.splitlines() if "records, sequence errors 0" in line]
    assert len(lines) == 2
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(f"hft.{name}.")]
    counts = {int(line.split(":")[1].split("records")[0].replace(",", "")) for line in lines}
    assert len(counts) == 1 and counts.pop() > 100_000  # both consumers saw every record


def test_histogram_window_counts_only_what_came_after_the_snapshot(instance):
    """``--warmup``: percentiles of the values recorded after a snapshot of the words."""
    c = Counters.create(instance)
    h = c.histogram("x")
    for v in (5_000_000,) * 50:  # start-up: slow
        histogram.record(h, v)
    then = c.histogram_words()
    for v in range(1000, 2000):  # steady state
        histogram.record(h, v)
    whole, window = c.histograms()["x"], c.histograms(since=then)["x"]
    assert whole["count"] == 1050 and whole["max"] == 5_000_000
    # min and max are bucket bounds: the snapshots do not keep the exact values
    assert window["count"] == 1000 and 992 <= window["min"] <= 1000 and 1999 <= window["max"] < 2048
    assert 1400 <= window["p50"] <= 1600 and window["p99.9"] < 2048
    assert window["mean"] == pytest.approx(1499.5)
    nothing = c.histograms(since=c.histogram_words())["x"]
    assert nothing["count"] == 0 and nothing["max"] == 0
    c.close()


@njit(cache=True, _nrt=False)
def _sum_cycle(values, out):
    out[0] += values.sum()
    return 0


def test_same_args_call_skips_typing_only_for_the_same_argument_types():
    """The same arrays (in a rebuilt tuple too) and other ints: the overload chosen before
    is called directly. Another array, even of another type, goes through the dispatcher
    again (a float array read as int64 would sum to garbage here)."""
    call = SameArgsCall(run_slice)
    ints, out = np.arange(4, dtype=np.int64), np.zeros(1, np.float64)
    args = (ints, out)
    state = I.noop()
    for _ in range(3):
        call(_sum_cycle, args, state, ONE_CYCLE)
    entry = call._entry
    assert out[0] == 18 and entry is not None  # resolved once ...
    call(_sum_cycle, (ints, out), state, ONE_CYCLE)
    assert out[0] == 24 and call._entry is entry  # ... and called directly since
    floats = (np.full(4, 0.5), out)
    call(_sum_cycle, floats, state, ONE_CYCLE)
    assert out[0] == 26 and call._entry is not entry
    call(_sum_cycle, args, state, ONE_CYCLE)
    assert out[0] == 32
    for _ in range(SameArgsCall.MAX_RESOLVES):  # arguments that keep changing ...
        call(_sum_cycle, (np.ones(4, np.int64), out), state, ONE_CYCLE)
    assert out[0] == 48 and call._entry is None  # ... get plain dispatcher calls
    # deadlines differ every slice: any two int64s type alike, a wider int does not
    assert _same_type(time.monotonic_ns(), time.monotonic_ns() + 1)
    assert not _same_type(1, 1 << 63) and not _same_type(1, 1.0)
