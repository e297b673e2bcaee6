"""The OMS gateway agent: order ring -> risk -> OMS -> FIX -> socket, and back.

Per message the work is jitted (``flow``); this class owns the arrays, the FIX session and
its socket shell, and the cold-path duties between slices: reconcile open orders after
every logon (OrderStatusRequest; under binance-spot the signed REST API, Binance has no
35=H) before accepting intents, and likewise whenever the venue's
input may have hidden a fill (an unusable report the session rejected, a gap fill, an
overfill the OMS raised): trading stops at once and resumes once reconciled; the kill
switch (blocks new orders and cancels everything), cancel-on-stale-market-data, and
cancel-all + logout on shutdown.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline import config as cfgmod
from pipeline.binance import clock
from pipeline.binance.reconcile import ReconcileError, base_holding_lots, fetch_balances
from pipeline.binance.rest import BinanceError, SignedRest, VenueUnreachable
from pipeline.control.area import ControlArea
from pipeline.control.poller import ControlPoller
from pipeline.fix import binance_spot
from pipeline.fix import codec as C
from pipeline.fix.binance_spot import BinanceSpot
from pipeline.fix.session import Session, SessionConfig, State
from pipeline.fix.wire import Initiator
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters
from pipeline.orders import flow, refusals, rest_reconcile, risk, warm
from pipeline.orders import journal as J
from pipeline.orders import views as V
from pipeline.orders.segments import ORDERS_CONSUMER, OmsState, attach_order_path
from pipeline.runtime.agent import Agent, SameArgsCall, work_done
from pipeline.runtime.idle import WaitFd, idle
from pipeline.tls.client import TlsSettings
from pipeline.tls.io import wait_fd
from pipeline.tls.shadow import ShadowTls
from pipeline.transport.ring import Ring, RingView, observe
from pipeline.transport.segment import SegmentMissing
from pipeline.transport.shared import atomic_load, atomic_store
from shm_layouts import oms as L
from shm_layouts.control import Op, Status
from shm_layouts.records import BOOK_UPDATE, ORDER_INTENT, OrderAction, OrdStatus
from shm_layouts.ring import ConsumerMode

log = logging.getLogger(__name__)
SECOND = 1_000_000_000
MASS_CANCEL_EVERY_NS = 100_000_000
NO_INSTRUMENT = 1 << 30
# what a signed REST call can fail with: logged, counted, retried at the next reconcile
REST_FAILURES = (ReconcileError, BinanceError, VenueUnreachable, OSError)
_GW = cfgmod.defaults("gateway")


class DutyArgs(NamedTuple):
    """``flow.duty``'s arguments after the socket's fd, built once (``book`` is replaced
    when the book ring attaches)."""

    intents: RingView
    oms: V.OmsView
    risk: risk.RiskView
    fix: V.Fix
    execs: V.Execs
    book: V.Book
    hists: V.Hists


@dataclass
class GatewayConfig:
    host: str
    port: int
    session: SessionConfig
    journal_path: str
    book_ring: str | None = None  # BOOK_UPDATE ring to take best bid/ask from
    reconcile_timeout_s: float = _GW["reconcile_timeout_s"]
    shutdown_timeout_s: float = _GW["shutdown_timeout_s"]
    backoff_min_s: float = _GW["backoff_min_s"]
    backoff_max_s: float = _GW["backoff_max_s"]
    journal_records: int = J.DEFAULT_RECORDS
    tls: TlsSettings | None = None  # [gateway] tls = true (config.TLS_KEYS)
    dialect: BinanceSpot | None = None  # [gateway] dialect = "binance-spot"; None: FIX 4.4
    binance: dict | None = None  # the [binance] section (signed REST: reconcile, clock)

    @classmethod
    def from_config(cls, section: dict, binance: dict | None = None) -> GatewayConfig:
        """``[gateway]``; under ``dialect = "binance-spot"`` also ``binance`` (the
        ``[binance]`` section: the key, the API key's variable, the REST endpoint)."""
        s = cfgmod.section("gateway", section)
        if s["dialect"] not in ("fix44", "binance-spot"):
            raise cfgmod.ConfigError(f"[gateway] dialect must be fix44 or binance-spot, "
                                     f"not {s['dialect']!r}")
        dialect = BinanceSpot.from_config(section, binance or {}) \
            if s["dialect"] == "binance-spot" else None
        state = Path(s["state_dir"])
        return cls(host=s["host"], port=int(s["port"]),
                   session=SessionConfig.from_config(dict(s, store_dir=str(state / "fix"))),
                   journal_path=str(state / "oms.journal"),
                   book_ring=s["book_ring"] or None,
                   reconcile_timeout_s=float(s["reconcile_timeout_s"]),
                   shutdown_timeout_s=float(s["shutdown_timeout_s"]),
                   backoff_min_s=float(s["backoff_min_s"]),
                   backoff_max_s=float(s["backoff_max_s"]),
                   tls=_tls(s), dialect=dialect,
                   binance=cfgmod.section("binance", binance or {}) if dialect else None)


def _tls(s: dict) -> TlsSettings | None:
    """``tls = true``: the settings (validated); TLS keys without it are a mistake."""
    if not isinstance(s["tls"], bool):
        raise cfgmod.ConfigError(f"[gateway] tls must be true or false, not {s['tls']!r}")
    if not s["tls"]:
        stray = [k for k in ("server_name", "ca_file") if s[k]]
        if stray or not s["tls_verify"]:
            raise cfgmod.ConfigError(f"[gateway] {', '.join(stray) or 'tls_verify'} set but "
                                     "tls = false (FIX would run over plain TCP)")
        return None
    return TlsSettings.from_config(s, s["host"], "[gateway]")


class GatewayAgent(Agent):
    name = "oms_gateway"

    def __init__(self, instance, cfg: GatewayConfig, table: SymbolTable,
                 limits: risk.RiskLimits, counters: Counters | None = None,
                 control: ControlArea | None = None, warm_ns: int = 0, rest=None):
        """``warm_ns`` > 0: keep the order path hot, one dry pass (``warm.warm``) every
        ``warm_ns`` while nothing is sent. Only for a busy-spinning gateway. ``rest``: the
        venue's signed REST API under binance-spot (default: from ``cfg.binance``)."""
        self.cfg = cfg
        self.limits = limits
        self.dialect = cfg.dialect
        self.rest = rest
        if self.dialect is not None:
            self.rest = rest if rest is not None else SignedRest.from_config(cfg.binance)
            self.dialect.pre_logon = self._clock_gate
        self.venue_limits: dict[str, int] = {}
        self.reconcile_unknown = 0  # venue open orders the OMS does not have
        self.reconcile_failures = 0
        self.holding_failures = 0  # balances for MAX_POSITION that REST did not give
        self._venue_rejects = 0
        # hft ctl: kill switch and cancel-all are acknowledged from housekeeping
        self.poller = None if control is None else ControlPoller(
            control, "oms_gateway", (Op.KILL_ON, Op.KILL_OFF, Op.CANCEL_ALL))
        self.table = table
        self.orders_ring, self.execs_ring, self.oms = attach_order_path(instance)
        self.islot = self.orders_ring.join(ORDERS_CONSUMER)
        self.execs_ring.claim_producer()
        # the venue's rules stay at hand: MAX_POSITION needs each symbol's base asset
        self.rules = limits.load_rules(table) if limits.exchange_rules else None
        self.risk = limits.view(table, self.rules)
        self.g, self.marks = self.risk.g, self.risk.marks
        self.session = Session(cfg.session, symbol_matrix([i.symbol for i in table]),
                               table.table(), dialect=cfg.dialect)
        self.session.on_reconcile = self._halt
        self.wire = Initiator(self.session, cfg.host, cfg.port, cfg.backoff_min_s,
                              cfg.backoff_max_s, cfg.tls)
        self._standby: Leg | None = None  # binance maintenance: the session taking over
        self._draining: Leg | None = None  # ... and the one it replaced, until answered
        self._switch_at = 0
        self._drain_deadline = 0
        self._legs = 0
        self.switchovers = 0
        self.journal = J.open_journal(cfg.journal_path, cfg.journal_records)
        out = V.out_path(warm_ns=warm_ns)
        warm.default_shape(out.shadow)
        self.buf, self.wio = out.wire, out.io
        self.warm_link = warm.WarmLink() if warm_ns > 0 else None
        self.shadow_tls: ShadowTls | None = None  # TLS venue: the warm pass encrypts too
        if self.warm_link is not None:
            io = self.wio[0]
            io["warm_tx"], io["warm_rx"] = self.warm_link.fds()
            io["ready"] = 1  # the order path is always there
            if cfg.tls is not None:
                self.shadow_tls = ShadowTls(self.warm_link.tx, self.warm_link.rx)
        self.stale = np.zeros(max(len(table), 1), np.int64)
        self.counters = counters

        def hist(name: str) -> np.ndarray:
            return counters.histogram(name) if counters is not None else histogram.new()
        self.hist = hist("tick_to_trade_ns")
        self.bad_reports = 0
        self.reports_via_python = 0  # PossDup/out-of-band path; normally all go via _pump
        self.fast_rounds = 0  # poll rounds that ran the jitted duty (session up)
        self._reconcile_since = 0
        self._reconcile_due: str | None = None  # why trading stopped until reconciled
        self._mass_cancel_ns = 0
        self._book_slot = None
        self._instance = instance
        self._book_retry_ns = 0
        if cfg.book_ring:
            self._attach_book(instance, cfg.book_ring)
        self._init_ids()
        atomic_store(self.oms.words, L.W_READY, 0)
        self._wanted_seen = int(atomic_load(self.oms.words, L.W_RECONCILE_WANTED))
        # the named views, built once: the hot calls do no attribute lookups per message
        o, s = self.oms, self.session
        self.args = DutyArgs(
            intents=self.orders_ring.view(self.islot),
            oms=V.OmsView(o.words, o.orders, o.positions, self.journal,
                          np.zeros(J.RECORD_WORDS - 2, np.int64)),
            risk=self.risk,
            fix=V.Fix(out, s.store.view, s.syms, s.inb, s.comp_ids,
                      cfg.dialect.record() if cfg.dialect is not None else V.FIX44),
            execs=V.execs_view(self.execs_ring.view()),
            book=self._book_view(),
            hists=V.Hists(self.hist, hist("gateway.send_ns"), hist("gateway.work_ns"),
                          hist("hop.order_ring"), hist("gateway.intents_ns")))
        # the dispatcher would type every view in Python on every call (15-25 us idle):
        # these call the compiled overload directly while the arguments keep their types
        self.duty_call = SameArgsCall(flow.duty)
        # compiled now, not at the first kill switch (an instrument id that matches nothing)
        flow.cancel_all(self.args.oms, self.args.fix, NO_INSTRUMENT, 0, 0)
        self.pump_call = SameArgsCall(flow.pump_inbound)  # per read of the FIX socket
        s.pump = self._pump_of(self.args.fix, self.pump_call)
        self._counter_ix = {}
        if counters is not None:
            names = [*self._counter_values()]
            self._counter_ix = {n: counters.counter(f"gateway.{n}") for n in names}

    def _counter_values(self) -> dict[str, int]:
        """What the monitor sees: FIX session, risk/OMS and ring health counts."""
        c = self.session.counters
        w = self.wio[0]
        return {"fix.garbled": c.garbled, "fix.resend_requests_sent": c.resend_requests_sent,
                "fix.resend_requests_answered": c.resend_requests_answered,
                "fix.gap_fills_sent": c.gap_fills_sent, "fix.rejects": c.rejects_received,
                "fix.disconnects": c.disconnects, "fix.logons": c.logons,
                "fix.next_out": self.session.next_out, "fix.next_in": self.session.next_in,
                "orders.sent": int(w["sent"]), "orders.denied": int(w["denied"]),
                "execs.ring_full": int(w["ring_full"]),
                "oms.journal_full": int(w["journal_full"]),
                "fix.bad_reports": self.bad_reports + int(w["bad_reports"]) + c.bad_reports,
                "fix.rejects_sent": c.rejects_sent, "fix.fatal": c.fatal,
                "fix.reconciles_asked": c.reconciles_asked,
                "fix.gap_fills_received": c.gap_fills_received,
                "fix.order_rejects": c.order_rejects,
                **{f"fix.bad.{k}": v for k, v in c.bad.items()},
                **{f"oms.{name}": int(atomic_load(self.oms.words, word)) for name, word in (
                    ("unknown_reports", L.W_UNKNOWN_REPORTS),
                    ("reconcile_mismatch", L.W_RECONCILE_MISMATCH),
                    ("overfills", L.W_OVERFILLS), ("duplicate_fills", L.W_DUPLICATE_FILLS),
                    ("reconciles_wanted", L.W_RECONCILE_WANTED))},
                "warm_passes": int(w["passes"]),
                "tls.shadow_writes": int(w["warm_tls"]),
                "tls.shadow_failures": int(w["warm_tls_failed"]),
                **{f"tls.{k}": v for k, v in self.wire.tls_events.items()},
                **V.denials_by_reason(self.wio),
                "orders.venue_rejects": int(w["venue_rejects"]),
                **V.venue_rejects_by_code(self.wio),
                **({"reconcile.unknown_open_orders": self.reconcile_unknown,
                    "reconcile.failures": self.reconcile_failures,
                    "reconcile.balance_failures": self.holding_failures,
                    **{f"venue.{k}": v for k, v in self.venue_limits.items()}}
                   if self.dialect is not None else {})}

    # ------------------------------------------------------------------ set-up
    def _attach_book(self, instance, name: str) -> None:
        """Observe the book ring for best bid/ask; until it exists there is no market data
        (every new order is denied NO_MARKET_DATA) and housekeeping retries."""
        try:
            self.book = Ring.attach(instance, name, "book_update", BOOK_UPDATE)
        except SegmentMissing:
            log.warning("book ring %r not there yet: no market data, retrying", name)
            return
        self._book_slot = self.book.join(f"{self.name}-marks", ConsumerMode.OBSERVING)
        if hasattr(self, "args"):  # attached after start: the duty sees it from now on
            self.args = self.args._replace(book=self._book_view())

    def _book_view(self) -> V.Book:
        return V.book_view(self.book.view(self._book_slot) if self._book_slot is not None
                           else None)

    def _init_ids(self) -> None:
        """Client order ids never repeat: past the journal's highest and past now (us)."""
        recs = J.records(self.journal)
        top = int(recs[:, J.J_PAYLOAD + J.I_CL].max()) if len(recs) else 0
        floor = max(top + 1, time.time_ns() // 1000)
        words = self.oms.words
        if atomic_load(words, L.W_NEXT_CL_ORD_ID) < floor:
            atomic_store(words, L.W_NEXT_CL_ORD_ID, floor)

    # ------------------------------------------------------------------ hot path
    def _pump_of(self, fix: V.Fix, call: SameArgsCall):
        """The session's jitted reader: its own inbound side, the shared OMS/exec ring."""
        def pump(now_ns: int) -> int:
            a = self.args
            return call(fix, a.oms, a.execs, now_ns)
        return pump

    def _halt(self, why: str) -> None:
        """The session saw input that may have hidden a fill: no intent goes out from now
        until the venue is reconciled (housekeeping starts it: the session's own answer
        goes out first, in sequence)."""
        atomic_store(self.oms.words, L.W_READY, 0)
        self._reconcile_due = why

    def _on_app(self, f: np.ndarray, buf: np.ndarray) -> None:
        self.reports_via_python += 1
        if f[C.F_ERROR]:
            self.bad_reports += 1
            log.warning("FIX: unusable application message (error %d) dropped", f[C.F_ERROR])
            return
        a = self.args
        flow.on_report(f, a.oms, a.execs, self.wio, time.monotonic_ns())
        flow.note_reject(self.wio, f, buf)

    def _flush(self) -> int:
        n = int(self.wio[0]["end"])
        if not n:
            return 0
        self.wire.send(self.buf[:n])
        now = time.monotonic_ns()
        self.session.sent_app(now)
        flow.record_wire_times(self.hist, self.args.fix.out, now)
        return 1

    def process_intents(self, limit: int = 256) -> int:
        """The outbound leg alone, from Python (no session: every intent is denied)."""
        a = self.args
        return flow.process_intents(a.intents, a.oms, a.risk, a.fix, a.execs,
                                    a.hists.order_hop, time.monotonic_ns(), time.time_ns(),
                                    limit)

    def hot_duty(self) -> tuple | None:
        """The jitted hot path and its arguments while the session is up with nothing
        pending; None while the Python session shell must run every round."""
        if not self.wire.active or self.wire.pending:
            return None
        self.wio[0]["stop"] = flow.STOP_NONE
        self.fast_rounds += 1
        return flow.duty, (self.wire.sock.fileno(), self.wire.ssl, *self.args)

    def wait_ring(self) -> RingView:
        return self.args.intents  # the socket is polled on every wake-up

    def wait_fds(self) -> list[WaitFd]:
        """The FIX socket (a composite without a ring of its own sleeps on it)."""
        sock = self.wire.sock
        return [] if sock is None else [wait_fd(sock.fileno(), self.wire.ssl)]

    def duty_template(self) -> tuple:
        return flow.duty, (-1, 0, *self.args)  # the socket's fd is known after connecting

    def after_hot(self) -> None:
        now = time.monotonic_ns()
        self._after_duty(now)
        self.wire.poll(now, self._on_app)

    def poll_once(self, deadline_ns: int = 0, idle_state: np.ndarray | None = None) -> int:
        """One round: the jitted hot path (a single pass, or passes until ``deadline_ns``
        with ``idle_state``) while the session is up, then the Python session shell
        (admin messages, timers, reconnects, partial writes)."""
        hot = self.hot_duty()
        if hot is None:
            work = self._cold_round()
        else:
            duty, args = hot
            if deadline_ns:
                work = self.poll_slice(duty, args, idle_state, deadline_ns)
            else:
                work = work_done(self.duty_call(*args))
            self._after_duty(time.monotonic_ns())
        work += self.wire.poll(time.monotonic_ns(), self._on_app)
        for leg in (self._standby, self._draining):
            if leg is not None:
                work += leg.wire.poll(time.monotonic_ns(), self._on_app)
        return work

    def _cold_round(self) -> int:
        """No session (or a partial write pending): intents are denied, reports still flow."""
        o = self.oms
        work = self.book_observe() if self._book_slot is not None else 0
        if atomic_load(o.words, L.W_READY):
            atomic_store(o.words, L.W_READY, 0)  # no session: intents are denied
        return work + self.process_intents() + self._flush()

    def _after_duty(self, now: int) -> None:
        io = self.wio[0]
        stop = int(io["stop"])
        if stop == flow.STOP_PARTIAL:
            sent, end = int(io["sent_bytes"]), int(io["end"])
            self.wire.pending += self.buf[sent:end].tobytes()  # the shell writes the rest
            flow.record_wire_times(self.hist, self.args.fix.out, time.monotonic_ns())
        elif stop in (flow.STOP_CLOSED, flow.STOP_ERROR):
            self.wire.tls_failed(now, "peer closed the connection"
                                 if stop == flow.STOP_CLOSED else "socket error")

    def book_observe(self) -> int:
        b = self.args.book
        n = int(observe(b.ring.ctl, b.ring.slot, b.ring.raw, b.out))
        if n:
            flow.update_marks(b.recs, n, self.marks)
        return n

    def do_work(self, idle_state: np.ndarray, deadline_ns: int) -> int:
        total = 0
        while True:
            w = self.poll_once(deadline_ns, idle_state)
            total += w
            if time.monotonic_ns() >= deadline_ns:
                return total
            idle(idle_state, w)

    # ------------------------------------------------------------------ cold path
    def _control(self) -> None:
        for cmd in self.poller.poll():
            if cmd.op in (Op.KILL_ON, Op.KILL_OFF):  # new orders denied while on
                atomic_store(self.oms.words, L.W_KILL, int(cmd.op == Op.KILL_ON))
            if cmd.op in (Op.KILL_ON, Op.CANCEL_ALL) and self.wire.active:
                self.cancel_all()
            self.poller.ack(cmd, Status.DONE)

    def housekeeping(self, now_ns: int) -> bool:
        o = self.oms
        st = self.session.store
        warm.pretouch(self.journal, st.words, st.data, st.index)
        if self.shadow_tls is not None:
            warm.follow_tls(self.shadow_tls, self.wio, self.wire.ssl)
        if self.poller is not None:
            self._control()
        for event, detail in self.session.events:
            if event == "logon":
                self._reconcile_due = None  # the logon's reconcile covers it
                self._start_reconcile(now_ns)
            elif event == "reconcile" and self.session.reconcile_wanted_upto > \
                    self.session.reconciled_upto:  # not covered by one started since
                self._halt(detail)
            elif event == "limits":
                self.size_limits(detail)
            elif event == "news":
                log.warning("venue news: %s", detail)
                self._begin_switch(detail, now_ns)
            elif event == "request_rejected":
                self._request_rejected(*detail, now_ns)
            elif event in ("disconnected", "refused"):
                atomic_store(o.words, L.W_READY, 0)
                self._reconcile_since = 0
                log.info("FIX session down (%s): intents denied until reconciled", detail)
        self.session.events.clear()
        wanted = int(atomic_load(o.words, L.W_RECONCILE_WANTED))
        if wanted != self._wanted_seen:  # the OMS raised an anomaly (an overfill)
            self._wanted_seen = wanted
            self._halt("the OMS booked a fill beyond an order's quantity")
        if self._reconcile_since and atomic_load(o.words, L.W_RECONCILE_PENDING) <= 0:
            self._reconcile_since = 0
            if self._reconcile_due is None:
                atomic_store(o.words, L.W_READY, 1)
        if self._reconcile_due is not None and not self._reconcile_since and \
                self.wire.active:
            log.warning("trading stopped (%s): reconciling with the venue", self._reconcile_due)
            self._reconcile_due = None
            self._start_reconcile(now_ns, logon=False)
        elif self._reconcile_since and now_ns - self._reconcile_since > \
                self.cfg.reconcile_timeout_s * SECOND:
            log.warning("reconcile: status requests unanswered; asking again")
            self._start_reconcile(now_ns, logon=False)
        if self.wire.active and now_ns - self._mass_cancel_ns >= MASS_CANCEL_EVERY_NS:
            # mass cancels (kill switch, stale data) at most every 100 ms: an order whose
            # cancel the venue rejects is retried, not hammered
            self._mass_cancel_ns = now_ns
            if atomic_load(o.words, L.W_KILL):
                self.cancel_all()
            out = np.zeros(len(self.stale), np.int64)
            for sid in out[: flow.stale_instruments(o.orders, self.g, self.marks, now_ns, out)]:
                log.warning("market data stale for %s: cancelling its orders",
                            self.table[int(sid)].symbol)
                flow.bump_stale(o.words)
                self.cancel_all(int(sid))
        if self.cfg.book_ring and self._book_slot is None and now_ns > self._book_retry_ns:
            self._book_retry_ns = now_ns + SECOND
            self._attach_book(self._instance, self.cfg.book_ring)
        self.orders_ring.heartbeat(self.islot)
        self.execs_ring.heartbeat()
        if self._standby is not None or self._draining is not None:
            self._switch_step(now_ns)
        self._log_venue_rejects()
        if self._book_slot is not None:  # the observing "-marks" consumer beats too
            self.book.heartbeat(self._book_slot)
        if self._counter_ix:
            for name, value in self._counter_values().items():
                if name not in self._counter_ix:  # a venue reject code seen for the first time
                    self._counter_ix[name] = self.counters.counter(f"gateway.{name}")
                atomic_store(self.counters.words, self._counter_ix[name], value)
        return True

    def _log_venue_rejects(self) -> None:
        """One log line per batch of venue rejects: the count and the last one's Text."""
        w = self.wio[0]
        n = int(w["venue_rejects"])
        if n != self._venue_rejects:
            text = bytes(w["reject_text"][: int(w["reject_text_len"])]).decode(errors="replace")
            log.warning("venue rejected %d request(s); last: %s", n - self._venue_rejects,
                        text or "(no text)")
            self._venue_rejects = n

    # ------------------------------------------------------------------ binance-spot
    def _clock_gate(self) -> str | None:
        """Before every Binance logon: the clock offset to the venue (``GET
        /api/v3/time``); the refusal reason when a SendingTime of ours would fall outside
        its RecvWindow (or the clock cannot be read), else None."""
        b = self.cfg.binance or cfgmod.defaults("binance")
        try:
            off = clock.synchronise(self.rest, int(b["clock_samples"]),
                                    self.dialect.recv_window_ms, int(b["clock_margin_ms"]))
        except clock.ClockSkewError as e:
            return str(e)
        except (BinanceError, VenueUnreachable, OSError) as e:
            return f"cannot measure the clock offset to the venue: {e}"
        log.info("venue clock offset %+.1f ms (round trip %.1f ms)", off.offset_ms, off.rtt_ms)
        return None

    def size_limits(self, limits: list[binance_spot.Limits]) -> None:
        """XLR: the session's order and message limits cap the risk rate windows (never
        above ``[risk]``; a cancel is a message, so cancels get the message budget left
        after orders)."""
        g = self.risk.g
        orders = binance_spot.per_second(limits, binance_spot.ORDER_LIMIT)
        msgs = binance_spot.per_second(limits, binance_spot.MESSAGE_LIMIT)
        if orders is not None:
            g[risk.G_ORDERS_PER_S] = min(self.limits.max_orders_per_s, orders)
            self.venue_limits["orders_per_s"] = orders
        if msgs is not None:
            g[risk.G_CANCELS_PER_S] = min(self.limits.max_cancels_per_s,
                                          max(msgs - int(g[risk.G_ORDERS_PER_S]), 0))
            self.venue_limits["messages_per_s"] = msgs
        log.info("venue limits (XLR): %s -> orders %d/s, cancels %d/s",
                 ", ".join(f"{x.kind}:{x.count}/{x.max} per {x.interval_s}s" for x in limits),
                 g[risk.G_ORDERS_PER_S], g[risk.G_CANCELS_PER_S])

    def _request_rejected(self, ref_seq: int, code: int, text: str, now_ns: int) -> None:
        """Binance refused one of our messages with a Reject (35=3): the order it was about
        gets the reject report it would otherwise never get (``refusals``)."""
        raw = self.session.store.lookup(ref_seq) if ref_seq > 0 else None
        f = refusals.report_for(raw, code) if raw is not None else None
        log.warning("venue rejected our message %d (ErrorCode %d): %s%s", ref_seq, code,
                    text or "(no text)", "" if f is not None else " (no order affected)")
        if f is not None:
            self.session.counters.order_rejects += 1  # fix.order_rejects, as under fix44
            a = self.args
            flow.on_report(f, a.oms, a.execs, self.wio, now_ns)
            flow.note_reject(self.wio, f, self.session.inbuf)

    def _begin_switch(self, headline: str, now_ns: int) -> None:
        """A maintenance countdown (News): log a second session on (a fresh CompID, its
        own store) while this one keeps trading; ``_switch_step`` moves the order flow."""
        left = binance_spot.countdown_s(headline)
        if left is None or self._standby is not None or self._draining is not None \
                or not self.wire.active:
            return
        self._legs += 1
        cfg = dataclasses.replace(self.cfg.session,
                                  store_dir=f"{self.cfg.session.store_dir}-{self._legs % 2}")
        session = Session(cfg, self.session.syms.names, self.session.syms.grid,
                          dialect=self.dialect)
        fix = self.args.fix._replace(store=session.store.view, inb=session.inb,
                                     comp_ids=session.comp_ids, dialect=self.dialect.record())
        session.pump = self._pump_of(fix, SameArgsCall(flow.pump_inbound))
        session.on_reconcile = self._halt
        self._standby = Leg(session, Initiator(session, self.cfg.host, self.cfg.port,
                                               self.cfg.backoff_min_s, self.cfg.backoff_max_s,
                                               self.cfg.tls), fix)
        self._drain_deadline = now_ns + max(left - 2, 1) * SECOND
        log.warning("venue maintenance in %d s: logging on a second session", left)

    def _switch_step(self, now_ns: int) -> None:
        sb = self._standby
        if sb is not None:
            for event, detail in sb.session.events:
                if event == "limits":
                    self.size_limits(detail)
                elif event == "logon":
                    self._switch_to(sb, now_ns)
                elif event in ("refused", "disconnected") and self._standby is sb:
                    log.error("second session failed (%s); staying on the first", detail)
                    sb.wire.close(now_ns, "switch-over abandoned")
                    self._standby = None
            sb.session.events.clear()
        d = self._draining
        if d is None:
            return
        d.session.events.clear()
        if d.wire.sock is None:
            self._draining = None
            log.info("old session closed: switch-over complete")
        elif d.session.state == State.ACTIVE and (not self._in_flight_before(
                self._switch_at) or now_ns >= self._drain_deadline):
            d.wire.enabled = False  # no reconnect once it is logged out
            d.session.logout(now_ns, "maintenance: moved to a new session")
            d.wire.send(d.session.take_output())

    def _switch_to(self, sb: Leg, now_ns: int) -> None:
        """The order flow moves to the new session: the jitted duty sends and reads there
        from now on; the old one stays up (reading only: its in-flight requests are
        answered on it) until nothing sent before the switch awaits an answer."""
        old = Leg(self.session, self.wire, self.args.fix)
        if self.dialect.response_mode == binance_spot.RESPONSE_MODE["everything"]:
            old.fix.dialect[0]["draining"] = 1  # its successful reports reach the new one
        self.session, self.wire = sb.session, sb.wire
        self.args = self.args._replace(fix=sb.fix)
        self._standby, self._draining = None, old
        self._switch_at = now_ns
        self.switchovers += 1
        log.warning("order flow moved to the new session %s (old %s draining)",
                    sb.session.sender, old.session.sender)
        if not old.wire.active:  # the old one went down first: nothing to drain
            old.wire.close(now_ns, "replaced by a new session")
            self._draining = None
        if not atomic_load(self.oms.words, L.W_READY):  # ... and intents were stopped
            self._start_reconcile(now_ns)

    def _in_flight_before(self, t_ns: int) -> bool:
        """Any order whose request (sent before ``t_ns``) is still unanswered."""
        o = self.oms.orders
        st = o["status"]
        pending = (st == OrdStatus.PENDING_NEW) | (st == OrdStatus.PENDING_CANCEL) | \
            (st == OrdStatus.PENDING_REPLACE)
        return bool(np.any(pending & (o["t_update_ns"] <= t_ns)))

    def _rest_reconcile(self, now_ns: int) -> None:
        """Binance: the venue's view of every live order from REST, through the OMS, before
        intents are accepted again (on failure: retried after reconcile_timeout_s)."""
        o = self.oms
        atomic_store(o.words, L.W_RECONCILE_PENDING, 1)  # READY stays 0 until applied
        self._reconcile_since = now_ns
        try:
            found = rest_reconcile.venue_reports(self.rest, self.table, o.orders)
        except REST_FAILURES as e:
            self.reconcile_failures += 1
            log.error("reconcile from REST failed (%s); intents stay denied, retrying", e)
            return
        a = self.args
        atomic_store(o.words, L.W_RECONCILE_PENDING, len(found.reports))
        for f in found.reports:
            flow.on_report(f, a.oms, a.execs, self.wio, now_ns)
        atomic_store(o.words, L.W_RECONCILE_PENDING, 0)
        for v in found.unknown:
            log.warning("venue open order not in the OMS: %s %s clientOrderId %s orderId %d "
                        "(left alone)", v.symbol, v.side.name, v.cl_ord_id, v.venue_order_id)
        self.reconcile_unknown += len(found.unknown)
        log.info("reconciled %d live orders from REST (%d unknown at the venue)",
                 len(found.reports), len(found.unknown))
        self._set_holdings()

    def _set_holdings(self) -> None:
        """MAX_POSITION counts the base asset held at the venue, not only what this run
        bought: after every REST reconcile, the balances set where each symbol starts from.
        On failure the last known offsets stay (logged and counted)."""
        by_symbol = {} if self.rules is None else self.rules.symbols
        capped = [(i, by_symbol[i.symbol].base_asset) for i in self.table
                  if i.symbol in by_symbol and by_symbol[i.symbol].max_position > 0]
        if not capped:
            return
        try:
            balances = fetch_balances(self.rest)
        except REST_FAILURES as e:
            self.holding_failures += 1
            log.error("balances from REST failed (%s); MAX_POSITION keeps its last holdings",
                      e)
            return
        filters, positions = self.risk.filters, self.oms.positions
        for inst, asset in capped:
            held, sid = base_holding_lots(balances.get(asset), inst), inst.symbol_id
            risk.set_holding(filters, sid, held, int(positions[sid]["position"]))
            log.info("%s: %d lots of %s held at the venue (MAX_POSITION %d)", inst.symbol,
                     held, asset, int(filters[sid]["max_position"]))

    def _start_reconcile(self, now_ns: int, logon: bool = True) -> None:
        """Trading stops until the venue's view of every live order is applied: after a
        logon, and whenever the session or the OMS wanted one (``_halt``). Binance has no
        35=H: there it is the REST reconcile."""
        o = self.oms
        atomic_store(o.words, L.W_READY, 0)
        if logon:
            atomic_store(o.words, L.W_LOGONS, atomic_load(o.words, L.W_LOGONS) + 1)
        self.session.reconciled_upto = self.session.seen_upto
        if self.dialect is not None:  # no 35=H at Binance
            self._rest_reconcile(now_ns)
            return
        n = flow.request_status_all(self.args.oms, self.args.fix, now_ns, time.time_ns())
        self._flush()
        self._reconcile_since = now_ns
        log.info("reconciling %d open orders with the venue", n)

    def cancel_all(self, sid: int = -1) -> None:
        while True:
            left = flow.cancel_all(self.args.oms, self.args.fix, sid, time.monotonic_ns(),
                                   time.time_ns())
            self._flush()
            if not left:
                return

    def open_orders(self) -> int:
        return int(atomic_load(self.oms.words, L.W_OPEN_ORDERS))

    def on_close(self) -> None:
        """Cancel everything, wait (bounded) for the acks, log out, close."""
        if self.poller is not None:
            self.poller.close()
        deadline = time.monotonic() + self.cfg.shutdown_timeout_s
        if self.wire.active:
            self.cancel_all()
            while self.open_orders() and time.monotonic() < deadline:
                self.wire.poll(time.monotonic_ns(), self._on_app)
                time.sleep(0.001)
            self.session.logout(time.monotonic_ns(), "gateway shutdown")
            while self.wire.sock is not None and time.monotonic() < deadline:
                self.wire.poll(time.monotonic_ns(), self._on_app)
                time.sleep(0.001)
        self.wire.close(time.monotonic_ns(), "gateway shutdown")
        if self.shadow_tls is not None:
            self.shadow_tls.close()
        if self.warm_link is not None:
            self.warm_link.close()
        atomic_store(self.oms.words, L.W_READY, 0)
        self.session.store.flush()
        self.journal.base.flush()


@dataclass
class Leg:
    """One Binance session of a maintenance switch-over: its session, socket, FIX view."""

    session: Session
    wire: Initiator
    fix: V.Fix


def replay(journal: np.ndarray, state: OmsState) -> int:
    """Rebuild OMS state from the journal (when the shared segment is gone)."""
    from pipeline.orders import oms
    n = 0
    intent = np.zeros(1, ORDER_INTENT)
    for rec in J.records(journal):
        p = rec[J.J_PAYLOAD:]
        now = int(rec[J.J_TIME])
        if rec[J.J_KIND] == J.K_INTENT:
            action = int(p[J.I_ACTION])
            if action == OrderAction.NEW:
                r = intent[0]
                for name, word in (("cl_ord_id", J.I_CL), ("symbol_id", J.I_SID),
                                   ("side", J.I_SIDE), ("price", J.I_PRICE), ("qty", J.I_QTY),
                                   ("tif", J.I_TIF), ("ord_type", J.I_TYPE),
                                   ("t_origin_ns", J.I_T_ORIGIN)):
                    r[name] = p[word]
                oms.accept_new(state.words, state.orders, state.positions, r,
                               p[J.I_STRATEGY], now)
            else:
                slot = oms.find(state.orders, p[J.I_ORIG])
                if slot >= 0 and action == OrderAction.CANCEL:
                    oms.accept_cancel(state.orders, slot, p[J.I_CL], now)
                elif slot >= 0:
                    oms.accept_replace(state.orders, slot, p[J.I_CL], p[J.I_PRICE], p[J.I_QTY],
                                       now)
        else:
            oms.apply_report(state.words, state.orders, state.positions,
                             np.ascontiguousarray(p[: C.N_FIELDS]), now)
        top = int(p[J.I_CL]) if rec[J.J_KIND] == J.K_INTENT else 0
        if top >= atomic_load(state.words, L.W_NEXT_CL_ORD_ID):
            atomic_store(state.words, L.W_NEXT_CL_ORD_ID, top + 1)
        n += 1
    return n
