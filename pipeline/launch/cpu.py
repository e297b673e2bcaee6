"""CPU time the run's processes use over a window (user + system, from /proc/<pid>/stat
through psutil): what a core layout costs the host while trading at the run's rate, and
while the market is quiet (``hft run --idle-seconds``: the simulator's flow paused)."""

from __future__ import annotations

import time

import psutil


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system seconds each process has used so far (a gone process is left out)."""
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out[name] = t.user + t.system
    return out


class CpuWindow:
    """CPU use of ``pids`` from now until ``result()``: per process, as a share of one core."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self.start = cpu_seconds(self.pids)
        self.t0 = time.monotonic()

    def result(self, pipeline: tuple[str, ...]) -> dict:
        """``{"seconds", "processes": {name: {"cpu_s", "core_pct"}}, "pipeline_core_pct"}``;
        ``pipeline_core_pct`` sums the processes named in ``pipeline`` (not the venue)."""
        wall = max(time.monotonic() - self.t0, 1e-9)
        end = cpu_seconds(self.pids)
        procs = {name: {"cpu_s": round(end[name] - self.start[name], 3),
                        "core_pct": round(100 * (end[name] - self.start[name]) / wall, 2)}
                 for name in self.start if name in end}
        return {"seconds": round(wall, 3), "processes": procs,
                "pipeline_core_pct": round(sum(p["core_pct"] for n, p in procs.items()
                                               if n in pipeline), 2)}
