"""A testbed instance for the firm-wide risk view (tests, ``hft bench risk_kill``): what the
kill path needs and nothing more. Counters, the order path (OMS segment), the control area,
a latest-book area, a running ``control_echo`` (the probe handler that acknowledges kill
commands as the gateway does, ``procs.probe_echo``) and a running risk link.

Positions, books and open orders are written straight into the segments (here the
testbed plays the gateway and the book builder, their only writers in a pipeline)."""

from __future__ import annotations

import os
import signal
import uuid
from dataclasses import dataclass, field

import numpy as np

from pipeline import config as cfgmod
from pipeline.control.area import ControlArea, create_control
from pipeline.instruments import SymbolTable
from pipeline.marketdata.latest import LatestBooks, write_latest
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState, create_order_path
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.registry import Instance
from shm_layouts.records import BOOK_UPDATE, OrdStatus, SyncState


def symbols() -> SymbolTable:
    return SymbolTable.from_config(cfgmod.load(None)["instruments"])


def unique_name(tag: str) -> str:
    return f"{tag}{os.getpid()}{uuid.uuid4().hex[:6]}"


@dataclass
class FirmInstance:
    """``start(url)`` the handler and the risk link; ``close()`` stops them, removes all."""

    name: str
    inst: Instance = field(init=False)
    counters: Counters = field(init=False)
    oms: OmsState = field(init=False)
    area: ControlArea = field(init=False)
    books: LatestBooks = field(init=False)
    echo: Child | None = None
    link: Child | None = None
    stopped: bool = False

    def __post_init__(self) -> None:
        self.inst = Instance.create(self.name)
        self.counters = Counters.create(self.inst)
        _, _, self.oms = create_order_path(self.inst)
        self.area = create_control(self.inst)
        self.books = LatestBooks.create(self.inst, symbols())

    def set_position(self, symbol_id: int, lots: int, open_cost: int, realised: int = 0) -> None:
        row = self.oms.positions[symbol_id]
        row["position"], row["open_cost"], row["realised"], row["fills"] = (
            lots, open_cost, realised, 1)

    def set_book(self, symbol_id: int, bid: int, ask: int) -> None:
        rec = np.zeros(1, BOOK_UPDATE)
        rec[0]["symbol_id"], rec[0]["state"] = symbol_id, SyncState.SYNCED
        rec[0]["n_bids"] = rec[0]["n_asks"] = 1
        rec[0]["bid_px"][0], rec[0]["ask_px"][0] = bid, ask
        rec[0]["bid_qty"][0] = rec[0]["ask_qty"][0] = 1
        write_latest(self.books.seq, self.books.table, symbol_id, rec[0])

    def add_open_order(self, cl_ord_id: int, symbol_id: int, price: int, leaves: int) -> None:
        row = self.oms.orders[cl_ord_id]
        row["cl_ord_id"], row["symbol_id"], row["status"] = cl_ord_id, symbol_id, OrdStatus.NEW
        row["price"], row["qty"], row["leaves_qty"] = price, leaves, leaves

    def start_echo(self) -> FirmInstance:
        # one order a second: the order ring (nobody consumes it here) never fills
        self.echo = Child("control_echo", "procs.probe_echo",
                          ["--instance", self.name, "--rate", "1", "--idle", "backoff"]).start()
        wait_running(self.counters, [self.echo])
        return self

    def start_link(self, url: str, *extra: str) -> FirmInstance:
        self.link = Child("risk_link", "procs.risk_link",
                          ["--instance", self.name, "--nats", url, *extra]).start()
        wait_running(self.counters, [self.link])
        return self

    def freeze_handler(self) -> None:
        """SIGSTOP the handler: alive (so waited for) but never acknowledging."""
        os.kill(self.echo.pid, signal.SIGSTOP)
        self.stopped = True

    def counter(self, name: str) -> int:
        return self.counters.values().get(name, 0)

    def close(self) -> None:
        if self.stopped and self.echo is not None and self.echo.alive():
            os.kill(self.echo.pid, signal.SIGCONT)
        codes = stop([c for c in (self.link, self.echo) if c is not None])
        for seg in (self.oms, self.area, self.books, self.counters):
            seg.close()
        self.inst.destroy()
        assert all(c == 0 for c in codes.values()), f"unclean exit: {codes}"
