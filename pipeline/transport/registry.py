"""The instance registry: one segment listing every segment of a pipeline instance.

Tools (monitor, ctl, cleanup) find everything from the instance name alone; ``instances``
and ``live_creators`` find the instances on this host from /dev/shm itself (for those whose
registry is gone or whose creator died). Entries are
appended by claiming an index with fetch-add, writing the entry, then release-storing its
state, so concurrent creators never collide and readers never see a half-written entry.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from pipeline.transport.segment import (
    PREFIX,
    Layout,
    Segment,
    SegmentError,
    SegmentMissing,
    pid_alive,
    shm_name,
    unlink,
)
from pipeline.transport.shared import atomic_add, atomic_load, atomic_store
from shm_layouts import SegmentKind, layout_hash

MAX_ENTRIES = 128
ENTRY = np.dtype([("name", "S48"), ("layout_name", "S48"), ("kind", "<i8"), ("size", "<i8")])
# int64 words: [0] next free index, then one state word per entry
_NEXT = 0
_STATE = 1
_UNUSED, _LIVE, _REMOVED = 0, 1, 2

REGISTRY = Layout(SegmentKind.REGISTRY, "registry", layout_hash(ENTRY, MAX_ENTRIES))
REGISTRY_NAME = "registry"
SHM_DIR = "/dev/shm"


@dataclass(frozen=True)
class Entry:
    name: str
    layout_name: str
    kind: SegmentKind
    size: int


class Registry:
    def __init__(self, seg: Segment):
        self.segment = seg
        self.words = seg.body[: (1 + MAX_ENTRIES) * 8].view(np.int64)
        self.entries = seg.body[(1 + MAX_ENTRIES) * 8:][: MAX_ENTRIES * ENTRY.itemsize].view(ENTRY)

    @classmethod
    def create(cls, instance: str) -> Registry:
        seg = Segment.create(instance, REGISTRY_NAME, REGISTRY,
                             (1 + MAX_ENTRIES) * 8 + MAX_ENTRIES * ENTRY.itemsize)
        seg.mark_ready()
        return cls(seg)

    @classmethod
    def attach(cls, instance: str, readonly: bool = False) -> Registry:
        try:
            return cls(Segment.attach(instance, REGISTRY_NAME, REGISTRY, readonly=readonly))
        except SegmentMissing:
            raise SegmentMissing(f"no pipeline instance {instance!r} on this host "
                                 f"({shm_name(instance, REGISTRY_NAME)} does not exist)") from None

    def add(self, name: str, layout: Layout, size: int) -> None:
        index = atomic_add(self.words, _NEXT, 1)
        if index >= MAX_ENTRIES:
            raise RuntimeError(f"registry full ({MAX_ENTRIES} segments)")
        self.entries[index] = (name.encode(), layout.name.encode(), int(layout.kind), size)
        atomic_store(self.words, _STATE + index, _LIVE)

    def remove(self, name: str) -> None:
        for index in self._live_indices():
            if self.entries[index]["name"].decode() == name:
                atomic_store(self.words, _STATE + index, _REMOVED)

    def list(self) -> list[Entry]:
        out = []
        for index in self._live_indices():
            e = self.entries[index]
            out.append(Entry(e["name"].decode(), e["layout_name"].decode(),
                             SegmentKind(int(e["kind"])), int(e["size"])))
        return out

    def _live_indices(self) -> list[int]:
        n = min(atomic_load(self.words, _NEXT), MAX_ENTRIES)
        return [i for i in range(n) if atomic_load(self.words, _STATE + i) == _LIVE]

    def close(self) -> None:
        self.words = self.entries = None  # type: ignore[assignment]
        self.segment.close()


class Instance:
    """A named pipeline instance: creates, attaches and finally removes its segments."""

    def __init__(self, name: str, registry: Registry, owner: bool):
        self.name = name
        self.registry = registry
        self.owner = owner
        self._created: list[Segment] = []

    @classmethod
    def create(cls, name: str) -> Instance:
        return cls(name, Registry.create(name), owner=True)

    @classmethod
    def attach(cls, name: str, readonly: bool = False) -> Instance:
        return cls(name, Registry.attach(name, readonly=readonly), owner=False)

    def create_segment(self, name: str, layout: Layout, body_size: int) -> Segment:
        seg = Segment.create(self.name, name, layout, body_size)
        self.registry.add(name, layout, int(seg.header["total_size"]))
        self._created.append(seg)
        return seg

    def attach_segment(self, name: str, layout: Layout, readonly: bool = False) -> Segment:
        return Segment.attach(self.name, name, layout, readonly=readonly)

    def remove_segment(self, name: str) -> None:
        """Unlink one segment and drop it from the registry."""
        unlink(shm_name(self.name, name))
        self.registry.remove(name)

    def segments(self) -> list[Entry]:
        return self.registry.list()

    def destroy(self) -> None:
        """Unlink every segment of the instance, then the registry itself."""
        for entry in self.registry.list():
            unlink(shm_name(self.name, entry.name))
        for seg in self._created:
            seg.close()
        self._created.clear()
        self.registry.segment.unlink()
        self.registry.close()


# ---------------------------------------------------------------- instances on this host
def instances() -> dict[str, list[str]]:
    """Segment names in /dev/shm grouped by instance."""
    out: dict[str, list[str]] = defaultdict(list)
    for f in sorted(os.listdir(SHM_DIR)):
        if f.startswith(PREFIX[1:]) and f.count(".") >= 2:
            out[f.split(".")[1]].append("/" + f)
    return out


def live_creators(names: list[str]) -> set[int]:
    """Pids of the processes that created segments ``names`` and still run."""
    pids = set()
    for full in names:
        try:
            seg = Segment.open(full, readonly=True)
        except (SegmentError, OSError):
            continue
        pid, created = seg.creator_pid, int(seg.header["created_ns"])
        seg.close()
        if pid_alive(pid, created):
            pids.add(pid)
    return pids
