"""Monitor plugin point and the sections for areas that land later (against their
documented interfaces), live mode, and an instance stopping under the monitor."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from waiting import until

from pipeline.instruments import Instrument, SymbolTable
from pipeline.metrics.counters import Counters
from pipeline.monitor import discover, sections
from pipeline.monitor.sections import BooksSection, OrdersSection, Section
from pipeline.monitor.top import Monitor
from pipeline.transport.segment import Layout
from shm_layouts import SegmentKind
from shm_layouts.records import BOOK_UPDATE, OrdStatus, Side, SyncState


class FakeBooks:
    """The documented book source interface: n_symbols, symbols(), read(sid), close()."""

    def __init__(self):
        self.table = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                                  Instrument("ETHUSDT", "spot", "0.01", "0.0001")])
        self.n_symbols = 2
        self.closed = False

    def symbols(self):
        return self.table

    def read(self, sid):
        if sid:
            return None
        rec = np.zeros(1, BOOK_UPDATE)[0]
        rec["state"], rec["n_bids"], rec["n_asks"], rec["update_id"] = SyncState.SYNCED, 1, 1, 9
        rec["bid_px"][0], rec["ask_px"][0] = 6_500_012, 6_500_015
        rec["bid_qty"][0], rec["ask_qty"][0] = 150_000, 20_000
        rec["t_book_ns"] = time.monotonic_ns()
        return rec

    def close(self):
        self.closed = True


def test_books_section_shows_decimal_prices_spread_and_sync_state():
    src = FakeBooks()
    s = BooksSection(src)
    btc, eth = s.collect(time.monotonic_ns())
    assert (btc["state"], btc["bid"], btc["ask"], btc["bid_qty"], btc["spread_ticks"]) == (
        "SYNCED", "65000.12", "65000.15", "1.5", 3)
    assert eth["state"] == "NO_DATA"
    assert s.metrics([btc, eth])[0][3:] == ({"symbol": "BTCUSDT"}, 1.0)
    s.render([btc, eth])
    s.close()
    assert src.closed


def test_orders_section_counts_open_orders_and_positions():
    order = np.dtype([("cl_ord_id", "<i8"), ("price", "<i8"), ("qty", "<i8"),
                      ("cum_qty", "<i8"), ("symbol_id", "<i4"), ("status", "u1"),
                      ("side", "u1")])
    position = np.dtype([(k, "<i8") for k in ("position", "open_cost", "realised", "open_buy",
                                              "open_sell", "fills", "volume")])
    orders, positions = np.zeros(8, order), np.zeros(4, position)
    orders[1] = (11, 100, 5, 2, 0, OrdStatus.PARTIALLY_FILLED, Side.ASK)
    orders[2] = (12, 99, 1, 1, 0, OrdStatus.FILLED, Side.BID)
    positions[0]["position"], positions[0]["fills"] = -2, 3
    layout = SimpleNamespace(W_KILL=0, W_FILLS=1)
    state = SimpleNamespace(words=np.array([1, 3], np.int64), orders=orders,
                            positions=positions, close=lambda: None)
    data = OrdersSection(state, layout).collect(0)
    assert data["words"] == {"kill": 1, "fills": 3}
    assert data["by_status"] == {"PARTIALLY_FILLED": 1, "FILLED": 1}
    assert [o["cl_ord_id"] for o in data["open"]] == [11] and data["open"][0]["side"] == "ASK"
    assert data["positions"][0]["position"] == -2
    OrdersSection(state, layout).render(data)


def test_positions_get_symbol_names_and_exact_pnl_marked_at_the_mid():
    position = np.dtype([(k, "<i8") for k in ("position", "open_cost", "realised", "open_buy",
                                              "open_sell", "fills", "volume")])
    order = np.dtype([("cl_ord_id", "<i8"), ("status", "u1")])
    positions = np.zeros(3, position)
    # BTC long 3 lots (0.00003) bought at 65000.00; book 65000.12 / 65000.15
    positions[0]["position"], positions[0]["open_cost"] = 3, 3 * 6_500_000
    positions[0]["realised"], positions[0]["fills"] = 100, 2
    positions[1]["position"], positions[1]["fills"] = 1, 1  # ETH: no book -> no unrealised
    state = SimpleNamespace(words=np.zeros(1, np.int64), orders=np.zeros(2, order),
                            positions=positions, close=lambda: None)
    books = FakeBooks()
    section = OrdersSection(state, SimpleNamespace(), books)
    btc, eth = section.collect(0)["positions"]
    assert (btc["symbol"], btc["position_qty"]) == ("BTCUSDT", "0.00003")
    assert btc["realised_pnl"] == "0.0000100"  # 100 tick*lot = 100 * 0.01 * 0.00001
    assert btc["unrealised_pnl"] == "0.00000405"  # 3 * 0.00001 * (65000.135 - 65000)
    assert (eth["symbol"], eth["unrealised_pnl"]) == ("ETHUSDT", None)
    samples = {(m[0], m[3]["symbol"]): m[4] for m in section.metrics(section.collect(0))}
    assert samples[("hft_pnl_unrealised", "BTCUSDT")] == pytest.approx(4.05e-6)
    section.render(section.collect(0))
    section.close()
    assert books.closed


class EchoSection(Section):
    key, title = "echo", "echo"

    def __init__(self, names):
        self.names = names

    def collect(self, now_ns):
        return self.names

    def render(self, data):
        return self.table("segment")


def test_a_registered_factory_is_picked_up_and_unknown_layouts_are_listed(instance, monkeypatch):
    monkeypatch.setattr(sections, "FACTORIES", list(sections.FACTORIES))
    sections.register("thing:")(lambda inst, entries: [EchoSection([e.name for e in entries])])
    instance.create_segment("t1", Layout(SegmentKind.STATE, "thing:a", 1), 64).mark_ready()
    instance.create_segment("odd", Layout(SegmentKind.STATE, "mystery", 2), 64).mark_ready()
    mon = Monitor(instance.name)
    snap = mon.snapshot()
    assert snap["echo"] == ["t1"]
    assert "no section for layout 'mystery'" in snap["not_shown"]["odd"]
    mon.close()


def test_monitor_reports_an_instance_that_stops_under_it(instance_name):
    from pipeline.transport.registry import Instance
    inst = Instance.create(instance_name)
    Counters.create(inst)
    mon = Monitor(instance_name)
    mon.snapshot()
    inst.destroy()
    with pytest.raises(discover.InstanceUnavailable, match="has stopped"):
        mon.snapshot()
    mon.close()


def wait_attached(proc: subprocess.Popen, instance_name: str) -> None:
    """Until the monitor process has mapped the instance's segments."""
    def mapped():
        assert proc.poll() is None, "monitor exited early"
        with open(f"/proc/{proc.pid}/maps") as f:
            return f"hft.{instance_name}.counters" in f.read()
    until(mapped, 30, "monitor attached")


