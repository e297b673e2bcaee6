"""The end-of-run summary tells the truth (``pipeline/launch/summary.py``): unusable venue
input, OMS anomalies, supervisor give-ups and positions the venue disagrees with are
``errors`` and ``failures``, and ``hft run`` then exits 1; the usual run's noise (risk
denials, the final logout's disconnect) is shown but does not fail it."""

from __future__ import annotations

import pytest

from pipeline import cli
from pipeline.commands import run as run_cmd
from pipeline.instruments import SymbolTable
from pipeline.launch import summary as S
from pipeline.launch.launcher import Launcher
from pipeline.marketdata.segments import create_md_segments
from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState, create_order_path
from shm_layouts import oms as L

CLEAN = {"gateway.orders.sent": 40, "gateway.orders.denied": 3,
         "gateway.orders.denied.order_rate": 3, "gateway.fix.disconnects": 1,
         "gateway.fix.logons": 1, "feed.messages": 1000, "strategy.intents": 43}


def summary(counters: dict, **extra) -> dict:
    """What collect_summary + the launcher give, from a synthetic counters dict."""
    errors = {k: v for k, v in counters.items() if v and any(w in k for w in S.ERROR_WORDS)
              and not k.startswith(S.DENIED + ".")}
    pos = {sym: {"position": str(lots), "position_lots": lots, "fills": 0, "volume": "0",
                 "realised_pnl": "0", "unrealised_pnl": None}
           for sym, lots in extra.pop("oms", {}).items()}
    return {"instance": "t", "seconds": 1.0, "counters": counters, "errors": errors,
            "denied": S.denials(counters), "latency_ns": {}, "rings": {}, "positions": pos,
            "processes": [], "restarts": {}, "failed": None, "venue_positions": None, **extra}


def test_a_clean_run_has_no_failure():
    s = S.judge(summary(CLEAN, oms={"BTCUSDT": 5}, venue_positions={"BTCUSDT": 5},
                        restarts={"strategy": 0}))
    assert s["failures"] == [] and s["position_mismatch"] == {}
    assert "gateway.orders.denied" in s["errors"]  # shown, not a failure


# (counter, value): each alone fails the run
FAILING = [("gateway.fix.bad_reports", 1), ("gateway.fix.garbled", 2),
           ("gateway.fix.disconnects", 2), ("gateway.oms.unknown_reports", 1),
           ("gateway.oms.reconcile_mismatch", 1), ("gateway.fix.fatal", 1),
           ("gateway.fix.bad.comp_id", 1), ("gateway.oms.overfills", 1),
           ("gateway.execs.ring_full", 1), ("book.sequence_errors", 1),
           ("bridge.recv.execs.gaps", 3), ("bridge.send.book.lost", 7)]


def test_a_gap_in_a_bridged_book_ring_is_shown_but_does_not_fail_the_run():
    """Book updates are whole states: one a receiver never got is superseded by the next
    (the sender's loss, if any, fails the run); on orders/execs a gap is a lost record."""
    s = S.judge(summary(CLEAN | {"bridge.recv.book.gaps": 3}))
    assert s["errors"]["bridge.recv.book.gaps"] == 3 and s["failures"] == []


def test_a_session_that_logged_on_again_fails_the_run():
    """A mid-run drop: the second logon says so even where the final counters show only
    one disconnect (the clean run's allowance)."""
    s = S.judge(summary(CLEAN | {"gateway.fix.logons": 2}))
    assert s["errors"]["gateway.fix.reconnects"] == 1
    assert s["failures"] == ["gateway.fix.reconnects"]


@pytest.mark.parametrize(("name", "value"), FAILING, ids=[n for n, _ in FAILING])
def test_an_error_counter_fails_the_run(name, value):
    s = S.judge(summary(CLEAN | {name: value}))
    assert name in s["errors"] and s["failures"] == [name]


def test_a_supervisor_give_up_fails_the_run_and_a_recovered_restart_is_shown():
    s = S.judge(summary(CLEAN, restarts={"oms_gateway": 1, "strategy": 0}))
    assert s["errors"]["restarts.oms_gateway"] == 1 and s["failures"] == []  # crash-only
    s = S.judge(summary(CLEAN, restarts={"oms_gateway": 5, "strategy": 0},
                        failed="oms_gateway crashed 6 times in 60s (last exit 1)"))
    assert s["errors"]["restarts.oms_gateway"] == 5
    assert s["failures"] == ["supervisor.gave_up"]


