"""When a dry pass over a hot path is due: the clock every agent's warming shares.

On this kind of host a code path nobody ran for a few milliseconds runs 2-5 times slower,
and a socket idle for 20 ms takes 50 times longer to send on (caches, branch predictors
and kernel state lost to whatever else the machine ran: ``hft bench idle``, BENCHMARKS.md
"Why a quiet path is slow here"). An agent that acts a few times a second therefore
keeps its path hot with dry passes on shadow state while it is idle, each at most every
``period`` ns, and only once it has something real to replay (``ready``). The passes
themselves are the agents' own: ``pipeline.strategy.warm``, ``pipeline.marketdata.warm``,
``pipeline.orders.warm``.

The clock is a record: ``clock_record(period_ns)`` makes one (a 1-element array of
``WARM_CLOCK``, or of an agent's own dtype that begins with ``WARM_CLOCK_FIELDS``, as the
strategy's adds the direction of its next shift), ``is_due(c)`` asks it. The agent sets
``ready`` once it has seen something real and reads ``passes`` for its counter.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.runtime.clock import monotonic_ns

WARM_CLOCK_FIELDS = [("period_ns", "<i8"), ("last_ns", "<i8"), ("passes", "<i8"),
                     ("ready", "<i8")]
WARM_CLOCK = np.dtype(WARM_CLOCK_FIELDS)


def clock_record(period_ns: int, dtype: np.dtype = WARM_CLOCK) -> np.ndarray:
    """A warming clock (1-element array of ``dtype``); ``period_ns`` <= 0: never due."""
    c = np.zeros(1, dtype)
    c[0]["period_ns"] = period_ns
    return c


@njit(cache=True, _nrt=False)
def is_due(c):
    """True, with the pass counted, when a dry pass may run now (``c``: a clock record)."""
    r = c[0]
    if r.period_ns <= 0 or not r.ready:
        return False
    now = monotonic_ns()
    if now - r.last_ns < r.period_ns:
        return False
    r.last_ns = now
    r.passes += 1
    return True
