"""RiskFeed: the firm-wide risk view kept fresh in a background thread, for a synchronous
reader that must not block on the network (a monitor refreshing its screen).

One persistent connection (reconnecting forever) in the thread's own asyncio loop reads
``risk_bus.firm_view`` every ``interval``; ``latest()`` returns the last view and the last
error at once, never waiting for NATS.
"""

from __future__ import annotations

import asyncio
import threading
import time

from pipeline.firm import risk_bus
from pipeline.firm.risk import STALE_S


class RiskFeed:
    def __init__(self, url: str, interval: float = 0.5, stale_s: float = STALE_S):
        self.url = url
        self.interval = interval
        self.stale_s = stale_s
        self._view: dict | None = None
        self._error: str | None = None
        self._updated = 0.0  # time.monotonic() of the last good view
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True,
                                        name="risk-feed")
        self._thread.start()

    def latest(self) -> tuple[dict | None, str | None, float | None]:
        """(the last view or None, the last error or None, seconds since the view)."""
        age = time.monotonic() - self._updated if self._view is not None else None
        return self._view, self._error, age

    async def _run(self) -> None:
        nc = buckets = None
        while not self._stop.is_set():
            try:
                if nc is None:
                    nc = await risk_bus.connect(self.url, "risk-feed", persistent=True)
                if buckets is None:
                    buckets = await risk_bus.open_buckets(risk_bus.jetstream(nc))
                self._view = await risk_bus.firm_view(*buckets, self.stale_s)
                self._updated, self._error = time.monotonic(), None
            except risk_bus.BusUnavailable as e:
                self._error = str(e)
            except risk_bus.FAILURES as e:
                self._error = f"NATS at {self.url}: {type(e).__name__}: {e}"
                buckets = None  # reopened (recreated after a server restart) next time
            await asyncio.sleep(self.interval)
        if nc is not None:
            await nc.close()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
