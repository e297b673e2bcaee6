"""The end-of-run summary, read from the instance's shared memory before it is removed.

``errors`` lists every non-zero counter worth a look (``ERROR_WORDS``: denials, gaps,
resyncs ...); ``judge`` then adds what only the launcher knows (process restarts, a
supervisor that gave up, OMS positions the venue disagrees with) and names the
``failures``: the errors matching ``RUN_ERRORS``, any of which makes ``hft run`` exit
non-zero. A new error counter elsewhere is one more pattern in ``RUN_ERRORS``.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pipeline.instruments import SymbolTable
from pipeline.marketdata.latest import LatestBooks
from pipeline.metrics.counters import Counters
from pipeline.orders.positions import position_report
from pipeline.orders.segments import OmsState
from pipeline.transport.registry import Instance
from pipeline.transport.ring import inspect_ring
from shm_layouts import oms as oms_layout

HOPS = {  # histogram label -> what it measures
    "hop.md_ring": "frame receipt -> book_builder (md ring)",
    "hop.book_ring": "book_builder -> strategy (book ring)",
    "hop.order_ring": "strategy -> oms_gateway (order ring)",
    "hop.exec_ring": "oms_gateway -> strategy (exec ring)",
    "strategy.tick_to_decision_ns": "frame receipt -> strategy decides (books it acted on)",
    "strategy.acted.frame_to_book_ns": "frame receipt -> book published (books acted on)",
    "strategy.acted.book_hop_ns": "book published -> strategy (books acted on)",
    "strategy.decision_ns": "strategy decision (book record -> intent)",
    "gateway.work_ns": "oms_gateway pass before send() (book marks, risk, OMS, FIX encode, "
                       "journals)",
    "gateway.intents_ns": "oms_gateway pass after the book marks (poll, risk, OMS, encode, "
                          "journals)",
    "tick_to_trade_ns": "tick-to-trade (frame receipt -> order bytes on the socket)",
    "gateway.send_ns": "oms_gateway send() syscall (on loopback it wakes the venue)",
}
DENIED = "gateway.orders.denied"  # the total; DENIED + ".<reason>" counts one RiskReason
ERROR_WORDS = ("error", "reject", "gap", "crossed", "overflow", "lost", "invalid", "resync",
               "stale", "full", "denied", "bad_", "bad.", "garbled", "disconnect", "unknown",
               "mismatch", "overfill", "duplicate", "fatal")
# Errors that fail the run (exit 1): fnmatch patterns over the names in ``errors``. What the
# venue sent that we could not use, what the OMS could not match, data we could not deliver,
# a supervisor that gave up on a process, records a bridge never delivered on a gating ring
# (orders, execs: a book update one missed is superseded by the next), positions the venue
# does not confirm (a process restart that recovered is shown, ``restarts.<name>``, but is
# crash-only's normal path).
RUN_ERRORS = (
    "gateway.fix.bad_reports", "gateway.fix.bad.*", "gateway.fix.garbled",
    "gateway.fix.disconnects", "gateway.fix.reconnects", "gateway.fix.fatal",
    "gateway.fix.rejects",
    "gateway.fix.rejects_sent", "gateway.oms.*", "gateway.execs.ring_full",
    "gateway.reconcile.*failures", "bridge.recv.orders.gaps", "bridge.recv.execs.gaps",
    "*error*", "*lost*", "*overflow*", "supervisor.*", "positions.*",
)
# how many of a RUN_ERRORS counter a clean run has: the session's own final logout is one
# disconnect
CLEAN_RUN = {"gateway.fix.disconnects": 1}
# OMS control words that are errors, shown under the gateway's names (fixhostile's gateway
# also publishes them as counters; those win)
OMS_WORDS = {"gateway.oms.unknown_reports": "W_UNKNOWN_REPORTS",
             "gateway.oms.reconcile_mismatch": "W_RECONCILE_MISMATCH"}


def positions(instance: Instance, symbols: SymbolTable) -> dict:
    return position_report(OmsState.attach(instance, readonly=True),
                           LatestBooks.attach(instance, readonly=True), symbols)


def denials(values: dict[str, int]) -> dict:
    """Risk denials: the total and, by lower-case RiskReason name, every non-zero reason."""
    prefix = DENIED + "."
    reasons = [(k[len(prefix):], v) for k, v in values.items() if k.startswith(prefix) and v]
    return {"total": values.get(DENIED, 0),
            "by_reason": dict(sorted(reasons, key=lambda kv: -kv[1]))}  # largest first


def collect_summary(instance: Instance, symbols: SymbolTable, seconds: float,
                    latency_since: dict | None = None) -> dict:
    """``latency_since``: histogram words taken after start-up (``--warmup``); latencies
    then cover only what came after."""
    counters = Counters.attach(instance, readonly=True)
    values = counters.values()
    oms = OmsState.attach(instance, readonly=True)
    for name, word in OMS_WORDS.items():
        values.setdefault(name, int(oms.words[getattr(oms_layout, word)]))
    hist = counters.histograms(since=latency_since)
    rings = {}
    for e in instance.segments():
        if e.layout_name.startswith("ring:"):
            rings[e.name] = inspect_ring(instance, e.name)
    return {
        "instance": instance.name,
        "seconds": round(seconds, 3),
        "counters": values,
        "errors": {k: v for k, v in values.items() if v and any(w in k for w in ERROR_WORDS)
                   and not k.startswith(DENIED + ".")},  # the breakdown is under "denied"
        "denied": denials(values),
        "latency_ns": {HOPS.get(k, k): v for k, v in hist.items()},
        "rings": rings,
        "positions": positions(instance, symbols),
        "processes": counters.processes(),
    }


def position_check(oms: dict, venue: dict[str, int] | None) -> dict:
    """Per symbol, the OMS's position and the venue's (lots) where they differ; empty
    when they agree (or the venue gives none: ``venue`` None)."""
    if venue is None:
        return {}
    ours = {sym: p["position_lots"] for sym, p in oms.items()}
    return {sym: {"oms": ours.get(sym, 0), "venue": venue.get(sym, 0)}
            for sym in sorted(set(ours) | set(venue))
            if ours.get(sym, 0) != venue.get(sym, 0)}


def judge(summary: dict) -> dict:
    """Complete ``errors`` with process restarts, a supervisor give-up and position mismatches
    (``venue_positions``: lots per symbol, or None: another venue, or, with
    ``venue_is_simulator``, an error), then set ``failures``: the errors
    (beyond ``CLEAN_RUN``) that fail the run. Returns ``summary``."""
    errors = summary.setdefault("errors", {})
    for name, n in (summary.get("restarts") or {}).items():
        if n:  # shown; crash-only: a restart that recovered does not fail the run
            errors[f"restarts.{name}"] = n
    if summary.get("failed"):
        errors["supervisor.gave_up"] = 1
    logons = summary.get("counters", {}).get("gateway.fix.logons", 0)
    if logons > 1:  # the session went down mid-run (the count of its last disconnect may
        errors["gateway.fix.reconnects"] = logons - 1  # not be published yet)
    if summary.get("venue_is_simulator") and summary.get("venue_positions") is None:
        errors["positions.venue_unavailable"] = 1  # the check could not run: say so
    mismatch = position_check(summary.get("positions", {}), summary.get("venue_positions"))
    summary["position_mismatch"] = mismatch
    for sym, p in mismatch.items():
        errors[f"positions.{sym}.oms_minus_venue_lots"] = p["oms"] - p["venue"]
    summary["failures"] = sorted(
        k for k, v in errors.items() if v > CLEAN_RUN.get(k, 0)
        and any(fnmatchcase(k, pattern) for pattern in RUN_ERRORS))
    return summary
