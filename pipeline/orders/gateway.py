"""The OMS gateway agent: order ring -> risk -> OMS -> FIX -> socket, and back.

Per message the work is jitted (``flow``); this class owns the arrays, the FIX session and
its socket shell, and the cold-path duties between slices: reconcile open orders after
every logon (OrderStatusRequest) before accepting intents, and likewise whenever the venue's
input may have hidden a fill (an unusable report the session rejected, a gap fill, an
overfill the OMS raised): trading stops at once and resumes once reconciled; the kill
switch (blocks new orders and cancels everything), cancel-on-stale-market-data, and
cancel-all + logout on shutdown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pipeline import config as cfgmod
from pipeline.control.area import ControlArea
from pipeline.control.poller import ControlPoller
from pipeline.fix import codec as C
from pipeline.fix.session import Session, SessionConfig
from pipeline.fix.wire import Initiator
from pipeline.instruments import SymbolTable, symbol_matrix
from pipeline.metrics import histogram
from pipeline.metrics.counters import Counters
from pipeline.orders import flow, risk, warm
from pipeline.orders import journal as J
from pipeline.orders import views as V
from pipeline.orders.segments import ORDERS_CONSUMER, OmsState, attach_order_path
from pipeline.runtime.agent import Agent, SameArgsCall, work_done
from pipeline.runtime.idle import idle
from pipeline.tls.client import TlsSettings
from pipeline.transport.ring import Ring, RingView, observe
from pipeline.transport.segment import SegmentMissing
from pipeline.transport.shared import atomic_load, atomic_store
from shm_layouts import oms as L
from shm_layouts.control import Op, Status
from shm_layouts.records import BOOK_UPDATE, ORDER_INTENT, OrderAction
from shm_layouts.ring import ConsumerMode

log = logging.getLogger(__name__)
SECOND = 1_000_000_000
MASS_CANCEL_EVERY_NS = 100_000_000
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

    @classmethod
    def from_config(cls, section: dict) -> GatewayConfig:
        s = cfgmod.section("gateway", section)
        state = Path(s["state_dir"])
        return cls(host=s["host"], port=int(s["port"]),
                   session=SessionConfig.from_config(dict(s, store_dir=str(state / "fix"))),
                   journal_path=str(state / "oms.journal"),
                   book_ring=s["book_ring"] or None,
                   reconcile_timeout_s=float(s["reconcile_timeout_s"]),
                   shutdown_timeout_s=float(s["shutdown_timeout_s"]),
                   backoff_min_s=float(s["backoff_min_s"]),
                   backoff_max_s=float(s["backoff_max_s"]),
                   tls=_tls(s))


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
                 control: ControlArea | None = None, warm_ns: int = 0):
        """``warm_ns`` > 0: keep the order path hot, one dry pass (``warm.warm``) every
        ``warm_ns`` while nothing is sent. Only for a busy-spinning gateway."""
        self.cfg = cfg
        # hft ctl: kill switch and cancel-all are acknowledged from housekeeping
        self.poller = None if control is None else ControlPoller(
            control, "oms_gateway", (Op.KILL_ON, Op.KILL_OFF, Op.CANCEL_ALL))
        self.table = table
        self.orders_ring, self.execs_ring, self.oms = attach_order_path(instance)
        self.islot = self.orders_ring.join(ORDERS_CONSUMER)
        self.execs_ring.claim_producer()
        self.risk = limits.view(table)
        self.g, self.marks = self.risk.g, self.risk.marks
        self.session = Session(cfg.session, symbol_matrix([i.symbol for i in table]),
                               table.table())
        self.session.pump = self._pump
        self.session.on_reconcile = self._halt
        self.wire = Initiator(self.session, cfg.host, cfg.port, cfg.backoff_min_s,
                              cfg.backoff_max_s, cfg.tls)
        self.journal = J.open_journal(cfg.journal_path, cfg.journal_records)
        out = V.out_path(warm_ns=warm_ns)
        warm.default_shape(out.shadow)
        self.buf, self.wio = out.wire, out.io
        self.warm_link = warm.WarmLink() if warm_ns > 0 else None
        if self.warm_link is not None:
            io = self.wio[0]
            io["warm_tx"], io["warm_rx"] = self.warm_link.fds()
            io["ready"] = 1  # the order path is always there
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
            fix=V.Fix(out, s.store.view, s.syms, s.inb, s.comp_ids),
            execs=V.execs_view(self.execs_ring.view()),
            book=self._book_view(),
            hists=V.Hists(self.hist, hist("gateway.send_ns"), hist("gateway.work_ns"),
                          hist("hop.order_ring")))
        # the dispatcher would type every view in Python on every call (15-25 us idle):
        # these call the compiled overload directly while the arguments keep their types
        self.duty_call = SameArgsCall(flow.duty)
        self.pump_call = SameArgsCall(flow.pump_inbound)  # per read of the FIX socket
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
                **{f"tls.{k}": v for k, v in self.wire.tls_events.items()},
                **V.denials_by_reason(self.wio)}

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
    def _pump(self, now_ns: int) -> int:
        a = self.args
        return self.pump_call(a.fix, a.oms, a.execs, now_ns)

    def _halt(self, why: str) -> None:
        """The session saw input that may have hidden a fill: no intent goes out from now
        until the venue is reconciled (housekeeping starts it: the session's own answer
        goes out first, in sequence)."""
        atomic_store(self.oms.words, L.W_READY, 0)
        self._reconcile_due = why

    def _on_app(self, f: np.ndarray, _buf: np.ndarray) -> None:
        self.reports_via_python += 1
        if f[C.F_ERROR]:
            self.bad_reports += 1
            log.warning("FIX: unusable application message (error %d) dropped", f[C.F_ERROR])
            return
        a = self.args
        flow.on_report(f, a.oms, a.execs, self.wio, time.monotonic_ns())

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
        return work + self.wire.poll(time.monotonic_ns(), self._on_app)

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
        if self.poller is not None:
            self._control()
        for event, detail in self.session.events:
            if event == "logon":
                self._reconcile_due = None  # the logon's reconcile covers it
                self._start_reconcile(now_ns)
            elif event == "reconcile" and self.session.reconcile_wanted_upto > \
                    self.session.reconciled_upto:  # not covered by one started since
                self._halt(detail)
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
        if self._counter_ix:
            for name, value in self._counter_values().items():
                atomic_store(self.counters.words, self._counter_ix[name], value)
        return True

    def _start_reconcile(self, now_ns: int, logon: bool = True) -> None:
        o = self.oms
        atomic_store(o.words, L.W_READY, 0)
        if logon:
            atomic_store(o.words, L.W_LOGONS, atomic_load(o.words, L.W_LOGONS) + 1)
        self.session.reconciled_upto = self.session.seen_upto
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
        if self.warm_link is not None:
            self.warm_link.close()
        atomic_store(self.oms.words, L.W_READY, 0)
        self.session.store.flush()
        self.journal.base.flush()


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
