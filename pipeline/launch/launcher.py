"""``hft run``: start the venue and the four pipeline processes, supervise, stop in order.

Start-up: venue simulator (unless ``--venue``), then the instance's segments, then the
processes downstream-first so nothing is published before its consumer exists:
oms_gateway (logs on and reconciles before accepting intents), book_builder, strategy,
feed_handler. Each must report RUNNING in the counters area. A profile process with
``agents`` (e.g. dev-2core-lowlat) runs those agents in one ``procs.composite`` child,
started, supervised, restarted and stopped as one unit under the profile's process name.

Shutdown (Ctrl-C, SIGTERM, ``--duration`` or a supervisor that gave up): strategy first
(it pulls its quotes on the way out), then the gateway (drains the order ring, cancels
every open order, logs out), then market data; the summary is read from shared memory
before the segments are removed; the simulator goes last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shlex
import signal
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import config as cfgmod
from pipeline.control.area import create_control
from pipeline.instruments import SymbolTable
from pipeline.launch.binance_run import (
    BinanceRun,
    gateway_settings,
    make_credentials,
    remove_credentials,
    sim_settings,
)
from pipeline.launch.cpu import CpuWindow
from pipeline.launch.firm_links import FirmLinks
from pipeline.launch.preflight import Preflight, binance_preflight
from pipeline.launch.rundir import RUN_DIR
from pipeline.launch.summary import collect_summary, judge
from pipeline.launch.venue import (
    Venue,
    is_profile,
    parse_venue,
    profile_path,
    profile_venue,
    start_simulator,
)
from pipeline.marketdata.segments import create_md_segments
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState, create_order_path
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.runtime.supervisor import RestartPolicy, Supervisor
from pipeline.tls.pyssl import client_ssl_context
from pipeline.transport.registry import Instance, instances, live_creators
from pipeline.transport.ring import inspect_ring
from pipeline.transport.segment import SegmentLive
from pipeline.transport.shared import atomic_load
from pipeline.venue import admin
from shm_layouts import control as CL
from shm_layouts.control import Op
from shm_layouts.oms import W_OPEN_ORDERS
from tuning.profiles import load_profile

log = logging.getLogger("launcher")
# a child compiles its jitted code before it reports running: seconds from a warm numba
# cache, minutes from a cold one (a fresh clone, any source change) on a 2-core host
START_TIMEOUT_S = 300
PASSWORD_ENV = "HFT_FIX_PASSWORD"
SIM_PASSWORD_ENV = "HFT_SIM_PASSWORD"
START_ORDER = ("oms_gateway", "book_builder", "strategy", "feed_handler")
STOP_ORDER = ("strategy", "oms_gateway", "feed_handler", "book_builder")
# before a quiet window is measured: the strategy pulls its quotes after [strategy]
# stale_ms (2 s) without a book update, the gateway cancels on stale data after 2 s
QUIET_SETTLE_S = 3.0


@dataclass
class RunOptions:
    config: str | None = None
    instance: str | None = None
    duration: float | None = None
    venue: str | None = None  # HOST:MD,REST,FIX of an external venue, or a profile name
    profile: str = "auto"
    seed: int | None = None  # replay: deterministic ids, event clock
    md_format: str | None = None  # "json" or "sbe": overrides [feed] md_format
    # latencies only from this many seconds after the first order (the steady state,
    # without the frames queued while the processes compiled and logged on)
    warmup: float = 0.0
    extra_args: dict[str, list[str]] = field(default_factory=dict)
    tls: bool = False  # the simulator serves TLS; feed and gateway trust its CA
    sim_dialect: str = "fix44"  # "binance": hft sim --dialect binance, gateway binance-spot
    # then this long with the simulator's flow paused: CPU use while the market is quiet
    idle_seconds: float = 0.0
    # one of a firm's instances: drop copy and risk link over NATS, rings over Aeron
    firm: FirmLinks = field(default_factory=FirmLinks)


class LatencyWindow:
    """Starts the latency window ``warmup`` seconds after the first order went out (so the
    gateway is ready and the strategy's loop runs: a composite process compiles its fused
    loop after the gateway logs on): a snapshot of every histogram, subtracted at the end
    (0: the whole run)."""

    def __init__(self, counters: Counters, warmup: float):
        self.counters, self.warmup = counters, warmup
        self.ready_at: float | None = None
        self.started: float | None = None if warmup > 0 else time.monotonic()
        self.baseline: dict | None = None

    def poll(self) -> None:
        if self.started is not None:
            return
        now = time.monotonic()
        if self.ready_at is None and self.counters.values().get("gateway.orders.sent", 0):
            self.ready_at = now
        if self.ready_at is not None and now - self.ready_at >= self.warmup:
            self.baseline = self.counters.histogram_words()
            self.started = now
            log.info("latency window starts (%.1f s after the first order)", self.warmup)

    def seconds(self) -> float | None:
        """How long the latency window lasted (None: it never started)."""
        return None if self.started is None else round(time.monotonic() - self.started, 3)


# the feed's streams per symbol, by market data format (SBE: Binance's binary stream names)
STREAMS = {"json": ("@depth@100ms", "@bookTicker", "@trade"),
           "sbe": ("@depth", "@bestBidAsk", "@trade")}


def _streams_url(ws: str, symbols: SymbolTable, md_format: str = "json") -> str:
    names = [f"{i.symbol.lower()}{suffix}" for i in symbols for suffix in STREAMS[md_format]]
    return f"{ws}/stream?streams={'/'.join(names)}"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def write_toml(path: Path, config: dict) -> None:
    """A minimal TOML writer for the run's resolved config (tables and arrays of tables)."""
    lines: list[str] = []

    def table(prefix: str, d: dict) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)
                   and not (isinstance(v, list) and v and isinstance(v[0], dict))}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                table(name, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for row in v:
                    lines.append(f"[[{name}]]")
                    lines.extend(f"{rk} = {_toml_value(rv)}" for rk, rv in row.items())

    table("", config)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an older run keeps its mode otherwise
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(path, "rb") as f:
        tomllib.load(f)  # what we wrote must read back


@contextlib.contextmanager
def run_environment(env: dict[str, str]):
    """``os.environ`` as the children get it (``env``), for checks in this process."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Launcher:
    def __init__(self, opts: RunOptions):
        self.opts = opts
        # --venue NAME: config/venues/NAME.toml, between the defaults and --config
        self.venue_profile = opts.venue if opts.venue and is_profile(opts.venue) else None
        self.config = cfgmod.load(opts.config, profile_path(self.venue_profile)
                                  if self.venue_profile else None,
                                  trading=True)
        self.preflight: Preflight | None = None
        self.symbols = SymbolTable.from_config(self.config["instruments"])
        self.name = opts.instance or f"{self.config['instance']['name']}{os.getpid()}"
        self.profile = load_profile(opts.profile)
        self.stop_requested = False
        self.venue: Venue | None = None
        self.instance: Instance | None = None
        self.children: dict[str, Child] = {}
        # agent -> the child that runs it (itself, or a composite process of the profile)
        self.hosts = {a: p for p, spec in self.profile.items() for a in spec.get("agents", [])}
        skipped = opts.firm.skipped_agents()  # a bridged-in book: no market data of its own
        self.start_order = tuple(a for a in START_ORDER if a not in skipped)
        self.stop_order = tuple(a for a in STOP_ORDER if a not in skipped)
        shared = sorted({self.hosts[a] for a in skipped if a in self.hosts})
        if shared:
            raise cfgmod.ConfigError(f"--book-from: profile {opts.profile!r} runs the market "
                                     f"data agents inside {', '.join(shared)}; use a profile "
                                     "with one process per agent (dev-2core, tuned-host)")
        for a in self.start_order:
            self.hosts.setdefault(a, a)
        self.firm_children: list[str] = []  # started after the pipeline, stopped after it
        self.env = dict(os.environ)
        self.config_path = RUN_DIR / f"{self.name}.toml"
        self.control = None
        self.binance: BinanceRun | None = None  # the run's keys (--sim-dialect binance)
        if opts.venue:  # against the simulator the launcher makes the secrets itself
            self._check_secrets()

    def _check_secrets(self) -> None:
        """A venue's secrets must be in the environment before anything starts (a
        gateway without its password would be restarted until the supervisor gives up)."""
        source = self.opts.config or str(cfgmod.DEFAULT_CONFIG)
        wanted = []
        if self.config.get("gateway", {}).get("dialect") != "binance-spot":
            # Binance's Logon is signed with the Ed25519 key instead (checked by preflight)
            wanted.append(("gateway", "password_env", "the venue's FIX password"))
        if (self.opts.md_format or self.config.get("feed", {}).get("md_format")) == "sbe":
            wanted.append(("feed", "api_key_env", "the API key for SBE market data"))
        for section, key, what in wanted:
            env = self.config.get(section, {}).get(key) or cfgmod.defaults(section).get(key)
            if env and env not in self.env:
                raise cfgmod.ConfigError(
                    f"{source}: [{section}] {key} = {env!r}: ${env} is not set; export it "
                    f"({what}) or set {key} = \"\" if the venue needs none")

    # ------------------------------------------------------------------ set-up
    def _start_venue(self) -> None:
        if self.venue_profile:
            self.venue = profile_venue(self.config)
            return
        if self.opts.venue:
            self.venue = parse_venue(self.opts.venue, self.config["gateway"]["target_comp_id"])
            return
        # a fresh secret per run, handed to both sides through the environment only
        password = secrets.token_urlsafe(16)
        self.env[SIM_PASSWORD_ENV] = password
        self.env[PASSWORD_ENV] = password
        sim_cfg = self.config.setdefault("sim", {})
        sim_cfg["state_dir"] = str(RUN_DIR / self.name / "sim")
        sim_cfg.setdefault("accounts", [{"username": "trader", "password_env": SIM_PASSWORD_ENV}])
        if self.opts.sim_dialect == "binance":
            self.binance = make_credentials(RUN_DIR / self.name, self.env)
            sim_settings(sim_cfg, self.binance)
        write_toml(self.config_path, self.config)
        place = self.profile.get("simulator", {})
        self.venue = start_simulator(str(self.config_path), self.env, place.get("core"),
                                     busy_poll=place.get("idle") == "busy_spin",
                                     tls=self.opts.tls)

    def _resolve_config(self) -> None:
        v = self.venue
        feed = self.config.setdefault("feed", {})
        fmt = feed["md_format"] = self.opts.md_format or feed.get("md_format", "json")
        feed["url"] = _streams_url(self._sbe_endpoint(feed) if fmt == "sbe" else v.ws,
                                   self.symbols, fmt)
        feed["rest_url"] = v.rest
        if self.venue_profile:  # the signed REST API is the profile's REST endpoint
            self.config.setdefault("binance", {}).setdefault("rest_url", v.rest)
        gw = self.config.setdefault("gateway", {})
        gw["host"], gw["port"], gw["target_comp_id"] = v.fix_host, v.fix_port, v.comp_id
        gw["state_dir"] = str(RUN_DIR / self.name / "gateway")
        if not self.opts.venue:
            gw["username"] = self.config["sim"]["accounts"][0]["username"]
            gw["password_env"] = PASSWORD_ENV
        if self.binance is not None:
            gateway_settings(self.config, self.binance, v.rest, v.ca_file, v.server_name)
        if v.tls:  # wss:// + https:// follow from the URLs; FIX needs tls = true
            gw["tls"] = True
            for section in (feed, gw):  # the simulator's CA and name (a real venue: none)
                if v.ca_file:
                    section["ca_file"] = v.ca_file
                if v.server_name:
                    section["server_name"] = v.server_name
        write_toml(self.config_path, self.config)

    def _preflight(self) -> None:
        """A Binance profile or the Binance-strict simulator: config, key, signing, then
        clock, rules and account, before any segment or process exists (``PreflightError``:
        one line)."""
        name = self.venue_profile or ("simulator" if self.binance is not None else None)
        if name and self.config["gateway"].get("dialect") == "binance-spot":
            with run_environment(self.env):  # the run's own API key, as the gateway sees it
                self.preflight = binance_preflight(self.config, self.symbols, name)
            # the gateway's risk enforces the rules just fetched (the same file)
            self.config.setdefault("risk", {})["exchange_rules"] = self.preflight.rules_file
            write_toml(self.config_path, self.config)

    def _sbe_endpoint(self, feed: dict) -> str:
        """The venue's SBE streams; against the simulator (which takes any key) a fresh API
        key per run when the environment has none."""
        if not self.venue.sbe:
            raise cfgmod.ConfigError("md_format sbe: the venue gives no SBE endpoint "
                                     "(the simulator does; --venue does not)")
        if any(i.venue != "spot" for i in self.symbols):
            raise cfgmod.ConfigError("md_format sbe: Binance serves SBE for spot instruments "
                                     "only")
        key_env = feed.get("api_key_env") or cfgmod.defaults("feed")["api_key_env"]
        if not self.opts.venue and not self.env.get(key_env):
            self.env[key_env] = secrets.token_urlsafe(16)
        return self.venue.sbe

    def _claim_name(self) -> None:
        """Create the instance's registry before anything else: a live instance of the same
        name makes it raise ``SegmentLive`` before a file (var/run/<name>.toml, its state
        directories) or a process of the running one is touched."""
        alive = live_creators(instances().get(self.name, []))
        if alive:
            raise SegmentLive(f"instance {self.name!r} is running (pid "
                              f"{', '.join(map(str, sorted(alive)))}); stop it or choose "
                              f"another --instance")
        self.instance = Instance.create(self.name)

    def _create_segments(self) -> Counters:
        counters = Counters.create(self.instance)
        create_md_segments(self.instance, 1 << 16, self.symbols, book_capacity=1 << 12)
        create_order_path(self.instance, also_gating=self.opts.firm.also_gating())
        self.control = create_control(self.instance)
        return counters

    def _agent_args(self, agent: str) -> list[str]:
        args = ["--seed", str(self.opts.seed)] if (
            agent == "strategy" and self.opts.seed is not None) else []
        warm = self.profile.get(self.hosts.get(agent, agent), {}).get("warm_us")
        if warm:  # every agent keeps its part of the tick-to-trade path hot
            args += ["--warm-us", str(warm)]
        return args + self.opts.extra_args.get(agent, [])

    def _child(self, name: str) -> Child:
        place = self.profile.get(name, {})
        args = ["--instance", self.name, "--config", str(self.config_path),
                "--idle", place.get("idle", "backoff")]
        if place.get("core") is not None:
            args += ["--core", str(place["core"])]
        if place.get("lock_memory"):
            args += ["--lock-memory"]
        if place.get("slice_us"):
            args += ["--slice-us", str(place["slice_us"])]
        for key in ("idle_spins", "idle_yields", "idle_park_us"):  # the backoff/block ladder
            if key in place:
                args += [f"--{key.replace('_', '-')}", str(place[key])]
        if place.get("idle_handoff"):
            args += ["--idle-handoff"]
        if "agents" not in place:
            return Child(name, f"procs.{name}", args + self._agent_args(name), env=self.env)
        args += ["--name", name, "--agents", ",".join(place["agents"])]
        for agent in place["agents"]:
            if extra := self._agent_args(agent):
                args += ["--child-args", f"{agent}={shlex.join(extra)}"]
        return Child(name, "procs.composite", args, env=self.env)

    def _ordered(self, agents: tuple[str, ...]) -> list[str]:
        """The children hosting ``agents``, in that order, each once."""
        return list(dict.fromkeys(self.hosts[a] for a in agents))

    # ------------------------------------------------------------------ running
    def request_stop(self, *_args) -> None:
        self.stop_requested = True

    def run(self) -> dict:
        RUN_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        RUN_DIR.chmod(0o700)  # the instances' configs, journals and stores: ours alone
        old = {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        summary: dict = {}
        try:
            self._claim_name()
            self._start_venue()
            self._resolve_config()
            self._preflight()
            counters = self._create_segments()
            firm = self.opts.firm.children(self.name, str(self.config_path), self.env)
            for child in [self._child(n) for n in self._ordered(self.start_order)] + firm:
                self.children[child.name] = child.start()
                wait_running(counters, [child], timeout=START_TIMEOUT_S)
                log.info("%s running (pid %d)", child.name, child.pid)
            self.firm_children = [c.name for c in firm]
            supervisor = Supervisor(list(self.children.values()), RestartPolicy())
            start = time.monotonic()
            failed = None
            window = LatencyWindow(counters, self.opts.warmup)
            trading: CpuWindow | None = None  # CPU use over the latency window
            while not self.stop_requested:
                elapsed = time.monotonic() - start
                if self.opts.duration is not None and elapsed >= self.opts.duration:
                    break
                if not supervisor.poll():
                    failed = supervisor.failed
                    break
                window.poll()
                if trading is None and window.started is not None:
                    trading = CpuWindow(self._pids())
                time.sleep(0.1)
            cpu = {"trading": trading.result(self._pipeline_procs())} if trading else {}
            if self.opts.idle_seconds > 0 and failed is None and not self.stop_requested:
                cpu["quiet"] = self._quiet_cpu(supervisor)
                failed = supervisor.failed
            self._shutdown()
            summary = collect_summary(self.instance, self.symbols, time.monotonic() - start,
                                      window.baseline)
            summary["latency_window_s"] = window.seconds()
            summary["cpu"] = cpu
            summary["venue_positions"] = self._venue_positions()
            summary["venue_is_simulator"] = not self.opts.venue
            summary["venue_stats"] = self._venue_admin("stats")  # the simulator's counters
            summary["restarts"] = supervisor.restarts()
            summary["supervisor_events"] = supervisor.events
            summary["failed"] = failed
            return judge(summary)
        finally:
            stop(self._stopping())
            if self.instance is not None:
                self.instance.destroy()
            if self.venue is not None:
                self.venue.stop()
            if self.binance is not None:  # the run's private key does not outlive it
                remove_credentials(self.binance)
            for s, h in old.items():
                signal.signal(s, h)

    def _pipeline_procs(self) -> tuple[str, ...]:
        """The processes that run pipeline agents: the four, or the composites hosting them
        (CPU use sums these)."""
        return (*START_ORDER, *(p for p, spec in self.profile.items() if "agents" in spec))

    def _pids(self) -> dict[str, int]:
        pids = {name: c.pid for name, c in self.children.items() if c.alive()}
        if self.venue is not None and self.venue.process is not None:
            pids["simulator"] = self.venue.process.pid
        return pids

    def _quiet_cpu(self, supervisor: Supervisor) -> dict | None:
        """Pause the simulator's flow, let quotes be pulled, then measure CPU use for
        ``idle_seconds`` (None against an external venue: its flow is not ours to pause)."""
        if self.opts.venue or self._venue_admin("flow", {"paused": True}) is None:
            return None
        deadline = time.monotonic() + QUIET_SETTLE_S
        window: CpuWindow | None = None
        while not self.stop_requested and supervisor.poll():
            if window is None and time.monotonic() >= deadline:
                window, deadline = CpuWindow(self._pids()), deadline + self.opts.idle_seconds
            elif window is not None and time.monotonic() >= deadline:
                return window.result(self._pipeline_procs())
            time.sleep(0.1)
        return None

    def _venue_admin(self, what: str, body: dict | None = None) -> dict | None:
        """GET (or POST ``body`` to) ``/admin/<what>`` of the simulator (None for other
        venues or on failure)."""
        if self.opts.venue or self.venue is None:
            return None
        try:
            ctx = client_ssl_context(self.venue.ca_file or None, who="venue admin") \
                if self.venue.tls else None
            return admin.call(self.venue.rest, f"/admin/{what}", self.venue.admin_token,
                              body, timeout=5, context=ctx)
        except (OSError, ValueError) as e:
            log.warning("venue admin %s unavailable: %s", what, e)
            return None

    def _venue_positions(self) -> dict | None:
        """Our account's positions as the simulator sees them (None for other venues)."""
        by_account = self._venue_admin("positions")
        if by_account is None:
            return None
        account = self.config["sim"]["accounts"][0]["username"]
        return {sym: p["lots"] for sym, p in by_account.get(account, {}).items()}

    def _wait(self, what: str, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                log.warning("shutdown: %s not done after %.0fs", what, timeout)
                return False
            time.sleep(0.02)
        return True

    def _execs_drained(self) -> bool:
        ring = inspect_ring(self.instance, "execs")
        return all(c["lag"] == 0 for c in ring["consumers"] if c["mode"] == "gating")

    def _shutdown(self) -> None:
        """Stop quoting, cancel everything and log out, then stop market data."""
        alive = {a: self.children[h] for a, h in self.hosts.items()
                 if h in self.children and self.children[h].alive()}
        if "strategy" in alive:  # 1. stop quoting: the strategy pulls its quotes
            self.control.set_flag(CL.W_PAUSED, True)
            self.control.execute(Op.PAUSE, timeout=5)
        if "oms_gateway" in alive:  # 2. cancel whatever is still open, wait for the venue
            oms = OmsState.attach(self.instance)
            oms.set_kill(True)
            self._wait("cancel all", lambda: atomic_load(oms.words, W_OPEN_ORDERS) == 0, 10)
            self._wait("exec ring drain", self._execs_drained, 5)
            # 3. FIX logout (a composite closes strategy, gateway, feed, book in order)
            stop([alive["oms_gateway"]], timeout=30)
        self._wait("exec ring drain", self._execs_drained, 5)
        stop(self._stopping(), timeout=30)

    def _stopping(self) -> list[Child]:
        """The pipeline in stop order, then the firm's processes in reverse start order (the
        drop copy last: it takes the reports of the cancels on the way out)."""
        names = self._ordered(self.stop_order) + self.firm_children[::-1]
        return [self.children[n] for n in names if n in self.children]
