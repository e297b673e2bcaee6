"""The Aeron media driver: pyaeron's embedded C driver in a process of its own.

One driver per host (per instance in the single-machine demo) owns the UDP sockets and the
log buffers; bridge senders and receivers are its clients. On a small host its threads
must not busy-spin: threading mode SHARED (one driver thread, not three) and the
``backoff`` idle strategy: 10 spins, 20 yields, then parks from 1 us doubling to
``max_park_us`` (default 100). Measured on this 2-vCPU VM: Aeron's default longest park,
1 ms, costs the loopback bridge ~8x its throughput and ~1.7x its p50 (status messages and
sends wait for the parked thread) but an idle driver then uses ~3% of a core; at 100 us
it uses ~14%. Any ``AERON_*`` variable already in the environment wins over these. The
driver's directory is removed on clean shutdown.
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
MAX_PARK_US = 100


def idle_env(max_park_us: int = MAX_PARK_US) -> dict[str, str]:
    """The driver's AERON_* settings (backoff init args: spins-yields-min park-max park)."""
    return IDLE_ENV | {"AERON_SHARED_IDLE_STRATEGY_INIT_ARGS": f"10-20-1us-{max_park_us}us"}


def run_driver(aeron_dir: str, max_park_us: int = MAX_PARK_US,
               stop_after: float | None = None) -> int:
    """Run the driver until SIGTERM/SIGINT (or ``stop_after`` seconds); 0 on clean exit."""
    for key, value in idle_env(max_park_us).items():
        os.environ.setdefault(key, value)
    import pyaeron  # after the environment: the driver context reads it

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(1))
    os.umask(0o077)  # the driver's files: this user only
    driver = pyaeron.MediaDriver(dir=aeron_dir, threading="shared", dir_delete_on_start=True,
                                 dir_delete_on_shutdown=True)
    print(f"aeron media driver {pyaeron.aeron_version} in {driver.dir} (threading "
          f"{os.environ['AERON_THREADING_MODE']}, idle {os.environ['AERON_SHARED_IDLE_STRATEGY']}"
          f" {os.environ['AERON_SHARED_IDLE_STRATEGY_INIT_ARGS']})", file=sys.stderr, flush=True)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.05)
    finally:
        driver.close()
    return 0


def driver_ready(aeron_dir: str) -> bool:
    return (Path(aeron_dir) / CNC_FILE).exists()


def start_driver(aeron_dir: str, max_park_us: int = MAX_PARK_US,
                 timeout: float = 30.0) -> subprocess.Popen:
    """Start ``hft bridge driver`` (``python -m procs.bridge driver``) for ``aeron_dir`` and
    wait until its CnC file exists, so clients can connect at once."""
    proc = subprocess.Popen([sys.executable, "-m", "procs.bridge", "driver",
                             "--aeron-dir", aeron_dir, "--max-park-us", str(max_park_us)],
                            stdin=subprocess.DEVNULL)
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
