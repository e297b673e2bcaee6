"""The firm-wide risk view, sans-I/O: what one instance reports, how reports aggregate,
and what the firm-wide kill switch's value and acknowledgements look like.

Everything here is JSON over NATS JetStream key-value buckets (``risk_bus`` does the I/O):

* ``hft_risk_reports`` (memory storage, one value per key): ``report.<instance>``, the
  instance's last report, re-put every ~250 ms. Soft state: a reader gets every
  instance's last report at once, without waiting a period; a lost bucket (server
  restart) is refilled within a period, so nothing is fsynced for it.
* ``hft_firm_kill`` (file storage, history kept): ``kill``, the firm-wide kill switch, and
  ``ack.<instance>``, each instance's acknowledgement of the kill value it obeyed.

Why KV and not plain subjects: the kill switch is *state*, not an event. A risk link that
starts (or reconnects) after the kill was set must obey it, and a nats-server restart must
not forget it; a KV key is the last value of a durable stream, so both hold. Every put is
also an ordinary message on the key's subject (``$KV.<bucket>.<key>``), so links subscribe
to that subject for push delivery (core subscriptions survive reconnects) and read the key
every period for the state: the subscription is the fast path, the read the guarantee.

PnL and positions are the run summary's (``pipeline.launch.summary.position_report``):
realised, and unrealised at the latest book's mid, in the quote currency, exact decimals.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from pipeline.instruments import SymbolTable
from pipeline.marketdata.latest import LatestBooks
from pipeline.orders.positions import money, position_report
from pipeline.orders.segments import OmsState
from shm_layouts import oms as oms_layout
from shm_layouts.records import OrdStatus

REPORTS_BUCKET = "hft_risk_reports"
KILL_BUCKET = "hft_firm_kill"
KILL_KEY = "kill"
KILL_HISTORY = 64  # the kill bucket keeps its last 64 values per key: who set it, when, why
REPORT_PERIOD_S = 0.25
STALE_S = 2.0  # a report older than this is marked stale (and not waited for by a kill)
OPEN = np.array([int(s) for s in (OrdStatus.PENDING_NEW, OrdStatus.NEW,
                                  OrdStatus.PARTIALLY_FILLED, OrdStatus.PENDING_CANCEL,
                                  OrdStatus.PENDING_REPLACE)], np.uint8)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a KV key token: no dots, no wildcards


class RiskError(ValueError):
    pass


def report_key(instance: str) -> str:
    return f"report.{check_name(instance)}"


def ack_key(instance: str) -> str:
    return f"ack.{check_name(instance)}"


def check_name(instance: str) -> str:
    if not _NAME.match(instance):
        raise RiskError(f"instance name {instance!r} cannot be a NATS key token "
                        "(letters, digits, _ and - only, at most 64)")
    return instance


def origin() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ------------------------------------------------------------------ one instance's report
def open_orders(oms: OmsState, symbols: SymbolTable) -> dict[str, dict]:
    """Per symbol: live orders (count) and their resting notional (price x leaves qty) in
    the quote currency, from the OMS order table (a row may be read mid-update: a view)."""
    rows = oms.orders
    live = rows[(rows["cl_ord_id"] != 0) & np.isin(rows["status"], OPEN)]
    out = {}
    for ins in symbols:
        mine = live[live["symbol_id"] == ins.symbol_id]
        units = int(np.sum(mine["price"] * mine["leaves_qty"]))
        out[ins.symbol] = {"open_orders": len(mine), "open_notional": money(units, ins)}
    return out


def build_report(instance: str, seq: int, oms: OmsState, books: LatestBooks | None,
                 symbols: SymbolTable, control_kill: bool | None,
                 firm_kill_applied: str | None) -> dict:
    """One report: positions and PnL per symbol (the run summary's), open orders, the kill
    switch (control flag and the OMS word the gateway obeys), a wall-clock stamp."""
    positions = position_report(oms, books, symbols)
    resting = open_orders(oms, symbols)
    for ins in symbols:
        p = oms.positions[ins.symbol_id]
        positions[ins.symbol] |= resting[ins.symbol] | {
            "open_buy_lots": int(p["open_buy"]), "open_sell_lots": int(p["open_sell"]),
            "lot_size": ins.lot_size}
    return {"instance": instance, "seq": seq, "t_wall_ns": time.time_ns(), "origin": origin(),
            "kill": {"control": control_kill, "oms": oms.kill(),
                     "firm_kill_applied": firm_kill_applied},
            "open_orders": int(oms.words[oms_layout.W_OPEN_ORDERS]),
            "ready": bool(oms.words[oms_layout.W_READY]),
            "positions": positions}


# ------------------------------------------------------------------ aggregation
def _dec(text: str | None) -> Decimal:
    return Decimal(text) if text is not None else Decimal(0)


def aggregate(reports: list[dict], now_ns: int | None = None, stale_s: float = STALE_S) -> dict:
    """Every instance's last report with its age (``stale`` past ``stale_s``), and firm
    totals per symbol over the instances that are not stale."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    instances = []
    firm: dict[str, dict] = {}
    for r in sorted(reports, key=lambda r: r["instance"]):
        age = (now_ns - int(r["t_wall_ns"])) / 1e9
        stale = age > stale_s
        instances.append(r | {"age_s": round(age, 3), "stale": stale})
        if stale:
            continue
        for sym, p in r["positions"].items():
            f = firm.setdefault(sym, {"position_lots": 0, "open_orders": 0, "fills": 0,
                                      "realised": Decimal(0), "unrealised": Decimal(0),
                                      "open_notional": Decimal(0), "unmarked": [],
                                      "lot_size": p.get("lot_size")})
            f["position_lots"] += int(p["position_lots"])
            f["open_orders"] += int(p.get("open_orders", 0))
            f["fills"] += int(p["fills"])
            f["realised"] += _dec(p["realised_pnl"])
            f["unrealised"] += _dec(p["unrealised_pnl"])
            f["open_notional"] += _dec(p.get("open_notional"))
            if p["unrealised_pnl"] is None and p["position_lots"]:
                f["unmarked"].append(r["instance"])  # a position without a book to mark it
    totals = {}
    for sym, f in sorted(firm.items()):
        lot = f.pop("lot_size")
        totals[sym] = {**f, "position": None if lot is None else
                       f"{Decimal(lot) * f['position_lots']:f}",
                       **{k: f"{f[k]:f}" for k in ("realised", "unrealised", "open_notional")}}
    live = [i for i in instances if not i["stale"]]
    return {"instances": instances, "firm": totals,
            "firm_pnl": {k: f"{sum((_dec(t[k]) for t in totals.values()), Decimal(0)):f}"
                         for k in ("realised", "unrealised")},
            "reporting": [i["instance"] for i in live],
            "stale": [i["instance"] for i in instances if i["stale"]],
            "killed": [i["instance"] for i in live if i["kill"]["oms"] or i["kill"]["control"]]}


# ------------------------------------------------------------------ the kill switch's value
@dataclass(frozen=True)
class KillValue:
    """The firm-wide kill: ``id`` names this setting (acks carry it), ``on``, why, who."""

    id: str
    on: bool
    reason: str = ""
    origin: str = ""
    t_wall_ns: int = 0
    bad: str = ""  # not empty: the stored value was garbage (treated as ON: fail safe)

    @classmethod
    def new(cls, on: bool, reason: str = "") -> KillValue:
        return cls(uuid.uuid4().hex, on, reason, origin(), time.time_ns())

    def encode(self) -> bytes:
        return json.dumps({"id": self.id, "on": self.on, "reason": self.reason,
                           "origin": self.origin, "t_wall_ns": self.t_wall_ns}).encode()

    @classmethod
    def decode(cls, data: bytes, revision: int | None = None) -> KillValue:
        """A garbled value is a kill ON (whoever wrote the kill key wanted something; the
        safe reading of a kill switch is "on") marked ``bad``, with an id stable for the
        same bytes so it is engaged once, not every period."""
        try:
            v = json.loads(data)
            if not isinstance(v, dict) or not isinstance(v.get("on"), bool) \
                    or not isinstance(v.get("id"), str) or not v["id"]:
                raise ValueError("not an object with a boolean 'on' and a string 'id'")
            return cls(v["id"], v["on"], str(v.get("reason", "")), str(v.get("origin", "")),
                       int(v.get("t_wall_ns", 0)))
        except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
            tag = f"rev{revision}" if revision is not None else uuid.uuid5(
                uuid.NAMESPACE_OID, data.hex()).hex
            return cls(f"bad-{tag}", True, "garbled kill value", bad=f"{e}: {data[:80]!r}")


def ack_value(instance: str, kill: KillValue, elapsed_s: float, outcome: dict) -> bytes:
    """An instance's acknowledgement of ``kill``: how long engaging took, and how it went."""
    return json.dumps({"instance": instance, "kill_id": kill.id, "on": kill.on,
                       "elapsed_ms": round(elapsed_s * 1e3, 3), "outcome": outcome,
                       "acknowledged": bool(outcome.get("acknowledged")),
                       "t_wall_ns": time.time_ns(), "origin": origin()}).encode()
