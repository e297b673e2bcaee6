"""The ``block`` idle strategy on sockets (pipeline/runtime/idle.py ``watch``): asleep in
ppoll it is woken by a peer's write (counted as a wake by data), times out otherwise, does
not poll again for input its agent left unread, and over TLS never sleeps while OpenSSL
holds records the socket no longer shows. Counters, not clocks, say what happened."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys

import numpy as np
import pytest

from pipeline.launch.launcher import Launcher, RunOptions
from pipeline.runtime import idle as I
from pipeline.runtime.agent import Agent
from pipeline.runtime.composite import CompositeAgent
from pipeline.runtime.runner import AgentRunner, RunnerConfig
from pipeline.tls.io import wait_fd
from procs import _common
from tests import tls_peers
from tests.tls_peers import ScriptedServer, connect, read_upto, stats
from tuning.profiles import ProfileError, validate

ca, good, no_key_in_logs = tls_peers.ca, tls_peers.good, tls_peers.no_key_in_logs  # fixtures

SYS_PPOLL = {"x86_64": 271, "aarch64": 73}.get(platform.machine())
LONG_NS = 30 * 1_000_000_000  # longer than any wait here: only data ends the sleep
# the peer: waits (bounded) until the test process sits in ppoll, then writes one byte
PEER = """
import os, sys, time
pid, fd, nr = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            if f.read().split()[0] == nr:
                break
    except (OSError, IndexError):
        break  # not readable here: write at once (the wake is then immediate)
    time.sleep(0.001)
os.write(fd, b"x")
"""


def _blocking(max_park_ns: int) -> I.IdleStrategy:
    return I.with_ladder(I.blocking(), spins=0, yields=0, max_park_ns=max_park_ns)


def _counts(s: I.IdleStrategy) -> tuple[int, ...]:
    c = I.fd_counts(s)
    return tuple(c[k] for k in I.FD_COUNTERS)  # sleeps, wakes, timeouts, held, stalls


@pytest.mark.timeout(60)
def test_asleep_in_poll_a_peer_write_wakes_it():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        s = _blocking(LONG_NS)
        assert I.blocks_on_fds(s)
        assert I.watch(s, [I.WaitFd(ours.fileno())])
        assert not I.watch(s, [I.WaitFd(ours.fileno())])  # unchanged: nothing rewritten
        peer = subprocess.Popen([sys.executable, "-c", PEER, str(os.getpid()),
                                 str(theirs.fileno()), str(SYS_PPOLL)],
                                pass_fds=[theirs.fileno()])
        try:
            assert I.idle(s, 0)  # gave up the core: asleep until the byte came
        finally:
            assert peer.wait(timeout=30) == 0
        assert _counts(s) == (1, 1, 0, 0, 0)
        assert ours.recv(1) == b"x"


@pytest.mark.timeout(30)
def test_no_data_times_out_and_work_resets_the_ladder():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        s = I.with_ladder(I.blocking(), spins=2, yields=0, max_park_ns=1_000_000)
        I.watch(s, [I.WaitFd(ours.fileno())])
        assert not I.idle(s, 0) and not I.idle(s, 0)  # the spins come first
        assert I.idle(s, 0)
        assert _counts(s) == (1, 0, 1, 0, 0)
        I.idle(s, 1)  # work: the spins again
        assert not I.idle(s, 0)
        assert _counts(s) == (1, 0, 1, 0, 0)


@pytest.mark.timeout(30)
def test_input_the_agent_leaves_unread_is_not_polled_again_at_once():
    """A readable socket whose agent takes nothing (its output ring full): one wake by data,
    then a backoff park, not a loop of ppoll calls that return at once."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.send(b"x")
        s = _blocking(LONG_NS)
        I.watch(s, [I.WaitFd(ours.fileno())])
        assert I.idle(s, 0)
        assert _counts(s) == (1, 1, 0, 0, 0)
        assert I.idle(s, 0)  # nothing was read: parked instead
        assert _counts(s) == (1, 1, 0, 0, 1)
        assert I.idle(s, 0)  # the park is over: it looks again (the byte is still there)
        assert _counts(s) == (2, 2, 0, 0, 1)
        I.idle(s, 1)
        assert ours.recv(1) == b"x"
        s.state["max_park_ns"] = 1_000_000
        assert I.idle(s, 0)
        assert _counts(s) == (3, 2, 1, 0, 1)


@pytest.mark.timeout(30)
def test_watch_follows_the_agent_fds_and_refuses_bad_ones():
    a, b = socket.socketpair()
    with a, b:
        s = _blocking(1_000_000)
        I.watch(s, [I.WaitFd(a.fileno()), I.WaitFd(b.fileno())])
        assert int(s.state[0]["n_fds"]) == 2
        assert I.watch(s, [I.WaitFd(b.fileno())])  # a reconnect: another fd
        assert int(s.state[0]["n_fds"]) == 1
        b.send(b"x")  # a's peer end is b: a is readable, b is not: the timeout says so
        assert I.idle(s, 0)
        assert _counts(s) == (1, 0, 1, 0, 0)
        I.watch(s, [])
        assert I.idle(s, 0)  # no fds: a plain park, nothing counted
        assert _counts(s) == (1, 0, 1, 0, 0)
        with pytest.raises(ValueError, match="fd -1"):
            I.watch(s, [I.WaitFd(-1)])
        with pytest.raises(ValueError, match="at most"):
            I.watch(s, [I.WaitFd(a.fileno())] * (I.MAX_WAIT_FDS + 1))
    ring = I.blocking()._replace(slot=0)  # a strategy with a ring sleeps on its futex
    assert not I.blocks_on_fds(ring) and not I.blocks_on_fds(I.backoff())


