"""The firm-wide risk view and kill switch: real nats-server on loopback, real risk-link and
handler processes per instance (``pipeline.firm.risk_testbed``), ``hft risk`` in-process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from rich.console import Console
from waiting import until

from pipeline import cli
from pipeline.firm import risk_bus
from pipeline.firm.natsd import NatsServer
from pipeline.firm.risk import KILL_KEY, KillValue, aggregate
from pipeline.firm.risk_feed import RiskFeed
from pipeline.firm.risk_testbed import FirmInstance, unique_name
from pipeline.monitor.firm import FirmSection
from pipeline.monitor.top import Monitor
from shm_layouts.control import W_KILL

pytestmark = [pytest.mark.slow]

BTC, ETH = 0, 1  # symbol ids of the default config


@pytest.fixture
def nats_server(tmp_path):
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def instances():
    made: list[FirmInstance] = []

    def make(tag: str) -> FirmInstance:
        made.append(FirmInstance(unique_name(tag)))
        return made[-1]

    yield make
    for fi in reversed(made):
        fi.close()


@pytest.fixture(autouse=True)
def audit_log(tmp_path, monkeypatch):
    monkeypatch.setenv("HFT_AUDIT_LOG", str(tmp_path / "audit.log"))
    return tmp_path / "audit.log"


def hft(capsys, *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def view(capsys, url: str) -> dict:
    rc, out, err = hft(capsys, "risk", "--nats", url, "--json")
    assert rc == 0, err
    return json.loads(out)


def reporting(capsys, url: str, *names: str) -> dict:
    return until(lambda: (v := view(capsys, url)) and set(names) <= set(v["reporting"]) and v,
                 30, f"reports from {names}")


def kill(capsys, url: str, *extra: str) -> tuple[int, dict]:
    rc, out, err = hft(capsys, "risk", "kill", "--nats", url, "--json", *extra)
    assert rc in (0, 1), err
    return rc, json.loads(out)


def put_kill(url: str, data: bytes) -> None:
    """Write the kill key directly (what a script or another tool might put there)."""
    async def go() -> None:
        nc = await risk_bus.connect(url, "test")
        _, kv = await risk_bus.open_buckets(risk_bus.jetstream(nc))
        await kv.put(KILL_KEY, data)
        await nc.close()
    asyncio.run(go())


@pytest.mark.timeout(180)
def test_view_shows_every_instance_and_firm_totals(nats_server, instances, capsys):
    a, b = instances("A"), instances("B")
    a.set_position(BTC, 300, 300 * 5_000_000, realised=1_000)  # 0.003 BTC bought at 50000
    a.set_book(BTC, 5_000_100, 5_000_300)  # mid 50002: +2 ticks a lot
    a.add_open_order(7, BTC, 4_990_000, 2)
    b.set_position(BTC, -100, -100 * 5_000_000)
    b.set_position(ETH, 50, 50 * 300_000)  # no ETH book in B: unrealised unknown
    for fi in (a, b):
        fi.start_echo().start_link(nats_server.url)
    v = reporting(capsys, nats_server.url, a.name, b.name)
    by = {i["instance"]: i for i in v["instances"]}
    pa, pb = by[a.name]["positions"], by[b.name]["positions"]
    assert pa["BTCUSDT"]["position_lots"] == 300 and pa["BTCUSDT"]["position"] == "0.003"
    assert pa["BTCUSDT"]["realised_pnl"] == "0.0001"  # 1000 tick*lots of 0.01*0.00001
    assert pa["BTCUSDT"]["unrealised_pnl"] == "0.006"  # 300 lots * 200 ticks
    assert pa["BTCUSDT"]["open_orders"] == 1 and pa["BTCUSDT"]["open_notional"] == "0.998"
    assert pb["BTCUSDT"]["position_lots"] == -100 and pb["ETHUSDT"]["position_lots"] == 50
    assert pb["ETHUSDT"]["unrealised_pnl"] is None
    assert not any(by[n]["stale"] or by[n]["kill"]["oms"] for n in by)
    firm = v["firm"]
    assert firm["BTCUSDT"]["position_lots"] == 200 and firm["BTCUSDT"]["position"] == "0.00200"
    assert firm["ETHUSDT"]["position_lots"] == 50 and firm["ETHUSDT"]["unmarked"] == [b.name]
    assert v["firm_kill"] is None and v["killed"] == []
    rc, out, _ = hft(capsys, "risk", "--nats", nats_server.url)
    assert rc == 0 and f"instance {a.name}: trading" in out and "BTCUSDT: position 0.00200" in out
    assert a.counter("risk.published") > 0 and a.counter("risk.nats_failures") == 0
    # hft monitor --nats: the firm section, fed in the background
    mon = Monitor(a.name, [FirmSection(RiskFeed(nats_server.url, interval=0.1))])
    try:
        snap = until(lambda: (s := mon.snapshot()) and s["firm"]["view"] and s, 30, "a view")
        fv = snap["firm"]["view"]
        assert sorted(fv["reporting"]) == sorted([a.name, b.name]) and not snap["firm"]["error"]
        assert fv["firm"]["BTCUSDT"]["position_lots"] == 200
        screen = Console(width=160, record=True)
        screen.print(mon.render(snap))
        assert f"instance {b.name}" in screen.export_text()
        assert 'hft_firm_position_lots{instance="' in mon.metrics_text()
    finally:
        mon.close()


def test_aggregate_marks_stale_reports_and_leaves_them_out_of_the_totals():
    def report(name: str, t_ns: int, lots: int) -> dict:
        return {"instance": name, "t_wall_ns": t_ns, "kill": {"oms": False, "control": False},
                "positions": {"BTCUSDT": {"position_lots": lots, "fills": 1, "lot_size": "1",
                                          "realised_pnl": "1.5", "unrealised_pnl": None}}}
    now = 100 * 10**9
    v = aggregate([report("old", now - 5 * 10**9, 7), report("new", now - 10**8, 3)], now, 2.0)
    assert v["stale"] == ["old"] and v["reporting"] == ["new"]
    assert [i["age_s"] for i in v["instances"]] == [0.1, 5.0]
    assert v["firm"]["BTCUSDT"]["position_lots"] == 3 and v["firm_pnl"]["realised"] == "1.5"


@pytest.mark.timeout(180)
def test_firm_kill_engages_every_instance_and_each_acknowledges(nats_server, instances,
                                                               capsys, audit_log):
    a, b = instances("A"), instances("B")
    for fi in (a, b):
        fi.start_echo().start_link(nats_server.url)
    reporting(capsys, nats_server.url, a.name, b.name)
    rc, result = kill(capsys, nats_server.url, "--reason", "test", "--timeout", "30")
    assert rc == 0 and result["ok"], result
    assert sorted(result["acks"]) == sorted([a.name, b.name]) and result["failed"] == []
    for fi in (a, b):
        ack = result["acks"][fi.name]
        assert ack["acknowledged"] and ack["outcome"]["acks"] == {"control_echo": "done"}
        assert ack["outcome"]["mirrors"] == ["oms"] and ack["round_trip_ms"] > 0
        assert fi.area.kill_switch() and fi.oms.kill()  # the flag and the gateway's word
        assert fi.counter("control_echo.cancel_all") == 1  # the handler executed it
        assert fi.counter("risk.kill_engaged") == 1
    v = until(lambda: (v := view(capsys, nats_server.url)) and len(v["killed"]) == 2 and v,
              30, "both reported killed")
    assert v["firm_kill"]["on"] and v["firm_kill"]["reason"] == "test"
    audited = [json.loads(x) for x in audit_log.read_text().splitlines()]
    assert {(x["instance"], x["event"]) for x in audited} >= {
        ("*firm*", "acknowledged"), (a.name, "acknowledged"), (b.name, "acknowledged")}

    rc, result = kill(capsys, nats_server.url, "--off", "--timeout", "30")
    assert rc == 0 and not result["on"]
    for fi in (a, b):
        assert not fi.area.kill_switch() and not fi.oms.kill()
        assert fi.counter("risk.kill_released") == 1


@pytest.mark.timeout(180)
def test_kill_names_the_instance_whose_handler_never_acknowledges(nats_server, instances,
                                                                 capsys):
    a, b = instances("A"), instances("B")
    a.start_echo().start_link(nats_server.url)
    b.start_echo().start_link(nats_server.url, "--ack-timeout", "0.5")
    reporting(capsys, nats_server.url, a.name, b.name)
    b.freeze_handler()  # alive, so waited for; stopped, so it never acknowledges
    rc, out, _ = hft(capsys, "risk", "kill", "--nats", nats_server.url, "--timeout", "30")
    assert rc == 1
    assert f"NOT acknowledged by: {b.name}" in out and "silent: control_echo" in out
    assert f"{a.name}: acknowledged" in out
    assert b.area.kill_switch() and b.oms.kill()  # flags set all the same: obeyed on resume
    until(lambda: b.counter("risk.kill_not_acknowledged") == 1, 10, "counted")


@pytest.mark.timeout(180)
def test_a_kill_set_while_the_link_was_down_is_obeyed_when_it_starts(nats_server, instances,
                                                                    capsys, tmp_path):
    rc, result = kill(capsys, nats_server.url, "--reason", "before")
    assert rc == 1 and result["expected"] == []  # set, but nobody to acknowledge it
    a = instances("A").start_echo()
    assert not a.area.kill_switch()
    a.start_link(nats_server.url, "--audit-log", str(tmp_path))  # a directory: unwritable
    until(lambda: a.area.kill_switch() and a.oms.kill(), 30, "the kill engaged at start")
    until(lambda: a.counter("risk.acks_published") == 1, 30, "its acknowledgement")
    assert a.counter("control_echo.cancel_all") == 1
    assert a.counter("risk.audit_failures") == 2  # issued, acknowledged: the kill went on


@pytest.mark.timeout(180)
def test_a_link_starting_under_a_cleared_kill_leaves_a_local_kill_alone(nats_server,
                                                                       instances, capsys):
    kill(capsys, nats_server.url)
    kill(capsys, nats_server.url, "--off")
    a = instances("A").start_echo()
    a.area.set_flag(W_KILL, True)  # an operator's `hft ctl kill on`, before the link starts
    a.start_link(nats_server.url)
    reporting(capsys, nats_server.url, a.name)
    assert a.area.kill_switch() and a.counter("risk.kill_released") == 0


@pytest.mark.timeout(180)
def test_a_garbled_kill_value_engages_the_kill_and_is_counted(nats_server, instances, capsys):
    a = instances("A").start_echo().start_link(nats_server.url)
    reporting(capsys, nats_server.url, a.name)
    put_kill(nats_server.url, b"not json")
    until(lambda: a.area.kill_switch(), 30, "fail-safe kill")
    until(lambda: a.counter("risk.bad_kill_values") == 1, 10, "counted")
    v = view(capsys, nats_server.url)
    assert v["firm_kill"]["on"] and v["firm_kill"]["id"].startswith("bad-")
    put_kill(nats_server.url, KillValue.new(False).encode())  # a good value clears it
    until(lambda: not a.area.kill_switch(), 30, "cleared")


@pytest.mark.timeout(240)
def test_the_link_reconnects_after_a_nats_server_restart(nats_server, instances, capsys):
    a = instances("A").start_echo().start_link(nats_server.url)
    reporting(capsys, nats_server.url, a.name)
    nats_server.stop()
    until(lambda: a.counter("risk.disconnects") >= 1, 30, "the link seeing the server go")
    until(lambda: a.counter("risk.nats_failures") >= 1, 30, "failed reports counted")
    nats_server.start()  # same port, same store
    until(lambda: a.counter("risk.reconnects") >= 1, 60, "the link reconnected")
    published = a.counter("risk.published")
    until(lambda: a.counter("risk.published") > published + 2, 60, "reports again")
    reporting(capsys, nats_server.url, a.name)  # the reports bucket is back and filled
    rc, result = kill(capsys, nats_server.url, "--timeout", "30")  # and the kill still works
    assert rc == 0 and a.area.kill_switch()


def test_bad_arguments_and_an_unreachable_server_exit_2(capsys, nats_server):
    rc, _, err = hft(capsys, "risk", "--nats", "nats://127.0.0.1:1")
    assert rc == 2 and "cannot connect to NATS at nats://127.0.0.1:1" in err
    rc, _, err = hft(capsys, "risk", "--nats", nats_server.url, "--off")
    assert rc == 2 and "--off and --reason go with `hft risk kill`" in err
    rc, _, err = hft(capsys, "risk", "kill", "--nats", nats_server.url, "--timeout", "0")
    assert rc == 2 and "must be > 0" in err


@pytest.mark.timeout(60)
def test_a_link_on_an_instance_without_a_control_area_says_what_is_missing(instance,
                                                                          nats_server):
    from pipeline.metrics.counters import Counters
    from pipeline.orders.segments import create_order_path
    Counters.create(instance)
    create_order_path(instance)
    run = subprocess.run([sys.executable, "-m", "procs.risk_link", "--instance", instance.name,
                          "--nats", nats_server.url], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "needs the OMS segment and the control area" in run.stderr
