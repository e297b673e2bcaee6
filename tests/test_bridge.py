"""``hft bridge``: real media driver, real sender/receiver processes, loopback UDP.

Two instances (A, B) on this host; A's ring is forwarded into B's ring of the same name.
Every process idles with backoff (2 cores); every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from bridge_helpers import Side, free_udp_port, numbered, payload, publish_all, udp_channel
from waiting import until

from pipeline.bridge.driver import start_driver, stop_driver
from pipeline.bridge.receiver import attach_state
from pipeline.bridge.rings import CONSUMER, RINGS
from pipeline.orders.segments import create_order_path
from pipeline.transport.ring import Ring
from shm_layouts import bridge as B

pytestmark = pytest.mark.timeout(300)
BOOK, EXECS = RINGS["book"], RINGS["execs"]


@pytest.fixture(scope="module")
def aeron_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("aeron") / "driver")
    proc = start_driver(path)
    yield path
    assert stop_driver(proc) == 0
    assert not os.path.exists(path), "the driver left its directory behind"


@pytest.fixture
def sides():
    a, b = Side("a"), Side("b")
    yield a, b
    a.close()
    b.close()


def test_records_arrive_byte_for_byte_and_in_order(aeron_dir, sides):
    """Book (observing) and execs (gating, reserved by create_order_path) both bridged:
    B's rings hold A's records, every byte, same sequences."""
    a, b = sides
    n_book, n_execs = 3000, 2500
    a_book = Ring.create(a.inst, "book", BOOK.stream, BOOK.dtype, 4096)
    b_book = Ring.create(b.inst, "book", BOOK.stream, BOOK.dtype, 4096)
    _, a_execs, _ = create_order_path(a.inst, capacity=4096, also_gating=(CONSUMER,))
    _, b_execs, _ = create_order_path(b.inst, capacity=4096)
    for ring, stream in (("book", 11), ("execs", 12)):
        port = free_udp_port()
        b.start("recv", ring, udp_channel(port), stream, aeron_dir)
        a.start("send", ring, udp_channel(port), stream, aeron_dir)
    rng = np.random.default_rng(1)
    book, execs = numbered(BOOK.dtype, 0, n_book, rng), numbered(EXECS.dtype, 0, n_execs, rng)
    assert publish_all(a_book, book) == n_book
    assert publish_all(a_execs, execs) == n_execs
    until(lambda: b_book.published() == n_book and b_execs.published() == n_execs, 60,
          "every record in B's rings")
    for src, dst, n in ((a_book, b_book, n_book), (a_execs, b_execs, n_execs)):
        assert np.array_equal(payload(dst, 0, n), payload(src, 0, n))
        assert np.array_equal(dst.records["seq"][:n], np.arange(n))
    # the gating slot was released only after Aeron took the records: A's cursor is at the end
    slot = next(c for c in a_execs.consumers() if c["name"] == CONSUMER)
    assert slot["cursor"] == n_execs and slot["mode"] == int(EXECS.mode)
    assert a.value("bridge.send.execs.records") == n_execs
    assert b.value("bridge.recv.book.records") == n_book
    assert b.value("bridge.recv.execs.duplicates") == 0 and b.value("bridge.recv.book.gaps") == 0
    assert a.value("bridge.send.book.messages") < n_book  # packed: many records per message
    assert attach_state(b.inst, "execs")[1][B.R_EXPECTED] == n_execs


def test_layout_mismatch_is_a_clear_error_and_a_nonzero_exit(aeron_dir, sides):
    """A receiver for B's book ring fed by A's execs stream (a misconfigured stream id):
    it stops with an error naming both layouts, counts it, and writes nothing."""
    a, b = sides
    Ring.create(a.inst, "execs", EXECS.stream, EXECS.dtype, 1024)
    b_book = Ring.create(b.inst, "book", BOOK.stream, BOOK.dtype, 1024)
    port = free_udp_port()
    recv = subprocess.Popen(
        [sys.executable, "-m", "procs.bridge", "recv", "--instance", b.name, "--ring", "book",
         "--channel", udp_channel(port), "--stream-id", "22", "--aeron-dir", aeron_dir,
         "--idle", "backoff"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: any(p["name"] == "bridge_recv_book" and p["state_name"] == "RUNNING"
                          for p in b.counters.processes()), 120, "the receiver running")
        a.start("send", "execs", udp_channel(port), 22, aeron_dir)
        publish_all(Ring.attach(a.inst, "execs", EXECS.stream, EXECS.dtype),
                    numbered(EXECS.dtype, 0, 5, np.random.default_rng(3)))
        _, err = recv.communicate(timeout=60)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    assert recv.returncode == 3
    assert "layout mismatch" in err
    assert str(EXECS.layout_hash) in err and str(BOOK.layout_hash) in err
    assert "128-byte" in err and "256-byte" in err
    assert b.value("bridge.recv.book.layout_mismatch") == 1
    assert b_book.published() == 0


def test_sender_killed_mid_stream_restarts_with_nothing_lost_or_duplicated(aeron_dir, sides):
    """kill -9 the sender of a gating ring while records flow; restart it: it resumes from
    its cursor in A's ring, the receiver drops what it sees twice. (A receiver killed with
    kill -9 is not covered: nothing replays what its media driver held for it; see
    docs/operations.md "Crashes".)"""
    a, b = sides
    total = 30_000
    a_execs = Ring.create(a.inst, "execs", EXECS.stream, EXECS.dtype, 1024, gating=(CONSUMER,))
    b_execs = Ring.create(b.inst, "execs", EXECS.stream, EXECS.dtype, 1 << 15)
    port = free_udp_port()
    args = ("execs", udp_channel(port), 31, aeron_dir)
    b.start("recv", *args)
    sender = a.start("send", *args, "--batch", "4")
    recs = numbered(EXECS.dtype, 0, total, np.random.default_rng(4))
    done = []
    producer = threading.Thread(target=lambda: done.append(publish_all(a_execs, recs)))
    producer.start()
    try:
        until(lambda: b_execs.published() > total // 5, 120, "a fifth of the stream at B")
        os.kill(sender.pid, signal.SIGKILL)
        sender.popen.wait(10)
        restarted = a.start("send", *args, "--batch", "4")
        until(lambda: b_execs.published() >= total, 120, "the whole stream at B")
    finally:
        producer.join(120)
    assert done == [total] and restarted.alive()
    assert b_execs.published() == total  # not one more: no duplicate was written
    assert np.array_equal(b_execs.records["t_origin_ns"][:total], np.arange(total))
    assert np.array_equal(payload(b_execs, 0, total), recs.view(np.uint8).reshape(total, -1)[:, 8:])
    assert b.value("bridge.recv.execs.gaps") == 0
    assert attach_state(b.inst, "execs")[1][B.R_EXPECTED] == total


def test_observing_sender_that_falls_behind_counts_loss_and_the_receiver_the_gap(
        aeron_dir, sides):
    """Stop the book sender (SIGSTOP), lap it, let it go on: it counts what it lost, the
    receiver counts the same number as a gap, and everything after arrives in order."""
    a, b = sides
    cap, before, lapped, after = 256, 100, 1000, 100
    a_book = Ring.create(a.inst, "book", BOOK.stream, BOOK.dtype, cap)
    b_book = Ring.create(b.inst, "book", BOOK.stream, BOOK.dtype, 4096)
    port = free_udp_port()
    b.start("recv", "book", udp_channel(port), 41, aeron_dir)
    sender = a.start("send", "book", udp_channel(port), 41, aeron_dir)
    rng = np.random.default_rng(5)
    publish_all(a_book, numbered(BOOK.dtype, 0, before, rng))
    until(lambda: b_book.published() == before, 60, "the first records at B")
    os.kill(sender.pid, signal.SIGSTOP)
    try:
        publish_all(a_book, numbered(BOOK.dtype, before, lapped, rng))  # laps the stopped sender
    finally:
        os.kill(sender.pid, signal.SIGCONT)
    publish_all(a_book, numbered(BOOK.dtype, before + lapped, after, rng))
    total = before + lapped + after
    lost = until(lambda: a.value("bridge.send.book.lost"), 60, "the sender's loss count")
    until(lambda: b.value("bridge.recv.book.records") + lost == total, 60,
          "everything not lost at B")
    assert lost >= lapped - cap  # at least what was overwritten while it was stopped
    assert b.value("bridge.recv.book.gaps") == lost
    got = b_book.records["t_origin_ns"][: b_book.published()]
    assert np.all(np.diff(got) > 0)  # in order, none twice
    assert got[0] == 0 and got[-1] == total - 1 and len(got) == total - lost


def test_observing_sender_without_a_receiver_drops_and_counts_unsent_not_lost(
        aeron_dir, sides):
    """No receiver yet: an observed ring is not held for it (the ring would lap and the
    wait would read as loss), its records count as unsent; once a receiver connects,
    what follows arrives without a gap and nothing was counted lost."""
    a, b = sides
    cap, chunk = 256, 100
    a_book = Ring.create(a.inst, "book", BOOK.stream, BOOK.dtype, cap)
    b_book = Ring.create(b.inst, "book", BOOK.stream, BOOK.dtype, 4096)
    port = free_udp_port()
    a.start("send", "book", udp_channel(port), 43, aeron_dir)
    rng = np.random.default_rng(7)
    sent = 0
    for _ in range(10):  # ten chunks, each well within the ring: 4x its capacity in all
        publish_all(a_book, numbered(BOOK.dtype, sent, chunk, rng))
        sent += chunk
        until(lambda n=sent: a.value("bridge.send.book.unsent") == n, 60, "unsent counted")
    b.start("recv", "book", udp_channel(port), 43, aeron_dir)
    while b_book.published() == 0:  # until the publication sees the receiver
        publish_all(a_book, numbered(BOOK.dtype, sent, 1, rng))
        sent += 1
        until(lambda n=sent: a.value("bridge.send.book.unsent") +
              a.value("bridge.send.book.records") == n, 60, "the record sent or counted unsent")
    publish_all(a_book, numbered(BOOK.dtype, sent, chunk, rng))
    sent += chunk
    until(lambda: a.value("bridge.send.book.unsent") + b_book.published() == sent, 60,
          "everything after the connection at B")
    assert a.value("bridge.send.book.lost") == 0
    assert b.value("bridge.recv.book.gaps") == 0
    got = b_book.records["t_origin_ns"][: b_book.published()]
    assert np.all(np.diff(got) == 1) and got[-1] == sent - 1  # contiguous up to the last


def test_bad_command_lines_are_clear_errors(sides, tmp_path):
    """Through ``hft bridge`` itself: a ring that cannot be bridged, and a sender whose
    media driver is not there (no Aeron directory) fail at once, saying why."""
    a, _ = sides
    Ring.create(a.inst, "book", BOOK.stream, BOOK.dtype, 64)
    base = [sys.executable, "-m", "pipeline.cli", "bridge", "send", "--instance", a.name,
            "--channel", udp_channel(), "--stream-id", "1", "--idle", "backoff"]
    bad_ring = subprocess.run([*base, "--ring", "latest", "--aeron-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
    assert bad_ring.returncode == 2 and "invalid choice: 'latest'" in bad_ring.stderr
    no_driver = subprocess.run([*base, "--ring", "book", "--aeron-dir", str(tmp_path / "none")],
                               capture_output=True, text=True, timeout=120)
    assert no_driver.returncode == 3
    assert "is a media driver running in" in no_driver.stderr


def test_a_new_upstream_ring_starts_the_sequence_count_afresh(aeron_dir, sides):
    """A's instance set up again (a new execs ring, seqs from 0): its records are new ones,
    not duplicates of the old ring's."""
    a, b = sides
    a_execs = Ring.create(a.inst, "execs", EXECS.stream, EXECS.dtype, 1024, gating=(CONSUMER,))
    b_execs = Ring.create(b.inst, "execs", EXECS.stream, EXECS.dtype, 1024)
    port = free_udp_port()
    args = ("execs", udp_channel(port), 51, aeron_dir)
    b.start("recv", *args)
    sender = a.start("send", *args)
    rng = np.random.default_rng(6)
    first, second = numbered(EXECS.dtype, 0, 100, rng), numbered(EXECS.dtype, 100, 50, rng)
    publish_all(a_execs, first)
    until(lambda: b_execs.published() == 100, 60, "the first ring's records at B")
    sender.popen.send_signal(signal.SIGTERM)
    assert sender.popen.wait(30) == 0
    a_execs.close()
    a.inst.remove_segment("execs")
    a_execs = Ring.create(a.inst, "execs", EXECS.stream, EXECS.dtype, 1024, gating=(CONSUMER,))
    a.start("send", *args)
    publish_all(a_execs, second)
    until(lambda: b_execs.published() == 150, 60, "the new ring's records at B")
    assert np.array_equal(b_execs.records["t_origin_ns"][:150], np.arange(150))
    assert b.value("bridge.recv.execs.upstream_epochs") == 2
    assert b.value("bridge.recv.execs.duplicates") == 0


