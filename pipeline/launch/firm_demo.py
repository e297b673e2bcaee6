"""``hft firm``: two instances of one firm on this machine, as they would run on two hosts.

- a ``nats-server`` with JetStream and an Aeron media driver, on loopback;
- instance A: the whole pipeline against the simulator; its book ring is bridged over
  Aeron (UDP) to B; its drop copy and risk link talk to NATS;
- instance B: no market data of its own: its strategy trades from A's bridged book ring
  through B's own gateway (a second account at the same venue); drop copy and risk link;
- while they trade, the firm-wide risk view; with ``--chaos``, a ``kill -9`` of A's bridge
  sender (its supervisor restarts it) and a restart of ``nats-server`` mid-run;
- at the end the firm-wide kill switch (every gateway acknowledges), both instances stop
  (each prints its own summary into its log), and ``hft audit`` checks the drop copy:
  every order intent and execution report of both instances, each exactly once.

Everything goes through the commands a user would type (``hft run``, ``hft risk``,
``hft audit``), so the demo proves what the operations guide describes. Exit 0 only if
every step held.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pipeline import config as cfgmod
from pipeline.firm.natsd import NatsServer, free_port
from pipeline.launch.rundir import RUN_DIR
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.transport.registry import Instance
from pipeline.transport.segment import SegmentError

log = logging.getLogger("firm")
START_TIMEOUT_S = 420  # both instances compile from a cold numba cache on a 2-core host
STOP_TIMEOUT_S = 120
BOOK_STREAM_ID = 10
SIM_PASSWORD_B_ENV = "HFT_SIM_PASSWORD_B"  # instance B's account at the simulator


@dataclass
class DemoOptions:
    duration: float = 20.0  # seconds of trading once both gateways have sent orders
    chaos: bool = False  # kill -9 A's bridge sender, restart nats-server, mid-run
    profile: str = "dev-2core"
    keep: bool = False  # keep the run directory (logs, stores) after a clean run
    summary_json: str | None = None


@dataclass
class Step:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  {'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class FirmDemo:
    opts: DemoOptions
    tag: str = field(default_factory=lambda: str(os.getpid()))
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = RUN_DIR / f"firm{self.tag}"
        self.names = {"A": f"firma{self.tag}", "B": f"firmb{self.tag}"}
        self.runs: dict[str, subprocess.Popen] = {}
        self.channel = f"aeron:udp?endpoint=127.0.0.1:{free_port()}"
        self.aeron_dir = str(self.dir / "aeron")
        self.nats = NatsServer(self.dir / "nats")
        self.driver: subprocess.Popen | None = None
        self.mapped: dict[str, tuple[Counters, OmsState]] = {}
        self.risk_view: dict | None = None

    # ------------------------------------------------------------------ steps
    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append(Step(name, ok, detail))
        (log.info if ok else log.error)("%s: %s", name, detail)
        return ok

    def run(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        signal.signal(signal.SIGTERM, _interrupted)  # stop the instances in order, too
        try:
            self._start_services()
            self._start_instances()
            if self._wait_trading():
                self._trade()
                self._firm_kill()
            self._stop_instances()
            self._audit()
        finally:
            self._stop_everything()
        self._report()
        ok = bool(self.steps) and all(s.ok for s in self.steps)
        if ok and not self.opts.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return 0 if ok else 1

    def _start_services(self) -> None:
        self.nats.start()
        log.info("nats-server on %s (JetStream in %s)", self.nats.url, self.nats.store_dir)
        self.driver = self._spawn("aeron", ["bridge", "driver", "--aeron-dir", self.aeron_dir])
        log.info("Aeron media driver in %s (pid %d)", self.aeron_dir, self.driver.pid)

    def _configs(self) -> dict[str, Path]:
        a, b = self.dir / "a.toml", self.dir / "b.toml"
        a.write_text(f"""[[sim.accounts]]
username = "trader"
password_env = "HFT_SIM_PASSWORD"

[[sim.accounts]]
username = "trader_b"
password_env = "{SIM_PASSWORD_B_ENV}"
""")
        b.write_text(f"""[gateway]