class _Sock(Agent):
    def __init__(self, name: str, fds: list[int]):
        self.name, self._fds = name, fds

    def do_work(self, idle_state, deadline_ns: int) -> int:
        return 0

    def wait_fds(self) -> list[I.WaitFd]:
        return [I.WaitFd(fd) for fd in self._fds]


def test_a_composite_waits_on_every_child_socket():
    c = CompositeAgent([_Sock("feed", [5]), _Sock("book", []), _Sock("gw", [7])])
    assert [w.fd for w in c.wait_fds()] == [5, 7]
    assert c.wait_ring() is None


@pytest.mark.timeout(60)
def test_tls_records_held_by_openssl_prevent_the_sleep(ca, good):
    """Two records in one TCP segment: the first read takes both off the socket (read-ahead)
    and returns the first; the socket is then empty, but the strategy does not sleep."""
    first, second = b"a" * 50, b"b" * 60

    def script(srv):
        srv.send_raw(srv.record(first) + srv.record(second))
        srv.recv(1)

    srv = ScriptedServer(good, script)
    with connect(srv.port, ca.ca_file) as conn:
        out = np.zeros(200, np.uint8)
        st = stats()
        got, _, _ = read_upto(conn.ssl, out, len(first), st, 10 * 1_000_000_000)
        assert bytes(out[:got]) == first
        s = _blocking(LONG_NS)
        I.watch(s, [wait_fd(conn.fd, conn.ssl)])
        assert not I.idle(s, 0)  # held bytes: no sleep, the next cycle reads them
        assert _counts(s) == (0, 0, 0, 1, 0)
        I.idle(s, 1)
        got, _, _ = read_upto(conn.ssl, out, len(second), st, 10 * 1_000_000_000)
        assert bytes(out[:got]) == second
        s.state["max_park_ns"] = 1_000_000  # nothing held, nothing on the socket: sleeps
        assert I.idle(s, 0)
        assert _counts(s) == (1, 0, 1, 1, 0)
        assert conn.send(b"!") == 1
    srv.wait()
    assert srv.error is None


class _OneSliceOnASocket(Agent):
    """An agent fed by a socket: runs one slice, finishes."""

    name = "one_slice_fd"

    def __init__(self, fd: int):
        self.fd, self.seen = fd, None

    def wait_fds(self) -> list[I.WaitFd]:
        return [I.WaitFd(self.fd)]

    def do_work(self, idle_state, deadline_ns: int) -> int:
        self.seen = int(idle_state.state[0]["n_fds"]), int(idle_state.fds[0]) & 0xFFFF_FFFF
        return 0

    def housekeeping(self, now_ns: int) -> bool:
        return False


def test_the_runner_hands_a_blocking_strategy_without_a_ring_the_agents_sockets():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        agent = _OneSliceOnASocket(ours.fileno())
        AgentRunner(agent, I.blocking(), RunnerConfig()).run()
        assert agent.seen == (1, ours.fileno())


def test_handoff_yields_after_work_and_is_set_by_profiles_for_block_only(tmp_path):
    s = I.with_ladder(I.blocking(), spins=1, handoff=True)
    assert I.idle(s, 1)  # work: it gave the core away (a yield), so time may have passed
    assert not I.idle(s, 0)  # the ladder is unchanged: a spin first
    plain = I.with_ladder(I.blocking(), spins=1)
    assert not I.idle(plain, 1)
    with pytest.raises(ValueError, match="block only"):
        I.with_ladder(I.backoff(), handoff=True)
    args = _common.parser("t").parse_args(["--instance", "x", "--idle", "block",
                                           "--idle-handoff"])
    assert int(_common.idle_strategy(args).state[0]["handoff"]) == 1
    ok = validate({"processes": {"a": {"core": 1, "idle": "block", "idle_handoff": True}}}, "x")
    assert ok["a"]["idle_handoff"] is True
    for bad in ({"core": 1, "idle": "backoff", "idle_handoff": True},
                {"core": 1, "idle": "block", "idle_handoff": 1}):
        with pytest.raises(ProfileError, match="idle_handoff"):
            validate({"processes": {"a": bad}}, "x")


def test_the_launcher_passes_a_profiles_handoff(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text('[processes.strategy]\ncore = 1\nidle = "block"\nidle_handoff = true\n'
                       '[processes.book_builder]\ncore = 1\nidle = "block"\n')
    launcher = Launcher(RunOptions(profile=str(profile), instance="handoffargs"))
    assert "--idle-handoff" in launcher._child("strategy").args
    assert "--idle-handoff" not in launcher._child("book_builder").args
