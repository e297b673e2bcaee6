"""POSIX shared-memory segments with a self-describing header.

A segment is created mode 0600 under ``/hft.<instance>.<name>``, so two pipeline instances
on one host never see each other's segments. Its first 128 bytes are ``SEGMENT_HEADER``:
magic, layout version, the hash of the body's dtypes, the creator pid and a state word.
``attach`` checks all three identity fields and fails naming both sides, so a process
built against another layout never reads garbage.
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import dataclass

import numpy as np
import posix_ipc
import psutil

from pipeline.transport.shared import atomic_load, atomic_store
from shm_layouts import LAYOUT_VERSION, MAGIC, SEGMENT_HEADER, SegmentKind, SegmentState
from shm_layouts.headers import HEADER_SIZE, STATE_WORD

PREFIX = "/hft."
BODY_ALIGN = 4096


class SegmentError(RuntimeError):
    """Base class: every segment failure says which segment and why."""


class SegmentMissing(SegmentError):
    pass


class SegmentLive(SegmentError):
    """Refused to clobber a segment whose creator is still running."""


class LayoutMismatch(SegmentError):
    pass


def validate_name(part: str, what: str) -> str:
    if not part or not all(c.isalnum() or c in "_-" for c in part):
        raise ValueError(f"{what} {part!r} must be non-empty [A-Za-z0-9_-]")
    return part


def shm_name(instance: str, name: str) -> str:
    instance = validate_name(instance, "instance name")
    return f"{PREFIX}{instance}.{validate_name(name, 'segment name')}"


@dataclass(frozen=True)
class Layout:
    """What a segment's body holds: the identity ``attach`` verifies."""

    kind: SegmentKind
    name: str  # human-readable, e.g. "ring:md_event"
    hash: int


def pid_alive(pid: int, created_realtime_ns: int | None = None) -> bool:
    """True if ``pid`` runs (a zombie, killed but not yet reaped, is dead) and, given
    ``created_realtime_ns``, started before that time: a pid reused since is not alive.
    The one liveness check for pids read from shared memory (segments, rings, counters)."""
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if created_realtime_ns is not None and proc.create_time() * 1e9 > created_realtime_ns + 1e9:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


