"""The risk view's NATS I/O (asyncio, nats-py): connecting, the two buckets, reading every
report, and setting the firm-wide kill then collecting the acknowledgements.

Names and values are ``pipeline.firm.risk``'s. The acknowledgements are waited for on the
ack keys' subject (``$KV.hft_firm_kill.ack.*``, subscribed before the kill is put, so none
is missed), then the keys of the instances still silent are read once: an ack put while
this client was reconnecting is found there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from pipeline.firm.risk import (
    KILL_BUCKET,
    KILL_HISTORY,
    KILL_KEY,
    REPORTS_BUCKET,
    STALE_S,
    KillValue,
    ack_key,
    aggregate,
)

REPORT_TTL_S = 60.0  # an instance that stopped reporting disappears from the view after this
JS_TIMEOUT_S = 1.0  # one JetStream request (put, get): a server that is away fails fast
# what a NATS round trip can raise: the client's errors (JetStream's derive from them),
# asyncio timeouts, socket errors
FAILURES = (NatsError, TimeoutError, OSError)


class BusUnavailable(RuntimeError):
    pass


async def connect(url: str, name: str, *, persistent: bool = False,
                  on_disconnect: Callable[[], Awaitable[None]] | None = None,
                  on_reconnect: Callable[[], Awaitable[None]] | None = None) -> Client:
    """A connection to ``url``. ``persistent`` (a long-running link): reconnect forever,
    every 0.2 s; otherwise (a command) give up quickly with a ``BusUnavailable``."""
    async def quiet(_e: Exception) -> None:  # the client logs every failed attempt otherwise
        return None

    opts: dict = {"name": name, "connect_timeout": 2, "error_cb": quiet}
    if persistent:
        opts |= {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.2}
    else:
        opts |= {"max_reconnect_attempts": 1, "reconnect_time_wait": 0.2}
    if on_disconnect is not None:
        opts["disconnected_cb"] = on_disconnect
    if on_reconnect is not None:
        opts["reconnected_cb"] = on_reconnect
    try:
        return await nats.connect(url, **opts)
    except (*FAILURES, ValueError) as e:
        raise BusUnavailable(f"cannot connect to NATS at {url}: {e or type(e).__name__}; "
                             "is nats-server running?") from None


def jetstream(nc: Client) -> JetStreamContext:
    return nc.jetstream(timeout=JS_TIMEOUT_S)


async def open_buckets(js: JetStreamContext) -> tuple[KeyValue, KeyValue]:
    """(reports, kill), created if missing (after a server restart the memory-stored
    reports bucket is gone; the file-stored kill bucket is not)."""
    return (await _bucket(js, KeyValueConfig(REPORTS_BUCKET, storage=StorageType.MEMORY,
                                             ttl=REPORT_TTL_S)),
            await _bucket(js, KeyValueConfig(KILL_BUCKET, storage=StorageType.FILE,
                                             history=KILL_HISTORY)))


async def _bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config)


async def read_reports(reports: KeyValue) -> list[dict]:
    """Every instance's last report (the watcher's initial values, then it stops)."""
    watcher = await reports.watch("report.*")
    out = []
    try:
        while (entry := await watcher.updates(timeout=JS_TIMEOUT_S * 5)) is not None:
            if entry.value and entry.operation is None:
                try:
                    out.append(json.loads(entry.value))
                except ValueError:
                    continue  # not a report: shown nowhere rather than failing the view
            if entry.delta == 0:
                break
    finally:
        await watcher.stop()
    return out


async def read_kill(kill: KeyValue) -> tuple[KillValue, int] | None:
    """The kill switch's value and its revision; None when it was never set (or deleted)."""
    try:
        entry = await kill.get(KILL_KEY)
    except KeyNotFoundError:  # KeyDeletedError is one
        return None
    return KillValue.decode(entry.value or b"", entry.revision), entry.revision


async def firm_view(reports: KeyValue, kill: KeyValue, stale_s: float = STALE_S) -> dict:
    """``risk.aggregate`` of every report, with the firm-wide kill switch (``firm_kill``:
    None when never set)."""
    view = aggregate(await read_reports(reports), stale_s=stale_s)
    got = await read_kill(kill)
    view["firm_kill"] = None if got is None else {
        "on": got[0].on, "id": got[0].id, "reason": got[0].reason, "set_by": got[0].origin,
        "revision": got[1]}
    return view


@dataclass
class KillRound:
    """One ``hft risk kill``: the value set, who was expected, every ack, who was silent."""

    value: KillValue
    expected: list[str]
    acks: dict[str, dict] = field(default_factory=dict)  # instance -> ack (+ round_trip_ms)
    elapsed_ms: float = 0.0  # set -> the last expected ack (or the timeout)

    @property
    def silent(self) -> list[str]:
        return sorted(set(self.expected) - set(self.acks))

    @property
    def failed(self) -> list[str]:
        """Expected instances that did not acknowledge, or whose handlers did not."""
        return sorted(set(self.silent) | {i for i in self.expected
                                          if i in self.acks and not self.acks[i]["acknowledged"]})

    def as_dict(self) -> dict:
        return {"kill_id": self.value.id, "on": self.value.on, "reason": self.value.reason,
                "expected": self.expected, "acks": self.acks, "silent": self.silent,
                "failed": self.failed, "elapsed_ms": round(self.elapsed_ms, 3),
                "ok": not self.failed}


async def set_kill_and_wait(nc: Client, kill: KeyValue, value: KillValue,
                            expected: list[str], timeout: float) -> KillRound:
    """Put ``value`` on the kill key, then wait (bounded) for an ack of it from every
    ``expected`` instance; round-trip times are this client's, from before the put."""
    queue: asyncio.Queue = asyncio.Queue()

    async def on_ack(msg) -> None:
        queue.put_nowait((time.monotonic(), msg.data))

    sub = await nc.subscribe(f"$KV.{KILL_BUCKET}.ack.*", cb=on_ack)
    await nc.flush()
    result = KillRound(value, sorted(expected))
    t0 = time.monotonic()
    await kill.put(KILL_KEY, value.encode())
    deadline = t0 + timeout
    try:
        while result.silent and (left := deadline - time.monotonic()) > 0:
            try:
                t, data = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            _take(result, data, (t - t0) * 1e3)
        for name in result.silent:  # acks put while our subscription was reconnecting
            try:
                entry = await kill.get(ack_key(name))
            except KeyNotFoundError:
                continue
            _take(result, entry.value or b"", None)
    finally:
        await sub.unsubscribe()
    result.elapsed_ms = (time.monotonic() - t0) * 1e3
    return result


def _take(result: KillRound, data: bytes, round_trip_ms: float | None) -> None:
    try:
        ack = json.loads(data)
    except ValueError:
        return
    if isinstance(ack, dict) and ack.get("kill_id") == result.value.id:
        name = ack["instance"]
        result.acks.setdefault(name, ack | {"round_trip_ms": None if round_trip_ms is None
                                            else round(round_trip_ms, 3)})
