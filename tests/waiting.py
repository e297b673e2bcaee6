"""Bounded waiting: the one polling helper every test uses (pytest-timeout is the backstop,
this is the deadline that names what did not happen)."""

from __future__ import annotations

import time

from pipeline.transport.segment import SegmentError

# a segment not there yet, or a counter not registered yet, counts as "not yet"
NOT_YET = (SegmentError, KeyError)


def until(cond, timeout: float = 60.0, what: str = "condition", *, interval: float = 0.02,
          tolerate: tuple[type[BaseException], ...] = NOT_YET):
    """Poll ``cond`` every ``interval`` s until it returns something truthy, and return that;
    an exception in ``tolerate`` counts as not yet. Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except tolerate:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)
