"""``hft audit`` against a real nats-server holding crafted drop-copy streams: decoding,
enum names, filters, and the sequence check (gaps, duplicates, foreign messages)."""

from __future__ import annotations

import json

import pytest
from dropcopy_helpers import intent, publish_batches, publish_raw

from pipeline import cli
from pipeline.firm.batch import msg_id, subject
from pipeline.firm.natsd import NatsServer, free_port
from shm_layouts.records import ExecType, OrderAction, OrderType, Side, TimeInForce

pytestmark = pytest.mark.timeout(120)
EPOCH = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = NatsServer(tmp_path_factory.mktemp("audit") / "jetstream").start()
    yield s
    s.stop()


def audit(capsys, server: NatsServer, *args: str) -> tuple[int, list[dict], str]:
    code = cli.main(["audit", "--nats", server.url, "--json", *args])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def records(lines: list[dict]) -> list[dict]:
    return [x for x in lines if "seq" in x]


def issues(lines: list[dict]) -> list[dict]:
    return [x for x in lines if "issue" in x]


def test_a_complete_stream_decodes_with_enum_names(capsys, server):
    publish_batches(server.url, "clean", "orders", EPOCH, [(0, 3), (3, 5)])
    publish_batches(server.url, "clean", "execs", EPOCH, [(0, 4)])
    code, lines, _ = audit(capsys, server, "--instance", "clean")
    assert code == 0
    got = records(lines)
    orders = [r for r in got if r["ring"] == "orders"]
    assert [r["seq"] for r in orders] == list(range(8))
    first = intent(0)
    assert orders[0]["cl_ord_id"] == int(first["cl_ord_id"])
    assert orders[0]["price"] == int(first["price"])
    assert orders[0]["action"] == OrderAction.NEW.name
    assert orders[0]["tif"] == TimeInForce.GTC.name
    assert orders[0]["ord_type"] == OrderType.LIMIT.name
    assert {orders[0]["side"], orders[1]["side"]} == {Side.BID.name, Side.ASK.name}
    execs = [r for r in got if r["ring"] == "execs"]
    assert len(execs) == 4 and execs[0]["exec_type"] == ExecType.FILL.name
    assert "_pad" not in orders[0]
    summary = {(s["summary"]["ring"]): s["summary"] for s in lines if "summary" in s}
    assert summary["orders"]["records"] == 8 and summary["orders"]["batches"] == 2
    assert issues(lines) == []


def test_a_gap_is_reported_and_fails(capsys, server):
    publish_batches(server.url, "gappy", "orders", EPOCH, [(0, 4), (4, 4), (10, 2)])
    code, lines, _ = audit(capsys, server, "--instance", "gappy")
    assert code == 1
    assert [(i["issue"], i["first"], i["last"]) for i in issues(lines)] == [("gap", 8, 9)]
    # the table form says it too, on stderr
    assert cli.main(["audit", "--nats", server.url, "--instance", "gappy"]) == 1
    out = capsys.readouterr()
    assert "GAP gappy/orders" in out.err and "seq 8..9" in out.err
    assert "cl_ord_id" in out.out  # the table's header


def test_a_stream_that_does_not_start_at_zero_has_a_gap(capsys, server):
    publish_batches(server.url, "late", "execs", EPOCH, [(5, 3)])
    code, lines, _ = audit(capsys, server, "--instance", "late")
    assert code == 1
    assert [(i["issue"], i["first"], i["last"]) for i in issues(lines)] == [("gap", 0, 4)]


def test_a_duplicate_is_reported_and_fails(capsys, server):
    publish_batches(server.url, "dup", "orders", EPOCH, [(0, 6)])
    # an overlapping batch under another id: the server's dedupe cannot catch it, audit does
    publish_batches(server.url, "dup", "orders", EPOCH, [(4, 4)])
    code, lines, _ = audit(capsys, server, "--instance", "dup")
    assert code == 1
    assert [(i["issue"], i["first"], i["last"]) for i in issues(lines)] == [("duplicate", 4, 5)]


def test_a_retried_publish_with_the_same_msg_id_is_stored_once(capsys, server):
    publish_batches(server.url, "retry", "orders", EPOCH, [(0, 4)])
    publish_batches(server.url, "retry", "orders", EPOCH, [(0, 4)])  # same Nats-Msg-Id
    code, lines, _ = audit(capsys, server, "--instance", "retry")
    assert code == 0 and len(records(lines)) == 4


def test_epochs_are_checked_separately(capsys, server):
    publish_batches(server.url, "epochs", "orders", EPOCH, [(0, 3)])
    publish_batches(server.url, "epochs", "orders", EPOCH + 1, [(0, 2)])  # re-created ring
    code, lines, _ = audit(capsys, server, "--instance", "epochs")
    assert code == 0 and len(records(lines)) == 5


def test_filters(capsys, server):
    publish_batches(server.url, "filt", "orders", EPOCH, [(0, 9)])
    publish_batches(server.url, "filt", "execs", EPOCH, [(0, 9)])
    publish_batches(server.url, "other", "orders", EPOCH, [(0, 2), (5, 1)])  # has a gap
    code, lines, _ = audit(capsys, server, "--instance", "filt", "--ring", "execs")
    assert code == 0 and {r["ring"] for r in records(lines)} == {"execs"}
    assert len(records(lines)) == 9
    code, lines, _ = audit(capsys, server, "--instance", "filt", "--symbol-id", "1")
    assert code == 0
    assert sorted(r["seq"] for r in records(lines) if r["ring"] == "orders") == [1, 4, 7]
    assert all(r["symbol_id"] == 1 for r in records(lines))
    cl = int(intent(5)["cl_ord_id"])
    code, lines, _ = audit(capsys, server, "--instance", "filt", "--cl-ord-id", str(cl))
    assert code == 0 and [(r["ring"], r["seq"]) for r in records(lines)] == [
        ("orders", 5), ("execs", 5)]
    # the other instance's gap fails its own audit, and the firm-wide one
    assert audit(capsys, server, "--instance", "other")[0] == 1
    assert audit(capsys, server)[0] == 1


def test_a_foreign_message_is_reported(capsys, server):
    publish_batches(server.url, "foreign", "orders", EPOCH, [(0, 2)])
    publish_raw(server.url, [(subject("foreign", "orders"),
                              msg_id("foreign", "orders", EPOCH, 99, 99), b"x" * 100)])
    code, lines, _ = audit(capsys, server, "--instance", "foreign")
    assert code == 1
    bad = issues(lines)
    assert len(bad) == 1 and bad[0]["issue"] == "bad_message" and "magic" in bad[0]["error"]


def test_bad_arguments_and_no_server(capsys, server, tmp_path):
    assert cli.main(["audit", "--nats", server.url, "--instance", "a.b"]) == 2
    assert "subject token" in capsys.readouterr().err
    port = free_port()
    assert cli.main(["audit", "--nats", f"nats://u:sekret@127.0.0.1:{port}", "--timeout",
                     "1"]) == 2
    err = capsys.readouterr().err
    assert f"nats://***@127.0.0.1:{port}" in err and "sekret" not in err


def test_no_stream_is_a_clear_error(capsys, tmp_path):
    with NatsServer(tmp_path / "empty") as empty:
        assert cli.main(["audit", "--nats", empty.url]) == 2
        assert "no stream DROPCOPY" in capsys.readouterr().err
