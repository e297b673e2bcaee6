"""Probe echo process (ControlEcho): a paced order source that obeys ``hft ctl`` (tests, demos)."""

from __future__ import annotations

import sys

from pipeline.control.area import ControlArea
from pipeline.probe.echo import ControlEcho
from pipeline.transport.ring import Ring
from procs import _common
from shm_layouts.records import ORDER_INTENT


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("--ring", default="orders", help="order ring to publish on")
    p.add_argument("--rate", type=int, default=1000, help="new orders per second")
    p.add_argument("--symbols", type=int, default=2, help="number of symbol ids")
    args = p.parse_args(argv)
    inst, counters = _common.attach(args)
    ring = Ring.attach(inst, args.ring, "order_intent", ORDER_INTENT)
    agent = ControlEcho(ControlArea.attach(inst), ring, counters, args.rate, args.symbols)
    return _common.run(agent, args, counters)


if __name__ == "__main__":
    sys.exit(main())
