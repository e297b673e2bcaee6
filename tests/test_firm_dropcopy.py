"""The drop copy against a real nats-server and real processes: every intent and report
stored exactly once and in order, across kill -9 of the drop copy and a restart of the
server, with nothing released before it is acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from dropcopy_helpers import (
    OrderPath,
    checked,
    intent,
    publish_batches,
    publish_raw,
    report,
    start_dropcopy,
    until,
    wait_stored,
)

from pipeline import cli
from pipeline.firm import jetstream
from pipeline.firm.batch import STREAM_NAME, msg_id, subject
from pipeline.firm.natsd import NatsServer, free_port
from pipeline.runtime.processes import stop

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture
def path(instance):
    p = OrderPath(instance)
    yield p
    p.close()


@pytest.fixture
def children():
    started = []
    yield started
    stop(started)


class Feeder(threading.Thread):
    """Offers records on both rings until stopped, as a strategy and a gateway would."""

    def __init__(self, path: OrderPath):
        super().__init__(daemon=True)
        self.path = path
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.path.offer(2, 1)
            time.sleep(0.001)

    def stop(self) -> None:
        self.halt.set()
        self.join(60)


def assert_exactly_once(url: str, path: OrderPath) -> None:
    """The stream holds seq 0..n-1 of each ring once, in order, equal to what was offered."""
    recs, check = checked(url, path.instance.name)
    assert check.issues == []
    for ring, make in (("orders", intent), ("execs", report)):
        got = recs[ring]
        n = path.offered[ring]
        assert len(got) == n, f"{ring}: {len(got)} stored, {n} offered"
        assert np.array_equal(got["seq"], np.arange(n))
        want = np.array([make(i) for i in range(n)])
        want["seq"] = np.arange(n)
        assert got.tobytes() == want.tobytes(), f"{ring}: stored records differ"


def test_every_record_stored_once_in_order(nats_server, path, children):
    path.offer(500, 200)  # before it starts: held for it by its reserved slot
    children.append(start_dropcopy(path, nats_server.url, "--batch", "16"))
    # more records than the rings hold: the drop copy's releases are what lets them wrap
    path.offer(2500, 1800)
    wait_stored(path)
    assert_exactly_once(nats_server.url, path)
    assert path.value("records") == 5000
    assert path.value("batches") >= 5000 // 16
    assert path.value("publish_failures") == 0


def test_kill9_mid_stream_then_restart(nats_server, path, children):
    child = start_dropcopy(path, nats_server.url, "--batch", "4")
    feeder = Feeder(path)
    feeder.start()
    until(lambda: path.value("records") >= 200, 120, "the first records stored")
    os.kill(child.pid, signal.SIGKILL)
    child.popen.wait(30)
    path.offer(100)  # arrives while no drop copy runs: held in the rings
    children.append(start_dropcopy(path, nats_server.url, "--batch", "4"))
    until(lambda: path.value("records") >= path.offered["orders"], 120, "more stored")
    feeder.stop()
    wait_stored(path)
    assert_exactly_once(nats_server.url, path)
    assert cli.main(["audit", "--nats", nats_server.url, "--instance", path.instance.name,
                     "--json"]) == 0  # and the operator's tool agrees


def test_crash_between_ack_and_release_is_not_stored_twice(nats_server, path, children):
    """A drop copy that died after the PubAck but before the release left records the
    stream has but the ring still offers: the next one releases them unsent."""
    path.offer(30, 5)
    epoch = int(path.orders.segment.header["created_ns"])
    publish_batches(nats_server.url, path.instance.name, "orders", epoch, [(0, 10), (10, 10)])
    children.append(start_dropcopy(path, nats_server.url))
    wait_stored(path)
    assert path.value("skipped_stored") == 20
    assert path.value("records") == 15  # orders 20..29 and the 5 reports
    assert_exactly_once(nats_server.url, path)


def test_a_new_ring_epoch_starts_again_at_zero(nats_server, path, children):
    """Batches of an earlier instance of the same name (another ring epoch) are not ours:
    the new ring's records are all copied."""
    publish_batches(nats_server.url, path.instance.name, "orders", 12345, [(0, 50)])
    path.offer(20, 3)
    children.append(start_dropcopy(path, nats_server.url))
    wait_stored(path)
    assert path.value("skipped_stored") == 0
    assert path.value("records") == 23


