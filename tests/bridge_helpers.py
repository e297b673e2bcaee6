"""Two instances on this host joined by ``hft bridge`` over loopback UDP."""

from __future__ import annotations

import os
import signal
import time
import uuid

import numpy as np

from pipeline.bridge.aeron import free_udp_port, udp_channel
from pipeline.metrics.counters import Counters
from pipeline.runtime.processes import Child, wait_running
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring

__all__ = ["Side", "free_udp_port", "numbered", "payload", "publish_all", "udp_channel"]


class Side:
    """One instance with its counters area; destroyed (every segment) by ``close``."""

    def __init__(self, tag: str):
        self.name = f"br{tag}{os.getpid()}{uuid.uuid4().hex[:6]}"
        self.inst = Instance.create(self.name)
        self.counters = Counters.create(self.inst)
        self.children: list[Child] = []

    def start(self, role: str, ring: str, chan: str, stream_id: int, aeron_dir: str,
              *extra: str, wait: bool = True) -> Child:
        child = Child(f"bridge_{role}_{ring}", "procs.bridge",
                      [role, "--instance", self.name, "--ring", ring, "--channel", chan,
                       "--stream-id", str(stream_id), "--aeron-dir", aeron_dir,
                       "--idle", "backoff", *extra]).start()
        self.children.append(child)
        if wait:
            wait_running(self.counters, [child], timeout=120)
        return child

    def value(self, label: str) -> int:
        return self.counters.values().get(label, 0)

    def close(self) -> None:
        for c in self.children:
            if c.alive():
                c.popen.send_signal(signal.SIGTERM)
                try:
                    c.popen.wait(20)
                except Exception:
                    c.popen.kill()
                    c.popen.wait()
        self.counters.close()
        self.inst.destroy()


def numbered(dtype: np.dtype, first: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` records of random bytes whose ``t_origin_ns`` is their index from ``first``."""
    raw = rng.integers(0, 256, (n, dtype.itemsize), dtype=np.uint8)
    recs = raw.reshape(-1).view(dtype).copy()
    recs["seq"] = 0
    recs["t_origin_ns"] = np.arange(first, first + n)
    return recs


def publish_all(ring: Ring, recs: np.ndarray, stop=None) -> int:
    """Offer every record (cold path), waiting while a gating consumer holds the ring."""
    for i, rec in enumerate(recs):
        while not ring.offer(rec):
            if stop is not None and stop():
                return i
            time.sleep(0.0005)
    return len(recs)


def payload(ring: Ring, start: int, n: int) -> np.ndarray:
    """Records ``start..start+n`` of ``ring`` as uint8 rows without their ``seq`` stamp."""
    idx = (np.arange(start, start + n)) & ring.mask
    return ring.raw[idx, 8:].copy()
