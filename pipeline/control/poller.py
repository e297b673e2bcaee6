"""ControlPoller: how a process takes commands from the control area.

Call ``poll()`` from housekeeping (every ~1 ms slice is plenty); execute each returned
command, then ``ack(cmd, status)``. Commands for other ops are marked seen but not
acknowledged: ``hft ctl`` waits only for the handlers whose ops include the command.
A process that (re)starts takes the slot of its name again and begins at the current
sequence: commands issued while it was down are not replayed (the flags still hold).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import numpy as np

from pipeline.control.area import Command, ControlArea, kill_switch_on, read_command
from pipeline.transport.shared import atomic_cas, atomic_load, atomic_store
from shm_layouts import control as L
from shm_layouts.control import HandlerState, Op, Status

ABANDONED_S = 1.0  # a claimed sequence never written (issuer killed) is skipped after this


class ControlError(RuntimeError):
    pass


class ControlPoller:
    def __init__(self, area: ControlArea, name: str, ops: Iterable[Op]):
        raw = name.encode()
        if not raw or len(raw) > L.NAME_BYTES:
            raise ControlError(f"handler name {name!r} must be 1..{L.NAME_BYTES} bytes")
        self.area = area
        self.words = area.words
        self.name = name
        self.ops = frozenset(Op(op) for op in ops)
        self.slot = self._claim_slot(raw)
        self._buf = np.zeros(L.CMD_WORDS, np.int64)
        self._stuck_since: float | None = None
        self.skipped = 0  # sequences lost (fell behind) or abandoned by their issuer

    def _word(self, offset: int) -> int:
        return L.handler_word(self.slot, offset)

    def _claim_slot(self, raw: bytes) -> int:
        w = self.words
        slot = next((s for s in range(L.MAX_HANDLERS) if self.area.names[s] == raw), None)
        if slot is not None:  # our slot from before a restart: take it over
            atomic_store(w, L.handler_word(slot, L.H_STATE), int(HandlerState.SETTING_UP))
        else:
            # never-used slots first, then slots whose handler left cleanly
            order = sorted(range(L.MAX_HANDLERS),
                           key=lambda s: atomic_load(w, L.handler_word(s, L.H_ATTACHES)) > 0)
            for s in order:
                if atomic_cas(w, L.handler_word(s, L.H_STATE), int(HandlerState.FREE),
                              int(HandlerState.SETTING_UP)):
                    slot = s
                    self.area.names[s] = raw
                    break
            else:
                raise ControlError(f"control area: no free handler slot for {self.name!r}")
        atomic_store(w, L.handler_word(slot, L.H_OPS), L.ops_mask(self.ops))
        atomic_store(w, L.handler_word(slot, L.H_PID), os.getpid())
        atomic_store(w, L.handler_word(slot, L.H_SEEN), atomic_load(w, L.W_CLAIM))
        atomic_store(w, L.handler_word(slot, L.H_HEARTBEAT), time.monotonic_ns())
        atomic_store(w, L.handler_word(slot, L.H_ATTACHES),
                     atomic_load(w, L.handler_word(slot, L.H_ATTACHES)) + 1)
        atomic_store(w, L.handler_word(slot, L.H_STATE), int(HandlerState.ACTIVE))
        return slot

    # -- flags (Python side; jitted code calls kill_switch_on/quoting_paused directly)
    def kill_switch_on(self) -> bool:
        return bool(kill_switch_on(self.words))

    def poll(self) -> list[Command]:
        """New commands this handler executes, oldest first (each must be ``ack``ed)."""
        w = self.words
        atomic_store(w, self._word(L.H_HEARTBEAT), time.monotonic_ns())
        out: list[Command] = []
        seen = int(atomic_load(w, self._word(L.H_SEEN)))
        claimed = int(atomic_load(w, L.W_CLAIM))
        while seen < claimed:
            seq = seen + 1
            state = read_command(w, seq, self._buf)
            if state == 0:  # claimed but not written yet
                now = time.monotonic()
                self._stuck_since = self._stuck_since or now
                if now - self._stuck_since < ABANDONED_S:
                    break
                state = -1
            self._stuck_since = None
            seen = seq
            if state < 0:
                self.skipped += 1
                continue
            b = self._buf
            try:
                op = Op(int(b[L.CMD_OP]))
            except ValueError:
                self.skipped += 1  # an op this build does not know: never acked
                continue
            if op in self.ops:
                out.append(Command(seq, op, int(b[L.CMD_ARG0]), int(b[L.CMD_ARG1]),
                                   int(b[L.CMD_PID]), int(b[L.CMD_ISSUED_NS])))
        atomic_store(w, self._word(L.H_SEEN), seen)
        return out

    def ack(self, cmd: Command, status: Status = Status.DONE) -> None:
        word = L.ack_word(cmd.seq, self.slot)
        atomic_store(self.words, word + 1, int(status))
        atomic_store(self.words, word, cmd.seq)  # release: the status is visible first
        atomic_store(self.words, self._word(L.H_EXECUTED),
                     atomic_load(self.words, self._word(L.H_EXECUTED)) + 1)

    def close(self) -> None:
        """Leave: ``hft ctl`` stops waiting for this process (the slot keeps its name)."""
        atomic_store(self.words, self._word(L.H_STATE), int(HandlerState.FREE))