def test_nats_restart_resumes_without_gap(nats_server, path, children):
    children.append(start_dropcopy(path, nats_server.url, "--batch", "8",
                                   "--publish-timeout", "0.5"))
    path.offer(200, 100)
    wait_stored(path)
    nats_server.proc.kill()  # kill -9: what it acknowledged was fsynced (sync_interval always)
    nats_server.proc.wait(30)
    path.offer(300, 150)  # unacknowledged while the server is down: never released
    until(lambda: path.value("publish_failures") >= 3, 120, "publishes to fail")
    for _ in range(3):
        assert (path.cursor("orders"), path.cursor("execs")) == (200, 100)
        time.sleep(0.2)
    restarted = NatsServer(nats_server.store_dir, port=nats_server.port).start()
    try:
        wait_stored(path)
        assert path.value("reconnects") >= 1
        assert_exactly_once(nats_server.url, path)
    finally:
        restarted.stop()


def test_sigterm_drains_what_is_ready(nats_server, path, children):
    child = start_dropcopy(path, nats_server.url, "--batch", "2")
    path.offer(400, 100)
    child.popen.send_signal(signal.SIGTERM)
    assert child.popen.wait(60) == 0
    assert path.all_released()
    assert_exactly_once(nats_server.url, path)


def test_a_foreign_message_on_our_subject_is_a_clear_error(nats_server, path):
    name = path.instance.name
    publish_raw(nats_server.url, [(subject(name, "orders"), msg_id(name, "orders", 1, 0, 0),
                                   b"x" * 64)])
    path.offer(5, 0)
    proc = subprocess.run([sys.executable, "-m", "procs.dropcopy", "--instance", name,
                           "--nats", nats_server.url], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1
    assert "is not ours" in proc.stderr and "bad magic" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert path.value("bad_messages") == 1
    assert path.cursor("orders") == 0  # nothing released


def test_started_before_the_server_backpressure_not_loss(tmp_path, instance, children):
    """The launcher may start the drop copy first: it runs and holds the records; when
    the ring fills the producer is refused (and the ring counts it), nothing is dropped;
    once the server is up everything is stored."""
    path = OrderPath(instance, capacity=64)
    try:
        port = free_port()
        children.append(start_dropcopy(path, f"nats://127.0.0.1:{port}",
                                       "--publish-timeout", "0.5"))
        path.offer(64, 20)
        until(lambda: path.value("publish_failures") >= 2, 120, "connections to fail")
        assert not path.orders.offer(intent(64))  # full: the drop copy holds every slot
        assert path.orders.full_count() > 0
        assert path.cursor("orders") == 0 and path.cursor("execs") == 0
        with NatsServer(tmp_path / "late", port=port) as server:
            path.offer(30, 0)  # waits for room: the drop copy's releases make it
            wait_stored(path)
            assert_exactly_once(server.url, path)
    finally:
        stop(children)
        path.close()


def test_a_ring_without_the_reserved_slot_is_copied_from_the_join_with_a_warning(
        nats_server, instance, children, tmp_path):
    path = OrderPath(instance, reserve=False)
    try:
        path.offer(10, 0)  # published before the drop copy joins: never seen by it
        log = tmp_path / "dropcopy.log"
        children.append(start_dropcopy(path, nats_server.url, log=log))
        path.offer(10, 0)
        until(lambda: path.value("records") == 10, 120, "the records after the join stored")
        assert "no reserved 'dropcopy' slot" in log.read_text()
        recs, check = checked(nats_server.url, instance.name)
        assert list(recs["orders"]["seq"]) == list(range(10, 20))
        assert [(i["issue"], i["first"], i["last"]) for i in check.issues] == [("gap", 0, 9)]
    finally:
        stop(children)
        path.close()


def test_sigterm_while_the_server_is_away_exits_cleanly_keeping_the_records(path):
    child = start_dropcopy(path, f"nats://127.0.0.1:{free_port()}", "--publish-timeout", "0.5")
    path.offer(10, 3)
    until(lambda: path.value("publish_failures") >= 1, 120, "a failed connection")
    child.popen.send_signal(signal.SIGTERM)
    assert child.popen.wait(60) == 0
    assert path.cursor("orders") == 0 and path.cursor("execs") == 0  # for the next run


@pytest.mark.parametrize("case", ["no instance", "bad batch"])
def test_bad_arguments_are_one_clear_line(path, case):
    name = "nosuch-instance" if case == "no instance" else path.instance.name
    extra = ["--batch", "0"] if case == "bad batch" else []
    proc = subprocess.run([sys.executable, "-m", "procs.dropcopy", "--instance", name,
                           "--nats", "nats://127.0.0.1:1", *extra], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dropcopy: ") and "Traceback" not in proc.stderr
    assert ("no pipeline instance" if case == "no instance" else "batch 0") in proc.stderr


def test_a_second_drop_copy_of_the_same_instance_is_refused(nats_server, path, children):
    children.append(start_dropcopy(path, nats_server.url))
    proc = subprocess.run([sys.executable, "-m", "procs.dropcopy", "--instance",
                           path.instance.name, "--nats", nats_server.url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "a drop copy already runs" in proc.stderr
    path.offer(20, 5)  # the first one is unaffected
    wait_stored(path)
    assert_exactly_once(nats_server.url, path)


def test_a_stream_that_lost_acknowledged_records_is_counted_and_audited(
        nats_server, path, children):
    child = start_dropcopy(path, nats_server.url)
    path.offer(20, 0)
    wait_stored(path)
    purge(nats_server.url)  # an operator purged it (or a server without fsync lost it)
    os.kill(child.pid, signal.SIGKILL)
    child.popen.wait(30)
    children.append(start_dropcopy(path, nats_server.url))
    path.offer(10, 0)
    wait_stored(path)
    assert path.value("stream_behind") == 20
    recs, check = checked(nats_server.url, path.instance.name)
    assert list(recs["orders"]["seq"]) == list(range(20, 30))
    assert [(i["issue"], i["first"], i["last"]) for i in check.issues] == [("gap", 0, 19)]


def purge(url: str) -> None:
    async def run():
        nc = await jetstream.connect(url, "test-purge")
        try:
            await nc.jetstream(timeout=5).purge_stream(STREAM_NAME)
        finally:
            await nc.close()

    asyncio.run(asyncio.wait_for(run(), 30))


def test_a_password_in_the_url_is_never_logged(nats_server, path, children, tmp_path):
    log = tmp_path / "dropcopy.log"
    url = nats_server.url.replace("nats://", "nats://trader:sekret@")
    children.append(start_dropcopy(path, url, log=log))
    path.offer(5, 5)
    wait_stored(path)
    stop(children)
    text = log.read_text()
    assert "connected to nats://***@127.0.0.1" in text and "sekret" not in text


def test_a_batch_the_server_already_has_is_acknowledged_as_duplicate(
        nats_server, path, children):
    """The same batch under the same Nats-Msg-Id (a retry whose first attempt landed) is
    not stored twice: the server acks it as a duplicate and the drop copy releases it."""
    children.append(start_dropcopy(path, nats_server.url, "--batch", "5"))
    path.offer(0, 5)  # its first flush learns both subjects' ends (nothing stored yet)
    wait_stored(path)
    epoch = int(path.orders.segment.header["created_ns"])
    publish_batches(nats_server.url, path.instance.name, "orders", epoch, [(0, 5)])
    path.offer(5, 0)  # the same five, as the drop copy batches them
    wait_stored(path)
    assert path.value("duplicates_acked") == 1
    assert path.value("records") == 5  # the reports only: the intents were stored by us
    assert_exactly_once(nats_server.url, path)