@pytest.mark.timeout(60)
def test_live_mode_refreshes_until_interrupted(instance):
    Counters.create(instance).counter("live.counter")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "monitor", instance.name,
                             "--interval", "0.2"], stdout=subprocess.PIPE, text=True)
    try:
        wait_attached(proc, instance.name)
        time.sleep(0.5)  # a few refreshes
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "live.counter" in out


@pytest.mark.timeout(60)
def test_live_mode_exits_2_when_the_instance_goes_away(instance_name):
    from pipeline.transport.registry import Instance
    inst = Instance.create(instance_name)
    Counters.create(inst)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "monitor", instance_name,
                             "--interval", "0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_attached(proc, instance_name)
    finally:
        inst.destroy()
    until(lambda: proc.poll() is not None, 20, "monitor exit")
    _, err = proc.communicate()
    assert proc.returncode == 2 and "has stopped" in err and "Traceback" not in err


def test_a_ring_with_a_foreign_layout_is_reported_not_fatal(instance):
    from pipeline.transport.ring import Ring
    from shm_layouts.probe import PROBE_RECORD
    Ring.create(instance, "good", "probe", PROBE_RECORD, 8)
    # claims to carry md_event records but was built with another layout hash
    seg = instance.create_segment("bad", Layout(SegmentKind.RING, "ring:md_event", 12345), 4096)
    seg.mark_ready()
    mon = Monitor(instance.name)
    rings = {r["name"]: r for r in mon.snapshot()["rings"]}
    assert rings["good"]["capacity"] == 8
    assert "bad" in rings and "expects" in rings["bad"]["error"]  # LayoutMismatch, both sides
    mon.render(mon.snapshot())
    assert "bad" not in mon.metrics_text()
    mon.close()


def test_processes_that_died_without_saying_so_show_as_dead(instance):
    from pipeline.transport.shared import atomic_store
    from shm_layouts import counters as CL
    counters = Counters.create(instance)
    base = Counters.process_base(counters.process("ghost"))
    atomic_store(counters.words, base + CL.PROC_PID, 2**22 + 12345)  # no such pid
    atomic_store(counters.words, base + CL.PROC_STATE, int(CL.ProcessState.RUNNING))
    mon = Monitor(instance.name)
    (ghost,) = mon.snapshot()["processes"]
    assert (ghost["name"], ghost["state"], ghost["alive"]) == ("ghost", "DEAD", False)
    mon.close()


def test_counters_table_shows_only_the_denial_reasons_that_happened(instance):
    counters = Counters.create(instance)
    for name, value in (("gateway.orders.denied", 3), ("gateway.orders.denied.order_rate", 3),
                        ("gateway.orders.denied.not_ready", 0), ("feed.gaps", 0)):
        counters.words[counters.counter(name)] = value
    section = sections.CountersSection(Counters.attach(instance, readonly=True))
    data = section.collect(time.monotonic_ns())
    assert "gateway.orders.denied.not_ready" in data  # --json and metrics keep every reason
    rows = list(section.render(data).columns[0].cells)
    assert "gateway.orders.denied.order_rate" in rows and "gateway.orders.denied" in rows
    assert "gateway.orders.denied.not_ready" not in rows and "feed.gaps" in rows
