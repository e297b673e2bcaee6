"""Bounded waiting for tests that watch a running pipeline from outside."""

from __future__ import annotations

import time

from pipeline.transport.segment import SegmentError


def until(cond, timeout: float, what: str):
    """Poll ``cond`` until it returns something truthy; a segment not there yet (or a
    counter not registered yet) counts as not yet. Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except (SegmentError, KeyError):
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
