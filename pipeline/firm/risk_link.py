"""RiskLink: one instance's side of the firm-wide risk view and kill switch.

An agent like any other (the runner reports it RUNNING, heartbeats it, stops it on
SIGTERM), whose duty cycle is an asyncio loop run for one slice (~50 ms) at a time:

* every ``period`` it puts the instance's report (``risk.build_report``: positions, PnL,
  open orders, kill state) on ``report.<instance>``, and reads the firm-wide ``kill`` key;
* a put on the kill key rings a doorbell (a core subscription to its subject: immediate,
  and resubscribed by the client after a reconnect), which reads the key at once. The key,
  not the message, is the truth: values are ordered by their stream revision, so a late
  read never undoes a newer one, and a kill set while the link was down (or the server
  restarting) is read on start and obeyed;
* a new kill value is engaged through ``pipeline.firm.kill.engage_kill``, the path of
  ``hft ctl kill``, in a worker thread (its bounded wait for the handlers' acks must not
  stop the reports), audited as ``hft ctl`` audits, then acknowledged on ``ack.<instance>``
  with the time it took and the outcome. The first value a link sees that is *off* is not
  engaged: a link starting never clears a kill an operator set locally.

NATS failures are counted (``risk.nats_failures``; ``risk.disconnects``/``risk.reconnects``
from the client's callbacks) and retried next period; the client reconnects forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pipeline.control import audit
from pipeline.control.area import ControlArea
from pipeline.firm import risk_bus
from pipeline.firm.kill import KillOutcome, engage_kill, warm
from pipeline.firm.risk import (
    KILL_BUCKET,
    KILL_KEY,
    REPORT_PERIOD_S,
    REPORTS_BUCKET,
    KillValue,
    ack_key,
    ack_value,
    build_report,
    check_name,
    report_key,
)
from pipeline.instruments import SymbolTable
from pipeline.marketdata.latest import LatestBooks
from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters, bump
from pipeline.orders.segments import OmsState
from pipeline.runtime.agent import Agent
from pipeline.transport.registry import Instance
from pipeline.transport.segment import SegmentError

log = logging.getLogger(__name__)

DOORBELL_READS, DOORBELL_WAIT_S = 50, 0.002  # up to ~0.1 s for the stream to store a put
COUNTERS = ("published", "kill_engaged", "kill_released", "kill_not_acknowledged",
            "acks_published", "nats_failures", "disconnects", "reconnects", "bad_kill_values",
            "audit_failures")


class RiskLink(Agent):
    name = "risk_link"

    def __init__(self, inst: Instance, counters: Counters, url: str, symbols: SymbolTable,
                 period_s: float = REPORT_PERIOD_S, ack_timeout_s: float = 2.0,
                 audit_log: str | None = None, config: dict | None = None):
        self.inst = inst
        self.instance = check_name(inst.name)
        self.url = url
        self.symbols = symbols
        self.period_s = period_s
        self.ack_timeout_s = ack_timeout_s
        self.audit_log = audit.audit_path(audit_log, config)
        self.words = counters.words
        self.c = {k: counters.counter(f"risk.{k}") for k in COUNTERS}
        self.engage_hist = counters.histogram("risk.kill_engage_ns")
        try:
            self.oms = OmsState.attach(inst, readonly=True)
            self.area = ControlArea.attach(inst)
        except SegmentError as e:
            raise SegmentError(f"{e}; the risk link needs the OMS segment and the control "
                               "area (the launcher's create_order_path, create_control)"
                               ) from None
        self.books = (LatestBooks.attach(inst, readonly=True)
                      if any(e.layout_name == "latest:book_update" for e in inst.segments())
                      else None)
        self.loop = asyncio.new_event_loop()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="risk-kill")
        self.tasks: list[asyncio.Task] = []
        self.nc = self.js = self.kill_kv = None
        self.buckets_ok = False
        self.seq = 0
        self.work = 0
        self.seen_revision = 0  # the newest kill revision read
        self.applied: str | None = None  # id of the kill value engaged (or adopted) last
        self.wanted: tuple[KillValue, float] | None = None  # newest value, when it was read
        self.changed = asyncio.Event()
        self._failing = False

    # -- agent
    def on_start(self) -> None:
        warm()
        self.tasks = [self.loop.create_task(self._reporter()),
                      self.loop.create_task(self._killer())]

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        left = max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9)
        self.loop.run_until_complete(asyncio.sleep(left))
        for t in self.tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # a bug, not a NATS failure: crash-only, let it show
        work, self.work = self.work, 0
        return work

    def on_close(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
        if self.nc is not None:
            self.loop.run_until_complete(self._close_nats())
        self.worker.shutdown(wait=True)
        self.loop.close()
        for seg in (self.oms, self.books, self.area):
            if seg is not None:
                seg.close()

    async def _close_nats(self) -> None:
        try:
            await asyncio.wait_for(self.nc.close(), 2.0)
        except risk_bus.FAILURES:
            pass

    # -- NATS
    def _bump(self, name: str, n: int = 1) -> None:
        bump(self.words, self.c[name], n)

    def _failed(self, what: str, e: BaseException) -> None:
        self._bump("nats_failures")
        self.buckets_ok = False
        if not self._failing:  # once per outage, not every period
            log.warning("NATS %s failed (%s: %s); retrying every %.2f s", what,
                        type(e).__name__, e, self.period_s)
        self._failing = True

    async def _connect(self) -> None:
        async def disconnected() -> None:
            self._bump("disconnects")

        async def reconnected() -> None:
            self._bump("reconnects")
            log.info("reconnected to NATS at %s", self.url)

        while self.nc is None:
            try:
                self.nc = await risk_bus.connect(self.url, f"risk_link.{self.instance}",
                                                 persistent=True, on_disconnect=disconnected,
                                                 on_reconnect=reconnected)
            except risk_bus.BusUnavailable as e:
                self._failed("connect", e)
                await asyncio.sleep(self.period_s)
        self.js = risk_bus.jetstream(self.nc)
        await self.nc.subscribe(f"$KV.{KILL_BUCKET}.{KILL_KEY}", cb=self._doorbell)
        log.info("connected to NATS at %s", self.url)

    async def _doorbell(self, msg) -> None:
        """The kill key's subject carried a put. Subscribers get it as the stream does, so
        the stream may not have stored it yet (it fsyncs first): read until the key shows
        it, bounded (the periodic read is the backstop)."""
        if self.kill_kv is None:
            return
        try:
            for _ in range(DOORBELL_READS):
                if await self._read_kill(msg.data):
                    return
                await asyncio.sleep(DOORBELL_WAIT_S)
        except risk_bus.FAILURES as e:
            self._failed("kill read", e)

    async def _read_kill(self, rung: bytes | None = None) -> bool:
        """Read the kill key; act on a value newer than any read before. True when the key
        holds ``rung`` (the doorbell's value) or something newer."""
        got = await risk_bus.read_kill(self.kill_kv)
        if got is None:
            return False
        value, revision = got
        if revision <= self.seen_revision:  # nothing new (or a read overtaken by a newer)
            return rung is not None and value.encode() == rung
        self.seen_revision = revision
        if self.applied is None and self.wanted is None and not value.on:
            self.applied = value.id  # off when we start: nothing to undo, nothing to ack
            return True
        if value.id != self.applied:
            self.wanted = (value, time.monotonic())
            self.changed.set()
        return True

    async def _reporter(self) -> None:
        await self._connect()
        while True:
            started = self.loop.time()
            try:
                if not self.buckets_ok:
                    _, self.kill_kv = await risk_bus.open_buckets(self.js)
                    self.buckets_ok = True
                    self.seen_revision = 0  # a bucket deleted and made again counts anew
                await self._read_kill()
                report = build_report(self.instance, self.seq, self.oms, self.books,
                                      self.symbols, self.area.kill_switch(), self.applied)
                await self.js.publish(f"$KV.{REPORTS_BUCKET}.{report_key(self.instance)}",
                                      json.dumps(report).encode())
                self.seq += 1
                self.work += 1
                self._bump("published")
                if self._failing:
                    log.info("NATS works again: reports resumed")
                self._failing = False
            except risk_bus.FAILURES as e:
                self._failed("report", e)
            await asyncio.sleep(max(0.0, self.period_s - (self.loop.time() - started)))

    # -- the kill switch
    async def _killer(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            value, received = self.wanted
            if value.id == self.applied:
                continue
            if value.bad:
                self._bump("bad_kill_values")
                log.error("the firm-wide kill key holds garbage (%s): engaging the kill "
                          "switch (fail safe)", value.bad)
            outcome = await self.loop.run_in_executor(self.worker, self._engage, value)
            elapsed = time.monotonic() - received
            histogram.record(self.engage_hist, int(elapsed * 1e9))
            self.applied = value.id
            self._bump("kill_engaged" if value.on else "kill_released")
            if not outcome.get("acknowledged"):
                self._bump("kill_not_acknowledged")
            log.log(logging.INFO if outcome.get("acknowledged") else logging.ERROR,
                    "firm-wide kill %s (%s): engaged in %.2f ms, %s", "ON" if value.on else
                    "off", value.reason or "no reason given", elapsed * 1e3,
                    "acknowledged" if outcome.get("acknowledged") else
                    f"NOT acknowledged: {outcome}")
            await self._publish_ack(value, elapsed, outcome)
            self.work += 1

    def _engage(self, value: KillValue) -> dict:
        """In the worker thread: the ``hft ctl kill`` path, audited as it audits."""
        entry = {"instance": self.instance, "action": f"kill {'on' if value.on else 'off'}",
                 "op": "kill_on" if value.on else "kill_off", "arg0": 0,
                 "source": "firm risk link", "kill_id": value.id, "reason": value.reason,
                 "set_by": value.origin}
        self._audit(entry | {"event": "issued"})
        try:
            kill: KillOutcome = engage_kill(self.inst, self.area, value.on, self.ack_timeout_s)
            result = kill.as_dict()
        except (SegmentError, OSError) as e:
            result = {"on": value.on, "acknowledged": False, "error": str(e)}
        self._audit(entry | {"event": "acknowledged" if result["acknowledged"]
                             else "not_acknowledged"} | result)
        return result | ({"bad_value": value.bad} if value.bad else {})

    def _audit(self, record: dict) -> None:
        """An audit log that cannot be written never stops a kill: said, and counted."""
        try:
            audit.append(self.audit_log, record)
        except OSError as e:
            self._bump("audit_failures")  # its only writer is the worker thread
            log.error("audit log %s: %s (the kill goes on)", self.audit_log, e)

    async def _publish_ack(self, value: KillValue, elapsed: float, outcome: dict) -> None:
        """Until it is stored, or a newer kill value makes it moot."""
        data = ack_value(self.instance, value, elapsed, outcome)
        subject = f"$KV.{KILL_BUCKET}.{ack_key(self.instance)}"
        while not (self.wanted and self.wanted[0].id != value.id):
            try:
                await self.js.publish(subject, data)
                self._bump("acks_published")
                return
            except risk_bus.FAILURES as e:
                self._failed("ack", e)
                await asyncio.sleep(self.period_s)
