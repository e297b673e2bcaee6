"""``hft risk``: the firm-wide risk view and kill switch, over NATS (``pipeline.firm.risk``).

``hft risk --nats URL [--json] [--watch]``: every instance's last report (positions, PnL,
open orders, kill state; stale ones marked by age) and the firm's totals per symbol.
``hft risk kill --nats URL [--timeout S] [--reason TEXT]``: set the firm-wide kill switch,
wait for every instance currently reporting to acknowledge it (its risk link engaged the
kill as ``hft ctl kill on`` does and the instance's handlers acknowledged), print each one's
time to kill. ``--off`` clears it. Exit 0: all acknowledged; 1: some did not (named), or no
instance is reporting; 2: NATS unavailable or bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from pipeline import config as cfgmod
from pipeline.control import audit
from pipeline.firm import risk_bus
from pipeline.firm.risk import STALE_S, KillValue, aggregate

EXIT_UNAVAILABLE = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("view", "kill"), default="view",
                   help="view (default) or kill")
    p.add_argument("--nats", required=True, help="NATS server URL (nats://host:port)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--watch", action="store_true", help="view: refresh until interrupted")
    p.add_argument("--interval", type=float, default=1.0, help="--watch: seconds per refresh")
    p.add_argument("--stale", type=float, default=STALE_S,
                   help="a report older than this many seconds is stale")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="kill: seconds to wait for every acknowledgement")
    p.add_argument("--reason", default="", help="kill: why (stored with it, audited)")
    p.add_argument("--off", action="store_true", help="kill: clear the firm-wide kill switch")
    p.add_argument("--audit-log", default=None, help="audit log file (default as hft ctl)")
    p.add_argument("--config", default=None, help="TOML config ([ops] audit_log)")


def main(args: argparse.Namespace) -> int:
    if args.action == "view" and (args.off or args.reason):
        print("hft risk: --off and --reason go with `hft risk kill`", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.timeout <= 0 or args.stale <= 0 or args.interval <= 0:
        print("hft risk: --timeout, --stale and --interval must be > 0", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        return asyncio.run(_kill(args) if args.action == "kill" else _view(args))
    except risk_bus.BusUnavailable as e:
        print(f"hft risk: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 0


async def _session(url: str):
    nc = await risk_bus.connect(url, "hft-risk")
    try:
        reports, kill = await risk_bus.open_buckets(risk_bus.jetstream(nc))
    except risk_bus.FAILURES as e:
        await nc.close()
        raise risk_bus.BusUnavailable(f"NATS at {url} has no JetStream ({e})") from None
    return nc, reports, kill


async def _view(args: argparse.Namespace) -> int:
    nc, reports, kill = await _session(args.nats)
    try:
        while True:
            view = await risk_bus.firm_view(reports, kill, args.stale)
            if args.json:
                print(json.dumps(view), flush=True)
            else:
                print(render(view), flush=True)
            if not args.watch:
                return 0
            await asyncio.sleep(args.interval)
    finally:
        await nc.close()


def render(view: dict) -> str:
    fk = view.get("firm_kill")
    lines = [f"firm-wide kill switch: {'ON' if fk and fk['on'] else 'off'}"
             + (f" ({fk['reason'] or 'no reason'}, set by {fk['set_by']})" if fk and fk["on"]
                else "")]
    for i in view["instances"]:
        k = i["kill"]
        state = "KILLED" if k["oms"] or k["control"] else "trading"
        lines.append(f"instance {i['instance']}: {state}, {i['open_orders']} open orders, "
                     f"report #{i['seq']} {i['age_s']:.1f} s old"
                     + (" STALE" if i["stale"] else ""))
        for sym, p in i["positions"].items():
            lines.append(f"  {sym}: position {p['position']} ({p['position_lots']} lots), "
                         f"realised {p['realised_pnl']}, unrealised {p['unrealised_pnl']}, "
                         f"{p['open_orders']} open ({p['open_notional']})")
    if not view["instances"]:
        lines.append("no instance has reported (is a risk link running?)")
    lines.append("firm (instances not stale):")
    for sym, f in view["firm"].items():
        lines.append(f"  {sym}: position {f['position']} ({f['position_lots']} lots), "
                     f"realised {f['realised']}, unrealised {f['unrealised']}"
                     + (f" (unmarked: {', '.join(f['unmarked'])})" if f["unmarked"] else "")
                     + f", {f['open_orders']} open ({f['open_notional']})")
    lines.append(f"  PnL: realised {view['firm_pnl']['realised']}, "
                 f"unrealised {view['firm_pnl']['unrealised']}")
    return "\n".join(lines)


async def _kill(args: argparse.Namespace) -> int:
    value = KillValue.new(not args.off, args.reason)
    log = audit.audit_path(args.audit_log, cfgmod.load(args.config))
    entry = {"instance": "*firm*", "action": f"firm kill {'on' if value.on else 'off'}",
             "kill_id": value.id, "reason": value.reason}
    nc, reports, kill = await _session(args.nats)
    try:
        expected = aggregate(await risk_bus.read_reports(reports), time.time_ns(),
                             args.stale)["reporting"]
        audit.append(log, entry | {"event": "issued", "expected": expected})
        result = await risk_bus.set_kill_and_wait(nc, kill, value, expected, args.timeout)
    finally:
        await nc.close()
    ok = bool(expected) and not result.failed
    audit.append(log, entry | {"event": "acknowledged" if ok else "not_acknowledged"}
                 | result.as_dict())
    if args.json:
        print(json.dumps(result.as_dict() | {"ok": ok}))
    else:
        print(describe(result, args.timeout))
    return 0 if ok else 1


def describe(result: risk_bus.KillRound, timeout: float) -> str:
    what = "ON" if result.value.on else "off"
    if not result.expected:
        return (f"firm-wide kill switch {what}: set, but no instance is reporting, so none "
                "acknowledged (a risk link obeys it when it starts)")
    lines = [f"firm-wide kill switch {what}: {len(result.expected)} instance(s) expected"]
    for name in result.expected:
        ack = result.acks.get(name)
        if ack is None:
            lines.append(f"  {name}: NO acknowledgement within {timeout:g} s")
            continue
        rtt = ack["round_trip_ms"]
        out = ack["outcome"]
        handlers = ", ".join(f"{h} ({s})" for h, s in sorted(out.get("acks", {}).items()))
        text = (f"  {name}: {'acknowledged' if ack['acknowledged'] else 'NOT acknowledged'}"
                f" in {'?' if rtt is None else f'{rtt:.2f}'} ms (link engaged it in "
                f"{ack['elapsed_ms']:.2f} ms), handlers: {handlers or 'none'}")
        if not out.get("expected") and "error" not in out:
            text += "; no running process handles the kill"
        if out.get("missing"):
            text += f"; silent: {', '.join(out['missing'])}"
        if out.get("error"):
            text += f"; error: {out['error']}"
        lines.append(text)
    if result.failed:
        lines.append(f"NOT acknowledged by: {', '.join(result.failed)}")
    else:
        lines.append(f"every instance acknowledged in {result.elapsed_ms:.2f} ms")
    return "\n".join(lines)
