"""Read-only view of a ring's control words: what the monitor shows, without joining.

Joining a ring (even as an observer) writes a consumer slot; the monitor never does. It
maps the segment read-only and acquire-loads the producer and consumer words. For a
stream whose record dtype this build knows, the segment is attached through ``Ring``
(full layout check); for an unknown stream only the header's magic and kind are checked
(the control words' layout is fixed by RING_VERSION, not by the record type).
"""

from __future__ import annotations

import time

import numpy as np

from pipeline.transport.registry import Entry, Instance
from pipeline.transport.ring import Ring, RingError
from pipeline.transport.segment import Segment, SegmentError, pid_alive, shm_name
from pipeline.transport.shared import atomic_load
from shm_layouts import MAGIC, SegmentKind
from shm_layouts import ring as L
from shm_layouts.probe import PROBE_RECORD
from shm_layouts.records import STREAMS

KNOWN_STREAMS = dict(STREAMS, probe=PROBE_RECORD)
MODES = {int(m): m.name.lower() for m in L.ConsumerMode}


class RingView:
    def __init__(self, name: str, stream: str, segment: Segment, verified: bool,
                 ring: Ring | None = None):
        self.name = name
        self.stream = stream
        self.segment = segment
        self.verified = verified  # full layout check passed (record dtype known)
        self._ring = ring  # keeps the Ring handle (and its views) alive
        body = segment.body
        self.ctl = body[: L.CONTROL_WORDS * 8].view(np.int64)
        end = L.CONTROL_WORDS * 8 + L.MAX_CONSUMERS * L.NAME_BYTES
        self.names = body[L.CONTROL_WORDS * 8: end].view(L.CONSUMER_NAMES)

    @classmethod
    def open(cls, inst: Instance, entry: Entry) -> RingView:
        stream = entry.layout_name.split(":", 1)[1] if ":" in entry.layout_name else "?"
        dtype = KNOWN_STREAMS.get(stream)
        if dtype is not None:
            ring = Ring.attach(inst, entry.name, stream, dtype, readonly=True)
            return cls(entry.name, stream, ring.segment, True, ring)
        seg = Segment.open(shm_name(inst.name, entry.name), readonly=True)
        if int(seg.header["magic"]) != MAGIC or int(seg.header["kind"]) != SegmentKind.RING:
            seg.close()
            raise RingError(f"{entry.name}: not a ring segment")
        return cls(entry.name, stream, seg, False)

    def _w(self, word: int) -> int:
        return int(atomic_load(self.ctl, word))

    def state(self, now_ns: int | None = None) -> dict:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        published = self._w(L.PUBLISHED)
        hb = self._w(L.P_HEARTBEAT)
        out = {
            "name": self.name, "stream": self.stream, "verified": self.verified,
            "capacity": int(self.ctl[L.CAPACITY]), "record_size": int(self.ctl[L.RECORD_SIZE]),
            "published": published, "claimed": self._w(L.CLAIMED), "full": self._w(L.P_FULL),
            "producer_pid": self._w(L.P_PID), "producer_alive": pid_alive(self._w(L.P_PID)),
            "producer_heartbeat_age_s": max(now_ns - hb, 0) / 1e9 if hb else None,
            "consumers": [],
        }
        for slot in range(min(self._w(L.N_CONSUMERS), L.MAX_CONSUMERS)):
            mode = self._w(L.consumer_word(slot, L.C_MODE))
            if mode not in (L.ConsumerMode.GATING, L.ConsumerMode.OBSERVING):
                continue
            cursor = self._w(L.consumer_word(slot, L.C_CURSOR))
            chb = self._w(L.consumer_word(slot, L.C_HEARTBEAT))
            pid = self._w(L.consumer_word(slot, L.C_PID))
            out["consumers"].append({
                "slot": slot, "name": self.names[slot].decode(errors="replace"),
                "mode": MODES[mode], "cursor": cursor, "lag": published - cursor,
                "lost": self._w(L.consumer_word(slot, L.C_LOST)), "pid": pid,
                "alive": pid_alive(pid),
                "attaches": self._w(L.consumer_word(slot, L.C_ATTACHES)),
                "heartbeat_age_s": max(now_ns - chb, 0) / 1e9 if chb else None,
            })
        return out

    def close(self) -> None:
        self.ctl = self.names = None  # type: ignore[assignment]
        if self._ring is not None:
            self._ring.close()
        else:
            self.segment.close()


def open_ring(inst: Instance, entry: Entry) -> RingView:
    try:
        return RingView.open(inst, entry)
    except (SegmentError, RingError) as e:
        raise SegmentError(f"ring {entry.name}: {e}") from None
