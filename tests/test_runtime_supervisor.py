"""Supervisor: a SIGKILLed process is restarted and resumes; repeated crashes give up."""

from __future__ import annotations

import os
import signal

import pytest
from waiting import until

from pipeline.metrics.counters import Counters
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.runtime.supervisor import RestartPolicy, Supervisor
from pipeline.transport.ring import Ring
from shm_layouts.probe import PROBE_RECORD

pytestmark = [pytest.mark.e2e]


@pytest.mark.timeout(180)
def test_killed_consumer_is_restarted_and_nothing_is_lost(instance):
    counters = Counters.create(instance)
    ring = Ring.create(instance, "probe", "probe", PROBE_RECORD, 4096, gating=("c",))
    common = ["--instance", instance.name]
    consumer = Child("c", "procs.probe_consumer", common + ["--name", "c"]).start()
    producer = Child("probe_producer", "procs.probe_producer",
                     common + ["--rate", "200000", "--batch", "16"]).start()
    sup = Supervisor([producer, consumer], RestartPolicy(backoff_s=0.1))
    try:
        wait_running(counters, [producer, consumer])
        until(lambda: counters.values()["c.records"] > 50_000)
        os.kill(consumer.pid, signal.SIGKILL)
        first_pid = consumer.pid
        until(lambda: not sup.poll() or consumer.alive() and consumer.pid != first_pid)
        wait_running(counters, [consumer])
        seen_before = counters.values()["c.records"]
        until(lambda: counters.values()["c.records"] > seen_before + 50_000)
        assert sup.restarts() == {"probe_producer": 0, "c": 1}
        assert ring.consumer(0)["attaches"] == 2
        # sequence continuity is checked per record by the consumer across the restart
        assert counters.values()["c.sequence_errors"] == 0
        proc = next(p for p in counters.processes() if p["name"] == "c")
        assert proc["restarts"] == 1
    finally:
        stop([producer, consumer])


def test_repeated_crashes_make_the_supervisor_give_up():
    child = Child("crasher", "procs.probe_consumer", ["--instance", "no-such-instance",
                                                     "--name", "x"])
    child.start()
    sup = Supervisor([child], RestartPolicy(max_restarts=2, window_s=60, backoff_s=0.01))
    until(lambda: not sup.poll(), 60, "the supervisor to give up", tolerate=())
    assert "crashed 3 times" in sup.failed
    assert sup.restarts()["crasher"] == 2
