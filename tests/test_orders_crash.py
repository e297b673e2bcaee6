"""Crash-only: kill -9 the gateway process with open orders, restart it, check that the
state is reconciled and nothing is duplicated or lost. Real processes, shm and sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import until

from pipeline import config as configuration
from pipeline.instruments import SymbolTable
from pipeline.metrics.counters import Counters
from pipeline.orders import oms
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.orders.testing import push_intent, read_execs
from pipeline.transport.ring import Ring, publish, try_claim
from pipeline.venue.testing import VenueThread, quiet_venue
from shm_layouts import oms as L
from shm_layouts.records import BOOK_UPDATE

ROOT = Path(__file__).resolve().parents[1]
MID = 6_000_000

# the timeout is generous only for a cold numba cache
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.e2e]


class BookFeed(threading.Thread):
    """Publishes a synced BTCUSDT book every 50 ms, as the book builder would."""

    def __init__(self, ring: Ring):
        super().__init__(daemon=True)
        self.ring = ring
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            start = int(try_claim(self.ring.ctl, 1))
            if start < 0:
                continue
            self.ring.raw[start & self.ring.mask, 8:] = 0
            r = self.ring.records[start & self.ring.mask]
            r["symbol_id"], r["state"], r["n_bids"], r["n_asks"] = 0, 2, 1, 1
            r["bid_px"][0], r["ask_px"][0] = MID - 1, MID + 1
            r["t_book_ns"] = time.monotonic_ns()
            publish(self.ring.ctl, self.ring.stamps, start + 1)


def start_gateway(config: Path, instance: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "procs.oms_gateway", "--config",
                             str(config), "--instance", instance], cwd=ROOT,
                            stdout=subprocess.DEVNULL)  # stderr: shown by pytest on failure


def wait(pred, timeout=60.0, what="condition"):
    return until(pred, timeout, what, tolerate=())


def test_kill9_with_open_orders_then_restart(instance, instance_name, tmp_path):
    table = SymbolTable.from_config(configuration.load()["instruments"])  # the gateway's
    acc = VenueThread(quiet_venue(tmp_path, table))
    orders, execs, state = create_order_path(instance, 1024)
    counters = Counters.create(instance)
    books = Ring.create(instance, "books", "book_update", BOOK_UPDATE, 256)
    feed = BookFeed(books)
    feed.start()
    slot = execs.join(EXECS_CONSUMER)
    config = tmp_path / "gw.toml"
    config.write_text(f"""
[instance]
name = "{instance_name}"
[gateway]
port = {acc.port}
sender_comp_id = "CLIENT"
target_comp_id = "VENUE"
password_env = ""
state_dir = "{tmp_path / 'gw'}"
book_ring = "books"
backoff_min_s = 0.05
[risk]
max_qty = "0.01"
max_notional = "1000"
max_position = "0.05"
price_band_bps = 100
""")
    seen: list = []

    def execs_for(cl):
        seen.extend(read_execs(execs, slot))
        return [e for e in seen if e["cl_ord_id"] == cl]

    gw = start_gateway(config, instance_name)
    try:
        wait(state.ready, 120, what="first logon + reconcile")
        cls = [state.next_cl_ord_id() for _ in range(3)]
        for cl in cls:
            push_intent(orders, action=1, cl_ord_id=cl, symbol_id=0, side=0, price=MID,
                        qty=100, tif=1, ord_type=1)
        wait(lambda: all(execs_for(c) for c in cls), 120, "acks (cold cache: numba compiles)")
        acc.fill(str(cls[0]), "0.0004", "60000")
        wait(lambda: len(execs_for(cls[0])) == 2, 20, "first fill")
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        # while the gateway is dead: the venue fills one order and cancels another
        wait(lambda: not acc.connected, 10, "venue sees the disconnect")
        acc.fill(str(cls[1]), "0.001", "60000.5")
        acc.unsolicited_cancel(str(cls[2]))
        down = state.next_cl_ord_id()  # an intent sent while the gateway is down
        push_intent(orders, action=1, cl_ord_id=down, symbol_id=0, side=0, price=MID,
                    qty=100, tif=1, ord_type=1)
        assert state.words[L.W_OPEN_ORDERS] == 3  # shm kept the state across kill -9

        gw = start_gateway(config, instance_name)
        wait(lambda: acc.logons == 2 and state.ready(), 60, "restart + reconcile")
        wait(lambda: len(execs_for(cls[1])) >= 2 and len(execs_for(cls[2])) >= 2, 20,
             "reports missed while down")
        o = [state.orders[oms.find(state.orders, c)] for c in cls]
        assert [int(x["status"]) for x in o] == [oms.PARTIALLY_FILLED, oms.FILLED,
                                                 oms.CANCELED]
        assert [int(x["cum_qty"]) for x in o] == [40, 100, 0]
        assert state.positions[0]["position"] == 140  # each fill exactly once
        assert state.words[L.W_OPEN_ORDERS] == 1
        # the intent sent while down was answered (denied: not ready), never lost
        wait(lambda: execs_for(down), 20, "answer to the intent sent while down")
        # nothing duplicated at the venue: 3 NewOrderSingles, no reused sequence number
        ds = [m for m in acc.received if m.get(35) == b"D"]
        ids = [int(m.get(11)) for m in ds]
        assert len(ids) == len(set(ids)) and set(cls) <= set(ids) <= set(cls) | {down}
        seqs = [int(m.get(34)) for m in acc.received if m.get(43) != b"Y"]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
        # the order still open at reconcile time was asked about (orders the resent
        # reports had already closed may or may not be, depending on arrival order)
        assert cls[0] in {int(m.get(11)) for m in acc.received if m.get(35) == b"H"}
        # trades again after the restart
        again = state.next_cl_ord_id()
        push_intent(orders, action=1, cl_ord_id=again, symbol_id=0, side=1, price=MID,
                    qty=50, tif=1, ord_type=1)
        wait(lambda: execs_for(again) and execs_for(again)[0]["source"] == 1, 20, "new order")
        values = counters.values()
        assert values["gateway.fix.resend_requests_sent"] >= 1  # the gap left by the crash
        assert values["gateway.orders.sent"] >= 1
        assert counters.histograms()["tick_to_trade_ns"]["count"] >= 4  # one per order sent
        # the kill switch from the command line: new orders denied, open ones canceled
        subprocess.run([sys.executable, "-m", "pipeline.orders.killswitch", "--instance",
                        instance_name, "on"], cwd=ROOT, check=True, capture_output=True)
        wait(lambda: state.words[L.W_OPEN_ORDERS] == 0, 20, "kill switch cancels")
        blocked = state.next_cl_ord_id()
        push_intent(orders, action=1, cl_ord_id=blocked, symbol_id=0, side=1, price=MID,
                    qty=50, tif=1, ord_type=1)
        wait(lambda: execs_for(blocked), 20, "kill switch denial")
        assert execs_for(blocked)[0]["reject_reason"] == L.RiskReason.KILL_SWITCH
        # clean shutdown: every open order canceled, logout, exit 0
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(20) == 0
        assert state.words[L.W_OPEN_ORDERS] == 0
        assert any(m.get(35) == b"5" for m in acc.received)
    finally:
        if gw.poll() is None:
            os.kill(gw.pid, signal.SIGKILL)
            gw.wait(10)
        feed.stop.set()
        feed.join(2)
        acc.stop()
