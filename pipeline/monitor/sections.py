"""Monitor sections and the plugin point that finds them.

A section turns one kind of segment into state (``collect``: JSON-ready), a rich table
(``render``) and Prometheus samples (``metrics``). ``FACTORIES`` maps a layout-name
prefix (``Entry.layout_name`` in the instance registry) to a factory building sections
from the matching segments; a new segment kind gets shown by registering a factory::

    @register("latest:")
    def books(inst, entries): return [BooksSection(LatestBooks.attach(inst, readonly=True))]

Every factory maps its segments read-only and reads with atomic loads or seqlock reads,
so a monitor never writes to a pipeline segment. Factories whose reader module belongs to
an area that is not installed return nothing (the segment is listed as "not shown").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import psutil
from rich.table import Table

from pipeline.control.area import ControlArea
from pipeline.marketdata.latest import LatestBooks
from pipeline.metrics.counters import Counters
from pipeline.monitor.ringview import open_ring
from pipeline.orders.segments import OmsState
from pipeline.transport.registry import Entry, Instance
from pipeline.transport.ring import RingError
from pipeline.transport.segment import SegmentError, pid_alive
from shm_layouts import oms as oms_layout

Metric = tuple[str, str, str, dict, float]  # name, type, help, labels, value
Factory = Callable[[Instance, list[Entry]], list["Section"]]
FACTORIES: list[tuple[str, Factory]] = []
QUIET_WHEN_ZERO = ".orders.denied."  # per-reason breakdown rows shown only when non-zero
ALERT_WORDS = ("error", "reject", "gap", "lost", "drop", "overrun", "invalid", "crossed")


def register(prefix: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        FACTORIES.append((prefix, factory))
        return factory
    return deco


def build(inst: Instance, entries: list[Entry]) -> tuple[list[Section], dict[str, str]]:
    """Sections for every registered prefix with segments, and the segments not shown
    with the reason (no reader in this build, or attaching failed: layout mismatch...)."""
    sections: list[Section] = []
    not_shown: dict[str, str] = {}
    claimed: set[str] = set()
    for prefix, factory in FACTORIES:
        matching = [e for e in entries if e.layout_name.startswith(prefix)]
        if not matching:
            continue
        claimed.update(e.name for e in matching)
        try:
            built = factory(inst, matching)
        except (SegmentError, RingError, ValueError) as e:
            not_shown.update({m.name: str(e) for m in matching})
            continue
        if not built:
            not_shown.update({m.name: "no reader for this layout in this build" for m in matching})
        sections += built
    not_shown.update({e.name: f"no section for layout {e.layout_name!r}"
                      for e in entries if e.name not in claimed})
    return sections, not_shown


class Rates:
    """Per-second rates of monotonically growing values between refreshes."""

    def __init__(self) -> None:
        self._last: dict[Any, tuple[int, int]] = {}

    def __call__(self, key: Any, value: int, now_ns: int) -> float | None:
        prev = self._last.get(key)
        self._last[key] = (now_ns, value)
        if prev is None or now_ns <= prev[0]:
            return None
        return (value - prev[1]) * 1e9 / (now_ns - prev[0])


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s" if seconds >= 1 else \
        f"{seconds * 1e3:.0f}ms"


class Section(ABC):
    key = "section"
    title = "section"

    @abstractmethod
    def collect(self, now_ns: int) -> Any:
        """The section's state, JSON-serialisable."""

    @abstractmethod
    def render(self, data: Any) -> Table:
        """A rich table of ``data`` (from ``collect``)."""

    def metrics(self, data: Any) -> list[Metric]:
        return []

    def close(self) -> None:
        pass

    def table(self, *columns: str) -> Table:
        t = Table(title=self.title, title_justify="left", expand=False, pad_edge=False)
        for i, c in enumerate(columns):
            t.add_column(c, justify="left" if i == 0 else "right", no_wrap=True)
        return t


