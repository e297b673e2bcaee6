"""Segments and the instance registry: permissions, identity checks, isolation, cleanup."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.transport.registry import Instance, Registry
from pipeline.transport.segment import (
    Layout,
    LayoutMismatch,
    Segment,
    SegmentLive,
    SegmentMissing,
    shm_name,
)
from shm_layouts import LAYOUT_VERSION, SegmentKind, SegmentState, layout_hash

STATE = Layout(SegmentKind.STATE, "state:test", layout_hash(np.dtype("<i8"), "test"))


def test_segments_are_created_mode_0600(instance):
    seg = instance.create_segment("s", STATE, 64)
    old = os.umask(0)  # even with a permissive umask
    try:
        assert seg.mode() == 0o600
        assert os.stat(f"/dev/shm{seg.name}").st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_attach_checks_the_layout_and_names_both_sides(instance):
    instance.create_segment("s", STATE, 64).mark_ready()
    other = Layout(SegmentKind.STATE, "state:other", STATE.hash + 1)
    with pytest.raises(LayoutMismatch) as e:
        instance.attach_segment("s", other)
    msg = str(e.value)
    assert f"{STATE.hash:#x}" in msg and f"{other.hash:#x}" in msg
    assert "state:test" in msg and "state:other" in msg


def test_attach_rejects_another_layout_version(instance):
    seg = instance.create_segment("s", STATE, 64)
    seg.header["layout_version"] = LAYOUT_VERSION + 1
    seg.mark_ready()
    with pytest.raises(LayoutMismatch, match=f"layout v{LAYOUT_VERSION + 1}"):
        instance.attach_segment("s", STATE)


def test_attach_rejects_a_foreign_segment(instance_name):
    import posix_ipc

    name = shm_name(instance_name, "foreign")
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=8192)
    shm.close_fd()
    try:
        with pytest.raises(LayoutMismatch, match="magic 0x0"):
            Segment.attach(instance_name, "foreign", STATE)
    finally:
        posix_ipc.unlink_shared_memory(name)


def test_missing_segment_and_missing_instance_are_clear(instance):
    with pytest.raises(SegmentMissing, match="does not exist"):
        instance.attach_segment("nope", STATE)
    with pytest.raises(SegmentMissing, match="no pipeline instance 'nosuchinstance'"):
        Instance.attach("nosuchinstance")


def test_refuses_to_clobber_a_live_segment_but_replaces_a_stale_one(instance):
    seg = instance.create_segment("s", STATE, 64)
    seg.mark_ready()
    with pytest.raises(SegmentLive, match=f"pid {os.getpid()} is alive"):
        instance.create_segment("s", STATE, 64)
    # a segment whose creator died is stale: the next creator takes it over
    code = ("from pipeline.transport.segment import *; from shm_layouts import *;"
            f"Segment.create({instance.name!r}, 'dead', Layout(SegmentKind.STATE, 'x', 1), 64)"
            ".mark_ready()")
    subprocess.run([sys.executable, "-c", code], check=True)
    fresh = instance.create_segment("dead", STATE, 64)
    assert fresh.creator_pid == os.getpid()


def test_attach_waits_for_ready_and_readonly_cannot_write(instance):
    seg = instance.create_segment("s", STATE, 64)
    with pytest.raises(Exception, match="still initialising"):
        Segment.attach(instance.name, "s", STATE, timeout=0.05)
    seg.body[:8].view(np.int64)[0] = 42
    seg.mark_ready()
    ro = instance.attach_segment("s", STATE, readonly=True)
    assert ro.body[:8].view(np.int64)[0] == 42
    with pytest.raises(ValueError):
        ro.body[0] = 1


def test_two_instances_side_by_side_do_not_see_each_other(instance_name):
    a, b = Instance.create(instance_name + "a"), Instance.create(instance_name + "b")
    try:
        a.create_segment("ring", STATE, 64).mark_ready()
        b.create_segment("ring", STATE, 128).mark_ready()
        b.create_segment("extra", STATE, 64).mark_ready()
        assert [e.name for e in Instance.attach(a.name).segments()] == ["ring"]
        assert [e.name for e in Instance.attach(b.name).segments()] == ["ring", "extra"]
        with pytest.raises(SegmentMissing):
            a.attach_segment("extra", STATE)
    finally:
        a.destroy()
        b.destroy()


def test_destroy_removes_every_segment(instance_name):
    inst = Instance.create(instance_name)
    for n in ("one", "two"):
        inst.create_segment(n, STATE, 64).mark_ready()
    names = [shm_name(instance_name, n) for n in ("registry", "one", "two")]
    assert all(os.path.exists(f"/dev/shm{n}") for n in names)
    inst.destroy()
    assert not any(os.path.exists(f"/dev/shm{n}") for n in names)


def test_unlinked_segment_is_closed_and_leaves_the_registry(instance):
    seg = instance.create_segment("s", STATE, 64)
    seg.mark_ready()
    instance.create_segment("t", STATE, 64).mark_ready()
    seg.unlink()
    assert seg.state() == SegmentState.CLOSED
    instance.remove_segment("s")
    reg = Registry.attach(instance.name, readonly=True)
    assert [e.name for e in reg.list()] == ["t"]
    with pytest.raises(SegmentMissing):
        instance.attach_segment("s", STATE)


def test_cleanup_removes_a_dead_instance_and_keeps_a_live_one(instance, instance_name):
    dead = instance_name + "dead"
    code = ("from pipeline.transport.registry import Instance; "
            f"Instance.create({dead!r})")  # exits without destroy: segments left behind
    subprocess.run([sys.executable, "-c", code], check=True)
    assert os.path.exists(f"/dev/shm/hft.{dead}.registry")
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "cleanup", dead],
                         capture_output=True, text=True, check=True)
    assert f"removed /hft.{dead}.registry" in out.stdout
    assert not os.path.exists(f"/dev/shm/hft.{dead}.registry")
    live = subprocess.run([sys.executable, "-m", "pipeline.cli", "cleanup", instance.name],
                          capture_output=True, text=True)
    assert live.returncode == 1 and "still in use" in live.stdout
    assert os.path.exists(f"/dev/shm/hft.{instance.name}.registry")
