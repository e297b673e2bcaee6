"""The strategy's clock and quoting state: one record beside its user, never shared."""

from __future__ import annotations

import enum

import numpy as np
from numba import njit

from pipeline.runtime.clock import monotonic_ns


class ClockMode(enum.IntEnum):
    LIVE = 0  # CLOCK_MONOTONIC
    EVENT = 1  # the newest t_origin_ns seen (replay)


LIVE_CLOCK, EVENT_CLOCK = int(ClockMode.LIVE), int(ClockMode.EVENT)
# paused: quoting paused, non-zero for any reason (bits below); books are still consumed.
# max_age_ns: live, a book update whose frame was received longer ago than this is
# consumed but not acted on: it is a backlog (a stall, a start-up compile), not the market.
STRATEGY_CLOCK = np.dtype([("mode", "<i8"), ("now", "<i8"), ("next_timer", "<i8"),
                           ("timer_ns", "<i8"), ("paused", "<i8"), ("max_age_ns", "<i8")])
# paused bits: paused by the operator (control area, kill switch); held until the gateway
# is ready (an intent sent while it logs on and reconciles would only be denied NOT_READY)
BY_OPERATOR, UNTIL_GATEWAY_READY = 1, 2


@njit(cache=True, _nrt=False)
def tick(clock, event_ns):
    """Advance the clock: wall clock live, newest event time in replay."""
    c = clock[0]
    if c.mode == LIVE_CLOCK:
        c.now = monotonic_ns()
    elif event_ns > c.now:
        c.now = event_ns
    return c.now
