"""Supervisor: keeps the pipeline's processes running, restarting crashed ones.

A crashed process is restarted with the same arguments; it reattaches to its rings at the
cursors it left in shared memory and rebuilds or reloads its own state (crash-only
design). Restarts back off exponentially; a process that crashes more than
``max_restarts`` times within ``window_s`` makes the supervisor give up and report
``failed``, so the launcher can stop the pipeline safely (cancel all first).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pipeline.runtime.processes import Child

log = logging.getLogger(__name__)


@dataclass
class RestartPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0


@dataclass
class _Track:
    child: Child
    crashes: list[float] = field(default_factory=list)
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    def __init__(self, children: list[Child], policy: RestartPolicy | None = None):
        self.policy = policy or RestartPolicy()
        self.tracks = {c.name: _Track(c) for c in children}
        self.failed: str | None = None
        self.events: list[str] = []

    def restarts(self) -> dict[str, int]:
        return {name: t.restarts for name, t in self.tracks.items()}

    def poll(self) -> bool:
        """Check every child once; restart what is due. False once it has given up."""
        now = time.monotonic()
        for name, t in self.tracks.items():
            if t.child.alive():
                continue
            if t.restart_at is None:
                code = t.child.popen.returncode if t.child.popen else None
                t.crashes = [c for c in t.crashes if now - c < self.policy.window_s] + [now]
                if len(t.crashes) > self.policy.max_restarts:
                    self.failed = (f"{name} crashed {len(t.crashes)} times in "
                                   f"{self.policy.window_s:.0f}s (last exit {code})")
                    self._event(f"giving up: {self.failed}")
                    return False
                delay = min(self.policy.backoff_s * 2 ** (len(t.crashes) - 1),
                            self.policy.max_backoff_s)
                t.restart_at = now + delay
                self._event(f"{name} exited with {code}; restarting in {delay:.2f}s")
            elif now >= t.restart_at:
                t.child.start()
                t.restarts += 1
                t.restart_at = None
                self._event(f"{name} restarted as pid {t.child.pid}")
        return True

    def _event(self, text: str) -> None:
        log.warning(text)
        self.events.append(text)
