"""Start ``hft sim`` as a subprocess and read its endpoints line (tests, benchmarks, launcher)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def spawn(args: list[str], env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    """``hft sim ARGS``; returns the process and the endpoints it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "sim", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read()
        proc.kill()
        proc.wait()
        raise RuntimeError(f"hft sim exited before printing its endpoints: {err}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Signal it and wait; killed (and TimeoutExpired raised) if it does not stop."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