# ---------------------------------------------------------------------------- counters
class ProcessesSection(Section):
    key, title = "processes", "processes"

    def __init__(self, counters: Counters):
        self.counters = counters
        self.rates = Rates()
        self._procs: dict[int, psutil.Process] = {}

    def _cpu(self, pid: int) -> float | None:
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                proc.cpu_percent(None)  # primes the counter; the next call has a value
                return None
            return proc.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._procs.pop(pid, None)
            return None

    def collect(self, now_ns: int) -> list[dict]:
        out = []
        for p in self.counters.processes():
            alive = pid_alive(p["pid"])
            out.append({
                "name": p["name"], "pid": p["pid"], "core": p["core"],
                "state": p["state_name"] if alive or p["state_name"] in (
                    "STOPPED", "FAILED", "FREE") else "DEAD",
                "alive": alive,
                "heartbeat_age_s": _now_age(now_ns, p["heartbeat_ns"]),
                "cpu_percent": self._cpu(p["pid"]) if alive else None,
                "restarts": p["restarts"], "slices": p["slices"], "work": p["work"],
                "work_rate": self.rates(p["name"], p["work"], now_ns),
            })
        return out

    def render(self, data: list[dict]) -> Table:
        t = self.table("process", "pid", "core", "state", "heartbeat", "cpu %", "work/s",
                       "restarts")
        for p in data:
            state = p["state"] if p["state"] == "RUNNING" else f"[red]{p['state']}[/]"
            t.add_row(p["name"], str(p["pid"]), "-" if p["core"] < 0 else str(p["core"]), state,
                      age(p["heartbeat_age_s"]), fmt(p["cpu_percent"], 1),
                      fmt(p["work_rate"]), str(p["restarts"]))
        return t

    def metrics(self, data: list[dict]) -> list[Metric]:
        out: list[Metric] = []
        for p in data:
            lab = {"process": p["name"]}
            out.append(("hft_process_up", "gauge", "1 if the process is alive and RUNNING",
                        lab, float(p["alive"] and p["state"] == "RUNNING")))
            if p["heartbeat_age_s"] is not None:
                out.append(("hft_process_heartbeat_age_seconds", "gauge",
                            "time since the last housekeeping pass", lab, p["heartbeat_age_s"]))
            if p["cpu_percent"] is not None:
                out.append(("hft_process_cpu_percent", "gauge", "CPU use", lab, p["cpu_percent"]))
            out.append(("hft_process_restarts_total", "counter", "restarts", lab, p["restarts"]))
            out.append(("hft_process_work_total", "counter", "duty-cycle work count", lab,
                        p["work"]))
        return out

    def close(self) -> None:
        self.counters.close()  # this section owns the shared mapping


class CountersSection(Section):
    key, title = "counters", "counters"

    def __init__(self, counters: Counters):
        self.counters = counters
        self.rates = Rates()

    def collect(self, now_ns: int) -> dict:
        return {name: {"value": v, "rate": self.rates(name, v, now_ns)}
                for name, v in sorted(self.counters.values().items())}

    def render(self, data: dict) -> Table:
        t = self.table("counter", "value", "per s")
        for name, c in data.items():
            if not c["value"] and QUIET_WHEN_ZERO in name:
                continue  # one counter per risk reason: only those that happened
            alert = c["value"] and any(w in name for w in ALERT_WORDS)
            t.add_row(f"[red]{name}[/]" if alert else name, fmt(c["value"]), fmt(c["rate"]))
        return t

    def metrics(self, data: dict) -> list[Metric]:
        return [("hft_counter_total", "counter", "named counters of the counters area",
                 {"counter": name}, c["value"]) for name, c in data.items()]


class HistogramsSection(Section):
    key, title = "histograms", "latency (ns)"
    QUANTILES = ("p50", "p99", "p99.9")

    def __init__(self, counters: Counters):
        self.counters = counters

    def collect(self, now_ns: int) -> dict:
        return self.counters.histograms()

    def render(self, data: dict) -> Table:
        t = self.table("histogram", "count", "p50", "p99", "p99.9", "max", "mean")
        for name, h in data.items():
            t.add_row(name, fmt(h["count"]), *(fmt(h[q]) for q in self.QUANTILES),
                      fmt(h["max"]), fmt(h["mean"]))
        return t

    def metrics(self, data: dict) -> list[Metric]:
        out: list[Metric] = []
        for name, h in data.items():
            lab = {"histogram": name}
            for q in self.QUANTILES:
                out.append(("hft_latency_ns", "summary", "latency percentiles (log-linear "
                            "histogram, <6.25% error)", lab | {"quantile": str(float(q[1:]) / 100)},
                            h[q]))
            out.append(("hft_latency_ns_sum", "summary", "", lab, h["mean"] * h["count"]))
            out.append(("hft_latency_ns_count", "summary", "", lab, h["count"]))
            out.append(("hft_latency_max_ns", "gauge", "largest recorded value", lab, h["max"]))
        return out


@register("counters")
def counters_sections(inst: Instance, entries: list[Entry]) -> list[Section]:
    counters = Counters.attach(inst, readonly=True)
    return [ProcessesSection(counters), CountersSection(counters), HistogramsSection(counters)]


