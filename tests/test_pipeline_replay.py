"""Replay through the whole pipeline (``hft run --replay``) and the paper venue.

Determinism: the spot capture replayed twice with one seed gives byte-identical order
intent streams (in one process and across processes through the CLI); another seed gives
other client order ids. The paper venue is unit-tested per intent type and for the
book-through fill rule, against real rings and a real latest-book area.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import config as cfgmod
from pipeline.instruments import Instrument, SymbolTable
from pipeline.marketdata.latest import write_latest
from pipeline.marketdata.segments import create_md_segments
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.replay.paper import PaperReason, PaperVenue
from pipeline.replay.pipeline import PipelineReplay, strategy_config
from pipeline.strategy.intents import IDS_PER_SESSION
from shm_layouts.records import (
    BOOK_UPDATE,
    ORDER_INTENT,
    ExecType,
    OrderAction,
    OrdStatus,
    ReportSource,
    SyncState,
    TimeInForce,
)

ROOT = Path(__file__).resolve().parents[1]
SPOT = ("BINANCE.ws.1.0", "BINANCE.http.0.0")
# lazy requotes and no stale pulls: quotes left behind by a move get traded through
STRATEGY = {"gamma": 0.1, "k": 10.0, "sigma2_prior": 0.5, "requote_ticks": 50,
            "stale_ms": 60000}


def _config() -> dict:
    config = cfgmod.load(None)
    config["strategy"].update(STRATEGY)
    return config


def _replay(files: list[Path], seed: int, out: Path) -> dict:
    rep = PipelineReplay(files, _config(), seed)
    try:
        return rep.run(out)
    finally:
        rep.close()


# ------------------------------------------------------------------ determinism
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_same_seed_gives_byte_identical_intents(binance_data, tmp_path):
    files = [binance_data / f for f in SPOT]
    a = _replay(files, 7, tmp_path / "a.bin")
    b = _replay(files, 7, tmp_path / "b.bin")
    c = _replay(files, 8, tmp_path / "c.bin")
    raw_a, raw_b = (tmp_path / "a.bin").read_bytes(), (tmp_path / "b.bin").read_bytes()
    assert raw_a == raw_b
    assert a["intents_sha256"] == b["intents_sha256"]
    intents = np.frombuffer(raw_a, ORDER_INTENT)
    assert len(intents) > 10 and len(intents) == a["paper"]["intents"]
    assert a["messages"] == 269 and a["feed"]["book_updates"] > 100
    # quotes were placed and some were traded through by the replayed book
    assert a["paper"]["new"] > 0 and a["paper"]["fills"] > 0
    assert sum(p["fills"] for p in a["positions"].values()) == a["paper"]["fills"]
    for p in a["positions"].values():  # the strategy's inventory matches the venue's
        assert p["strategy_position_lots"] == p["position_lots"]
    assert not a["errors"]
    assert (intents["seq"] == np.arange(len(intents))).all()  # nothing lost or skipped
    assert set(np.unique(intents["action"])) >= {int(OrderAction.NEW),
                                                 int(OrderAction.CANCEL)}
    # the event clock: decisions are stamped with the capture's receive times (Oct 2021,
    # 30 s long), not CLOCK_MONOTONIC
    t = intents["t_decision_ns"]
    assert 1_633_998_500 * 10**9 < t.min() <= t.max() < 1_633_998_600 * 10**9
    # another seed: same decisions, other client order ids
    other = np.frombuffer((tmp_path / "c.bin").read_bytes(), ORDER_INTENT)
    assert len(other) == len(intents)
    assert (intents["cl_ord_id"] // IDS_PER_SESSION == 7).all()
    assert (other["cl_ord_id"] // IDS_PER_SESSION == 8).all()
    assert (other["price"] == intents["price"]).all()
    assert c["intents_sha256"] != a["intents_sha256"]


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_cli_replays_are_identical_across_processes(binance_data, tmp_path):
    cfg = tmp_path / "replay.toml"
    cfg.write_text("[strategy]\n" + "".join(f"{k} = {v!r}\n" for k, v in STRATEGY.items()))
    outs = []
    for run in ("x", "y"):
        out, summary = tmp_path / f"{run}.bin", tmp_path / f"{run}.json"
        p = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--replay",
             *(str(binance_data / f) for f in SPOT), "--seed", "3", "--config", str(cfg),
             "--intents-out", str(out), "--summary-json", str(summary)],
            cwd=ROOT, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "replay summary" in p.stdout and "NKNUSDT" in p.stdout
        outs.append((out.read_bytes(), json.loads(summary.read_text())))
    (x, sx), (y, sy) = outs
    assert x == y and len(x) > 0 and len(x) % ORDER_INTENT.itemsize == 0
    assert sx["intents_sha256"] == sy["intents_sha256"]
    assert sx["paper"]["fills"] > 0 and sx["positions"] == sy["positions"]
    assert sx["instance"] != sy["instance"]  # separate instances, same stream


def test_strategy_config_covers_inferred_symbols():
    symbols = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                           Instrument("NKNUSDT", "spot", "0.00001", "0.1")])
    out = strategy_config(cfgmod.load(None), symbols)
    assert out["strategy"]["quote_qty"]["BTCUSDT"] == "0.001"  # configured: kept
    assert out["strategy"]["quote_qty"]["NKNUSDT"] == "0.1"  # one lot
    assert out["strategy"]["max_position"]["NKNUSDT"] == "1"  # ten quotes


# ------------------------------------------------------------------ paper venue
class Paper:
    """A paper venue on real rings; the test plays the strategy and the book builder."""

    def __init__(self, instance, n_symbols: int = 2):
        self.md = create_md_segments(instance, 256, n_symbols)
        self.orders, self.execs, _ = create_order_path(instance, 256)
        self.exec_slot = self.execs.join(EXECS_CONSUMER)
        self.venue = PaperVenue(self.orders, self.execs, self.md.latest)
        self.next_id = 100

    def book(self, sid: int, bid: int, ask: int, t: int = 5_000,
             state: SyncState = SyncState.SYNCED) -> None:
        rec = np.zeros(1, BOOK_UPDATE)
        r = rec[0]
        r["symbol_id"], r["state"], r["t_origin_ns"] = sid, int(state), t
        r["n_bids"], r["n_asks"] = 1, 1
        r["bid_px"][0], r["ask_px"][0] = bid, ask
        r["bid_qty"][0] = r["ask_qty"][0] = 10
        write_latest(self.md.latest.seq, self.md.latest.table, sid, r)

    def send(self, action: OrderAction, sid: int = 0, side: int = 0, price: int = 100,
             qty: int = 3, tif: TimeInForce = TimeInForce.POST_ONLY, orig: int = 0,
             cl: int | None = None, t: int = 1_000) -> int:
        if cl is None:
            cl = self.next_id
            self.next_id += 1
        rec = np.zeros(1, ORDER_INTENT)
        r = rec[0]
        r["t_origin_ns"], r["cl_ord_id"], r["orig_cl_ord_id"] = t, cl, orig
        r["price"], r["qty"], r["symbol_id"] = price, qty, sid
        r["action"], r["side"], r["tif"], r["ord_type"] = int(action), side, int(tif), 1
        assert self.orders.offer(rec)
        return cl

    def reports(self) -> np.ndarray:
        for _ in range(10):
            if self.venue.cycle() == 0:
                break
        return self.execs.take(self.exec_slot)

    def counters(self) -> dict:
        return self.venue.paper.counters()


def _one(reps, exec_type, status=None):
    assert len(reps) == 1, reps
    r = reps[0]
    assert r["exec_type"] == int(exec_type)
    if status is not None:
        assert r["ord_status"] == int(status)
    assert r["source"] == int(ReportSource.VENUE)
    return r


def test_paper_new_rests_and_post_only_cross_is_rejected(instance):
    p = Paper(instance)
    p.book(0, 99, 101)
    cl = p.send(OrderAction.NEW, price=100, qty=3, t=1234)
    r = _one(p.reports(), ExecType.NEW, OrdStatus.NEW)
    assert (r["cl_ord_id"], r["price"], r["leaves_qty"], r["cum_qty"]) == (cl, 100, 3, 0)
    assert r["venue_order_id"] > 0 and r["exec_id"] > 0 and r["t_origin_ns"] == 1234
    cross = p.send(OrderAction.NEW, side=0, price=101)  # buy at the ask: would take
    r = _one(p.reports(), ExecType.REJECTED, OrdStatus.REJECTED)
    assert r["cl_ord_id"] == cross and r["reject_reason"] == int(PaperReason.WOULD_CROSS)
    p.send(OrderAction.NEW, side=1, price=99)  # sell at the bid
    _one(p.reports(), ExecType.REJECTED)
    assert len(p.venue.paper.open_orders()) == 1


def test_paper_marketable_limit_takes_at_opposite_best(instance):
    p = Paper(instance)
    p.book(0, 99, 101)
    cl = p.send(OrderAction.NEW, side=0, price=105, qty=4, tif=TimeInForce.GTC)
    r = _one(p.reports(), ExecType.FILL, OrdStatus.FILLED)
    assert (r["cl_ord_id"], r["last_px"], r["last_qty"], r["cum_qty"], r["leaves_qty"]) == \
        (cl, 101, 4, 4, 0)
    p.send(OrderAction.NEW, side=1, price=90, qty=1, tif=TimeInForce.GTC)
    r = _one(p.reports(), ExecType.FILL)
    assert r["last_px"] == 99
    pos = p.venue.paper.positions[0]
    assert pos["position"] == 3 and pos["fills"] == 2 and pos["volume"] == 5
    assert p.counters()["taker_fills"] == 2
    p.send(OrderAction.NEW, side=0, price=95, tif=TimeInForce.IOC)  # not marketable
    _one(p.reports(), ExecType.EXPIRED, OrdStatus.EXPIRED)
    assert len(p.venue.paper.open_orders()) == 0


def test_paper_cancel_and_unknown_cancel(instance):
    p = Paper(instance)
    p.book(0, 90, 110)
    order = p.send(OrderAction.NEW, price=100)
    p.reports()
    req = p.send(OrderAction.CANCEL, orig=order)
    r = _one(p.reports(), ExecType.CANCELED, OrdStatus.CANCELED)
    assert (r["cl_ord_id"], r["orig_cl_ord_id"], r["leaves_qty"]) == (req, order, 0)
    again = p.send(OrderAction.CANCEL, orig=order)  # already gone
    r = _one(p.reports(), ExecType.CANCEL_REJECTED, OrdStatus.REJECTED)
    assert (r["cl_ord_id"], r["orig_cl_ord_id"]) == (again, order)
    assert r["reject_reason"] == int(PaperReason.UNKNOWN_ORDER)


def test_paper_replace_moves_the_order_or_leaves_it_standing(instance):
    p = Paper(instance)
    p.book(0, 90, 110)
    old = p.send(OrderAction.NEW, price=100, qty=3)
    vid = p.reports()[0]["venue_order_id"]
    new = p.send(OrderAction.REPLACE, price=102, qty=5, orig=old)
    r = _one(p.reports(), ExecType.REPLACED, OrdStatus.REPLACED)
    assert (r["cl_ord_id"], r["orig_cl_ord_id"], r["price"], r["leaves_qty"],
            r["venue_order_id"]) == (new, old, 102, 5, vid)
    crossing = p.send(OrderAction.REPLACE, price=110, orig=new)  # post-only at the ask
    r = _one(p.reports(), ExecType.REJECTED, OrdStatus.NEW)
    assert (r["cl_ord_id"], r["orig_cl_ord_id"], r["price"], r["venue_order_id"],
            r["reject_reason"]) == (crossing, new, 102, vid, int(PaperReason.WOULD_CROSS))
    (o,) = p.venue.paper.open_orders()  # the old order stands, unchanged
    assert (o["cl"], o["price"], o["leaves"]) == (new, 102, 5)
    p.send(OrderAction.REPLACE, price=101, orig=old)  # replaced away already
    _one(p.reports(), ExecType.CANCEL_REJECTED)
    p.send(OrderAction.CANCEL, orig=new)
    _one(p.reports(), ExecType.CANCELED)


def test_paper_cancel_all_per_symbol_and_everything(instance):
    p = Paper(instance)
    p.book(0, 90, 110)
    p.book(1, 90, 110)
    a = [p.send(OrderAction.NEW, sid=0, price=100 - i) for i in range(2)]
    b = [p.send(OrderAction.NEW, sid=1, price=100 - i) for i in range(3)]
    assert len(p.reports()) == 5
    req = p.send(OrderAction.CANCEL_ALL, sid=1)
    reps = p.reports()
    assert sorted(reps["orig_cl_ord_id"]) == b and (reps["cl_ord_id"] == req).all()
    assert (reps["exec_type"] == int(ExecType.CANCELED)).all()
    p.send(OrderAction.CANCEL_ALL, sid=-1)
    assert sorted(p.reports()["orig_cl_ord_id"]) == a
    assert len(p.venue.paper.open_orders()) == 0 and p.counters()["canceled"] == 5


def test_paper_book_through_fills_resting_orders_at_their_price(instance):
    p = Paper(instance)
    p.book(0, 95, 105)
    buy = p.send(OrderAction.NEW, side=0, price=100, qty=2)
    sell = p.send(OrderAction.NEW, side=1, price=104, qty=1)
    p.reports()
    p.book(0, 95, 101, t=7_000)  # ask above our bid: nothing
    assert len(p.reports()) == 0
    p.book(0, 96, 100, t=8_000)  # ask at our bid: filled at our price
    r = _one(p.reports(), ExecType.FILL, OrdStatus.FILLED)
    assert (r["cl_ord_id"], r["side"], r["last_px"], r["last_qty"], r["leaves_qty"],
            r["t_origin_ns"]) == (buy, 0, 100, 2, 0, 8_000)
    p.book(0, 106, 107, t=9_000, state=SyncState.UNSYNCED)  # no fill from an unsynced book
    assert len(p.reports()) == 0
    p.book(0, 106, 107, t=9_500)  # bid through our ask
    r = _one(p.reports(), ExecType.FILL)
    assert (r["cl_ord_id"], r["last_px"], r["t_origin_ns"]) == (sell, 104, 9_500)
    pos = p.venue.paper.positions[0]
    assert pos["position"] == 1 and pos["realised"] == 104 - 100
    assert p.counters()["maker_fills"] == 2


def test_paper_bad_intents_are_rejected_and_counted(instance):
    p = Paper(instance)
    p.book(0, 90, 110)
    p.send(OrderAction.NEW, sid=5)  # unknown symbol
    r = _one(p.reports(), ExecType.REJECTED)
    assert r["reject_reason"] == int(PaperReason.UNKNOWN_SYMBOL)
    p.send(OrderAction.NEW, qty=0)
    assert _one(p.reports(), ExecType.REJECTED)["reject_reason"] == \
        int(PaperReason.BAD_ORDER)
    rec = np.zeros(1, ORDER_INTENT)
    rec["action"], rec["cl_ord_id"] = 9, 555  # no such action
    assert p.orders.offer(rec)
    assert _one(p.reports(), ExecType.REJECTED)["cl_ord_id"] == 555
    dup = p.send(OrderAction.NEW, price=100)
    p.reports()
    p.send(OrderAction.NEW, price=99, cl=dup)
    assert _one(p.reports(), ExecType.REJECTED)["reject_reason"] == \
        int(PaperReason.DUPLICATE_ID)
    assert p.counters()["bad_intents"] == 3 and p.counters()["rejected"] == 4


def test_paper_without_a_book_rests_and_never_fills(instance):
    p = Paper(instance)
    p.send(OrderAction.NEW, side=0, price=100, tif=TimeInForce.GTC)
    _one(p.reports(), ExecType.NEW)
    assert p.counters()["fills"] == 0


def test_paper_intents_log_records_raw_bytes(instance):
    md = create_md_segments(instance, 256, 1)
    orders, execs, _ = create_order_path(instance, 256)
    execs.join(EXECS_CONSUMER)
    venue = PaperVenue(orders, execs, md.latest, log_capacity=8)
    rec = np.zeros(1, ORDER_INTENT)
    rec["action"], rec["cl_ord_id"], rec["qty"], rec["price"], rec["tif"] = 1, 42, 1, 5, 4
    rec["side"] = 0
    assert orders.offer(rec)
    venue.cycle()
    raw = venue.paper.take_log()
    got = np.frombuffer(raw, ORDER_INTENT)
    assert len(raw) == 64 and got[0]["cl_ord_id"] == 42 and got[0]["seq"] == 0
    assert venue.paper.take_log() == b""


def test_replay_copy_of_config_is_not_mutated():
    config = cfgmod.load(None)
    before = copy.deepcopy(config)
    strategy_config(config, SymbolTable([Instrument("XUSDT", "spot", "0.1", "1")]))
    assert config == before


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_malformed_messages_are_counted_and_the_replay_goes_on(binance_data, tmp_path):
    lines = (binance_data / SPOT[0]).read_bytes().splitlines(keepends=True)
    t = lines[10].split(b":", 1)[0]
    bad = [t + b': {"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","s":"NK\n',
           t + b": not json at all\n"]
    (tmp_path / "BAD.ws.1.0").write_bytes(b"".join(lines[:11] + bad + lines[11:]))
    (tmp_path / "BAD.http.0.0").write_bytes((binance_data / SPOT[1]).read_bytes())
    s = _replay([tmp_path / "BAD.ws.1.0", tmp_path / "BAD.http.0.0"], 7, tmp_path / "i.bin")
    assert s["messages"] == 271 and s["feed"]["rejected"] == 2
    assert s["errors"]["feed.rejected"] == 2
    assert s["paper"]["fills"] > 0  # the rest of the capture still trades


def test_cli_reports_an_unreadable_capture(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--replay",
                        str(tmp_path / "missing.ws.1.0")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "No such file" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["BINANCE_FUTURES", "BINANCE_DELIVERY"])
def test_futures_captures_replay_identically(binance_data, tmp_path, name):
    files = [binance_data / f"{name}.ws.1.0", binance_data / f"{name}.http.0.0"]
    a = _replay(files, 11, tmp_path / "a.bin")
    b = _replay(files, 11, tmp_path / "b.bin")
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert a["paper"]["intents"] > 10 and a["positions"] == b["positions"]
    assert not any(k.startswith("paper.") for k in a["errors"])
