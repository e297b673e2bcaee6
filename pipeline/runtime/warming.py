"""When a dry pass over a hot path is due: the clock every agent's warming shares.

On this kind of host a code path nobody ran for a few milliseconds runs 4-5 times slower
(caches and branch predictors lost to whatever else the machine ran: BENCHMARKS.md, "warm
passes"). An agent that acts a few times a second therefore keeps its path hot with dry
passes on shadow state while it is idle, each at most every ``period`` ns, and only once
it has something real to replay (``ready``). The passes themselves are the agents' own:
``pipeline.strategy.warm``, ``pipeline.marketdata.warm``, ``pipeline.orders.warm``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.runtime.clock import monotonic_ns

PERIOD, LAST, PASSES, READY = range(4)
WORDS = 8  # the agent's own words follow from READY + 1


def clock(period_ns: int) -> np.ndarray:
    """Warming words; ``period_ns`` <= 0: never due."""
    w = np.zeros(WORDS, np.int64)
    w[PERIOD] = period_ns
    return w


@njit(cache=True, _nrt=False)
def due(w):
    """True, with the pass counted, when a dry pass may run now."""
    if w[PERIOD] <= 0 or not w[READY]:
        return False
    now = monotonic_ns()
    if now - w[LAST] < w[PERIOD]:
        return False
    w[LAST] = now
    w[PASSES] += 1
    return True