def test_a_full_receiving_ring_holds_the_sender_back_and_loses_nothing(aeron_dir, sides):
    """B's execs ring has a slow gating consumer: the receiver keeps the message staged,
    Aeron's flow control holds the sender, A's gating slot holds A's producer; as B's
    consumer drains, every record arrives once, in order."""
    a, b = sides
    total = 600
    a_execs = Ring.create(a.inst, "execs", EXECS.stream, EXECS.dtype, 128, gating=(CONSUMER,))
    b_execs = Ring.create(b.inst, "execs", EXECS.stream, EXECS.dtype, 64, gating=("strategy",))
    port = free_udp_port()
    args = ("execs", udp_channel(port), 61, aeron_dir)
    b.start("recv", *args)
    a.start("send", *args)
    recs = numbered(EXECS.dtype, 0, total, np.random.default_rng(7))
    done = []
    producer = threading.Thread(target=lambda: done.append(publish_all(a_execs, recs)))
    producer.start()
    slot = b_execs.join("strategy")
    got = []
    try:
        until(lambda: b.value("bridge.recv.execs.ring_full") > 0, 60, "B's ring full")

        def drain():
            got.extend(b_execs.take(slot, 16)["t_origin_ns"].tolist())
            return len(got) >= total
        until(drain, 120, "every record through B's slow consumer", interval=0.005)
    finally:
        producer.join(60)
    assert done == [total]
    assert got == list(range(total))
    assert b.value("bridge.recv.execs.duplicates") == 0 and b.value("bridge.recv.execs.gaps") == 0
