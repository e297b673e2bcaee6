"""The JetStream side of the drop copy and the audit: one asyncio loop on its own thread,
the stream's definition, and the last stored batch of a subject.

nats-py is asyncio; the pipeline's processes are a synchronous runner loop. ``Loop`` runs
the client on a daemon thread and lets the runner call into it with a bounded wait
(``call``), so the ring side stays a plain jitted duty cycle.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

from pipeline.firm.batch import SUBJECT_PREFIX, Batch, decode, parse_subject

# what a network operation may raise: the caller counts it and retries with backoff
NET_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, TimeoutError)
DUPLICATE_WINDOW_S = 120.0  # Msg-Id dedupe: longer than any retry of one batch


class Loop:
    """An event loop on a daemon thread; ``call(coro, timeout)`` runs one coroutine on it."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine, timeout_s: float) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout_s)
        except TimeoutError:
            fut.cancel()
            raise

    def stop(self, timeout_s: float = 2.0) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout_s)


def stream_config(name: str, replicas: int) -> StreamConfig:
    """File storage (survives a restart of the server), every instance's rings in one
    stream, kept without limit: compliance decides retention (``max_age`` set by operators)."""
    return StreamConfig(name=name, subjects=[f"{SUBJECT_PREFIX}.>"], storage=StorageType.FILE,
                        num_replicas=replicas, duplicate_window=DUPLICATE_WINDOW_S,
                        allow_direct=True)


async def ensure_stream(js, name: str, replicas: int) -> None:
    """Create the stream if missing; an existing one is used as it is (its operators may
    have tuned it), as long as it holds our subjects."""
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(stream_config(name, replicas))
        return
    wanted = f"{SUBJECT_PREFIX}.>"
    if wanted not in (info.config.subjects or []):
        raise nats.js.errors.Error(f"stream {name} exists without subjects {wanted!r} "
                                   f"(has {info.config.subjects})")


async def last_batch(js, stream: str, subj: str) -> Batch | None:
    """The last batch stored on ``subj`` (None: nothing stored yet)."""
    try:
        msg = await js.get_last_msg(stream, subj)
    except nats.js.errors.NotFoundError:
        return None
    return decode(parse_subject(subj)[1], msg.data or b"")


async def connect(url: str, name: str, creds: str | None = None, forever: bool = True,
                  **callbacks) -> nats.aio.client.Client:
    """A client that reconnects forever on its own (every 0.2 s); the caller bounds the
    first connection with ``Loop.call``'s timeout. ``forever=False`` (a one-shot tool):
    the first failure raises. ``creds``: a NATS credentials file (a multi-host set-up);
    user and password in the URL work too and are never logged."""

    async def quiet(_e: Exception) -> None:  # failures are counted by the caller
        pass

    return await nats.connect(url, name=name, allow_reconnect=forever,
                              max_reconnect_attempts=-1 if forever else 1,
                              reconnect_time_wait=0.2, connect_timeout=1.0, ping_interval=5,
                              max_outstanding_pings=2, error_cb=quiet, user_credentials=creds,
                              **callbacks)


def redact(url: str) -> str:
    """``url`` without its user information, for logs and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"***@{host}" + (f":{parts.port}"
                                                             if parts.port else "")))
