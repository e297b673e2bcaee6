"""Drop copy: every order intent and execution report of an instance, durably in JetStream.

The agent is the gating consumer ``dropcopy`` of the instance's ``orders`` and ``execs``
rings (reserved at creation: ``create_order_path(also_gating=("dropcopy",))``). A jitted
duty cycle idles until a ring has records; then up to ``batch`` of them are copied behind
a header into a preallocated buffer (``pipeline.firm.batch``) and published as one
message to ``dropcopy.<instance>.<ring>`` with a ``Nats-Msg-Id``. Only after the PubAck
(the server fsynced it, ``sync_interval: always``) are the ring slots released, so the
gateway sees backpressure, never loss, while NATS is away.

Exactly once across crashes: on start, after a reconnect and after any failed publish the
agent reads the last stored batch of its subject. Records up to its last sequence are in
the stream already (we died between the ack and the release) and are released unsent; an
unacknowledged batch is published again with the same boundaries, hence the same
Msg-Id, so the server drops it if the first attempt did land. Failures back off
(bounded, doubling) and are counted; nothing unacknowledged is ever released.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from pipeline.firm import jetstream
from pipeline.firm.batch import (
    RINGS,
    STREAM_NAME,
    BatchError,
    msg_id,
    new_buffer,
    pack_header,
    record_dtype,
    subject,
)
from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters, bump
from pipeline.runtime.agent import Agent
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from pipeline.transport.segment import pid_alive
from shm_layouts.dropcopy import HEADER_SIZE
from shm_layouts.ring import MASK, ConsumerMode

log = logging.getLogger(__name__)

CONSUMER = "dropcopy"
COUNTER_NAMES = ("records", "batches", "duplicates_acked", "publish_failures", "reconnects",
                 "skipped_stored", "stream_behind", "bad_messages")
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.05, 1.0
BATCHES_PER_FLUSH = 16  # per ring, so housekeeping (heartbeats) runs under a flood
MAX_PAYLOAD = 1 << 20  # nats-server's default max_payload


class DropCopyError(RuntimeError):
    """The stream contradicts the ring (a foreign message, a ring ahead of nothing)."""


@njit(cache=True, _nrt=False)
def ready_cycle(o_ctl, o_stamps, o_slot, e_ctl, e_stamps, e_slot):
    """One duty cycle: ``-1 - n`` (end the slice, Python publishes) when either ring has a
    record at our cursor, else 0 (idle)."""
    n = R.poll(o_ctl, o_stamps, o_slot, 1) + R.poll(e_ctl, e_stamps, e_slot, 1)
    return -1 - n if n else 0


@njit(cache=True, _nrt=False)
def gather(ctl, stamps, raw, slot, buf, offset, limit):
    """Copy up to ``limit`` records ready at the cursor into ``buf`` from byte ``offset``;
    the slots stay ours (no release) until the batch is acknowledged."""
    n = R.poll(ctl, stamps, slot, limit)
    pos = R.cursor(ctl, slot)
    size = raw.shape[1]
    mask = ctl[MASK]
    for i in range(n):
        row = raw[(pos + i) & mask]
        base = offset + i * size
        for b in range(size):
            buf[base + b] = row[b]
    return n


@dataclass
class RingCopy:
    """One copied ring: its consumer slot, subject and batch buffer."""

    name: str
    ring: Ring
    slot: int
    subject: str
    epoch_ns: int
    buf: np.ndarray
    batch: int
    pending: int = 0  # records of a batch sent but not acknowledged (0: none)
    synced: bool = False  # the last stored sequence is known on this connection
    behind_at: int = -2  # the stream end last found short of the cursor (counted once)

    def cursor(self) -> int:
        return int(R.cursor(self.ring.ctl, self.slot))

    def release(self, end: int) -> None:
        R.release(self.ring.ctl, self.slot, end)


class DropCopy(Agent):
    name = CONSUMER

    def __init__(self, instance: Instance, counters: Counters | None, url: str,
                 batch: int = 128, stream: str = STREAM_NAME, replicas: int = 1,
                 publish_timeout_s: float = 2.0, creds: str | None = None):
        self.instance = instance
        self.counters = counters
        self.url = url
        self.where = jetstream.redact(url)  # what logs say: never a password
        self.creds = creds
        self.stream = stream
        self.replicas = replicas
        self.timeout_s = publish_timeout_s
        self.batch = batch
        for ring_name in RINGS:  # a bad instance name or batch size fails here, clearly
            subject(instance.name, ring_name)
            if batch < 1 or HEADER_SIZE + batch * record_dtype(ring_name).itemsize > MAX_PAYLOAD:
                raise ValueError(f"batch {batch}: must be >= 1 and fit in {MAX_PAYLOAD} bytes")
        self.copies: list[RingCopy] = []
        self.nc = self.js = None
        self.io: jetstream.Loop | None = None
        self.resync_needed = False  # set by the client's thread on a reconnect
        self.broken = False  # the stream contradicted the ring: stop, publish nothing more
        self.stream_checked = False  # the stream is known to exist on this server
        self.backoff_s = BACKOFF_FIRST_S
        self.retry_at_ns = 0
        self.words = np.zeros(1 + len(COUNTER_NAMES), np.int64)  # counters when unattached
        self.index = {n: 1 + i for i, n in enumerate(COUNTER_NAMES)}
        self.ack_ns = histogram.new()

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        for ring_name, stream in RINGS.items():
            ring = Ring.attach(self.instance, ring_name, stream, record_dtype(ring_name))
            mine = [c for c in ring.consumers() if c["name"] == CONSUMER and c["mode"] == R.GATING]
            if mine and mine[0]["pid"] not in (0, os.getpid()) and pid_alive(mine[0]["pid"]):
                # two copies on one cursor would publish and release each other's records
                raise DropCopyError(f"instance {self.instance.name}: a drop copy already runs "
                                    f"on ring {ring_name} (pid {mine[0]['pid']})")
            if not mine:
                log.warning("ring %s has no reserved %r slot (create_order_path(also_gating="
                            "(%r,))): records before seq %d are not copied", ring_name,
                            CONSUMER, CONSUMER, ring.published())
            slot = ring.join(CONSUMER, ConsumerMode.GATING)
            epoch = int(ring.segment.header["created_ns"])
            self.copies.append(RingCopy(ring_name, ring, slot,
                                        subject(self.instance.name, ring_name), epoch,
                                        new_buffer(ring_name, self.batch), self.batch))
        if self.counters is not None:
            self.words = self.counters.words
            self.index = {n: self.counters.counter(f"dropcopy.{n}") for n in COUNTER_NAMES}
            self.ack_ns = self.counters.histogram("dropcopy.ack_ns")
        o, e = self.copies
        self._ready_args = (o.ring.ctl, o.ring.stamps, o.slot, e.ring.ctl, e.ring.stamps, e.slot)
        self.io = jetstream.Loop(f"nats-{self.instance.name}")
        self._connect()

    def on_close(self) -> None:
        """Drain what is ready (bounded), then close the connection."""
        deadline = time.monotonic() + 4 * self.timeout_s
        try:
            while self.nc is not None and not self.broken and time.monotonic() < deadline \
                    and self.retry_at_ns == 0 and self.flush() > 0:
                pass
        finally:
            if self.nc is not None and self.io is not None:
                try:
                    self.io.call(self.nc.close(), self.timeout_s)
                except jetstream.NET_ERRORS:
                    pass
            if self.io is not None:
                self.io.stop()
            for c in self.copies:
                c.ring.close()

    def housekeeping(self, now_ns: int) -> bool:
        for c in self.copies:
            c.ring.heartbeat(c.slot)
        return True

    def wait_ring(self):
        return self.copies[0].ring.view(self.copies[0].slot) if self.copies else None

    # ------------------------------------------------------------------ duty cycle
    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        now = time.monotonic_ns()
        if now < self.retry_at_ns:  # backing off: sleep, never spin, while NATS is away
            time.sleep(max(0, min(self.retry_at_ns, deadline_ns) - now) / 1e9)
            return 0
        if self.nc is None and not self._connect():
            return 0
        if not self.poll_slice(ready_cycle, self._ready_args, idle_state, deadline_ns):
            return 0
        return self.flush()

    def flush(self) -> int:
        """Publish what is ready on both rings; return records acknowledged (new or found
        already stored). A network failure schedules a retry and returns what was done."""
        if self.resync_needed:
            self.resync_needed = False
            for c in self.copies:
                c.synced = False
        done = 0
        try:
            if not self.stream_checked:  # after a failure: the server may have lost it
                self.io.call(jetstream.ensure_stream(self.js, self.stream, self.replicas),
                             self.timeout_s + 1.0)
                self.stream_checked = True
            for _ in range(BATCHES_PER_FLUSH):
                for c in self.copies:
                    if not c.synced:
                        done += self._resync(c)
                n = self._publish([c for c in self.copies if self._prepare(c)])
                done += n
                if n == 0:
                    break
        except jetstream.NET_ERRORS as e:
            self._failed(f"publish to {self.where}", e)
        else:
            self.backoff_s, self.retry_at_ns = BACKOFF_FIRST_S, 0
        return done

    # ------------------------------------------------------------------ publishing
    def _prepare(self, c: RingCopy) -> bool:
        """Gather ``c``'s next batch behind its header; False if nothing is ready."""
        limit = c.pending or c.batch  # a retry keeps its boundaries, hence its Msg-Id
        n = int(gather(c.ring.ctl, c.ring.stamps, c.ring.raw, c.slot, c.buf, HEADER_SIZE, limit))
        if n == 0:
            return False
        if c.pending and n != c.pending:
            raise DropCopyError(f"{c.name}: {c.pending} records pending but {n} ready")
        pack_header(c.buf, c.name, c.epoch_ns, c.cursor(), n)
        c.pending = n
        return True

    def _publish(self, ready: list[RingCopy]) -> int:
        """Publish the prepared batches (one per ring, concurrently: distinct subjects) and
        release each one the server acknowledged; re-raise the first failure after."""
        if not ready:
            return 0
        sends = []
        for c in ready:
            first = c.cursor()
            payload = c.buf[: HEADER_SIZE + c.pending * c.ring.dtype.itemsize].tobytes()
            ident = msg_id(self.instance.name, c.name, c.epoch_ns, first, first + c.pending - 1)
            sends.append(self.js.publish(c.subject, payload, timeout=self.timeout_s,
                                         stream=self.stream, headers={"Nats-Msg-Id": ident}))

        async def all_acks():
            return await asyncio.gather(*sends, return_exceptions=True)

        t0 = time.monotonic_ns()
        acks = self.io.call(all_acks(), self.timeout_s + 1.0)
        elapsed = time.monotonic_ns() - t0
        done, failure = 0, None
        for c, ack in zip(ready, acks, strict=True):
            if isinstance(ack, BaseException):
                failure = failure or ack
                continue
            histogram.record(self.ack_ns, elapsed)
            n, c.pending = c.pending, 0
            c.release(c.cursor() + n)  # only now: the server has it on disk
            done += n
            if ack.duplicate:  # a retry of a batch that had landed: stored once, by the first
                self._bump("duplicates_acked", 1)
            else:
                self._bump("records", n)
                self._bump("batches", 1)
        if failure is not None:
            raise failure
        return done

    def _resync(self, c: RingCopy) -> int:
        """Learn the last stored sequence of ``c``'s subject; release what is stored already.
        Returns how many records that released."""
        try:
            last = self.io.call(jetstream.last_batch(self.js, self.stream, c.subject),
                                self.timeout_s + 1.0)
        except BatchError as e:
            self._bump("bad_messages", 1)
            self.broken = True
            raise DropCopyError(f"the last message on {c.subject} is not ours: {e}") from None
        stored = -1 if last is None or last.epoch_ns != c.epoch_ns else last.last_seq
        cur = c.cursor()
        released = 0
        if stored >= cur:
            if stored >= c.ring.published():
                self.broken = True
                raise DropCopyError(f"{c.subject}: the stream holds seq {stored}, the ring "
                                    f"has published only {c.ring.published()}")
            c.release(stored + 1)
            released = stored + 1 - cur
            self._bump("skipped_stored", released)
            log.info("%s: seqs %d..%d already stored, released unsent", c.subject, cur, stored)
        elif stored < cur - 1 and stored != c.behind_at:
            c.behind_at = stored
            self._bump("stream_behind", cur - 1 - stored)
            log.error("%s: the stream ends at seq %d but records up to %d were acknowledged "
                      "(stream purged or lost?)", c.subject, stored, cur - 1)
        c.pending = 0 if stored >= cur else c.pending
        c.synced = True
        return released

    # ------------------------------------------------------------------ connection
    def _connect(self) -> bool:
        async def reconnected() -> None:
            self.resync_needed = True
            self._bump("reconnects", 1)

        async def open_client():
            nc = await jetstream.connect(self.url, f"dropcopy.{self.instance.name}",
                                         self.creds, reconnected_cb=reconnected)
            try:
                js = nc.jetstream(timeout=self.timeout_s)
                await jetstream.ensure_stream(js, self.stream, self.replicas)
            except BaseException:
                await nc.close()
                raise
            return nc, js

        try:
            self.nc, self.js = self.io.call(open_client(), 2 * self.timeout_s)
        except jetstream.NET_ERRORS as e:
            self._failed(f"connect to {self.where}", e)
            return False
        for c in self.copies:
            c.synced = False
        self.stream_checked = True
        log.info("connected to %s, stream %s", self.where, self.stream)
        return True

    def _failed(self, what: str, e: BaseException) -> None:
        self._bump("publish_failures", 1)
        if self.backoff_s == BACKOFF_FIRST_S:  # once per outage, not per retry
            log.warning("%s failed (%s: %s); retrying with backoff up to %.1f s", what,
                        type(e).__name__, e, BACKOFF_MAX_S)
        for c in self.copies:
            c.synced = False
        self.stream_checked = False
        self.retry_at_ns = time.monotonic_ns() + int(self.backoff_s * 1e9)
        self.backoff_s = min(2 * self.backoff_s, BACKOFF_MAX_S)

    def _bump(self, name: str, delta: int) -> None:
        bump(self.words, self.index[name], delta)

    def counts(self) -> dict[str, int]:
        return {n: int(self.words[i]) for n, i in self.index.items()}
