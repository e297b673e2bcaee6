"""Bridge processes: ``driver`` (the Aeron media driver), ``send`` (a local ring to Aeron)
and ``recv`` (Aeron into a local ring of the same layout), as ``hft bridge ROLE``."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.bridge import aeron
from pipeline.bridge.driver import MAX_PARK_US, run_driver
from pipeline.bridge.receiver import BridgeReceiver, attach_state
from pipeline.bridge.rings import RINGS, bridged
from pipeline.bridge.sender import BridgeSender
from pipeline.transport.ring import Ring, RingError
from pipeline.transport.segment import SegmentError, SegmentMissing
from procs import _common

ROLES = ("driver", "send", "recv")


def driver_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hft bridge driver",
                                description="the Aeron media driver (embedded C driver, "
                                "threading shared, backoff idle); removes its dir on exit")
    p.add_argument("--aeron-dir", required=True, help="the driver's directory (CnC, logs)")
    p.add_argument("--max-park-us", type=int, default=MAX_PARK_US,
                   help="longest park of the driver's backoff idle strategy (latency and "
                   "throughput against idle CPU; see pipeline.bridge.driver)")
    return p


def parser(role: str) -> argparse.ArgumentParser:
    p = _common.parser(f"hft bridge {role}: " + ("forward a local ring over Aeron" if
                                                 role == "send" else
                                                 "write an Aeron stream into a local ring"))
    p.prog = f"hft bridge {role}"
    p.add_argument("--ring", required=True, choices=sorted(RINGS), help="which ring")
    p.add_argument("--channel", required=True,
                   help="Aeron channel, e.g. aeron:udp?endpoint=127.0.0.1:40456")
    p.add_argument("--stream-id", type=int, required=True, help="Aeron stream id")
    p.add_argument("--aeron-dir", required=True, help="the media driver's directory")
    if role == "send":
        p.add_argument("--batch", type=int, default=None,
                       help="at most this many records per message (default: what the MTU holds)")
    else:
        p.add_argument("--capacity", type=int, default=4096,
                       help="capacity of the ring if the receiver has to create it")
    return p


def build(role: str, args: argparse.Namespace):
    spec = bridged(args.ring)
    inst, counters = _common.attach(args)
    if role == "send":
        ring = Ring.attach(inst, spec.ring, spec.stream, spec.dtype)
        client = aeron.Client(args.aeron_dir)
        return BridgeSender(spec, ring, client, args.channel, args.stream_id, counters,
                            args.batch), counters
    try:
        ring = Ring.attach(inst, spec.ring, spec.stream, spec.dtype)
    except SegmentMissing:
        ring = Ring.create(inst, spec.ring, spec.stream, spec.dtype, args.capacity,
                           gating=(spec.local_consumer,))
    _, state = attach_state(inst, spec.ring)
    client = aeron.Client(args.aeron_dir)
    return BridgeReceiver(spec, ring, state, client, args.channel, args.stream_id,
                          counters), counters


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ROLES:
        print(f"usage: hft bridge {{{','.join(ROLES)}}} ...", file=sys.stderr)
        return 2
    role, rest = argv[0], argv[1:]
    if role == "driver":
        dargs = driver_parser().parse_args(rest)
        return run_driver(dargs.aeron_dir, dargs.max_park_us)
    args = parser(role).parse_args(rest)
    try:
        agent, counters = build(role, args)
        return _common.run(agent, args, counters)
    except (aeron.AeronError, RingError, SegmentError, ValueError) as e:
        logging.getLogger("bridge").error("%s", e)
        print(f"hft bridge {role}: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
