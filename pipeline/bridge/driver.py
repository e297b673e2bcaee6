"""The Aeron media driver: pyaeron's embedded C driver in a process of its own.

One driver per host (per instance in the single-machine demo) owns the UDP sockets and the
log buffers; bridge senders and receivers are its clients. On a small host its threads
must not busy-spin: threading mode SHARED (one driver thread, not three) and the
``backoff`` idle strategy (spin, yield, then park up to 1 ms), so on 2 cores the bridge
agents and the pipeline keep their CPU. Its directory is removed on clean shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# the C driver reads these at aeron_driver_context_init (aeronmd.h's AERON_* settings)
IDLE_ENV = {
    "AERON_THREADING_MODE": "SHARED",
    "AERON_SHARED_IDLE_STRATEGY": "backoff",
    "AERON_CONDUCTOR_IDLE_STRATEGY": "backoff",
    "AERON_SENDER_IDLE_STRATEGY": "backoff",
    "AERON_RECEIVER_IDLE_STRATEGY": "backoff",
}
CNC_FILE = "cnc.dat"


def run_driver(aeron_dir: str, stop_after: float | None = None) -> int:
    """Run the driver until SIGTERM/SIGINT (or ``stop_after`` seconds); 0 on clean exit."""
    os.environ.update(IDLE_ENV)
    import pyaeron  # after the environment: the driver context reads it

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(1))
    os.umask(0o077)  # the driver's files: this user only
    driver = pyaeron.MediaDriver(dir=aeron_dir, threading="shared", dir_delete_on_start=True,
                                 dir_delete_on_shutdown=True)
    print(f"aeron media driver {pyaeron.aeron_version} in {driver.dir} "
          f"(threading shared, idle backoff)", flush=True)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
    finally:
        driver.close()
    return 0


def driver_ready(aeron_dir: str) -> bool:
    return (Path(aeron_dir) / CNC_FILE).exists()


def start_driver(aeron_dir: str, timeout: float = 30.0) -> subprocess.Popen:
    """Start ``hft bridge driver`` (``python -m procs.bridge driver``) for ``aeron_dir`` and
    wait until its CnC file exists, so clients can connect at once."""
    proc = subprocess.Popen([sys.executable, "-m", "procs.bridge", "driver",
                             "--aeron-dir", aeron_dir], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not driver_ready(aeron_dir):
        if proc.poll() is not None:
            raise RuntimeError(f"aeron media driver exited at start-up ({proc.returncode})")
        if time.monotonic() > deadline:
            stop_driver(proc)
            raise TimeoutError(f"aeron media driver: no {CNC_FILE} in {aeron_dir} "
                               f"after {timeout:.0f}s")
        time.sleep(0.02)
    return proc


def stop_driver(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM (the driver removes its directory), SIGKILL if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode
