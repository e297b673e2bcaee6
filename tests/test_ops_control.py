"""Control area, poller and hft ctl: flags, acknowledged commands, audit log, and the
kill switch stopping new orders in a running process."""

from __future__ import annotations

import json
import time

import pytest
from waiting import until

from pipeline import cli
from pipeline.control import poller as poller_mod
from pipeline.control.area import (
    ControlArea,
    create_control,
    kill_switch_on,
    quoting_paused,
)
from pipeline.control.poller import ControlError, ControlPoller
from pipeline.metrics.counters import Counters
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.ring import Ring
from pipeline.transport.shared import atomic_add
from shm_layouts import control as L
from shm_layouts.control import Op, Status
from shm_layouts.records import ORDER_INTENT, OrderAction


@pytest.fixture
def area(instance):
    return create_control(instance)


def test_poller_gets_only_its_ops_and_acks_reach_the_issuer(area):
    p = ControlPoller(area, "feed", [Op.RESYNC])
    other = area.issue(Op.PAUSE)
    seq = area.issue(Op.RESYNC, 7)
    (cmd,) = p.poll()
    assert (cmd.seq, cmd.op, cmd.arg0) == (seq, Op.RESYNC, 7)
    assert area.ack_status(seq, p.slot) is None
    p.ack(cmd, Status.REFUSED)
    assert area.ack_status(seq, p.slot) == Status.REFUSED
    assert area.ack_status(other, p.slot) is None  # not its op: seen, never acked
    assert p.poll() == []


def test_execute_waits_for_every_live_handler_of_the_op(area):
    a, b = ControlPoller(area, "a", [Op.CANCEL_ALL]), ControlPoller(area, "b", list(Op))
    assert area.execute(Op.CANCEL_ALL, timeout=0.1).missing == ["a", "b"]
    nobody = area.execute(Op.RESYNC, timeout=0.1)
    assert nobody.expected == ["b"] and not nobody.acknowledged
    b.close()  # a handler that left is no longer waited for
    no_handler = area.execute(Op.RESYNC, timeout=0.1)
    assert no_handler.expected == [] and not no_handler.acknowledged
    for cmd in a.poll():
        a.ack(cmd)
    assert {h["name"]: h["executed"] for h in area.handlers()} == {"a": 1, "b": 0}


def test_restarted_handler_takes_its_slot_and_skips_old_commands(area):
    p = ControlPoller(area, "gw", [Op.CANCEL_ALL])
    area.issue(Op.CANCEL_ALL)
    again = ControlPoller(area, "gw", [Op.CANCEL_ALL])  # the process restarted
    assert again.slot == p.slot and again.poll() == []
    assert area.handlers()[0]["attaches"] == 2


def test_reader_that_fell_a_whole_area_behind_skips_lost_commands(area):
    p = ControlPoller(area, "slow", [Op.RESYNC])
    for sid in range(L.N_COMMANDS + 3):
        area.issue(Op.RESYNC, sid)
    got = p.poll()
    assert [c.arg0 for c in got] == list(range(3, L.N_COMMANDS + 3))
    assert p.skipped == 3


def test_claimed_but_never_written_sequence_is_skipped_after_a_while(area, monkeypatch):
    monkeypatch.setattr(poller_mod, "ABANDONED_S", 0.05)
    p = ControlPoller(area, "h", [Op.PAUSE])
    atomic_add(area.words, L.W_CLAIM, 1)  # an issuer killed between claim and write
    area.issue(Op.PAUSE)
    assert p.poll() == []  # waits for the hole first
    time.sleep(0.1)
    assert [c.op for c in p.poll()] == [Op.PAUSE] and p.skipped == 1
    assert area.handlers()[0]["skipped"] == 1  # visible to the monitor


def test_flags_are_read_by_jitted_code(area):
    assert not kill_switch_on(area.words) and not quoting_paused(area.words)
    area.set_flag(L.W_KILL, True)
    area.set_flag(L.W_PAUSED, True)
    assert kill_switch_on(area.words) and quoting_paused(area.words)
    assert area.flags()["flag_changes"] == 2


