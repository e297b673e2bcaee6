"""Reading the drop copy back: every stored batch in stream order, records with their enum
names, and the sequence check that proves nothing was lost or stored twice.

Continuity is per (instance, ring, epoch): a ring's sequence starts at 0 when its segment
is created (the epoch), and the drop copy is a gating consumer from the first record, so
each epoch must hold exactly 0, 1, 2, ... A missing range is a gap, a range seen again a
duplicate; either makes ``hft audit`` exit non-zero.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

import nats.js.errors
from nats.js.api import DeliverPolicy

from pipeline.firm.batch import SUBJECT_PREFIX, Batch, BatchError, decode, parse_subject
from shm_layouts.oms import RiskReason
from shm_layouts.records import (
    ExecType,
    OrderAction,
    OrderType,
    OrdStatus,
    ReportSource,
    Side,
    TimeInForce,
)

ENUMS: dict[str, type[enum.IntEnum]] = {
    "action": OrderAction, "side": Side, "tif": TimeInForce, "ord_type": OrderType,
    "exec_type": ExecType, "ord_status": OrdStatus, "source": ReportSource}
# reject_reason is a RiskReason only when pre-trade risk or the OMS refused the order
RISK_SOURCES = (int(ReportSource.RISK), int(ReportSource.OMS))


@dataclass(frozen=True)
class Stored:
    """One message of the stream, decoded (``batch`` None when it could not be)."""

    stream_seq: int
    instance: str
    ring: str
    batch: Batch | None
    error: str = ""


def subject_filter(instance: str | None, ring: str | None) -> str:
    return f"{SUBJECT_PREFIX}.{instance or '*'}.{ring or '*'}"


async def read_stream(js, stream: str, subj: str, timeout_s: float = 5.0) -> list[Stored]:
    """Every message on ``subj`` (wildcards allowed), in stream order: an ordered consumer
    (ephemeral, flow-controlled, no acks) read until the server says nothing is pending."""
    try:  # is there anything at all? (an ordered consumer would just wait)
        await js.get_msg(stream, seq=1, subject=subj, next=True)
    except nats.js.errors.NotFoundError:
        return []
    sub = await js.subscribe(subj, stream=stream, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.ALL)
    out: list[Stored] = []
    try:
        while True:
            msg = await sub.next_msg(timeout_s)
            meta = msg.metadata
            out.append(decode_message(int(meta.sequence.stream), msg.subject, msg.data or b""))
            if meta.num_pending == 0:
                return out
    finally:
        await sub.unsubscribe()


def decode_message(stream_seq: int, subj: str, data: bytes) -> Stored:
    try:
        instance, ring = parse_subject(subj)
    except BatchError as e:
        return Stored(stream_seq, "?", "?", None, str(e))
    try:
        return Stored(stream_seq, instance, ring, decode(ring, data))
    except BatchError as e:
        return Stored(stream_seq, instance, ring, None, str(e))


def record_dicts(batch: Batch) -> Iterator[dict]:
    """One dict per record: every field but padding, enum fields by name."""
    names = [n for n in batch.records.dtype.names if not n.startswith("_")]
    for rec in batch.records:
        row = {n: rec[n].item() for n in names}
        for name, kind in ENUMS.items():
            if name in row:
                row[name] = _name(kind, row[name])
        if "reject_reason" in row and int(rec["source"]) in RISK_SOURCES:
            row["reject_reason"] = _name(RiskReason, row["reject_reason"])
        yield row


def _name(kind: type[enum.IntEnum], value: int) -> str | int:
    try:
        return kind(value).name
    except ValueError:
        return value  # an unknown value shows as its number, never as a wrong name


@dataclass
class Stream:
    """What the sequence check found for one (instance, ring, epoch)."""

    records: int = 0
    batches: int = 0
    next_seq: int = 0  # the sequence the next batch should start at


@dataclass
class Continuity:
    streams: dict[tuple[str, str, int], Stream] = field(default_factory=dict)
    issues: list[dict] = field(default_factory=list)

    def add(self, item: Stored) -> None:
        if item.batch is None:
            self.issues.append({"issue": "bad_message", "stream_seq": item.stream_seq,
                                "instance": item.instance, "ring": item.ring,
                                "error": item.error})
            return
        b = item.batch
        key = (item.instance, item.ring, b.epoch_ns)
        s = self.streams.setdefault(key, Stream())
        where = {"instance": item.instance, "ring": item.ring, "epoch_ns": b.epoch_ns,
                 "stream_seq": item.stream_seq}
        if b.first_seq > s.next_seq:
            self.issues.append({"issue": "gap", "first": s.next_seq, "last": b.first_seq - 1,
                                **where})
        elif b.first_seq < s.next_seq:
            self.issues.append({"issue": "duplicate", "first": b.first_seq,
                                "last": min(b.last_seq, s.next_seq - 1), **where})
        s.records += len(b.records)
        s.batches += 1
        s.next_seq = max(s.next_seq, b.last_seq + 1)

    def summary(self) -> list[dict]:
        return [{"instance": i, "ring": r, "epoch_ns": e, "records": s.records,
                 "batches": s.batches, "last_seq": s.next_seq - 1}
                for (i, r, e), s in sorted(self.streams.items())]
