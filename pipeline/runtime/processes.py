"""Starting and stopping pipeline processes (``python -m procs.<name> ...``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from pipeline.metrics.counters import Counters
from shm_layouts.counters import ProcessState


@dataclass
class Child:
    name: str
    module: str
    args: list[str]
    env: dict[str, str] | None = field(default=None, repr=False)  # None: inherit ours
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Child:
        self.popen = subprocess.Popen([sys.executable, "-m", self.module, *self.args],
                                      stdin=subprocess.DEVNULL, env=self.env)
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else -1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def wait_running(counters: Counters, children: list[Child], timeout: float = 60.0) -> None:
    """Block until every child reports RUNNING in the counters area; fail fast if one dies."""
    deadline = time.monotonic() + timeout
    while True:
        states = {p["name"]: (p["pid"], p["state"]) for p in counters.processes()}
        missing = [c.name for c in children
                   if states.get(c.name, (0, 0)) != (c.pid, ProcessState.RUNNING)]
        if not missing:
            return
        dead = [f"{c.name} (exit {c.popen.returncode})" for c in children if not c.alive()]
        if dead:
            raise RuntimeError(f"process exited during start-up: {', '.join(dead)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not running after {timeout:.0f}s: {', '.join(missing)}")
        time.sleep(0.02)


def stop(children: list[Child], timeout: float = 10.0) -> dict[str, int]:
    """SIGTERM in the given order, each waited for; SIGKILL what does not stop in time."""
    codes = {}
    for c in children:
        if c.alive():
            c.popen.send_signal(signal.SIGTERM)
            try:
                c.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(c.pid, signal.SIGKILL)
                c.popen.wait()
        codes[c.name] = c.popen.returncode if c.popen else None
    return codes
