"""CompositeAgent: several agents in one thread (one process, one core), idling once for all.

Used by ``procs.composite`` to host the four pipeline agents in one busy-spinning process on
a small host, so a tick does not pay a park wake-up per hop.
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.runtime import idle as idle_strategies
from pipeline.runtime.agent import ONE_CYCLE, Agent
from pipeline.runtime.fused import FusedLoop
from pipeline.runtime.idle import WaitFd, idle
from pipeline.transport.ring import RingView


class CompositeAgent(Agent):
    """Runs several agents round-robin in one thread; idles once for all of them.

    ``rounds``: "slice" (default) lets each child poll ``CLOCK_CHECK_EVERY`` cycles per
    round; "single" gives each child one duty cycle per round, so a message crosses every
    hop in one round; "fused" runs the children's ``hot_duty`` cycles in one jitted loop
    (``pipeline.runtime.fused``: no Python between hops), falling back to single-cycle
    rounds while a child has no hot duty. ``close_order``: child names in the order their
    ``on_close`` runs (default: the round-robin order).
    """

    ROUNDS = ("slice", "single", "fused")

    def __init__(self, agents: list[Agent], name: str | None = None, *,
                 rounds: str = "slice", close_order: list[str] | None = None):
        if rounds not in self.ROUNDS:
            raise ValueError(f"rounds {rounds!r}: one of {', '.join(self.ROUNDS)}")
        self.agents = list(agents)
        self.name = name or "+".join(a.name for a in agents)
        self._child_idle = idle_strategies.noop()
        self.rounds = rounds
        self._fused = FusedLoop() if rounds == "fused" else None
        by_name = {a.name: a for a in self.agents}
        self._closing = ([by_name[n] for n in close_order if n in by_name]
                         + [a for a in self.agents if a.name not in close_order]
                         if close_order else self.agents)

    def on_start(self) -> None:
        for a in self.agents:
            a.on_start()
        if self._fused:  # compile the fused loop now (~10 s), not after the FIX logon
            templates = [a.duty_template() for a in self.agents]
            if all(t is not None for t in templates):
                self._fused.compile(templates, self._child_idle)

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        total = 0
        while True:
            hot = [a.hot_duty() for a in self.agents] if self._fused else [None]
            if all(h is not None for h in hot):
                total += self._fused(hot, idle_state, deadline_ns)
                for a in self.agents:
                    a.after_hot()
            else:
                # each child polls CLOCK_CHECK_EVERY cycles (deadline already due), or one
                now = time.monotonic_ns() if self.rounds == "slice" else ONE_CYCLE
                work = sum(a.do_work(self._child_idle, now) for a in self.agents)
                total += work
                idle(idle_state, work)
            if time.monotonic_ns() >= deadline_ns:
                return total

    def wait_ring(self) -> RingView | None:
        """The first agent's (the head of the data flow): for feed + book + strategy +
        gateway that is a socket, so a blocking composite sleeps on ``wait_fds``."""
        return self.agents[0].wait_ring()

    def wait_fds(self) -> list[WaitFd]:
        """Every child's (feed + ... + gateway: the md and the FIX sockets): the rings between
        them are drained within a round, so only a socket brings new work."""
        return [w for a in self.agents for w in a.wait_fds()]

    def fused_rounds(self) -> int:
        """Rounds the fused loop has run (its frequency, sampled over time, shows how much
        of the core goes to polling versus work)."""
        return int(self._fused.rounds[0]) if self._fused else 0

    def housekeeping(self, now_ns: int) -> bool:
        alive = [a.housekeeping(now_ns) for a in self.agents]
        return any(alive)

    def on_close(self) -> None:
        """Every child closes even when an earlier one fails (the gateway must cancel)."""
        error = None
        for a in self._closing:
            try:
                a.on_close()
            except Exception as e:  # noqa: BLE001 - re-raised after the others closed
                error = error or e
        if error is not None:
            raise error