# ---------------------------------------------------------------------------- rings
class RingsSection(Section):
    key, title = "rings", "rings"

    def __init__(self, views: list, errors: dict[str, str] | None = None):
        self.views = views
        self.errors = errors or {}  # rings that could not be mapped, and why
        self.rates = Rates()

    def collect(self, now_ns: int) -> list[dict]:
        out: list[dict] = [{"name": n, "error": e} for n, e in sorted(self.errors.items())]
        for v in self.views:
            s = v.state(now_ns)
            s["rate"] = self.rates(s["name"], s["published"], now_ns)
            for c in s["consumers"]:
                c["rate"] = self.rates((s["name"], c["slot"]), c["cursor"], now_ns)
            out.append(s)
        return out

    def render(self, data: list[dict]) -> Table:
        t = self.table("ring / consumer", "capacity", "position", "per s", "lag", "lost",
                       "full", "pid", "heartbeat")
        for r in data:
            if "error" in r:
                t.add_row(f"[bold]{r['name']}[/]", f"[red]{r['error']}[/]")
                continue
            t.add_row(f"[bold]{r['name']}[/] ({r['stream']})", fmt(r["capacity"]),
                      fmt(r["published"]), fmt(r["rate"]), "", "", fmt(r["full"]),
                      str(r["producer_pid"]), age(r["producer_heartbeat_age_s"]))
            for c in r["consumers"]:
                lag = fmt(c["lag"])
                if c["lag"] > r["capacity"] // 2:
                    lag = f"[red]{lag}[/]"
                name = f"  {c['name']} ({c['mode']})" + (
                    "" if c["alive"] else " [red]gone[/]" if c["pid"] else " not attached")
                t.add_row(name, "", fmt(c["cursor"]), fmt(c["rate"]), lag, fmt(c["lost"]), "",
                          str(c["pid"]), age(c["heartbeat_age_s"]))
        return t

    def metrics(self, data: list[dict]) -> list[Metric]:
        out: list[Metric] = []
        for r in data:
            if "error" in r:
                continue
            lab = {"ring": r["name"], "stream": r["stream"]}
            out += [("hft_ring_capacity", "gauge", "ring capacity in records", lab, r["capacity"]),
                    ("hft_ring_published_total", "counter", "records published", lab,
                     r["published"]),
                    ("hft_ring_full_total", "counter", "claims refused: ring full", lab, r["full"])]
            for c in r["consumers"]:
                cl = lab | {"consumer": c["name"], "mode": c["mode"]}
                out += [("hft_ring_consumer_position", "gauge", "consumer cursor", cl, c["cursor"]),
                        ("hft_ring_consumer_lag", "gauge", "records behind the producer", cl,
                         c["lag"]),
                        ("hft_ring_consumer_lost_total", "counter", "records lost to overrun",
                         cl, c["lost"])]
        return out

    def close(self) -> None:
        for v in self.views:
            v.close()


@register("ring:")
def ring_sections(inst: Instance, entries: list[Entry]) -> list[Section]:
    views, errors = [], {}
    for e in sorted(entries, key=lambda e: e.name):
        try:
            views.append(open_ring(inst, e))
        except SegmentError as err:  # layout mismatch, not a ring...: shown, not fatal
            errors[e.name] = str(err)
    return [RingsSection(views, errors)]


# ---------------------------------------------------------------------------- control
class ControlSection(Section):
    key, title = "control", "control"

    def __init__(self, area: ControlArea):
        self.area = area

    def collect(self, now_ns: int) -> dict:
        return self.area.flags() | {"handlers": [
            {k: h[k] for k in ("name", "pid", "active", "executed", "skipped", "ops_names",
                               "heartbeat_age_s")} for h in self.area.handlers()]}

    def render(self, data: dict) -> Table:
        t = self.table("control", "value")
        t.add_row("kill switch", "[red]ON[/]" if data["kill_switch"] else "off")
        t.add_row("quoting", "[yellow]PAUSED[/]" if data["paused"] else "running")
        t.add_row("last command", f"#{data['last_command']}")
        for h in data["handlers"]:
            t.add_row(f"handler {h['name']}", f"pid {h['pid']} "
                      f"{'active' if h['active'] else 'gone'}, {h['executed']} acked, "
                      f"{h['skipped']} skipped")
        return t

    def metrics(self, data: dict) -> list[Metric]:
        return [("hft_kill_switch", "gauge", "1 while the kill switch is on", {},
                 float(data["kill_switch"])),
                ("hft_quoting_paused", "gauge", "1 while quoting is paused", {},
                 float(data["paused"]))]

    def close(self) -> None:
        self.area.close()


