"""The venue's clock: measure our offset to it before logon, refuse a skew it would reject.

Binance accepts a request stamped ``t`` (REST ``timestamp``, FIX ``SendingTime``) when
``t < serverTime + 1000`` and ``serverTime - t <= recvWindow`` (rest-api.md "Timing
security", fix-api.md "Timing security"). The offset is measured against
``GET /api/v3/time``, best of N by round trip (the sample least disturbed by queueing); its
uncertainty is half that round trip, counted against us on both sides of the check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

AHEAD_LIMIT_MS = 1000  # "timestamp < serverTime + 1 second"


class ClockSkewError(RuntimeError):
    """Our clock is too far from the venue's for its recvWindow: do not log on."""


class ServerClock(Protocol):
    def time_ms(self) -> int: ...


@dataclass(frozen=True)
class ClockOffset:
    """``offset_ms``: venue clock minus ours (positive: we are behind); ``rtt_ms``: the
    round trip of the sample it came from."""

    offset_ms: float
    rtt_ms: float

    @property
    def offset_int_ms(self) -> int:
        """What ``SignedRest.offset_ms`` takes (rounded to the nearest ms)."""
        return round(self.offset_ms)


def measure_offset(rest: ServerClock, samples: int = 5) -> ClockOffset:
    """``samples`` round trips to the server clock; the one with the shortest round trip
    wins (its midpoint is the best estimate of when the server read its clock)."""
    if samples < 1:
        raise ValueError(f"clock samples must be >= 1, not {samples}")
    best: ClockOffset | None = None
    for _ in range(samples):
        t0 = time.time_ns()
        server = rest.time_ms()
        t1 = time.time_ns()
        rtt = (t1 - t0) / 1e6
        offset = server - (t0 + t1) / 2e6
        if best is None or rtt < best.rtt_ms:
            best = ClockOffset(offset, rtt)
    return best


def check(offset: ClockOffset, recv_window_ms: int, margin_ms: int) -> None:
    """Raise ``ClockSkewError`` unless a message stamped with our clock lands inside the
    venue's window with ``margin_ms`` to spare: behind by at most ``recv_window_ms -
    margin_ms``, ahead by less than 1000 ms (the venue's fixed limit), each including the
    measurement's uncertainty (half the round trip)."""
    if margin_ms < 0 or margin_ms >= recv_window_ms:
        raise ValueError(f"clock margin {margin_ms} ms must be in 0..recvWindow "
                         f"({recv_window_ms} ms)")
    slack = offset.rtt_ms / 2
    behind, ahead = offset.offset_ms + slack, -offset.offset_ms + slack
    limit = recv_window_ms - margin_ms
    if behind > limit:
        raise ClockSkewError(
            f"clock skew: our clock is {offset.offset_ms:.1f} ms behind the venue's (round "
            f"trip {offset.rtt_ms:.1f} ms); the limit is recvWindow {recv_window_ms} ms - "
            f"margin {margin_ms} ms = {limit} ms. Not logging on: sync the host clock (NTP) "
            "or raise [binance] recv_window_ms")
    if ahead >= AHEAD_LIMIT_MS:
        raise ClockSkewError(
            f"clock skew: our clock is {-offset.offset_ms:.1f} ms ahead of the venue's "
            f"(round trip {offset.rtt_ms:.1f} ms); Binance rejects a timestamp {AHEAD_LIMIT_MS}"
            " ms or more ahead of its clock. Not logging on: sync the host clock (NTP)")


def synchronise(rest, samples: int, recv_window_ms: int, margin_ms: int) -> ClockOffset:
    """Measure, check, and set ``rest.offset_ms`` (a ``SignedRest``): what a gateway does
    before logon. Raises ``ClockSkewError`` (and leaves the offset unset) on a bad skew."""
    offset = measure_offset(rest, samples)
    check(offset, recv_window_ms, margin_ms)
    rest.offset_ms = offset.offset_int_ms
    return offset