class Segment:
    """A mapped segment: ``header`` (structured view), ``words`` (the header as int64 for
    atomics) and ``body`` (uint8 view of everything after the header)."""

    def __init__(self, name: str, mm: mmap.mmap, readonly: bool):
        self.name = name
        self.readonly = readonly
        self._mm = mm
        self.header = np.frombuffer(mm, SEGMENT_HEADER, count=1)[0]
        self.words = np.frombuffer(mm, np.int64, count=HEADER_SIZE // 8)
        offset = int(self.header["body_offset"])
        self.body = np.frombuffer(mm, np.uint8, count=len(mm) - offset, offset=offset)

    # ---- creation ----------------------------------------------------------------------
    @classmethod
    def create(cls, instance: str, name: str, layout: Layout, body_size: int) -> Segment:
        """Create a fresh segment (mode 0600). A stale one (creator dead) is replaced; a
        live one is refused with ``SegmentLive``."""
        full = shm_name(instance, name)
        size = BODY_ALIGN + _round_up(body_size, BODY_ALIGN)
        try:
            shm = posix_ipc.SharedMemory(full, posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError:
            _remove_if_stale(full)
            shm = posix_ipc.SharedMemory(full, posix_ipc.O_CREX, mode=0o600, size=size)
        os.fchmod(shm.fd, 0o600)  # independent of the umask
        mm = mmap.mmap(shm.fd, size)
        shm.close_fd()
        header = np.frombuffer(mm, SEGMENT_HEADER, count=1)[0]
        header["magic"] = MAGIC
        header["layout_version"] = LAYOUT_VERSION
        header["kind"] = int(layout.kind)
        header["layout_hash"] = layout.hash
        header["creator_pid"] = os.getpid()
        header["created_ns"] = time.time_ns()
        header["total_size"] = size
        header["body_offset"] = BODY_ALIGN
        header["layout_name"] = layout.name.encode()
        seg = cls(full, mm, readonly=False)
        atomic_store(seg.words, STATE_WORD, int(SegmentState.CREATING))
        return seg

    def mark_ready(self) -> None:
        """Publish the initialised body: attachers acquire-load this state word."""
        atomic_store(self.words, STATE_WORD, int(SegmentState.READY))

    # ---- attaching ---------------------------------------------------------------------
    @classmethod
    def attach(
        cls,
        instance: str,
        name: str,
        layout: Layout,
        *,
        readonly: bool = False,
        timeout: float = 5.0,
    ) -> Segment:
        """Map an existing segment, verify its identity and wait until it is READY."""
        full = shm_name(instance, name)
        seg = cls.open(full, readonly)
        seg.check(layout)
        deadline = time.monotonic() + timeout
        while seg.state() == SegmentState.CREATING:
            if time.monotonic() > deadline:
                raise SegmentError(f"{full}: still initialising after {timeout:.1f}s "
                                   f"(creator pid {int(seg.header['creator_pid'])})")
            time.sleep(0.001)
        if seg.state() != SegmentState.READY:
            raise SegmentError(f"{full}: state {seg.state().name}, not READY")
        return seg

    @classmethod
    def open(cls, full: str, readonly: bool) -> Segment:
        """Map by full name without any identity check (tools, stale-segment checks)."""
        try:
            shm = posix_ipc.SharedMemory(full, read_only=readonly)
        except posix_ipc.ExistentialError:
            raise SegmentMissing(f"shared-memory segment {full} does not exist "
                                 f"(is the pipeline instance running?)") from None
        prot = mmap.PROT_READ if readonly else mmap.PROT_READ | mmap.PROT_WRITE
        if shm.size < BODY_ALIGN:
            shm.close_fd()
            raise SegmentError(f"{full}: {shm.size} bytes, too small to hold a header")
        mm = mmap.mmap(shm.fd, shm.size, prot=prot)
        shm.close_fd()
        return cls(full, mm, readonly)

    def check(self, layout: Layout) -> None:
        h = self.header
        theirs = (f"magic {int(h['magic']):#x}, layout v{int(h['layout_version'])}, "
                  f"{h['layout_name'].decode(errors='replace')!r} hash {int(h['layout_hash']):#x}")
        ours = (f"magic {MAGIC:#x}, layout v{LAYOUT_VERSION}, {layout.name!r} "
                f"hash {layout.hash:#x}")
        if (int(h["magic"]) != MAGIC or int(h["layout_version"]) != LAYOUT_VERSION
                or int(h["kind"]) != int(layout.kind) or int(h["layout_hash"]) != layout.hash):
            raise LayoutMismatch(f"{self.name}: segment has {theirs}; this process expects {ours}")

    # ---- lifecycle ---------------------------------------------------------------------
    def state(self) -> SegmentState:
        return SegmentState(atomic_load(self.words, STATE_WORD))

    @property
    def creator_pid(self) -> int:
        return int(self.header["creator_pid"])

    def mode(self) -> int:
        shm = posix_ipc.SharedMemory(self.name, read_only=True)
        try:
            return os.fstat(shm.fd).st_mode & 0o777
        finally:
            shm.close_fd()

    def close(self) -> None:
        """Unmap. Views handed out earlier keep the mapping alive until they are dropped."""
        self.header = self.words = self.body = None  # type: ignore[assignment]
        try:
            self._mm.close()
        except BufferError:
            pass  # a caller still holds a numpy view; the mapping goes with it

    def unlink(self) -> None:
        """Mark CLOSED and remove the name; mappings stay valid until unmapped."""
        if not self.readonly and self.words is not None:
            atomic_store(self.words, STATE_WORD, int(SegmentState.CLOSED))
        unlink(self.name)


def unlink(full: str) -> bool:
    try:
        posix_ipc.unlink_shared_memory(full)
        return True
    except posix_ipc.ExistentialError:
        return False


def _remove_if_stale(full: str) -> None:
    seg = Segment.open(full, readonly=True)
    try:
        pid, created = int(seg.header["creator_pid"]), int(seg.header["created_ns"])
        if int(seg.header["magic"]) == MAGIC and seg.state() != SegmentState.CLOSED \
                and pid_alive(pid, created):
            raise SegmentLive(f"{full} already exists and its creator pid {pid} is alive; "
                              f"stop that pipeline or choose another instance name")
    finally:
        seg.close()
    unlink(full)


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align