@register("control")
def control_sections(inst: Instance, entries: list[Entry]) -> list[Section]:
    return [ControlSection(ControlArea.attach(inst, readonly=True))]


def _now_age(now_ns: int, t_ns: int) -> float | None:
    return max(now_ns - t_ns, 0) / 1e9 if t_ns > 0 else None


class BooksSection(Section):
    """Latest book per symbol. ``source`` provides (the market-data area's LatestBooks):
    ``n_symbols``; ``symbols()`` -> SymbolTable; ``read(sid)`` -> a BOOK_UPDATE record or
    None, by a seqlock read that never writes."""

    key, title = "books", "books"

    def __init__(self, source: Any):
        self.source = source
        self.symbols = source.symbols()

    def collect(self, now_ns: int) -> list[dict]:
        from shm_layouts.records import SyncState
        out = []
        for ins in self.symbols:
            rec = self.source.read(ins.symbol_id)
            row = {"symbol": ins.symbol, "symbol_id": ins.symbol_id, "state": "NO_DATA"}
            if rec is not None:
                bid, ask = int(rec["bid_px"][0]), int(rec["ask_px"][0])
                has = int(rec["n_bids"]) > 0 and int(rec["n_asks"]) > 0
                row |= {"state": SyncState(int(rec["state"])).name,
                        "update_id": int(rec["update_id"]),
                        "bid": ins.price_str(bid) if rec["n_bids"] else None,
                        "bid_qty": ins.qty_str(int(rec["bid_qty"][0])) if rec["n_bids"] else None,
                        "ask": ins.price_str(ask) if rec["n_asks"] else None,
                        "ask_qty": ins.qty_str(int(rec["ask_qty"][0])) if rec["n_asks"] else None,
                        "spread_ticks": ask - bid if has else None,
                        "age_s": _now_age(now_ns, int(rec["t_book_ns"]))}
            out.append(row)
        return out

    def render(self, data: list[dict]) -> Table:
        t = self.table("symbol", "state", "bid qty", "bid", "ask", "ask qty", "spread",
                       "update id", "age")
        for b in data:
            state = b["state"] if b["state"] == "SYNCED" else f"[yellow]{b['state']}[/]"
            t.add_row(b["symbol"], state, fmt(b.get("bid_qty")), fmt(b.get("bid")),
                      fmt(b.get("ask")), fmt(b.get("ask_qty")), fmt(b.get("spread_ticks")),
                      fmt(b.get("update_id")), age(b.get("age_s")))
        return t

    def metrics(self, data: list[dict]) -> list[Metric]:
        return [("hft_book_synced", "gauge", "1 if the symbol's book is synced",
                 {"symbol": b["symbol"]}, float(b["state"] == "SYNCED")) for b in data]

    def close(self) -> None:
        self.source.close()


@register("latest:book_update")
def book_sections(inst: Instance, entries: list[Entry]) -> list[Section]:
    return [BooksSection(LatestBooks.attach(inst, readonly=True))]


