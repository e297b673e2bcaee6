"""Finding a pipeline instance from its name, for tools (monitor, ctl).

Every failure is an ``InstanceUnavailable`` whose message says what to do; the commands
print it and exit 2, never a traceback.
"""

from __future__ import annotations

from pipeline import config as cfgmod
from pipeline.commands.cleanup import instances
from pipeline.transport.registry import Instance
from pipeline.transport.segment import (
    LayoutMismatch,
    Segment,
    SegmentError,
    SegmentMissing,
    pid_alive,
)

EXIT_UNAVAILABLE = 2


class InstanceUnavailable(RuntimeError):
    pass


def _creator_alive(seg: Segment) -> bool:
    return pid_alive(seg.creator_pid, int(seg.header["created_ns"]))


def live_instances() -> list[str]:
    """Instances on this host whose registry's creator is running."""
    out = []
    for name, segments in instances().items():
        registry = [s for s in segments if s.endswith(".registry")]
        if not registry:
            continue
        try:
            seg = Segment.open(registry[0], readonly=True)
        except (SegmentError, OSError):
            continue
        if _creator_alive(seg):
            out.append(name)
        seg.close()
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
    seg = inst.registry.segment
    if not _creator_alive(seg):
        pid = seg.creator_pid
        inst.registry.close()
        raise InstanceUnavailable(
            f"instance {name!r} is dead: its creator pid {pid} is gone and left "
            f"its segments behind; `hft cleanup {name}` removes them")
    return inst
