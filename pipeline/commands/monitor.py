"""``hft monitor [INSTANCE]``: show a running pipeline live from its shared memory.

Maps every segment read-only; never joins a ring or writes a word. ``--once`` prints one
screen, ``--json`` (alone or with ``--once``) the full state, ``--prometheus PORT`` serves
every counter and histogram on http://127.0.0.1:PORT/metrics. ``--nats URL`` adds the
firm-wide risk view (``hft risk``'s, compact). Exit 2 if the instance is missing or dead.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from rich.console import Console
from rich.live import Live

from pipeline.monitor import discover, prometheus
from pipeline.monitor.top import Monitor


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance", nargs="?", help="instance name (default: config, or the only "
                   "one running)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="print one screen and exit")
    mode.add_argument("--prometheus", type=int, metavar="PORT",
                      help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--json", action="store_true", help="print the full state as JSON, once "
                   "(alone or with --once)")
    p.add_argument("--interval", type=float, default=0.5,
                   help="seconds between refreshes (live), and between the two samples "
                        "that --once/--json take to compute rates (0: one sample, no rates)")
    p.add_argument("--config", default=None, help="TOML config (default instance name)")
    p.add_argument("--nats", default=None, metavar="URL",
                   help="also show the firm-wide risk view from this NATS server")


def _sample(mon: Monitor, interval: float) -> dict:
    if interval > 0:
        mon.snapshot()  # first sample: rates and CPU % need two
        time.sleep(interval)
    return mon.snapshot()


def _live(mon: Monitor, interval: float) -> int:
    interval = min(max(interval, 0.05), 1.0)  # refresh at least once a second
    console = Console()
    with Live(mon.render(mon.snapshot()), console=console, auto_refresh=False,
              screen=console.is_terminal) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(mon.render(mon.snapshot()), refresh=True)
        except KeyboardInterrupt:
            return 0


def _serve(mon: Monitor, port: int) -> int:
    server = prometheus.serve(port, mon.metrics_text)
    print(f"serving metrics of instance {mon.name} on "
          f"http://127.0.0.1:{server.server_address[1]}/metrics", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    return 0


def _extra(args: argparse.Namespace) -> list:
    if not args.nats:
        return []
    from pipeline.firm.risk_feed import RiskFeed  # nats-py only when asked for
    from pipeline.monitor.firm import FirmSection
    return [FirmSection(RiskFeed(args.nats, min(max(args.interval, 0.1), 1.0)))]


def main(args: argparse.Namespace) -> int:
    if args.json and args.prometheus is not None:
        print("hft monitor: --json prints one sample; --prometheus serves them: pick one",
              file=sys.stderr)
        return 2
    try:
        mon = Monitor(discover.resolve(args.instance, args.config), _extra(args))
    except discover.InstanceUnavailable as e:
        print(f"hft monitor: {e}", file=sys.stderr)
        return discover.EXIT_UNAVAILABLE
    try:
        if args.prometheus is not None:
            return _serve(mon, args.prometheus)
        if args.json:
            print(json.dumps(_sample(mon, args.interval), indent=1, default=str))
            return 0
        if args.once:
            width = Console().width if sys.stdout.isatty() else 160
            Console(width=width).print(mon.render(_sample(mon, args.interval)))
            return 0
        return _live(mon, args.interval)
    except discover.InstanceUnavailable as e:
        print(f"hft monitor: {e}", file=sys.stderr)
        return discover.EXIT_UNAVAILABLE
    finally:
        mon.close()
