"""``hft run``: the whole pipeline against the venue simulator (or ``--venue``)."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline import config as cfgmod
from pipeline.launch.firm_links import Bridge, FirmLinks
from pipeline.launch.launcher import Launcher, RunOptions
from pipeline.launch.preflight import PreflightError
from pipeline.transport.segment import SegmentLive


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML merged over config/default.toml")
    p.add_argument("--instance", help="instance name (default: [instance] name + pid)")
    p.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--venue", help="a venue profile, config/venues/NAME.toml "
                   "(binance-testnet, binance), or HOST:MD_PORT,REST_PORT,FIX_PORT of a running "
                   "venue, instead of starting the simulator")
    p.add_argument("--profile", default="auto",
                   help="core layout in tuning/profiles (auto, dev-2core, dev-2core-lowlat, "
                   "tuned-host)")
    p.add_argument("--tls", action="store_true",
                   help="the simulator serves WebSocket, REST and FIX over TLS (hft sim "
                   "--tls); the feed and the gateway verify it against its CA")
    p.add_argument("--sim-dialect", choices=("fix44", "binance"), default="fix44",
                   help="the simulator's order-entry rules: binance runs it as Binance Spot "
                   "(hft sim --dialect binance, over TLS) with an Ed25519 key pair made for "
                   "the run, and the gateway speaks the binance-spot FIX dialect")
    p.add_argument("--md-format", choices=("json", "sbe"),
                   help="market data format (default: [feed] md_format, json): sbe reads "
                   "Binance's binary streams (the simulator serves both)")
    p.add_argument("--summary-json", help="also write the summary to this file")
    p.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS",
                   help="count latencies only from SECONDS after the first order went "
                   "out (the steady state; default: the whole run)")
    p.add_argument("--replay", nargs="+", metavar="FILE",
                   help="drive the pipeline from these captures (one process, lock-step) "
                   "against a paper venue instead of the live feed and the simulator")
    p.add_argument("--seed", type=int, default=0,
                   help="replay: client order id seed (same capture + seed = same intents)")
    p.add_argument("--intents-out", help="replay: write every order intent (raw 64-byte "
                   "ORDER_INTENT records) to this file")
    firm = p.add_argument_group("one of a firm's instances (docs/operations.md)")
    firm.add_argument("--nats", metavar="URL", help="run the drop copy and the risk link "
                      "against this NATS JetStream server (nats://HOST:PORT)")
    firm.add_argument("--aeron-dir", metavar="DIR", help="the Aeron media driver's directory "
                      "(hft bridge driver; default: Aeron's)")
    firm.add_argument("--bridge-out", nargs=3, action="append", default=[],
                      metavar=("RING", "CHANNEL", "STREAM_ID"),
                      help="forward a ring (book, md, orders, execs) over Aeron, e.g. book "
                      "aeron:udp?endpoint=127.0.0.1:40123 10 (repeatable)")
    firm.add_argument("--book-from", nargs=2, metavar=("CHANNEL", "STREAM_ID"),
                      help="no market data of our own: the book ring comes over Aeron from "
                      "another instance's --bridge-out book")


QUIET_RUN_S = 10  # a run this long that sent no order says so


def print_summary(s: dict) -> None:
    print(f"\n== summary: instance {s['instance']}, {s['seconds']:.1f} s")
    c = s["counters"]
    feed = {k.split(".", 1)[1]: v for k, v in c.items() if k.startswith("feed.")}
    print(f"market data: {feed.get('messages', 0):,} messages, "
          f"{feed.get('applied', 0):,} depth events applied, "
          f"{c.get('strategy.book_updates', 0):,} book updates to the strategy")
    gw = {k.split(".", 1)[1]: v for k, v in c.items()
          if k.startswith("gateway.") and not k.startswith("gateway.orders.denied.")}
    print(f"orders: {c.get('strategy.intents', 0):,} intents, "
          + ", ".join(f"{k} {v:,}" for k, v in gw.items() if v))
    print(format_denials(s["denied"], c.get("strategy.intents", 0),
                         c.get("strategy.requotes_throttled")))
    for sym, p in s["positions"].items():
        print(f"  {sym}: position {p['position']}, fills {p['fills']}, volume {p['volume']}, "
              f"realised PnL {p['realised_pnl']}, unrealised {p['unrealised_pnl']}")
    window = s.get("latency_window_s")
    print("latency (ns)" + (f", the last {window:.1f} s:" if window is not None and
                            window < s["seconds"] - 0.5 else ":"))
    for name, h in s["latency_ns"].items():
        if h.get("count"):
            print(f"  {name}: p50 {h['p50']:,.0f}  p99 {h['p99']:,.0f}  "
                  f"p99.9 {h['p99.9']:,.0f}  max {h['max']:,}  (n={h['count']:,})")
    refused = venue_refusals(s.get("venue_stats"))
    if refused is not None:
        print("venue refusals: " + (", ".join(f"{k} {v:,}" for k, v in refused.items())
                                    or "none"))
    errors, failures = s["errors"], s.get("failures") or []
    print("errors: " + (", ".join(f"{k} {errors[k]:,}" for k in failures) or "none"))
    counted = {k: v for k, v in errors.items() if k not in failures}
    if counted:  # risk denials, venue rejects, a clean logout: worth a look, not a failure
        print("counted (not errors): " + ", ".join(f"{k} {v:,}" for k, v in counted.items()))
    if s["seconds"] >= QUIET_RUN_S and not c.get("gateway.orders.sent"):
        print(f"no order was sent in {s['seconds']:.0f} s (a first run on a cold numba cache "
              "may spend that long compiling)")
    if s.get("failed"):
        print(f"STOPPED BY SUPERVISOR: {s['failed']}")
    restarts = {k: v for k, v in s.get("restarts", {}).items() if v}
    if restarts:
        print(f"restarts: {restarts}")
    for sym, p in s.get("position_mismatch", {}).items():
        print(f"POSITION MISMATCH {sym}: OMS {p['oms']:,} lots, venue {p['venue']:,} lots")
    if s.get("failures"):
        print(f"RUN FAILED (exit 1): {', '.join(s['failures'])}")


# the simulator's counters of what it refused (binance dialect: with Binance's codes)
REFUSAL_COUNTERS = ("binance_logons_refused", "binance_bad_", "binance_unsupported_",
                    "binance_filter_rejects", "binance_limit_maker_rejects",
                    "binance_order_rate_rejects", "binance_message_limit_logouts",
                    "binance_cancel_rejects", "binance_amend_rejects", "rest_signed_refused_",
                    "fix_bad_logon", "fix_bad_credentials", "fix_rejects_sent")


def venue_refusals(stats: dict | None) -> dict | None:
    """The simulator's non-zero refusal counters (None when the venue is not ours)."""
    if stats is None:
        return None
    return {k: v for k, v in sorted(stats.items()) if v and k.startswith(REFUSAL_COUNTERS)}


