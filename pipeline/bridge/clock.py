"""Whose CLOCK_MONOTONIC a bridged record's times are on.

Every record carries CLOCK_MONOTONIC times (``t_origin_ns`` ...), which mean something only
on the host that took them: the monotonic clock starts at boot. A bridge message says which
boot its sender runs on (a hash of ``/proc/sys/kernel/random/boot_id``) and the sender's
CLOCK_REALTIME - CLOCK_MONOTONIC; a receiver on another boot adds the difference of the two
hosts' offsets, so a record's times land on the receiver's clock with the network transit
still in them (as far as the hosts' realtime clocks agree: PTP, or NTP's milliseconds). On
the same boot nothing changes, to the nanosecond.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> int:
    """This boot, as an int64 (0 where the kernel does not say: then never equal)."""
    try:
        raw = uuid.UUID(BOOT_ID_FILE.read_text().strip()).bytes
    except (OSError, ValueError):
        return 0
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def clock_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC now (moves only as NTP/PTP steer the realtime)."""
    return time.time_ns() - time.monotonic_ns()
