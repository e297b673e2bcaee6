"""Drop-copy messages: subjects, message ids, and the batch codec (``shm_layouts.dropcopy``).

Writer and reader share this module, so the subject scheme, the ``Nats-Msg-Id`` and the
header checks are written once. Encoding happens in place: the drop copy gathers records
straight behind a header in one preallocated buffer (``pack_header``), so a batch costs
one ``bytes`` object, never one per record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipeline.orders.segments import EXECS_RING, EXECS_STREAM, ORDERS_RING, ORDERS_STREAM
from shm_layouts.dropcopy import BATCH_HEADER, BATCH_MAGIC, BATCH_VERSION, HEADER_SIZE, batch_hash
from shm_layouts.records import STREAMS

STREAM_NAME = "DROPCOPY"
SUBJECT_PREFIX = "dropcopy"
# ring name -> record stream (its dtype in shm_layouts.records.STREAMS)
RINGS = {ORDERS_RING: ORDERS_STREAM, EXECS_RING: EXECS_STREAM}
# an instance name is one subject token: no dots, wildcards or spaces
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class BatchError(ValueError):
    """A message that is not a drop-copy batch of a known layout."""


def subject(instance: str, ring: str) -> str:
    if not _TOKEN.match(instance):
        raise BatchError(f"instance name {instance!r} is not a NATS subject token "
                         "(letters, digits, '_' and '-' only)")
    if ring not in RINGS:
        raise BatchError(f"ring {ring!r} is not copied (known: {', '.join(RINGS)})")
    return f"{SUBJECT_PREFIX}.{instance}.{ring}"


def parse_subject(subj: str) -> tuple[str, str]:
    """(instance, ring) of a drop-copy subject."""
    parts = subj.split(".")
    if len(parts) != 3 or parts[0] != SUBJECT_PREFIX or parts[2] not in RINGS:
        raise BatchError(f"{subj!r} is not a drop-copy subject ({SUBJECT_PREFIX}.INSTANCE.RING)")
    return parts[1], parts[2]


def msg_id(instance: str, ring: str, epoch_ns: int, first: int, last: int) -> str:
    """``Nats-Msg-Id``: the same batch always gets the same id, so a retried publish is not
    stored twice. The epoch (ring creation time) keeps a re-created instance of the same
    name from colliding with its predecessor inside the duplicate window."""
    return f"{instance}.{ring}.{epoch_ns}.{first}.{last}"


def record_dtype(ring: str) -> np.dtype:
    return STREAMS[RINGS[ring]]


def new_buffer(ring: str, capacity: int) -> np.ndarray:
    """A header plus ``capacity`` record rows, as one uint8 array."""
    return np.zeros(HEADER_SIZE + capacity * record_dtype(ring).itemsize, np.uint8)


def pack_header(buf: np.ndarray, ring: str, epoch_ns: int, first_seq: int, count: int) -> None:
    dtype = record_dtype(ring)
    h = buf[:HEADER_SIZE].view(BATCH_HEADER)[0]
    h["magic"], h["version"], h["header_size"] = BATCH_MAGIC, BATCH_VERSION, HEADER_SIZE
    h["record_size"], h["layout_hash"] = dtype.itemsize, batch_hash(RINGS[ring], dtype)
    h["epoch_ns"], h["first_seq"], h["count"], h["_reserved"] = epoch_ns, first_seq, count, 0


@dataclass(frozen=True)
class Batch:
    ring: str
    epoch_ns: int
    first_seq: int
    records: np.ndarray  # structured, the ring's record dtype

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.records) - 1


def decode(ring: str, data: bytes) -> Batch:
    """Check the header against the ring's layout, then view the records (no copy)."""
    if len(data) < HEADER_SIZE:
        raise BatchError(f"message of {len(data)} bytes is shorter than the batch header")
    h = np.frombuffer(data, BATCH_HEADER, 1)[0]
    if int(h["magic"]) != BATCH_MAGIC:
        raise BatchError("not a drop-copy batch (bad magic)")
    if int(h["version"]) != BATCH_VERSION:
        raise BatchError(f"batch version {int(h['version'])}, this reader knows {BATCH_VERSION}")
    dtype = record_dtype(ring)
    want = batch_hash(RINGS[ring], dtype)
    if int(h["layout_hash"]) != want or int(h["record_size"]) != dtype.itemsize:
        raise BatchError(f"{ring} batch layout {int(h['layout_hash']):#x}/"
                         f"{int(h['record_size'])} B, this reader has {want:#x}/{dtype.itemsize} B")
    start, count = int(h["header_size"]), int(h["count"])
    if len(data) != start + count * dtype.itemsize:
        raise BatchError(f"{ring} batch says {count} records but holds "
                         f"{len(data) - start} bytes of them")
    records = np.frombuffer(data, dtype, count, start)
    first = int(h["first_seq"])
    if count and not np.array_equal(records["seq"], np.arange(first, first + count)):
        raise BatchError(f"{ring} batch from seq {first}: record stamps are not consecutive")
    return Batch(ring, int(h["epoch_ns"]), first, records)
