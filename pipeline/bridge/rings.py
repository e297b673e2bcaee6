"""Which rings a bridge forwards, and how it reads each one.

Market data and books are read as OBSERVING consumers: the feed and the book builder are
never slowed by the network, and what the bridge misses (lapped) is counted as lost.
Order intents and execution reports are read as GATING consumers, reserved at creation
(``create_order_path(..., also_gating=(CONSUMER,))``): a slot is released only once Aeron
took the records, so none is lost, and a restarted sender resumes from its cursor.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pipeline.marketdata.segments import (
    BOOK_CONSUMER,
    BOOK_RING,
    BOOK_STREAM,
    MD_CONSUMER,
    MD_RING,
    MD_STREAM,
)
from pipeline.orders.segments import (
    EXECS_CONSUMER,
    EXECS_RING,
    EXECS_STREAM,
    ORDERS_CONSUMER,
    ORDERS_RING,
    ORDERS_STREAM,
)
from pipeline.transport.ring import ring_layout
from shm_layouts.records import BOOK_UPDATE, EXEC_REPORT, MD_EVENT, ORDER_INTENT
from shm_layouts.ring import ConsumerMode

CONSUMER = "bridge"  # the sender's consumer name on every ring it forwards


class Bridged(NamedTuple):
    ring: str  # segment name, the same on both instances
    stream: str
    dtype: np.dtype
    mode: ConsumerMode
    local_consumer: str  # its usual gating consumer, reserved if the receiver creates it

    @property
    def layout_hash(self) -> int:
        return int(ring_layout(self.stream, self.dtype).hash)


RINGS: dict[str, Bridged] = {
    MD_RING: Bridged(MD_RING, MD_STREAM, MD_EVENT, ConsumerMode.OBSERVING, MD_CONSUMER),
    BOOK_RING: Bridged(BOOK_RING, BOOK_STREAM, BOOK_UPDATE, ConsumerMode.OBSERVING,
                       BOOK_CONSUMER),
    ORDERS_RING: Bridged(ORDERS_RING, ORDERS_STREAM, ORDER_INTENT, ConsumerMode.GATING,
                         ORDERS_CONSUMER),
    EXECS_RING: Bridged(EXECS_RING, EXECS_STREAM, EXEC_REPORT, ConsumerMode.GATING,
                        EXECS_CONSUMER),
}


def bridged(name: str) -> Bridged:
    try:
        return RINGS[name]
    except KeyError:
        raise ValueError(f"ring {name!r} cannot be bridged (one of {', '.join(RINGS)})") from None
