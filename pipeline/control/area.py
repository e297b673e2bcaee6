"""The control area (layout: ``shm_layouts.control``): flags processes obey and commands
they acknowledge.

Hot path: ``kill_switch_on(words)`` / ``quoting_paused(words)`` are jitted acquire loads a
duty cycle may call every cycle (one shared, rarely written cache line).
Cold path: ``hft ctl`` sets a flag, then issues a command (``ControlArea.execute``) and
waits for every live process that handles that command to acknowledge it; processes
poll with ``pipeline.control.poller.ControlPoller`` from housekeeping.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from pipeline.transport.atomics import (
    fence_acquire,
    fence_release,
    load_acquire,
    load_relaxed,
    store_relaxed,
    store_release,
)
from pipeline.transport.registry import Instance
from pipeline.transport.segment import Layout, Segment, pid_alive
from pipeline.transport.shared import atomic_add, atomic_load, atomic_store
from shm_layouts import SegmentKind, layout_hash
from shm_layouts import control as L
from shm_layouts.control import HandlerState, Op, Status

CONTROL = Layout(SegmentKind.CONTROL, "control",
                 layout_hash(L.CONTROL_VERSION, L.WORDS, L.N_COMMANDS, L.MAX_HANDLERS,
                             L.HANDLER_NAME))
SEGMENT_NAME = "control"


# ------------------------------------------------------------------ jitted (any process)
@njit(cache=True)
def kill_switch_on(words):
    """True while the kill switch is on: send no new orders."""
    return load_acquire(words, L.W_KILL) != 0


@njit(cache=True)
def quoting_paused(words):
    """True while quoting is paused: the strategy places no new quotes."""
    return load_acquire(words, L.W_PAUSED) != 0


@njit(cache=True)
def write_command(words, seq, op, arg0, arg1, pid, issued_ns):
    """Fill command slot ``seq`` (claimed by this issuer): stamp ``-seq`` (being written),
    fields, then stamp ``seq`` with a release store."""
    base = L.CMD_BASE + (seq % L.N_COMMANDS) * L.CMD_WORDS
    store_relaxed(words, base + L.CMD_STAMP, -seq)
    fence_release()  # pollers see the negative stamp before any field changes
    store_relaxed(words, base + L.CMD_OP, op)
    store_relaxed(words, base + L.CMD_ARG0, arg0)
    store_relaxed(words, base + L.CMD_ARG1, arg1)
    store_relaxed(words, base + L.CMD_PID, pid)
    store_relaxed(words, base + L.CMD_ISSUED_NS, issued_ns)
    store_release(words, base + L.CMD_STAMP, seq)


@njit(cache=True)
def read_command(words, seq, out):
    """Copy command ``seq`` into ``out`` (int64[CMD_WORDS]).

    Returns 1 when copied intact, 0 when it is not (completely) written yet, -1 when its
    slot already holds a later command (the reader fell N_COMMANDS behind)."""
    base = L.CMD_BASE + (seq % L.N_COMMANDS) * L.CMD_WORDS
    s1 = load_acquire(words, base + L.CMD_STAMP)
    if s1 != seq:
        return -1 if abs(s1) > seq else 0
    for i in range(L.CMD_WORDS):
        out[i] = load_relaxed(words, base + i)
    fence_acquire()  # the copy completes before the stamp is checked again
    return 1 if load_relaxed(words, base + L.CMD_STAMP) == seq else -1


# ------------------------------------------------------------------ cold path
@dataclass(frozen=True)
class Command:
    seq: int
    op: Op
    arg0: int
    arg1: int
    issuer_pid: int
    issued_ns: int


@dataclass
class Outcome:
    """What happened to one command: who had to acknowledge it and who did."""

    seq: int
    op: Op
    expected: list[str]  # live handlers of this op when it was issued
    acks: dict[str, str] = field(default_factory=dict)  # handler -> Status name
    missing: list[str] = field(default_factory=list)  # expected but silent or gone

    @property
    def acknowledged(self) -> bool:
        return bool(self.expected) and not self.missing

    def as_dict(self) -> dict:
        return {"seq": self.seq, "op": self.op.name.lower(), "expected": self.expected,
                "acks": self.acks, "missing": self.missing,
                "acknowledged": self.acknowledged}


class ControlArea:
    """Handle on the control segment: ``words`` (int64) and ``names`` (handler names)."""

    def __init__(self, seg: Segment):
        self.segment = seg
        self.words = seg.body[: L.WORDS * 8].view(np.int64)
        self.names = seg.body[L.WORDS * 8: L.BODY_SIZE].view(L.HANDLER_NAME)

    @classmethod
    def create(cls, instance: Instance) -> ControlArea:
        seg = instance.create_segment(SEGMENT_NAME, CONTROL, L.BODY_SIZE)
        area = cls(seg)
        area.words[L.W_VERSION] = L.CONTROL_VERSION
        area.words[L.W_N_COMMANDS] = L.N_COMMANDS
        area.words[L.W_MAX_HANDLERS] = L.MAX_HANDLERS
        seg.mark_ready()
        return area

    @classmethod
    def attach(cls, instance: Instance, readonly: bool = False) -> ControlArea:
        return cls(instance.attach_segment(SEGMENT_NAME, CONTROL, readonly=readonly))

    # -- flags
    def kill_switch(self) -> bool:
        return bool(atomic_load(self.words, L.W_KILL))

    def paused(self) -> bool:
        return bool(atomic_load(self.words, L.W_PAUSED))

    def set_flag(self, word: int, on: bool) -> None:
        atomic_store(self.words, word, 1 if on else 0)
        atomic_add(self.words, L.W_FLAG_CHANGES, 1)

    def flags(self) -> dict:
        return {"kill_switch": self.kill_switch(), "paused": self.paused(),
                "flag_changes": int(atomic_load(self.words, L.W_FLAG_CHANGES)),
                "last_command": int(atomic_load(self.words, L.W_CLAIM))}

    # -- handlers
    def handler_name(self, slot: int) -> str:
        return self.names[slot].decode(errors="replace")

    def handlers(self) -> list[dict]:
        """Every handler slot ever used, with its liveness."""
        out = []
        now = time.monotonic_ns()
        for slot in range(L.MAX_HANDLERS):
            w = {k: int(atomic_load(self.words, L.handler_word(slot, off))) for k, off in (
                ("state", L.H_STATE), ("ops", L.H_OPS), ("pid", L.H_PID),
                ("heartbeat_ns", L.H_HEARTBEAT), ("seen", L.H_SEEN),
                ("executed", L.H_EXECUTED), ("attaches", L.H_ATTACHES),
                ("skipped", L.H_SKIPPED))}
            if not w["attaches"]:
                continue
            w["slot"] = slot
            w["name"] = self.handler_name(slot)
            w["ops_names"] = [op.name.lower() for op in Op if w["ops"] >> int(op) & 1]
            w["active"] = w["state"] == HandlerState.ACTIVE and pid_alive(w["pid"])
            w["heartbeat_age_s"] = (now - w["heartbeat_ns"]) / 1e9 if w["heartbeat_ns"] else None
            out.append(w)
        return out

    # -- commands
    def issue(self, op: Op, arg0: int = 0, arg1: int = 0) -> int:
        """Claim the next sequence, write the command; returns its sequence."""
        seq = int(atomic_add(self.words, L.W_CLAIM, 1)) + 1
        write_command(self.words, seq, int(op), arg0, arg1, os.getpid(), time.monotonic_ns())
        return seq

    def ack_status(self, seq: int, slot: int) -> Status | None:
        word = L.ack_word(seq, slot)
        if atomic_load(self.words, word) != seq:
            return None
        return Status(int(atomic_load(self.words, word + 1)))

    def execute(self, op: Op, arg0: int = 0, arg1: int = 0, timeout: float = 2.0) -> Outcome:
        """Issue a command and wait (bounded) for every live handler of ``op`` to ack."""
        expected = {h["slot"]: h["name"] for h in self.handlers()
                    if h["active"] and h["ops"] >> int(op) & 1}
        seq = self.issue(op, arg0, arg1)
        outcome = Outcome(seq, op, sorted(expected.values()))
        waiting = dict(expected)
        deadline = time.monotonic() + timeout
        while waiting:
            for slot in list(waiting):
                status = self.ack_status(seq, slot)
                if status is not None:
                    outcome.acks[waiting.pop(slot)] = status.name.lower()
                elif not pid_alive(int(atomic_load(self.words, L.handler_word(slot, L.H_PID)))):
                    outcome.missing.append(waiting.pop(slot))
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        outcome.missing.extend(waiting.values())
        return outcome

    def close(self) -> None:
        self.words = self.names = None  # type: ignore[assignment]
        self.segment.close()


def create_control(instance: Instance) -> ControlArea:
    """For the launcher: create the instance's control area (flags off, no commands)."""
    return ControlArea.create(instance)