def format_denials(denied: dict, intents: int, throttled: int | None = None) -> str:
    """``denied: 67 of 396 intents (16.9%): order_rate 60, not_ready 7`` (and how many
    quote updates the strategy's own order budget held back, when it counts them)."""
    total = denied["total"]
    share = f" ({100 * total / intents:.1f}%)" if intents else ""
    reasons = ", ".join(f"{k} {v:,}" for k, v in denied["by_reason"].items())
    held = "" if throttled is None else \
        f"; {throttled:,} requotes held back by the strategy's order budget"
    return f"denied: {total:,} of {intents:,} intents{share}" + \
        (f": {reasons}" if reasons else "") + held


def main(args: argparse.Namespace) -> int:
    if args.replay:
        return replay_main(args)
    if args.tls and args.venue:
        print("hft run: --tls starts the simulator with TLS; for a running venue set "
              "[feed] / [gateway] TLS keys in --config", file=sys.stderr)
        return 2
    if args.sim_dialect != "fix44" and args.venue:
        print("hft run: --sim-dialect sets up the simulator; a running venue (--venue) "
              "brings its own rules", file=sys.stderr)
        return 2
    opts = RunOptions(config=args.config, instance=args.instance, duration=args.duration,
                      venue=args.venue, profile=args.profile, warmup=args.warmup,
                      tls=args.tls or args.sim_dialect == "binance", md_format=args.md_format,
                      sim_dialect=args.sim_dialect, firm=firm_links(args))
    try:
        summary = Launcher(opts).run()
    except PreflightError as e:  # a real venue that cannot be traded: one line, why
        print(f"hft run: {e}", file=sys.stderr)
        return 2
    except (TimeoutError, RuntimeError) as e:  # a process or the venue did not come up
        if isinstance(e, SegmentLive) or getattr(args, "verbose", False):
            raise  # SegmentLive: the name is taken (hft says so, exit 2)
        print(f"hft run: could not start: {e} (its log is above; -v for the traceback)",
              file=sys.stderr)
        return 1
    print_summary(summary)
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return 1 if summary.get("failed") or summary.get("failures") else 0


def firm_links(args: argparse.Namespace) -> FirmLinks:
    """``--nats``, ``--aeron-dir``, ``--bridge-out`` and ``--book-from`` as one value."""
    def stream_id(text: str) -> int:
        if not text.isdigit():
            raise cfgmod.ConfigError(f"Aeron stream id {text!r} is not a non-negative integer")
        return int(text)
    book = args.book_from and Bridge("book", args.book_from[0], stream_id(args.book_from[1]))
    return FirmLinks(nats=args.nats, aeron_dir=args.aeron_dir, book_from=book or None,
                     bridge_out=tuple(Bridge(r, c, stream_id(n)) for r, c, n in args.bridge_out))


def replay_main(args: argparse.Namespace) -> int:
    """``hft run --replay FILE...``: see ``pipeline.replay.pipeline`` (one process, no venue
    and no core layout: ``--duration``, ``--venue`` and ``--profile`` do not apply)."""
    from pipeline.replay.pipeline import INTEGRITY_ERRORS, print_replay_summary, run_replay
    try:
        summary = run_replay(args.replay, args.config, args.seed, args.intents_out,
                             args.instance)
    except (OSError, ValueError) as e:  # unreadable capture or config
        print(f"hft run --replay: {e}", file=sys.stderr)
        return 2
    print_replay_summary(summary)
    if args.summary_json:
        with open(args.summary_json, "w") as f:
            json.dump(summary, f, indent=2, default=str)
    return 1 if any(f"paper.{k}" in summary["errors"] for k in INTEGRITY_ERRORS) else 0
