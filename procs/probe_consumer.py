"""Probe consumer process: checks sequence continuity and records hop latency."""

from __future__ import annotations

import sys

from pipeline.probe.agents import ProbeConsumer
from pipeline.transport.ring import Ring
from procs import _common
from shm_layouts.probe import PROBE_RECORD


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("--name", required=True, help="consumer name (a gating slot of the ring)")
    args = p.parse_args(argv)
    inst, counters = _common.attach(args)
    ring = Ring.attach(inst, "probe", "probe", PROBE_RECORD)
    return _common.run(ProbeConsumer(ring, counters, args.name), args, counters)


if __name__ == "__main__":
    sys.exit(main())
