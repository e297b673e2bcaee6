"""Drop-copy process: the instance's order intents and execution reports into JetStream.

``python -m procs.dropcopy --instance A --nats nats://127.0.0.1:4222`` (the orders and execs
rings must exist, created with the gating consumer "dropcopy" reserved).
"""

from __future__ import annotations

import logging
import sys

from pipeline.firm.batch import STREAM_NAME
from pipeline.firm.dropcopy import DropCopy, DropCopyError
from pipeline.transport.segment import SegmentError
from procs import _common


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__)
    p.add_argument("--nats", required=True, help="NATS server URL, e.g. nats://127.0.0.1:4222")
    p.add_argument("--batch", type=int, default=128, help="most records per message")
    p.add_argument("--stream", default=STREAM_NAME, help="JetStream stream (created if missing)")
    p.add_argument("--replicas", type=int, default=1,
                   help="replicas when creating the stream (3 on a multi-host cluster)")
    p.add_argument("--creds", default=None, help="NATS credentials file (multi-host)")
    p.add_argument("--publish-timeout", type=float, default=2.0,
                   help="seconds to wait for a PubAck before retrying")
    args = p.parse_args(argv)
    try:
        inst, counters = _common.attach(args)
        agent = DropCopy(inst, counters, args.nats, batch=args.batch, stream=args.stream,
                         replicas=args.replicas, publish_timeout_s=args.publish_timeout,
                         creds=args.creds)
        return _common.run(agent, args, counters)
    except (SegmentError, ValueError) as e:  # no such instance or rings, a bad option
        print(f"dropcopy: {e}", file=sys.stderr)
        return 2
    except DropCopyError as e:  # the stream contradicts the ring: an operator must look
        logging.getLogger("dropcopy").error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