def test_bad_handler_names_and_a_full_area_are_clear_errors(area):
    with pytest.raises(ControlError, match="must be 1..32 bytes"):
        ControlPoller(area, "x" * 40, [Op.PAUSE])
    for i in range(L.MAX_HANDLERS):
        ControlPoller(area, f"h{i}", [Op.PAUSE])
    with pytest.raises(ControlError, match="no free handler slot"):
        ControlPoller(area, "one-too-many", [Op.PAUSE])


# ------------------------------------------------------------------ hft ctl, live
def ctl(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["ctl", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def audit_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def echo(instance):
    """A running control_echo process publishing NEW orders at 200/s on ring "orders"."""
    counters = Counters.create(instance)
    orders = Ring.create(instance, "orders", "order_intent", ORDER_INTENT, 1024)
    create_control(instance)
    child = Child("control_echo", "procs.probe_echo",
                  ["--instance", instance.name, "--rate", "200", "--idle", "backoff"]).start()
    try:
        wait_running(counters, [child])
        yield instance, counters, orders
    finally:
        stop([child])


def last_action(orders: Ring) -> int:
    return int(orders.records[(orders.published() - 1) & orders.mask]["action"])


def grows(orders: Ring, timeout: float = 20.0) -> None:
    start = orders.published()
    until(lambda: orders.published() > start + 2, timeout, "new orders")


@pytest.mark.timeout(120)
def test_kill_switch_stops_new_orders_in_a_running_process(echo, capsys, tmp_path):
    inst, counters, orders = echo
    log = tmp_path / "audit.log"
    grows(orders)
    rc, out, _ = ctl(capsys, inst.name, "kill", "on", "--audit-log", str(log))
    assert rc == 0, out
    assert "kill switch flag ON" in out and "acknowledged by control_echo (done)" in out
    assert last_action(orders) == OrderAction.CANCEL_ALL  # executed before the ack
    stopped_at = orders.published()
    time.sleep(0.3)
    assert orders.published() == stopped_at  # no new order while the switch is on
    assert counters.values()["control_echo.cancel_all"] == 1
    rc, out, _ = ctl(capsys, inst.name, "kill", "off", "--audit-log", str(log))
    assert rc == 0 and "acknowledged by control_echo" in out
    grows(orders)
    assert last_action(orders) == OrderAction.NEW
    lines = audit_lines(log)
    assert [(x["action"], x["event"]) for x in lines] == [
        ("kill on", "issued"), ("kill on", "acknowledged"),
        ("kill off", "issued"), ("kill off", "acknowledged")]
    assert lines[1]["acks"] == {"control_echo": "done"} and lines[1]["instance"] == inst.name


@pytest.mark.timeout(120)
def test_pause_resume_cancel_all_and_resync(echo, capsys, tmp_path):
    inst, counters, orders = echo
    log = ["--audit-log", str(tmp_path / "audit.log")]
    assert ctl(capsys, inst.name, "pause", *log)[0] == 0
    paused_at = orders.published()
    time.sleep(0.3)
    assert orders.published() == paused_at
    assert ctl(capsys, inst.name, "resume", *log)[0] == 0
    grows(orders)
    assert ctl(capsys, inst.name, "cancel-all", *log)[0] == 0
    assert counters.values()["control_echo.cancel_all"] == 1
    assert ctl(capsys, inst.name, "resync", "ETHUSDT", *log)[0] == 0  # id 1 in the config
    rc, out, _ = ctl(capsys, inst.name, "resync", "9", *log)  # the process knows 2 symbols
    assert rc == 1 and "control_echo (refused)" in out
    assert counters.values()["control_echo.resyncs"] == 1
    rc, out, _ = ctl(capsys, inst.name, "status", "--json")
    state = json.loads(out)
    assert rc == 0 and not state["paused"] and state["handlers"][0]["executed"] == 5
    assert len(audit_lines(tmp_path / "audit.log")) == 10


def test_command_nobody_handles_is_reported_and_audited(instance, capsys, tmp_path):
    area = create_control(instance)
    log = tmp_path / "audit.log"
    rc, out, _ = ctl(capsys, instance.name, "kill", "on", "--audit-log", str(log),
                     "--timeout", "0.1")
    assert rc == 1 and "NOT acknowledged: no running process handles it" in out
    assert area.kill_switch()  # the flag itself is set regardless
    assert audit_lines(log)[-1]["event"] == "not_acknowledged"


def test_bad_arguments_and_missing_pieces_exit_2(instance, capsys, tmp_path):
    log = ["--audit-log", str(tmp_path / "audit.log")]
    rc, _, err = ctl(capsys, instance.name, "pause", *log)
    assert rc == 2 and "has no control area" in err and "create_control" in err
    ControlArea.create(instance)
    for argv, msg in ((["kill", "maybe"], "kill takes on or off"),
                      (["resync", "NOPE"], "unknown symbol 'NOPE'"),
                      (["resync"], "resync takes 1 argument"),
                      (["frobnicate"], "expected an action")):
        rc, _, err = ctl(capsys, instance.name, *argv, *log)
        assert rc == 2 and msg in err and "Traceback" not in err, argv
    rc, _, err = ctl(capsys, "nosuch-instance-42", "pause", *log)
    assert rc == 2 and "no pipeline instance" in err
    assert not (tmp_path / "audit.log").exists()  # nothing was issued


def test_audit_log_location_and_format(tmp_path, monkeypatch):
    from pipeline.control import audit
    monkeypatch.delenv("HFT_AUDIT_LOG", raising=False)
    assert audit.audit_path() == audit.DEFAULT_AUDIT_LOG
    assert audit.audit_path(config={"ops": {"audit_log": "var/x.log"}}).name == "x.log"
    monkeypatch.setenv("HFT_AUDIT_LOG", str(tmp_path / "env.log"))
    assert audit.audit_path(config={"ops": {"audit_log": "/nope"}}) == tmp_path / "env.log"
    assert audit.audit_path(str(tmp_path / "cli.log")) == tmp_path / "cli.log"
    path = tmp_path / "sub" / "a.log"
    audit.append(path, {"action": "pause"})
    audit.append(path, {"action": "resume"})
    lines = audit_lines(path)
    assert [x["action"] for x in lines] == ["pause", "resume"]
    assert lines[0]["time"].endswith("Z") and lines[0]["user"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_default_instance_is_the_configured_one_or_the_only_one_running(monkeypatch):
    from pipeline.monitor import discover
    monkeypatch.setattr(discover, "live_instances", lambda: ["other"])
    assert discover.resolve("given") == "given"
    assert discover.resolve(None) == "other"
    monkeypatch.setattr(discover, "live_instances", lambda: ["hft", "other"])
    assert discover.resolve(None) == "hft"  # config/default.toml names "hft"
    monkeypatch.setattr(discover, "live_instances", lambda: ["a", "b"])
    with pytest.raises(discover.InstanceUnavailable, match="several are running"):
        discover.resolve(None)


def test_a_command_with_an_unknown_op_is_skipped_and_counted(area):
    from pipeline.control.area import write_command
    p = ControlPoller(area, "h", list(Op))
    seq = int(atomic_add(area.words, L.W_CLAIM, 1)) + 1
    write_command(area.words, seq, 99, 0, 0, 1, 1)  # from a newer build, or garbage
    area.issue(Op.PAUSE)
    assert [c.op for c in p.poll()] == [Op.PAUSE] and p.skipped == 1
    assert area.handlers()[0]["skipped"] == 1  # visible to the monitor


def test_kill_switch_is_mirrored_to_the_oms_segment_the_gateway_obeys(instance, capsys,
                                                                      tmp_path):
    from pipeline.orders.segments import create_order_path
    _, _, oms = create_order_path(instance)
    create_control(instance)
    log = ["--audit-log", str(tmp_path / "audit.log"), "--timeout", "0.1"]
    _, out, _ = ctl(capsys, instance.name, "kill", "on", *log)
    assert "mirrored to oms" in out and oms.kill()
    ctl(capsys, instance.name, "kill", "off", *log)
    assert not oms.kill()
