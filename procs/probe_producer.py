"""Probe producer process: publishes timestamped records on the "probe" ring."""

from __future__ import annotations

import sys

from pipeline.probe.agents import ProbeProducer
from pipeline.transport.ring import Ring
from procs import _common
from shm_layouts.probe import PROBE_RECORD


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("--rate", type=int, default=1_000_000, help="records/s (0: unpaced)")
    p.add_argument("--batch", type=int, default=64, help="max records per publish")
    args = p.parse_args(argv)
    inst, counters = _common.attach(args)
    ring = Ring.attach(inst, "probe", "probe", PROBE_RECORD)
    return _common.run(ProbeProducer(ring, args.rate, args.batch), args, counters)


if __name__ == "__main__":
    sys.exit(main())