def test_positions_the_venue_disagrees_with_fail_the_run():
    s = S.judge(summary(CLEAN, oms={"BTCUSDT": 5, "ETHUSDT": 0},
                        venue_positions={"BTCUSDT": 3, "SOLUSDT": -1}))
    assert s["position_mismatch"] == {"BTCUSDT": {"oms": 5, "venue": 3},
                                      "SOLUSDT": {"oms": 0, "venue": -1}}
    assert s["errors"]["positions.BTCUSDT.oms_minus_venue_lots"] == 2
    assert s["failures"] == ["positions.BTCUSDT.oms_minus_venue_lots",
                             "positions.SOLUSDT.oms_minus_venue_lots"]
    # another venue gives no positions: nothing to compare
    assert S.judge(summary(CLEAN, oms={"BTCUSDT": 5}))["failures"] == []
    # the simulator gives none (its admin API refused us): the check did not run, an error
    s = S.judge(summary(CLEAN, oms={"BTCUSDT": 5}, venue_is_simulator=True))
    assert s["failures"] == ["positions.venue_unavailable"]


def test_the_oms_words_reach_the_summary(instance):
    symbols = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.01",
                                        "lot_size": "0.001"}])
    Counters.create(instance)
    create_md_segments(instance, 1 << 10, symbols, book_capacity=1 << 6)
    create_order_path(instance)
    oms = OmsState.attach(instance)
    oms.words[L.W_UNKNOWN_REPORTS] = 2
    oms.words[L.W_RECONCILE_MISMATCH] = 1
    s = S.judge(S.collect_summary(instance, symbols, 1.0))
    assert s["errors"]["gateway.oms.unknown_reports"] == 2
    assert s["failures"] == ["gateway.oms.reconcile_mismatch", "gateway.oms.unknown_reports"]


@pytest.mark.parametrize(("extra", "code"), [({}, 0), ({"gateway.fix.bad_reports": 1}, 1)])
def test_hft_run_exits_1_on_a_failure(extra, code, monkeypatch, capsys):
    monkeypatch.setattr(Launcher, "run", lambda self: S.judge(summary(CLEAN | extra)))
    assert cli.main(["run", "--duration", "0"]) == code
    out = capsys.readouterr().out
    assert ("RUN FAILED (exit 1): gateway.fix.bad_reports" in out) == bool(code), out
    assert ("errors: gateway.fix.bad_reports 1" in out) == bool(code), out
    assert ("errors: none" in out) != bool(code), out


def test_counted_denials_are_not_printed_as_errors(capsys):
    run_cmd.print_summary(S.judge(summary(CLEAN | {"gateway.orders.denied": 7,
                                                   "gateway.fix.disconnects": 1})))
    out = capsys.readouterr().out
    assert "errors: none" in out, out
    assert "counted (not errors): gateway.orders.denied 7, gateway.fix.disconnects 1" in out


def test_the_summary_prints_a_position_mismatch(capsys):
    run_cmd.print_summary(S.judge(summary(CLEAN, oms={"BTCUSDT": 5},
                                          venue_positions={"BTCUSDT": 3})))
    assert "POSITION MISMATCH BTCUSDT: OMS 5 lots, venue 3 lots" in capsys.readouterr().out


def test_a_process_that_never_comes_up_is_one_line_not_a_traceback(monkeypatch, capsys):
    def late(self):
        raise TimeoutError("not running after 300s: book_builder")
    monkeypatch.setattr(Launcher, "run", late)
    assert cli.main(["run", "--duration", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hft run: could not start: not running after 300s: book_builder")
    assert "Traceback" not in err


@pytest.mark.parametrize(("sent", "seconds", "said"), [(0, 30.0, True), (40, 30.0, False),
                                                        (0, 2.0, False)])
def test_a_run_that_sent_no_order_says_so(sent, seconds, said, capsys):
    run_cmd.print_summary(S.judge(summary(CLEAN | {"gateway.orders.sent": sent},
                                          seconds=seconds)))
    assert ("no order was sent in 30 s" in capsys.readouterr().out) == said
