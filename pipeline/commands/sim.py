"""``hft sim``: run the venue simulator on loopback until SIGINT/SIGTERM.

Prints one JSON line on stdout once listening: ``{"ws": ..., "rest": ..., "fix_host": ...,
"fix_port": ..., "admin_token": ..., ...}`` (ports chosen by the OS when given as 0; the
/admin API's token from $HFT_SIM_ADMIN_TOKEN or fresh), then logs to stderr.
``--tls``: every endpoint over TLS (``wss://``, ``https://``, ``"fix": "tcp+tls://..."``),
with ``ca_file`` and ``server_name`` in the line for clients to trust and check.
``--dialect binance``: Binance Spot's FIX order entry and signed REST rules instead of the
standard FIX 4.4 acceptor (``[sim] dialect``; accounts need ``api_key`` and
``ed25519_public_key``; see pipeline/venue/binance_session.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from pipeline import config as configuration
from pipeline.venue import admin
from pipeline.venue.simulator import SimConfig, Simulator, books_summary

log = logging.getLogger("venue")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file merged over config/default.toml")
    parser.add_argument("--host", help="listen address (loopback by default)")
    parser.add_argument("--md-port", type=int, help="WebSocket market data port (0: any)")
    parser.add_argument("--sbe-port", type=int, help="SBE WebSocket market data port (0: any)")
    parser.add_argument("--rest-port", type=int, help="REST snapshot/admin port (0: any)")
    parser.add_argument("--fix-port", type=int, help="FIX acceptor port (0: any)")
    parser.add_argument("--symbols", help="comma-separated subset of the instruments")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--rate", type=float, help="flow events/s per instrument")
    parser.add_argument("--state-dir", help="FIX session store directory")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                        help="start with a fault on (repeatable), e.g. md_drop=0.01")
    parser.add_argument("--tls", action="store_true", default=None,
                        help="serve WebSocket, REST and FIX over TLS with a CA and server "
                        "certificate generated at start-up (or --tls-cert/--tls-key)")
    parser.add_argument("--tls-cert", help="server certificate chain (PEM) for --tls")
    parser.add_argument("--tls-key", help="its private key (PEM)")
    parser.add_argument("--ca-file", help="the CA that signed --tls-cert (printed as ca_file)")
    parser.add_argument("--dialect", choices=("fix44", "binance"),
                        help="order-entry rules (default: [sim] dialect, fix44): binance is "
                        "Binance Spot's FIX API (Ed25519 Logon, XCN, filters ...) and its "
                        "signed REST endpoints")
    parser.add_argument("--busy-poll", action="store_true",
                        help="never sleep in the event loop (poll sockets with timeout 0): "
                        "a client's send() then does not pay for waking this process; "
                        "burns a whole core")


def _faults(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--fault {item!r}: expected NAME=VALUE")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value  # a text fault (fix_refuse_logon=...); Faults checks the type
    return out


def main(args: argparse.Namespace) -> int:
    conf = configuration.load(args.config)
    sim_conf = conf.setdefault("sim", {})
    if args.symbols:
        sim_conf["symbols"] = [s.strip().upper() for s in args.symbols.split(",")]
    faults = dict(sim_conf.get("faults", {})) | _faults(args.fault)
    try:
        cfg = SimConfig.from_config(conf, host=args.host, md_port=args.md_port,
                                    sbe_port=args.sbe_port,
                                    rest_port=args.rest_port, fix_port=args.fix_port,
                                    seed=args.seed, rate=args.rate, faults=faults,
                                    state_dir=args.state_dir, tls=args.tls,
                                    tls_cert=args.tls_cert, tls_key=args.tls_key,
                                    ca_file=args.ca_file, dialect=args.dialect,
                                    admin_token=os.environ.get(admin.TOKEN_ENV, ""))
        sim = Simulator(cfg)
    except (KeyError, ValueError) as e:
        print(f"hft sim: bad configuration: {e}", file=sys.stderr)
        return 2
    return asyncio.run(_run(sim, args.busy_poll))


async def _spin() -> None:
    """Keeps a ready callback in the loop, so each iteration polls with timeout 0."""
    while True:
        await asyncio.sleep(0)


async def _run(sim: Simulator, busy_poll: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        endpoints = await sim.start()
    except (OSError, ValueError) as e:  # TlsError is an OSError: the files are named
        print(f"hft sim: cannot listen: {e}", file=sys.stderr)
        return 1
    print(json.dumps(endpoints), flush=True)
    shown = {k: v for k, v in endpoints.items() if k != "admin_token"}  # never logged
    log.info("venue simulator up: %s levels per side %s", shown, books_summary(sim))
    spinner = asyncio.create_task(_spin()) if busy_poll else None
    await stop.wait()
    log.info("shutting down")
    if spinner is not None:
        spinner.cancel()
    await sim.stop()
    return 0
