"""AgentRunner: owns the process's one thread and runs an agent's duty cycle forever.

It pins the process to its core, optionally raises its scheduling priority and locks its
memory (saying so when the host does not permit it), publishes pid/core/state/heartbeat
in the counters area, and stops cleanly on SIGINT/SIGTERM. Between ~1 ms slices of the
jitted poll loop it does housekeeping in Python.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import time
from dataclasses import dataclass

from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters
from pipeline.runtime import idle
from pipeline.runtime.agent import Agent
from pipeline.transport.shared import atomic_store
from shm_layouts import counters as L

log = logging.getLogger(__name__)

MCL_CURRENT, MCL_FUTURE = 1, 2


@dataclass
class RunnerConfig:
    core: int | None = None  # None: leave affinity alone
    realtime_priority: int = 0  # >0: SCHED_FIFO at this priority (needs CAP_SYS_NICE)
    lock_memory: bool = False  # mlockall: no page faults on the hot path
    slice_ns: int = 1_000_000  # return to Python for housekeeping this often


def pin_to_core(core: int | None) -> str:
    if core is None:
        return "affinity unchanged"
    try:
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    except OSError as e:
        return f"could not pin to core {core}: {e.strerror}"


def raise_priority(priority: int) -> str:
    if priority <= 0:
        return "normal scheduling"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return f"SCHED_FIFO priority {priority}"
    except OSError as e:
        return f"SCHED_FIFO not permitted ({e.strerror}); normal scheduling"


def lock_memory(enabled: bool) -> str:
    if not enabled:
        return "memory not locked"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return f"mlockall not permitted ({os.strerror(ctypes.get_errno())})"
    return "memory locked"


class AgentRunner:
    def __init__(self, agent: Agent, idle_state: idle.IdleStrategy, config: RunnerConfig,
                 counters: Counters | None = None):
        self.agent = agent
        self.idle_state = idle_state
        self.config = config
        self.counters = counters
        self.stop_requested = False
        self.setup_notes: list[str] = []
        self._slot_base = -1

    def request_stop(self, *_args) -> None:
        self.stop_requested = True

    def _set(self, offset: int, value: int) -> None:
        if self.counters is not None:
            atomic_store(self.counters.words, self._slot_base + offset, int(value))

    def _fd_counters(self) -> dict[str, int]:
        """Word of ``<agent>.idle_<counter>`` per fd-sleep counter (``idle.FD_COUNTERS``)."""
        if self.counters is None:
            return {}
        return {name: self.counters.counter(f"{self.agent.name}.idle_{name}")
                for name in idle.FD_COUNTERS}

    def run(self) -> int:
        """Run until stopped or the agent finishes; returns total work done."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        cfg = self.config
        self.setup_notes = [pin_to_core(cfg.core), raise_priority(cfg.realtime_priority),
                            lock_memory(cfg.lock_memory)]
        log.info("%s: %s", self.agent.name, "; ".join(self.setup_notes))
        if self.counters is not None:
            self._slot_base = Counters.process_base(self.counters.process(self.agent.name))
            self._set(L.PROC_CORE, -1 if cfg.core is None else cfg.core)
            self._set(L.PROC_STATE, L.ProcessState.STARTING)
        total = slices = 0
        state = L.ProcessState.FAILED
        try:
            self.agent.on_start()
            # a blocking strategy sleeps on the agent's main input ring, joined just now, or
            # without one on its sockets (asked every slice: they change on reconnect)
            self.idle_state = idle.wait_on(self.idle_state, self.agent.wait_ring())
            on_fds = idle.blocks_on_fds(self.idle_state)
            fd_words = self._fd_counters() if on_fds else {}
            # one slice that is due at once: compiles the poll loop before we say RUNNING
            total += self.agent.do_work(self.idle_state, time.monotonic_ns())
            # what start-up made (numba's compiler state above all) is never garbage: out
            # of the collector's sight, a full collection in housekeeping no longer walks it
            gc.collect()
            gc.freeze()
            self._set(L.PROC_STATE, L.ProcessState.RUNNING)
            # how long the process is away from its duty cycles between two slices: a tick
            # that arrives meanwhile waits that long
            away = (self.counters.histogram(f"{self.agent.name}.housekeeping_ns")
                    if self.counters is not None else histogram.new())
            now = time.monotonic_ns()
            while not self.stop_requested:
                if on_fds:
                    idle.watch(self.idle_state, self.agent.wait_fds())
                total += self.agent.do_work(self.idle_state, now + cfg.slice_ns)
                slices += 1
                done = time.monotonic_ns()
                self._set(L.PROC_HEARTBEAT, done)
                self._set(L.PROC_SLICES, slices)
                self._set(L.PROC_WORK, total)
                for name, value in idle.fd_counts(self.idle_state).items() if fd_words else ():
                    atomic_store(self.counters.words, fd_words[name], value)
                if not self.agent.housekeeping(done):
                    break
                now = time.monotonic_ns()
                histogram.record(away, now - done)
            state = L.ProcessState.STOPPED
        finally:
            self._set(L.PROC_STATE, L.ProcessState.STOPPING)
            try:
                self.agent.on_close()
            finally:
                self._set(L.PROC_STATE, state)
        return total
