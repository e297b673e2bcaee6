"""The venue simulator: books + flow + market-data server + REST + FIX acceptor, one loop.

In-process use (tests)::

    sim = Simulator(SimConfig.from_config(config.load(), seed=7))
    await sim.start()          # ports chosen by the OS when 0
    sim.endpoints()            # {"ws": "ws://127.0.0.1:PORT", "sbe": ..., "rest": ..., ...}
    sim.levels("BTCUSDT")      # the engine's book: (bids, asks) as (ticks, lots), best first
    await sim.set_faults({"md_drop_next": 3})
    await sim.stop()

As a subprocess: ``hft sim --md-port 0 --rest-port 0 --fix-port 0`` prints one JSON line
with the same endpoints. The admin HTTP API on the REST port mirrors the handle:
``GET/POST /admin/faults``, ``GET /admin/book?symbol=&limit=``, ``GET /admin/positions``,
``GET /admin/stats``, ``POST /admin/flow`` (``{"paused": bool, "step": n}``),
``POST /admin/sbe_shutdown`` (``serverShutdown`` to every SBE client, then close); each
needs ``admin_token`` (``venue.admin``: ``SimConfig.admin_token``, or a fresh one) in the
``X-Admin-Token`` header.
The SBE streams of the spot instruments (``venue.sbe_feed``) have their own port (``"sbe"``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import config as config_module
from pipeline.binance.keys import load_public_key
from pipeline.config import ROOT
from pipeline.instruments import Instrument, SymbolTable
from pipeline.venue import admin
from pipeline.venue.binance_rest import BinanceRest
from pipeline.venue.faults import Faults
from pipeline.venue.fixacceptor import FixAcceptor
from pipeline.venue.flow import Flow, FlowParams
from pipeline.venue.matching import BUY, SELL, Book
from pipeline.venue.mdserver import (
    DEPTH_PATHS,
    DEPTH_STREAMS,
    MdHub,
    MdServer,
    RestServer,
    Stats,
    SymbolFeed,
)
from pipeline.venue.sbe_feed import SBE_SUFFIXES, SbeFeed
from pipeline.venue.tls import ServerTls, server_tls

log = logging.getLogger("venue")
_SIM = config_module.defaults("sim")  # [sim]: the keys and their defaults
DIALECTS = ("fix44", "binance")
BINANCE_COMP_ID = "SPOT"


@dataclass
class Account:
    """A FIX login. ``account_id`` > 0 (0 is the anonymous background flow)."""

    username: str
    account_id: int
    password: str | None = field(repr=False)  # None: no password, every logon is refused
    api_key: str = field(default="", repr=False)  # binance: Username(553), X-MBX-APIKEY
    public_key: object = field(default=None, repr=False)  # its registered Ed25519 key
    hmac_secret: str | None = field(default=None, repr=False)  # signed REST with HMAC


@dataclass
class SimConfig:
    symbols: SymbolTable
    host: str = _SIM["host"]
    md_port: int = _SIM["md_port"]
    sbe_port: int = _SIM["sbe_port"]
    rest_port: int = _SIM["rest_port"]
    fix_port: int = _SIM["fix_port"]
    seed: int = _SIM["seed"]
    rate: float = _SIM["rate"]  # background flow events per second per instrument; 0: none
    start_prices: dict[str, str] = field(default_factory=dict)
    mean_qty: dict[str, str] = field(default_factory=dict)
    flow: dict = field(default_factory=dict)  # FlowParams overrides
    accounts: list[Account] = field(default_factory=list)
    comp_id: str = _SIM["comp_id"]
    state_dir: Path = ROOT / _SIM["state_dir"]
    faults: dict = field(default_factory=dict)
    depth_ms: int = _SIM["depth_ms"]  # the @depth stream's period
    depth_fast_ms: int = _SIM["depth_fast_ms"]  # the @depth@100ms stream's period
    sbe_depth_ms: int = _SIM["sbe_depth_ms"]  # the SBE @depth stream's period
    sbe_depth20_ms: int = _SIM["sbe_depth20_ms"]  # the SBE @depth20 stream's period
    max_order_lots: int = _SIM["max_order_lots"]
    max_open_orders: int = _SIM["max_open_orders"]
    first_update_id: int = _SIM["first_update_id"]
    tls: bool = _SIM["tls"]  # every endpoint over TLS (pipeline/venue/tls.py)
    tls_cert: str = _SIM["tls_cert"]
    tls_key: str = _SIM["tls_key"]
    ca_file: str = _SIM["ca_file"]
    admin_token: str = ""  # the /admin API's token ("": a fresh one; venue.admin)
    dialect: str = _SIM["dialect"]  # "fix44" or "binance" (pipeline/venue/binance_*.py)
    filters: dict = field(default_factory=dict)  # binance: [sim.filters.<SYMBOL>]
    binance: dict = field(default_factory=dict)  # binance: [sim.binance] limits
    balances: dict = field(default_factory=dict)  # binance: asset -> starting balance

    def __post_init__(self):
        if self.dialect not in DIALECTS:
            raise ValueError(f"[sim] dialect {self.dialect!r}: expected one of {DIALECTS}")
        if self.dialect == "binance":
            self.comp_id = BINANCE_COMP_ID  # clients send 56=SPOT

    @classmethod
    def from_config(cls, config: dict, **overrides) -> SimConfig:
        """Build from the merged TOML (``[[instruments]]`` and ``[sim]``) plus overrides."""
        sim = dict(config.get("sim", {}))
        table = SymbolTable.from_config(config["instruments"])
        wanted = sim.pop("symbols", None)
        if wanted:
            table = SymbolTable([table[s] for s in wanted])
        accounts = []
        binance = sim.get("dialect") == "binance" or overrides.get("dialect") == "binance"
        for n, row in enumerate(sim.pop("accounts", []), start=1):
            if binance:
                accounts.append(binance_account(row, n))
                continue
            env = row.get("password_env")
            password = os.environ.get(env) if env else None
            if password is None:
                log.warning("sim account %s: no password (set %s); its logons are refused",
                            row["username"], env)
            accounts.append(Account(row["username"], n, password))
        config_module.check(sim, config_module.SCHEMA["sim"], "config", "sim")
        kwargs = dict(sim)
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        if "state_dir" in kwargs:
            kwargs["state_dir"] = (ROOT / kwargs["state_dir"]).resolve()
        return cls(symbols=table, accounts=accounts, **kwargs)


def binance_account(row: dict, account_id: int) -> Account:
    """A ``[[sim.accounts]]`` row of the binance dialect: its API key (``api_key``, or the
    variable ``api_key_env`` names), the Ed25519 public key PEM registered for it
    (``ed25519_public_key``, a path) and optionally ``hmac_secret_env`` for HMAC-signed
    REST. The key material is never logged."""
    key = row.get("api_key") or (os.environ.get(row["api_key_env"], "")
                                 if row.get("api_key_env") else "")
    if not key:
        log.warning("sim account %s: no API key (api_key / api_key_env); its logons are "
                    "refused", row["username"])
    pub = None
    if row.get("ed25519_public_key"):
        pub = load_public_key(ROOT / row["ed25519_public_key"])
    secret = os.environ.get(row["hmac_secret_env"]) if row.get("hmac_secret_env") else None
    return Account(row["username"], account_id, None, key, pub, secret)


class Simulator:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.faults = Faults()
        self.faults.update(cfg.faults)
        self.stats = Stats()
        self.hub = MdHub({i.symbol: i for i in cfg.symbols})
        self.sbe_hub = MdHub({i.symbol: i for i in cfg.symbols if i.venue == "spot"},
                             SBE_SUFFIXES, binary=True)
        self.books: dict[str, Book] = {}
        self.feeds: dict[str, SymbolFeed] = {}
        self.flows: dict[str, Flow] = {}
        for inst in cfg.symbols:
            book = Book(inst.symbol_id, cfg.first_update_id, cfg.max_order_lots,
                        cfg.max_open_orders)
            self.books[inst.symbol] = book
            flow = Flow(book, self._flow_params(inst), cfg.seed * 1000 + inst.symbol_id)
            flow.seed_book()
            book.changed.clear()
            book.trades.clear()
            self.flows[inst.symbol] = flow
            sbe = SbeFeed(inst, book, self.sbe_hub) if inst.venue == "spot" else None
            self.feeds[inst.symbol] = SymbolFeed(inst, book, self.hub, self.faults, sbe)
        self.md = MdServer(self.hub, self.faults, self.stats, cfg.seed)
        self.sbe_md = MdServer(self.sbe_hub, self.faults, self.stats, cfg.seed + 1, api_key=True)
        self.rest = RestServer(self.stats)
        self.admin_token = cfg.admin_token or admin.new_token()
        self.rest.protect(admin.PREFIX, admin.HEADER, self.admin_token)
        self.fix: FixAcceptor | None = None  # created in start()
        self.paused = cfg.rate <= 0
        self.ports: dict[str, int] = {}
        self.tls: ServerTls | None = None  # made in start()
        self._tasks: list[asyncio.Task] = []

    def _flow_params(self, inst: Instrument) -> FlowParams:
        p = FlowParams(**self.cfg.flow)
        price = self.cfg.start_prices.get(inst.symbol)
        if price is not None:
            p.start_ticks = inst.ticks(str(price))
        qty = self.cfg.mean_qty.get(inst.symbol)
        if qty is not None:
            p.mean_qty_lots = inst.lots(str(qty))
        return p

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> dict:
        cfg = self.cfg
        self._routes()
        if cfg.tls:
            self.tls = server_tls(cfg.host, cfg.state_dir, cfg.tls_cert, cfg.tls_key,
                                  cfg.ca_file)
        ctx = self.tls.context if self.tls else None
        self.ports["md"] = await self.md.start(cfg.host, cfg.md_port, ssl=ctx)
        self.ports["sbe"] = await self.sbe_md.start(cfg.host, cfg.sbe_port, ssl=ctx)
        self.ports["rest"] = await self.rest.start(cfg.host, cfg.rest_port, ssl=ctx)
        self.fix = FixAcceptor(self, cfg)
        self.ports["fix"] = await self.fix.start(cfg.host, cfg.fix_port, ssl=ctx)
        self._tasks = [asyncio.create_task(self._flow_loop()),
                       asyncio.create_task(self._depth_loop(DEPTH_STREAMS[0], cfg.depth_ms)),
                       asyncio.create_task(self._depth_loop(DEPTH_STREAMS[1], cfg.depth_fast_ms)),
                       asyncio.create_task(self._sbe_loop(False, cfg.sbe_depth_ms)),
                       asyncio.create_task(self._sbe_loop(True, cfg.sbe_depth20_ms))]
        return self.endpoints()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.fix is not None:
            await self.fix.close()
        for md in (self.md, self.sbe_md):
            await md.disconnect_all()
            await md.close()
        await self.rest.close()

    def endpoints(self) -> dict:
        h, s = self.cfg.host, "s" if self.tls else ""
        out = {"ws": f"ws{s}://{h}:{self.ports['md']}",
               "sbe": f"ws{s}://{h}:{self.ports['sbe']}",
               "rest": f"http{s}://{h}:{self.ports['rest']}",
               "fix_host": h, "fix_port": self.ports["fix"], "md_port": self.ports["md"],
               "rest_port": self.ports["rest"], "comp_id": self.cfg.comp_id,
               "symbols": [i.symbol for i in self.cfg.symbols], "tls": self.tls is not None,
               "admin_token": self.admin_token}
        if self.tls:  # what a client needs: the CA to trust, the FIX endpoint as a URL
            out |= {"ca_file": self.tls.ca_file, "server_name": self.tls.server_name,
                    "fix": f"tcp+tls://{h}:{self.ports['fix']}"}
        return out

    # ------------------------------------------------------------------ engine glue
    def after(self, symbol: str) -> None:
        """Publish what one book just did: market data now, reports to FIX sessions."""
        self.feeds[symbol].drain()
        book = self.books[symbol]
        if book.reports:
            reports, book.reports = book.reports, []
            if self.fix is not None:
                inst = self.cfg.symbols[symbol]
                for r in reports:
                    self.fix.route(inst, r)

    def step_flow(self, n: int) -> None:
        ms = time.time_ns() // 1_000_000
        for sym, flow in self.flows.items():
            self.books[sym].now_ms = ms
            flow.step(n)
            self.after(sym)
        self.stats["flow_events"] += n * len(self.flows)

    async def _flow_loop(self) -> None:
        loop = asyncio.get_running_loop()
        rate = max(self.cfg.rate, 0.0)
        t0, done = loop.time(), 0
        while True:
            await asyncio.sleep(0.002)
            now = loop.time()
            if self.paused or rate == 0:
                t0, done = now, 0
                continue
            target = int((now - t0) * rate)
            due = target - done
            cap = max(int(rate * 0.05), 1)
            if due > cap:  # fell behind (the loop was busy): drop the backlog
                self.stats["flow_behind"] += due - cap
                due = cap
            done = target
            if due > 0:
                self.step_flow(due)

    async def _depth_loop(self, suffix: str, period_ms: int) -> None:
        async for _ in _ticks(period_ms):
            for feed in self.feeds.values():
                feed.flush(f"{feed.inst.symbol.lower()}{suffix}")

    async def _sbe_loop(self, top: bool, period_ms: int) -> None:
        """SBE ``@depth`` diffs or ``@depth20`` snapshots."""
        async for _ in _ticks(period_ms):
            for feed in self.feeds.values():
                if feed.sbe is None:
                    continue
                if top:
                    feed.drain()
                    feed.sbe.flush_top()
                else:
                    feed.flush_sbe()

    # ------------------------------------------------------------------ queries for tests
    def levels(self, symbol: str, limit: int = 0) -> tuple[list, list]:
        """The engine's book, best first: (bids, asks) of (price ticks, qty lots)."""
        book = self.books[symbol.upper()]
        return book.depth(BUY, limit), book.depth(SELL, limit)

    def update_id(self, symbol: str) -> int:
        return self.books[symbol.upper()].update_id

    def positions(self) -> dict[str, dict[str, dict]]:
        """Per account username, per symbol: signed qty and cash (as exact decimals)."""
        names = {a.account_id: a.username for a in self.cfg.accounts}
        out: dict[str, dict[str, dict]] = {}
        for inst in self.cfg.symbols:
            for acct, (lots, cash) in self.books[inst.symbol].positions.items():
                out.setdefault(names.get(acct, str(acct)), {})[inst.symbol] = {
                    "qty": ("-" if lots < 0 else "") + inst.qty_str(abs(lots)),
                    "lots": lots, "cash_ticks_lots": cash}
        return out

    def _account_order(self, account: int, cl_ord_id: str) -> str | None:
        return next((sym for sym, b in self.books.items()
                     if (o := b.order(account, cl_ord_id)) is not None and o.oid in b.orders),
                    None)

    def fill(self, account: int, cl_ord_id: str, qty: str, price: str) -> bool:
        """Fill a resting account order at ``price`` (decimal strings), whatever the book
        holds: ``Book.execute``. False if no such order rests."""
        sym = self._account_order(account, cl_ord_id)
        if sym is None:
            return False
        inst, book = self.cfg.symbols[sym], self.books[sym]
        book.now_ms = time.time_ns() // 1_000_000
        book.execute(account, cl_ord_id, inst.lots(qty), inst.ticks(price))
        self.after(sym)
        return True

    def cancel(self, account: int, cl_ord_id: str) -> bool:
        """An unsolicited cancel of a resting account order (the venue's own decision)."""
        sym = self._account_order(account, cl_ord_id)
        if sym is None:
            return False
        self.books[sym].cancel(account, "", cl_ord_id)
        self.after(sym)
        return True

    async def set_faults(self, values: dict) -> dict:
        """Switch faults at run time (also the body of POST /admin/faults)."""
        actions = self.faults.update(values)
        done = {}
        for a in actions:
            self.stats[f"fault_{a}"] += 1
            if a == "disconnect_md":
                done[a] = await self.md.disconnect_all() + await self.sbe_md.disconnect_all()
            elif a == "drop_fix":
                done[a] = self.fix.drop_all()
            elif a == "garble_fix":
                done[a] = self.fix.garble_all()
        if self.faults.fix_maintenance_s and self.fix is not None and self.fix.dialect:
            done["maintenance"] = self.fix.dialect.start_maintenance(
                self.faults.take_all("fix_maintenance_s"))
        return self.faults.to_dict() | {"actions": done}

    # ------------------------------------------------------------------ REST routes
    def _routes(self) -> None:
        r = self.rest
        for path in DEPTH_PATHS.values():
            r.route("GET", path, self._depth)
        r.route("GET", "/api/v3/ping", self._ping)
        r.route("GET", "/fapi/v1/ping", self._ping)
        r.route("GET", "/api/v3/time", self._time)
        r.route("GET", "/api/v3/exchangeInfo", self._exchange_info)
        r.route("GET", "/admin/faults", self._get_faults)
        r.route("POST", "/admin/faults", self._post_faults)
        r.route("GET", "/admin/book", self._admin_book)
        r.route("GET", "/admin/positions", self._admin_positions)
        r.route("GET", "/admin/stats", self._admin_stats)
        r.route("POST", "/admin/flow", self._admin_flow)
        r.route("POST", "/admin/sbe_shutdown", self._admin_sbe_shutdown)
        if self.cfg.dialect == "binance":  # signed USER_DATA, exchangeInfo with filters
            BinanceRest(self).install(r)

    def _symbol(self, query: dict) -> Instrument:
        sym = query.get("symbol", "").upper()
        if sym not in self.cfg.symbols:
            raise ValueError("Invalid symbol.")
        return self.cfg.symbols[sym]

    async def _depth(self, path: str, query: dict, body: bytes) -> tuple[int, str]:
        inst = self._symbol(query)
        if DEPTH_PATHS[inst.venue] != path:
            raise ValueError(f"Invalid symbol. {inst.symbol} is served at "
                             f"{DEPTH_PATHS[inst.venue]}")
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            raise ValueError("Illegal characters found in parameter 'limit'.") from None
        if not 1 <= limit <= 5000:
            raise ValueError("Invalid limit.")
        feed = self.feeds[inst.symbol]
        feed.drain()
        text = feed.snapshot_json(limit)
        self.stats["rest_snapshots"] += 1
        if self.faults.snapshot_delay_ms:
            await asyncio.sleep(self.faults.snapshot_delay_ms / 1000)
        return 200, text

    async def _ping(self, path, query, body):
        return 200, "{}"

    async def _time(self, path, query, body):
        return 200, json.dumps({"serverTime": time.time_ns() // 1_000_000})

    async def _exchange_info(self, path, query, body):
        symbols = [{"symbol": i.symbol, "status": "TRADING", "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": i.tick_size},
            {"filterType": "LOT_SIZE", "stepSize": i.lot_size}]} for i in self.cfg.symbols]
        return 200, json.dumps({"timezone": "UTC", "symbols": symbols})

    async def _get_faults(self, path, query, body):
        return 200, json.dumps(self.faults.to_dict())

    async def _post_faults(self, path, query, body):
        try:
            values = json.loads(body or b"{}")
        except json.JSONDecodeError:
            raise ValueError("body is not JSON") from None
        if not isinstance(values, dict):
            raise ValueError("body must be a JSON object")
        return 200, json.dumps(await self.set_faults(values))

    async def _admin_book(self, path, query, body):
        inst = self._symbol(query)
        self.feeds[inst.symbol].drain()
        bids, asks = self.levels(inst.symbol, int(query.get("limit", "0")))
        return 200, json.dumps({
            "lastUpdateId": self.update_id(inst.symbol),
            "bids": [[inst.price_str(p), inst.qty_str(q)] for p, q in bids],
            "asks": [[inst.price_str(p), inst.qty_str(q)] for p, q in asks]})

    async def _admin_positions(self, path, query, body):
        return 200, json.dumps(self.positions())

    async def _admin_stats(self, path, query, body):
        return 200, json.dumps(dict(self.stats))

    async def _admin_flow(self, path, query, body):
        values = json.loads(body or b"{}")
        if "paused" in values:
            self.paused = bool(values["paused"])
        if values.get("step"):
            self.step_flow(int(values["step"]))
        return 200, json.dumps({"paused": self.paused})


    async def _admin_sbe_shutdown(self, path, query, body):
        return 200, json.dumps({"closed": await self.sbe_md.shutdown_all()})


async def _ticks(period_ms: int):
    """Yields every ``period_ms`` (a late tick starts the next period: no catch-up burst)."""
    period = max(period_ms, 1) / 1000
    loop = asyncio.get_running_loop()
    next_t = loop.time() + period
    while True:
        await asyncio.sleep(max(next_t - loop.time(), 0))
        next_t = max(next_t + period, loop.time())
        yield


def books_summary(sim: Simulator) -> dict[str, tuple[int, int]]:
    """Levels per side, for logs."""
    return {s: (len(b.prices[BUY]), len(b.prices[SELL])) for s, b in sim.books.items()}

