"""Finding a pipeline instance from its name, for tools (monitor, ctl).

Every failure is an ``InstanceUnavailable`` whose message says what to do; the commands
print it and exit 2, never a traceback.
"""

from __future__ import annotations

import time

from pipeline import config as cfgmod
from pipeline.transport.registry import Instance, instances, live_creators
from pipeline.transport.segment import (
    LayoutMismatch,
    Segment,
    SegmentError,
    SegmentMissing,
    pid_alive,
    shm_name,
)
from shm_layouts import SegmentState

EXIT_UNAVAILABLE = 2


class InstanceUnavailable(RuntimeError):
    pass


def _creator_alive(seg: Segment) -> bool:
    return pid_alive(seg.creator_pid, int(seg.header["created_ns"]))


def live_instances() -> list[str]:
    """Instances on this host that are alive (see ``alive``)."""
    out = []
    for name, segments in instances().items():
        if not any(s.endswith(".registry") for s in segments):
            continue
        try:
            inst = Instance.attach(name, readonly=True)
        except (SegmentError, OSError, ValueError):
            continue
        if alive(inst):
            out.append(name)
        inst.registry.close()
    return sorted(out)


def resolve(name: str | None, config_path: str | None = None) -> str:
    """The instance to use: ``name``, else the config's, else the only one running."""
    if name:
        return name
    default = cfgmod.load(config_path)["instance"]["name"]
    live = live_instances()
    if default in live or not live:
        return default
    if len(live) == 1:
        return live[0]
    raise InstanceUnavailable(f"no instance {default!r}, and several are running "
                              f"({', '.join(live)}): name one")


def attach(name: str) -> Instance:
    """Attach read-only to a live instance's registry."""
    try:
        inst = Instance.attach(name, readonly=True)
    except SegmentMissing:
        live = live_instances()
        hint = f"running: {', '.join(live)}" if live else "none is running on this host"
        raise InstanceUnavailable(f"no pipeline instance {name!r} ({hint}); start one with "
                                  f"./run.sh") from None
    except (LayoutMismatch, SegmentError, ValueError) as e:
        raise InstanceUnavailable(f"cannot attach to instance {name!r}: {e}") from None
    if not alive(inst):
        pid = inst.registry.segment.creator_pid
        inst.registry.close()
        raise InstanceUnavailable(
            f"instance {name!r} is dead: its creator pid {pid} and every process that "
            f"created its segments are gone; `hft cleanup {name}` removes them")
    return inst


def alive(inst: Instance) -> bool:
    """The registry is open and its creator, the creator of any of its segments, or a
    process registered in its counters area runs: a launcher that died while its
    processes still run is not a dead instance."""
    seg = inst.registry.segment
    if seg.state() != SegmentState.READY:
        return False
    if _creator_alive(seg):
        return True
    entries = inst.segments()
    if live_creators([shm_name(inst.name, e.name) for e in entries]):
        return True
    return any(e.layout_name == "counters" for e in entries) and _a_process_runs(inst)


def _a_process_runs(inst: Instance) -> bool:
    """Some process registered in the counters area is still running."""
    from pipeline.metrics.counters import Counters
    try:
        counters = Counters.attach(inst, readonly=True)
    except SegmentError:
        return False
    try:
        return any(pid_alive(p["pid"], time.time_ns()) for p in counters.processes()
                   if p["state_name"] in ("STARTING", "RUNNING", "STOPPING"))
    finally:
        counters.close()
