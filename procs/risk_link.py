"""Risk link process: publishes this instance's positions, PnL, open orders and kill state to
NATS every ~250 ms and obeys the firm-wide kill switch (``pipeline.firm.risk_link``).

``python -m procs.risk_link --instance A --nats nats://127.0.0.1:4222``; the launcher
starts one per instance once the instance's segments (OMS, control area, counters) exist.
"""

from __future__ import annotations

import sys

from pipeline import config as cfgmod
from pipeline.firm.risk import REPORT_PERIOD_S, RiskError
from pipeline.firm.risk_link import RiskLink
from pipeline.instruments import SymbolTable
from pipeline.transport.segment import SegmentError
from procs import _common


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("--nats", required=True, help="NATS server URL (nats://host:port)")
    p.add_argument("--period", type=float, default=REPORT_PERIOD_S,
                   help="seconds between two reports")
    p.add_argument("--ack-timeout", type=float, default=2.0,
                   help="seconds to wait for the instance's handlers to acknowledge a kill")
    p.add_argument("--audit-log", default=None, help="audit log file (default as hft ctl)")
    # its duty cycle is an asyncio loop: long slices, no busy polling
    p.set_defaults(slice_us=50_000.0)
    args = p.parse_args(argv)
    config = cfgmod.load(args.config)
    try:
        inst, counters = _common.attach(args)
        agent = RiskLink(inst, counters, args.nats,
                         SymbolTable.from_config(config["instruments"]), args.period,
                         args.ack_timeout, args.audit_log, config)
    except (RiskError, SegmentError) as e:
        print(f"risk_link: instance {args.instance!r}: {e}", file=sys.stderr)
        return 2
    return _common.run(agent, args, counters)


if __name__ == "__main__":
    sys.exit(main())