class OrdersSection(Section):
    """Orders and positions from the OMS segment. ``state`` provides (the order area's
    OmsState): ``words`` (control words, indices in ``layout``), ``orders`` (ORDER
    rows: cl_ord_id, symbol_id, side, price, qty, cum_qty, leaves_qty, status) and
    ``positions`` (POSITION rows: position, open_cost, realised, open_buy, open_sell,
    fills, volume); ``layout`` is the ``shm_layouts.oms`` module. The gateway is the only
    writer; a row may be read mid-update (display only). With ``books`` (a book source,
    see ``BooksSection``) positions get symbol names and PnL in the quote currency:
    realised, and unrealised marked at the mid of the latest synced book."""

    key, title = "orders", "orders and positions"
    OPEN = ("PENDING_NEW", "NEW", "PARTIALLY_FILLED", "PENDING_CANCEL", "PENDING_REPLACE")
    WORDS = ("W_KILL", "W_READY", "W_OPEN_ORDERS", "W_FILLS", "W_REJECTS",
             "W_UNKNOWN_REPORTS", "W_RECONCILE_MISMATCH", "W_STALE_CANCELS")
    MAX_ROWS = 20

    def __init__(self, state: Any, layout: Any, books: Any = None):
        self.state = state
        self.layout = layout
        self.books = books
        self.symbols = books.symbols() if books is not None else None

    def _pnl(self, sid: int, p: np.void) -> dict:
        """Symbol and PnL of one position row, exact (Decimal) then shown as strings."""
        if self.symbols is None or sid >= len(self.symbols):
            return {"symbol": str(sid)}
        ins = self.symbols[sid]
        unit = Decimal(ins.tick_size) * Decimal(ins.lot_size)  # one tick * one lot
        out = {"symbol": ins.symbol, "position_qty": ins.qty_str(int(p["position"])),
               "realised_pnl": f"{unit * int(p['realised']):f}", "unrealised_pnl": None}
        book = self.books.read(sid)
        if book is not None and int(book["state"]) == 2 and book["n_bids"] and book["n_asks"]:
            twice_mid = int(book["bid_px"][0]) + int(book["ask_px"][0])
            half_units = int(p["position"]) * twice_mid - 2 * int(p["open_cost"])
            out["unrealised_pnl"] = f"{unit * half_units / 2:f}"
        return out

    def collect(self, now_ns: int) -> dict:
        from shm_layouts.records import OrdStatus, Side
        words = {w[2:].lower(): int(self.state.words[getattr(self.layout, w)])
                 for w in self.WORDS if hasattr(self.layout, w)}
        orders = np.array(self.state.orders, copy=True)
        live = orders[orders["cl_ord_id"] != 0]
        status_names = {int(s): s.name for s in OrdStatus}
        by_status: dict[str, int] = {}
        for st in live["status"]:
            name = status_names.get(int(st), str(int(st)))
            by_status[name] = by_status.get(name, 0) + 1
        open_rows = [r for r in live if status_names.get(int(r["status"])) in self.OPEN]
        open_rows.sort(key=lambda r: -int(r["cl_ord_id"]))
        positions = np.array(self.state.positions, copy=True)
        return {"words": words, "by_status": by_status,
                "open": [{"cl_ord_id": int(r["cl_ord_id"]), "symbol_id": int(r["symbol_id"]),
                          "side": Side(int(r["side"])).name, "price": int(r["price"]),
                          "qty": int(r["qty"]), "cum_qty": int(r["cum_qty"]),
                          "status": status_names.get(int(r["status"]), "?")}
                         for r in open_rows[: self.MAX_ROWS]],
                "positions": [{"symbol_id": i, **{k: int(p[k]) for k in (
                    "position", "open_cost", "realised", "open_buy", "open_sell", "fills",
                    "volume")}, **self._pnl(i, p)} for i, p in enumerate(positions)
                    if p["fills"] or p["position"] or p["open_buy"] or p["open_sell"]]}

    def render(self, data: dict) -> Table:
        t = self.table("orders / positions", "value")
        for k, v in data["words"].items():
            t.add_row(k, fmt(v))
        for k, v in sorted(data["by_status"].items()):
            t.add_row(f"orders {k.lower()}", fmt(v))
        for o in data["open"]:
            t.add_row(f"  #{o['cl_ord_id']} sym {o['symbol_id']} {o['side']}",
                      f"{o['cum_qty']}/{o['qty']} @ {o['price']} {o['status']}")
        for p in data["positions"]:
            pnl = (f"PnL realised {p['realised_pnl']}, unrealised {fmt(p['unrealised_pnl'])}"
                   if "realised_pnl" in p else f"realised {p['realised']} tick*lot")
            qty = p.get("position_qty", f"{p['position']} lots")
            t.add_row(f"position {p['symbol']}", f"{qty}, {pnl}, fills {p['fills']}")
        return t

    def metrics(self, data: dict) -> list[Metric]:
        out: list[Metric] = [(f"hft_oms_{k}", "gauge", "OMS control word", {}, v)
                             for k, v in data["words"].items()]
        for p in data["positions"]:
            lab = {"symbol": p["symbol"]}
            out.append(("hft_position_lots", "gauge", "signed position in lots", lab,
                        p["position"]))
            for kind in ("realised", "unrealised"):
                if p.get(f"{kind}_pnl") is not None:
                    out.append((f"hft_pnl_{kind}", "gauge", f"{kind} PnL, quote currency",
                                lab, float(p[f"{kind}_pnl"])))
        return out

    def close(self) -> None:
        self.state.close()
        if self.books is not None:
            self.books.close()


@register("oms")
def order_sections(inst: Instance, entries: list[Entry]) -> list[Section]:
    books = None
    if any(e.layout_name == "latest:book_update" for e in inst.segments()):
        books = LatestBooks.attach(inst, readonly=True)
    return [OrdersSection(OmsState.attach(inst, readonly=True), oms_layout, books)]
