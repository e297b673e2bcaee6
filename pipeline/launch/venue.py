"""The venue ``hft run`` trades: the simulator as a child process, a running venue given
as ``HOST:MD_PORT,REST_PORT,FIX_PORT``, or a venue profile by name
(``config/venues/<name>.toml``: endpoints in ``[venue]``, merged into the config)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import config as cfgmod

PROFILE_DIR = cfgmod.ROOT / "config" / "venues"


@dataclass
class Venue:
    ws: str  # ws://host:port (wss:// over TLS)
    rest: str  # http://host:port (https://)
    fix_host: str
    fix_port: int
    comp_id: str  # the venue's SenderCompID (our TargetCompID)
    process: subprocess.Popen | None = None
    tls: bool = False  # every endpoint over TLS (hft sim --tls)
    ca_file: str = ""  # the CA to trust ("": the system store)
    server_name: str = ""  # the name its certificate carries (SNI, hostname check)
    sbe: str = ""  # ws://host:port of the SBE streams ("" when the venue has none)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def parse_venue(spec: str, comp_id: str = "VENUE") -> Venue:
    """``HOST:MD_PORT,REST_PORT,FIX_PORT`` for a venue that is already running."""
    try:
        host, ports = spec.rsplit(":", 1)
        md, rest, fix = (int(p) for p in ports.split(","))
    except ValueError:
        raise ValueError(f"--venue {spec!r}: expected HOST:MD_PORT,REST_PORT,FIX_PORT") from None
    return Venue(f"ws://{host}:{md}", f"http://{host}:{rest}", host, fix, comp_id)


def is_profile(spec: str) -> bool:
    """``--venue binance-testnet`` (a name) rather than ``--venue HOST:PORTS``."""
    return ":" not in spec and "," not in spec


def profile_path(name: str) -> Path:
    """``config/venues/<name>.toml``; a ``ConfigError`` naming the profiles there if not."""
    path = PROFILE_DIR / f"{name}.toml"
    if not path.is_file() or "/" in name:
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
        raise cfgmod.ConfigError(f"--venue {name!r}: no venue profile {path} (profiles: "
                                 f"{', '.join(known) or 'none'}; or HOST:MD_PORT,REST_PORT,"
                                 "FIX_PORT of a running venue)")
    return path


def profile_venue(config: dict) -> Venue:
    """The endpoints of the profile merged into ``config`` (its ``[venue]`` section)."""
    v = config.get("venue")
    if not v:
        raise cfgmod.ConfigError("venue profile without a [venue] section")
    v = cfgmod.section("venue", v, "venue profile")
    for key in ("name", "streams_url", "rest_url", "fix_host", "fix_port", "comp_id"):
        if key not in v:
            raise cfgmod.ConfigError(f"venue profile [venue]: {key} is required")
    return Venue(v["streams_url"].rstrip("/"), v["rest_url"].rstrip("/"), v["fix_host"],
                 int(v["fix_port"]), v["comp_id"], tls=bool(v["tls"]),
                 sbe=v["sbe_url"].rstrip("/"))


def start_simulator(config_path: str, env: dict[str, str], core: int | None,
                    timeout: float = 60.0, busy_poll: bool = False, tls: bool = False) -> Venue:
    """Start ``hft sim`` on free loopback ports and wait for its endpoints line
    (``busy_poll``: a profile that gives the simulator a spinning core of its own;
    ``tls``: every endpoint over TLS, its CA in the line)."""
    cmd = [sys.executable, "-m", "pipeline.cli", "sim", "--config", config_path,
           "--md-port", "0", "--rest-port", "0", "--fix-port", "0",
           *(["--busy-poll"] if busy_poll else []), *(["--tls"] if tls else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, text=True)
    if core is not None:
        try:
            os.sched_setaffinity(proc.pid, {core})
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"venue simulator exited with {proc.returncode} at start-up")
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{"):
                break
    else:
        proc.kill()
        raise TimeoutError(f"venue simulator gave no endpoints within {timeout:.0f}s")
    ep = json.loads(line)
    return Venue(ep["ws"], ep["rest"], ep["fix_host"], int(ep["fix_port"]), ep["comp_id"], proc,
                 ep.get("tls", False), ep.get("ca_file", ""), ep.get("server_name", ""),
                 ep.get("sbe", ""))