sender_comp_id = "HFTB"
target_comp_id = "{cfgmod.defaults('sim')['comp_id']}"
username = "trader_b"
""")
        for p in (a, b):
            p.chmod(0o600)
        return {"A": a, "B": b}

    def _start_instances(self) -> None:
        configs = self._configs()
        password_b = secrets.token_urlsafe(16)  # B's account: to both sides, by environment
        common = ["--profile", self.opts.profile, "--nats", self.nats.url,
                  "--aeron-dir", self.aeron_dir]
        self.runs["A"] = self._spawn("a", [
            "run", "--instance", self.names["A"], "--config", str(configs["A"]), *common,
            "--bridge-out", "book", self.channel, str(BOOK_STREAM_ID),
            "--summary-json", str(self.dir / "a.json")], {SIM_PASSWORD_B_ENV: password_b})
        # B once A trades: B needs A's venue and book, and two instances compiling at once
        # on a 2-core host starve each other's FIX sessions
        if not self._wait(f"instance {self.names['A']} trading",
                          lambda: self.counter("A", "gateway.orders.sent") > 0, START_TIMEOUT_S):
            return
        venue = venue_of_run(self.names["A"])
        self.runs["B"] = self._spawn("b", [
            "run", "--instance", self.names["B"], "--config", str(configs["B"]), *common,
            "--venue", venue, "--book-from", self.channel, str(BOOK_STREAM_ID),
            "--summary-json", str(self.dir / "b.json")], {"HFT_FIX_PASSWORD": password_b})

    def _wait_trading(self) -> bool:
        """Both gateways have sent orders (B's from the book bridged from A)."""
        def trading() -> bool:
            return all(self.counter(k, "gateway.orders.sent") > 0 for k in self.names)
        ok = self._wait("both instances trading", trading, START_TIMEOUT_S)
        return self.check("both instances trade", ok,
                          "A from its own market data, B from A's book over Aeron" if ok else
                          "not both trading in time (see the logs in " + str(self.dir) + ")")

    def _trade(self) -> None:
        end = time.monotonic() + self.opts.duration
        chaos_at = time.monotonic() + self.opts.duration / 3 if self.opts.chaos else None
        while time.monotonic() < end and self._runs_alive():
            if chaos_at is not None and time.monotonic() >= chaos_at:
                self._chaos()
                chaos_at = None
            time.sleep(1.0)
        view = self._hft(["risk", "--nats", self.nats.url, "--json"])
        risk = _json(view.stdout)
        fresh = sorted(r["instance"] for r in (risk or {}).get("instances", [])
                       if not r.get("stale"))
        self.check("firm-wide risk view", view.returncode == 0 and
                   set(self.names.values()) <= set(fresh),
                   f"instances reporting: {', '.join(fresh) or 'none'}")
        self.risk_view = risk

    def _chaos(self) -> None:
        """kill -9 A's bridge sender, then restart nats-server (same store)."""
        pid = self._process_pid("A", "bridge_send_book")
        if self.check("kill -9 A's bridge sender", pid > 0, f"pid {pid}"):
            os.kill(pid, signal.SIGKILL)
        self.nats.stop()
        time.sleep(1.0)
        self.nats.start()
        self.check("restart nats-server", True, f"back on {self.nats.url}")

    def _firm_kill(self) -> None:
        kill = self._hft(["risk", "kill", "--nats", self.nats.url, "--timeout", "15",
                          "--reason", "firm demo: end of session"])
        sys.stdout.write(kill.stdout)
        self.check("firm-wide kill switch", kill.returncode == 0,
                   "every gateway acknowledged" if kill.returncode == 0 else
                   f"exit {kill.returncode}: {kill.stderr.strip()[-300:]}")
        killed = [k for k in self.names if self._attached(k) and
                  self._attached(k)[1].kill()]
        self.check("both gateways stopped", sorted(killed) == ["A", "B"],
                   f"kill switch on in {', '.join(self.names[k] for k in killed) or 'none'}")

    def _stop_instances(self) -> None:
        for key in ("B", "A"):  # B trades on A's venue and A's book: it goes first
            p = self.runs.get(key)
            if p is None:
                continue
            code = _terminate(p)
            summary = _read_json(self.dir / f"{key.lower()}.json") or {}
            self.check(f"instance {self.names[key]}", code == 0,
                       f"exit {code}; " + _run_line(summary))

    def _audit(self) -> None:
        audit = self._hft(["audit", "--nats", self.nats.url, "--json"])
        lines = [_json(x) or {} for x in audit.stdout.splitlines()]
        stored = {(s["instance"], s["ring"]): s["records"] for s in
                  (x["summary"] for x in lines if "summary" in x)}
        issues = [x for x in lines if "issue" in x]
        for (inst, ring), n in sorted(stored.items()):
            print(f"drop copy {inst}/{ring}: {n:,} records")
        # every record each instance's rings published is in the stream, once
        published = {(self.names[k], ring): (_read_json(self.dir / f"{k.lower()}.json") or {})
                     .get("rings", {}).get(ring, {}).get("published")
                     for k in self.names for ring in ("orders", "execs")}
        missing = {k: (v, stored.get(k, 0)) for k, v in published.items() if v != stored.get(k, 0)}
        self.check("drop copy audit", audit.returncode == 0 and not issues and not missing,
                   "every intent and report of both instances once, no gap"
                   if audit.returncode == 0 and not issues and not missing else
                   f"exit {audit.returncode}; issues {issues[:3]}; published vs stored "
                   f"{missing}; {audit.stderr.strip()[-300:]}")

    def _stop_everything(self) -> None:
        """Whatever is still running (an interrupted demo): the instances first."""
        for p in [*reversed(self.runs.values()), self.driver]:  # B, then A
            if p is not None:
                _terminate(p, timeout=STOP_TIMEOUT_S if p in self.runs.values() else 10)
        self.nats.stop()

    def _report(self) -> None:
        print(f"\n== firm demo: instances {self.names['A']} (market data, bridge out) and "
              f"{self.names['B']} (book over Aeron)")
        for s in self.steps:
            print(s.line())
        print(f"logs: {self.dir}" + ("" if self.opts.keep or not all(
            s.ok for s in self.steps) else " (removed: a clean run; --keep keeps them)"))
        if self.opts.summary_json:
            with open(self.opts.summary_json, "w") as f:
                json.dump({"instances": self.names, "steps": [s.__dict__ for s in self.steps],
                           "risk": self.risk_view,
                           "runs": {k: _read_json(self.dir / f"{k.lower()}.json")
                                    for k in self.names}}, f, indent=2, default=str)

    # ------------------------------------------------------------------ helpers
    def _spawn(self, log_name: str, argv: list[str], env: dict[str, str] | None = None
               ) -> subprocess.Popen:
        out = open(self.dir / f"{log_name}.log", "ab")  # noqa: SIM115 (the child owns it)
        try:
            # a session of its own: what is left of it can be killed as one group
            return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *argv],
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **(env or {})})
        finally:
            out.close()

    def _hft(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([sys.executable, "-m", "pipeline.cli", *argv],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(e.cmd, 124, e.stdout or "", "timed out")

    def _wait(self, what: str, done, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline or not self._runs_alive():
                log.error("%s: not done (%s)", what, "a run exited" if not self._runs_alive()
                          else f"{timeout:.0f} s")
                return False
            time.sleep(0.2)
        return True

    def _runs_alive(self) -> bool:
        return all(p.poll() is None for p in self.runs.values())

    def _attached(self, key: str) -> tuple[Counters, OmsState] | None:
        """Instance ``key``'s counters and OMS, mapped once it has them (a mapping outlives
        the instance's removal: its last values stay readable)."""
        if key not in self.mapped:
            try:
                inst = Instance.attach(self.names[key], readonly=True)
                self.mapped[key] = (Counters.attach(inst, readonly=True),
                                    OmsState.attach(inst, readonly=True))
            except (SegmentError, FileNotFoundError, OSError):
                return None  # not created yet
        return self.mapped[key]

    def counter(self, key: str, name: str) -> int:
        mapped = self._attached(key)
        return 0 if mapped is None else int(mapped[0].values().get(name, 0))

    def _process_pid(self, key: str, process: str) -> int:
        mapped = self._attached(key)
        procs = [] if mapped is None else mapped[0].processes()
        return next((p["pid"] for p in procs if p["name"] == process), -1)


def _interrupted(*_args) -> None:
    raise KeyboardInterrupt


def _terminate(p: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM (``hft run`` then stops its pipeline in order), then SIGKILL the group: no
    process of it outlives the demo."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        code = p.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    return p.wait() if code is None else code


def venue_of_run(name: str) -> str | None:
    """``HOST:MD,REST,FIX`` of the simulator instance ``name``'s ``hft run`` started, from
    the run's resolved config (``var/run/<name>.toml``: written once the venue is up)."""
    try:
        with open(RUN_DIR / f"{name}.toml", "rb") as f:
            config = tomllib.load(f)
        feed, gw = config["feed"], config["gateway"]
        md, rest = (urlsplit(u) for u in (feed["url"], feed["rest_url"]))
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None  # not written yet, or written before the venue was up
    return f"{gw['host']}:{md.port},{rest.port},{gw['port']}"


def _json(text: str) -> dict | None:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _run_line(s: dict) -> str:
    """What one instance did, from its ``--summary-json``."""
    if not s:
        return "no summary"
    c, positions = s.get("counters", {}), s.get("positions", {})
    pos = ", ".join(f"{sym} {p['position']}" for sym, p in positions.items())
    failures = s.get("failures") or []
    return (f"{c.get('strategy.book_updates', 0):,} book updates, "
            f"{c.get('gateway.orders.sent', 0):,} orders sent, "
            f"{sum(p['fills'] for p in positions.values()):,} fills; positions: "
            f"{pos or 'none'}" + (f"; FAILURES: {', '.join(failures)}" if failures else ""))
