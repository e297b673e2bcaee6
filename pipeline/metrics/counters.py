"""The counters segment: process slots, named counters and latency histograms.

Allocation (cold path) claims an index with fetch-add and release-stores the label's
presence; values are single-writer and updated from jitted code with relaxed atomics
(``bump``), so the monitor can read them at any time through a read-only mapping.
"""

from __future__ import annotations

import os
import time

import numpy as np
from numba import njit

from pipeline.metrics import histogram
from pipeline.transport.atomics import load_relaxed, store_relaxed
from pipeline.transport.registry import Instance
from pipeline.transport.segment import Layout
from pipeline.transport.shared import atomic_add, atomic_load, atomic_store
from shm_layouts import SegmentKind, layout_hash
from shm_layouts import counters as L
from shm_layouts.histogram import HISTOGRAM_WORDS
from shm_layouts.ring import LINE_WORDS

COUNTERS = Layout(SegmentKind.COUNTERS, "counters",
                  layout_hash(L.WORDS, L.LABELS, L.LABEL, L.MAX_PROCESSES, HISTOGRAM_WORDS))
SEGMENT_NAME = "counters"


@njit(cache=True)
def bump(words, index, delta):
    """Add to a single-writer counter (``index`` from ``Counters.counter``)."""
    store_relaxed(words, index, load_relaxed(words, index) + delta)


class Counters:
    def __init__(self, seg):
        self.segment = seg
        self.words = seg.body[: L.WORDS * 8].view(np.int64)
        self.labels = seg.body[L.WORDS * 8: L.WORDS * 8 + L.LABELS * L.LABEL_BYTES].view(L.LABEL)

    @classmethod
    def create(cls, instance: Instance) -> Counters:
        seg = instance.create_segment(SEGMENT_NAME, COUNTERS,
                                      L.WORDS * 8 + L.LABELS * L.LABEL_BYTES)
        seg.mark_ready()
        return cls(seg)

    @classmethod
    def attach(cls, instance: Instance, readonly: bool = False) -> Counters:
        return cls(instance.attach_segment(SEGMENT_NAME, COUNTERS, readonly=readonly))

    # -- allocation (cold path)
    def _allocate(self, cursor_word: int, limit: int, label_base: int, label: str) -> int:
        for i in range(min(int(atomic_load(self.words, cursor_word)), limit)):
            if self.labels[label_base + i].decode() == label:
                return i  # re-attach after a restart: same label, same slot
        i = int(atomic_add(self.words, cursor_word, 1))
        if i >= limit:
            raise RuntimeError(f"counters area full: cannot allocate {label!r}")
        self.labels[label_base + i] = label.encode()[: L.LABEL_BYTES]
        return i

    def process(self, name: str) -> int:
        """Slot of process ``name`` (the same slot again after a restart)."""
        slot = self._allocate(L.NEXT_PROCESS, L.MAX_PROCESSES, 0, name)
        base = self.process_base(slot)
        if atomic_load(self.words, base + L.PROC_PID):
            atomic_add(self.words, base + L.PROC_RESTARTS, 1)
        atomic_store(self.words, base + L.PROC_PID, os.getpid())
        atomic_store(self.words, base + L.PROC_STARTED, time.monotonic_ns())
        return slot

    def counter(self, label: str) -> int:
        """Word index of counter ``label``: pass it with ``words`` to ``bump``."""
        return L.COUNTER_BASE + self._allocate(L.NEXT_COUNTER, L.MAX_COUNTERS,
                                               L.MAX_PROCESSES, label)

    def histogram(self, label: str) -> np.ndarray:
        """The int64 words of histogram ``label`` (pass to ``histogram.record``)."""
        i = self._allocate(L.NEXT_HISTOGRAM, L.MAX_HISTOGRAMS,
                           L.MAX_PROCESSES + L.MAX_COUNTERS, label)
        start = L.HISTOGRAM_BASE + i * HISTOGRAM_WORDS
        return self.words[start: start + HISTOGRAM_WORDS]

    @staticmethod
    def process_base(slot: int) -> int:
        return L.PROCESS_BASE + slot * LINE_WORDS

    # -- reading (monitor, tests)
    def processes(self) -> list[dict]:
        out = []
        for slot in range(min(int(atomic_load(self.words, L.NEXT_PROCESS)), L.MAX_PROCESSES)):
            base = self.process_base(slot)
            row = {k: int(atomic_load(self.words, base + off)) for k, off in (
                ("pid", L.PROC_PID), ("core", L.PROC_CORE), ("state", L.PROC_STATE),
                ("heartbeat_ns", L.PROC_HEARTBEAT), ("started_ns", L.PROC_STARTED),
                ("restarts", L.PROC_RESTARTS), ("slices", L.PROC_SLICES), ("work", L.PROC_WORK))}
            row["name"] = self.labels[slot].decode()
            row["state_name"] = L.ProcessState(row["state"]).name
            out.append(row)
        return out

    def values(self) -> dict[str, int]:
        n = min(int(atomic_load(self.words, L.NEXT_COUNTER)), L.MAX_COUNTERS)
        return {self.labels[L.MAX_PROCESSES + i].decode():
                int(atomic_load(self.words, L.COUNTER_BASE + i)) for i in range(n)}

    def histogram_words(self) -> dict[str, np.ndarray]:
        """label -> a copy of the histogram's words (``histogram.since`` takes two)."""
        n = min(int(atomic_load(self.words, L.NEXT_HISTOGRAM)), L.MAX_HISTOGRAMS)
        out = {}
        for i in range(n):
            label = self.labels[L.MAX_PROCESSES + L.MAX_COUNTERS + i].decode()
            start = L.HISTOGRAM_BASE + i * HISTOGRAM_WORDS
            out[label] = self.words[start: start + HISTOGRAM_WORDS].copy()
        return out

    def histograms(self, since: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
        """label -> percentiles; with ``since`` (an earlier ``histogram_words``), of what
        was recorded after it."""
        out = {}
        for label, words in self.histogram_words().items():
            if since is not None and label in since:
                words = histogram.since(words, since[label])
            out[label] = histogram.percentiles(words)
        return out

    def close(self) -> None:
        self.words = self.labels = None  # type: ignore[assignment]
        self.segment.close()
