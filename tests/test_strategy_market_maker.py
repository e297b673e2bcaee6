"""Market maker through real rings: quoting, requoting, pulling, inventory, rejects."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from numba import njit

from pipeline.metrics.counters import Counters
from pipeline.orders.segments import OmsState
from pipeline.runtime import idle
from pipeline.runtime.fused import FusedLoop
from pipeline.strategy import market_maker as MM
from pipeline.strategy.agent import BY_OPERATOR, StrategyAgent, bind_cycle
from pipeline.strategy.intents import id_state
from pipeline.transport.ring import Ring
from pipeline.transport.shared import atomic_store
from shm_layouts.oms import W_READY
from shm_layouts.records import (
    BOOK_UPDATE,
    EXEC_REPORT,
    ORDER_INTENT,
    ExecType,
    OrderAction,
    SyncState,
    TimeInForce,
)
from shm_layouts.ring import PUBLISHED

PARAMS = {"levels": 1, "requote_ticks": 2, "gamma": 0.1, "k": 0.5,
          "arrival_rate_prior": 10.0, "sigma2_prior": 4.0, "stale_ms": 50,
          "reject_cooldown_ms": 10_000}


class Rig:
    def __init__(self, instance, params=PARAMS, max_position=300, strategy=MM, mm=None):
        self.counters = Counters.create(instance)
        self.books = Ring.create(instance, "book", "book_update", BOOK_UPDATE, 256,
                                 gating=("strategy",))
        self.execs = Ring.create(instance, "execs", "exec_report", EXEC_REPORT, 256,
                                 gating=("strategy",))
        self.orders = Ring.create(instance, "orders", "order_intent", ORDER_INTENT, 256,
                                  gating=("gateway",))
        self.gw = self.orders.join("gateway")
        self.mm = mm or MM.make_state(1, params, quote_qty=[100], max_position=[max_position])
        self.agent = StrategyAgent(strategy, self.mm, self.orders, id_state(seed=7), self.books,
                                   self.execs, self.counters, event_clock=True,
                                   timer_ns=1_000_000)
        self.agent.on_start()
        self.t = 1_000_000_000
        self.venue_position = 0

    def book(self, bid, ask, state=SyncState.SYNCED, dt=1_000_000):
        self.t += dt
        rec = np.zeros(1, BOOK_UPDATE)
        rec["t_origin_ns"] = rec["t_book_ns"] = self.t
        rec["state"] = state
        rec["n_bids"] = rec["n_asks"] = 1
        rec["bid_px"][0, 0], rec["ask_px"][0, 0] = bid, ask
        rec["bid_qty"][0, 0] = rec["ask_qty"][0, 0] = 1000
        assert self.books.offer(rec)
        return self.run()

    def report(self, intent, exec_type, last_qty=0, cl_ord_id=None):
        rec = np.zeros(1, EXEC_REPORT)
        rec["t_origin_ns"] = self.t
        rec["cl_ord_id"] = intent["cl_ord_id"] if cl_ord_id is None else cl_ord_id
        rec["orig_cl_ord_id"] = intent["orig_cl_ord_id"]
        rec["symbol_id"] = 0
        rec["side"] = intent["side"]
        rec["exec_type"] = exec_type
        rec["last_qty"] = last_qty
        if exec_type in (ExecType.FILL, ExecType.PARTIAL_FILL):
            self.venue_position += last_qty if intent["side"] == 0 else -last_qty
        rec["position"] = self.venue_position
        rec["price"] = rec["last_px"] = intent["price"]
        assert self.execs.offer(rec)
        return self.run()

    def run(self):
        self.agent.do_work(idle.noop(), 0)
        return self.orders.take(self.gw)

    def position(self):
        return int(self.mm.st_i[0, MM.POSITION])


@pytest.fixture
def rig(instance):
    return Rig(instance)


def test_quotes_both_sides_post_only_around_the_mid(rig):
    out = rig.book(10_000, 10_010)
    assert list(out["action"]) == [OrderAction.NEW] * 2
    bid, ask = out[out["side"] == 0][0], out[out["side"] == 1][0]
    assert bid["price"] < 10_005 < ask["price"]
    assert bid["price"] <= 10_009 and ask["price"] >= 10_001
    assert (out["tif"] == TimeInForce.POST_ONLY).all() and (out["qty"] == 100).all()
    assert len(set(out["cl_ord_id"])) == 2
    assert (out["t_origin_ns"] == rig.t).all()  # tick-to-trade starts at the frame


def test_requotes_only_when_the_target_moves_past_the_threshold(rig):
    quotes = rig.book(10_000, 10_010)
    for q in quotes:
        rig.report(q, ExecType.NEW)
    assert len(rig.book(10_000, 10_011)) == 0  # mid moved half a tick: below threshold
    out = rig.book(10_020, 10_030)
    assert list(out["action"]) == [OrderAction.REPLACE] * 2
    assert set(out["orig_cl_ord_id"]) == set(quotes["cl_ord_id"])
    assert len(rig.book(10_020, 10_030)) == 0  # pending replace: wait for the venue


def test_pulls_quotes_when_the_book_is_invalidated_or_stale(rig):
    for q in rig.book(10_000, 10_010):
        rig.report(q, ExecType.NEW)
    out = rig.book(0, 0, state=SyncState.UNSYNCED)
    assert list(out["action"]) == [OrderAction.CANCEL] * 2
    for c in out:  # as a venue sends it: ClOrdID of the cancel, OrigClOrdID of the order
        rig.report(c, ExecType.CANCELED)
    for q in rig.book(10_000, 10_010):
        rig.report(q, ExecType.NEW)
    # the event clock moves 100 ms with no book update for this symbol: stale
    rig.t += 100_000_000
    rep = np.zeros(1, EXEC_REPORT)
    rep["t_origin_ns"], rep["symbol_id"], rep["cl_ord_id"] = rig.t, 0, 999
    rep["exec_type"] = ExecType.ORDER_STATUS
    rig.execs.offer(rep)
    out = rig.run()
    assert list(out["action"]) == [OrderAction.CANCEL] * 2


def test_inventory_skews_quotes_and_limits_stop_one_side(instance):
    rig = Rig(instance, max_position=200)
    quotes = rig.book(10_000, 10_010)
    flat_bid = quotes[quotes["side"] == 0][0]["price"]
    bid = quotes[quotes["side"] == 0][0]
    for q in quotes:
        rig.report(q, ExecType.NEW)
    rig.report(bid, ExecType.FILL, last_qty=100)
    assert rig.position() == 100
    out = rig.book(10_000, 10_010, dt=2_000_000)
    new_bid = out[(out["side"] == 0) & (out["action"] == OrderAction.NEW)]
    assert len(new_bid) == 1 and new_bid[0]["price"] < flat_bid  # long: bid lower
    rig.report(new_bid[0], ExecType.NEW)
    rig.report(new_bid[0], ExecType.FILL, last_qty=100)
    assert rig.position() == 200
    out = rig.book(10_000, 10_010, dt=2_000_000)
    assert not (out["side"] == 0).any() or not (
        out[out["side"] == 0]["action"] == OrderAction.NEW).any()  # at the limit: no bids


def test_a_reject_backs_off_that_symbol(rig):
    quotes = rig.book(10_000, 10_010)
    rig.report(quotes[0], ExecType.REJECTED)
    rig.report(quotes[1], ExecType.NEW)
    out = rig.book(10_000, 10_010)
    assert not (out["action"] == OrderAction.NEW).any()  # cooling down
    assert rig.mm.st_i[0, MM.N_REJECTS] == 1


def test_same_events_give_identical_intents(instance_name):
    from pipeline.transport.registry import Instance

    streams = []
    for run in range(2):
        inst = Instance.create(f"{instance_name}{run}")
        try:
            rig = Rig(inst)
            out = [rig.book(10_000 + i % 7, 10_010 + i % 5) for i in range(20)]
            streams.append(np.concatenate(out).tobytes())
        finally:
            inst.destroy()
    assert streams[0] == streams[1]


def test_glft_offsets_widen_with_volatility_and_skew_with_inventory():
    flat = MM.quote_offsets(0.1, 0.5, 10.0, 4.0, 0.0)
    assert flat[0] == pytest.approx(flat[1])
    wide = MM.quote_offsets(0.1, 0.5, 10.0, 16.0, 0.0)
    assert wide[0] > flat[0]
    long = MM.quote_offsets(0.1, 0.5, 10.0, 4.0, 1.0)
    assert long[0] > flat[0] and long[1] < flat[1]


def test_shutdown_pulls_every_live_quote(rig):
    for q in rig.book(10_000, 10_010):
        rig.report(q, ExecType.NEW)
    rig.agent.on_close()
    out = rig.orders.take(rig.gw)
    assert list(out["action"]) == [OrderAction.CANCEL] * 2


def test_a_refused_cancel_leaves_the_quote_live(rig):
    for q in rig.book(10_000, 10_010):
        rig.report(q, ExecType.NEW)
    cancels = rig.book(0, 0, state=SyncState.UNSYNCED)
    rig.report(cancels[0], ExecType.REJECTED)  # e.g. risk refused the cancel
    rig.report(cancels[1], ExecType.CANCEL_REJECTED)
    statuses = rig.mm.orders[0, :, 0, MM.O_STATUS]
    assert list(statuses) == [MM.LIVE, MM.LIVE]


def test_the_documented_example_strategy_joins_the_touch(instance):
    from pipeline.strategy import join_touch

    rig = Rig(instance, strategy=join_touch, mm=join_touch.make_state(1))
    out = rig.book(10_000, 10_010)
    assert sorted(out["price"]) == [10_000, 10_010] and (out["qty"] == 1).all()
    out = rig.book(10_001, 10_010)
    assert list(out["action"]) == [OrderAction.CANCEL] and out[0]["price"] == 10_000


# ---------------------------------------------------------------- order budget
SECOND = 1_000_000_000
ACK = {OrderAction.NEW: ExecType.NEW, OrderAction.REPLACE: ExecType.REPLACED,
       OrderAction.CANCEL: ExecType.CANCELED}


def _acked(rig, out):
    """Every intent acknowledged by the venue at once; returns them with any intents the
    acknowledgements caused (the timer runs on each pass)."""
    sent, pending = [], list(out)
    while pending:
        intent = pending.pop(0)
        sent.append(intent)
        pending.extend(rig.report(intent, ACK[OrderAction(intent["action"])]))
    return sent


def _orders(sent):
    """Decision times (event clock) of new orders and replaces."""
    return [int(i["t_decision_ns"]) for i in sent
            if i["action"] in (OrderAction.NEW, OrderAction.REPLACE)]


def test_budget_caps_orders_per_second_of_event_time_under_a_fast_book(instance):
    budget = 6
    rig = Rig(instance, dict(PARAMS, max_orders_per_s=budget, stale_ms=5000))
    sent = []
    for i in range(400):  # 4 s of a book moving 5 ticks every 10 ms
        mid = 10_000 + 5 * (i % 40 if i % 80 < 40 else 40 - i % 40)
        sent += _acked(rig, rig.book(mid - 5, mid + 5, dt=10_000_000))
    times = sorted(_orders(sent))
    worst = max(sum(1 for t in times if start <= t < start + SECOND) for start in times)
    assert worst == budget  # the whole budget is used, never more, in any 1 s window
    per_second = np.bincount((np.array(times) - times[0]) // SECOND)
    assert len(per_second) == 4 and (per_second > 0).all()  # quoting went on every second
    throttled = rig.mm.budget[MM.B_THROTTLED]
    assert throttled > 0
    rig.agent.housekeeping(0)  # published for the monitor and the run summary
    assert rig.counters.values()["strategy.requotes_throttled"] == throttled


def test_over_budget_the_quote_stays_and_the_timer_requotes_it_later(instance):
    rig = Rig(instance, dict(PARAMS, max_orders_per_s=4, stale_ms=5000))
    quotes = _acked(rig, rig.book(10_000, 10_010))  # 2 new orders
    assert len(_orders(_acked(rig, rig.book(10_020, 10_030)))) == 2  # 2 replaces: spent
    held = rig.mm.orders[0, :, 0].copy()
    assert list(rig.book(10_060, 10_070)) == []  # over budget: nothing sent ...
    assert (rig.mm.orders[0, :, 0] == held).all()  # ... and the quotes are kept as they were
    assert list(held[:, MM.O_STATUS]) == [MM.LIVE, MM.LIVE]
    assert rig.mm.st_i[0, MM.REQUOTE_DUE] == 1 and rig.mm.budget[MM.B_THROTTLED] == 2
    # no more book updates; the event clock moves on (a report for nothing of ours)
    rep = np.zeros(1, EXEC_REPORT)
    rep["t_origin_ns"], rep["cl_ord_id"] = rig.t + SECOND // 2, 999
    rep["exec_type"] = ExecType.ORDER_STATUS
    rig.execs.offer(rep)
    assert len(rig.run()) == 0  # the window still holds the 4 orders of the last second
    rep["t_origin_ns"] = quotes[0]["t_decision_ns"] + SECOND
    rig.execs.offer(rep)
    out = rig.run()
    assert list(out["action"]) == [OrderAction.REPLACE] * 2  # requoted from the last book
    bid, ask = sorted(out, key=lambda i: i["side"])
    assert held[0, MM.O_PRICE] < bid["price"] < 10_065 < ask["price"]
    assert (out["t_origin_ns"] == 0).all()  # caused by the timer, not by a frame
    assert rig.mm.st_i[0, MM.REQUOTE_DUE] == 0


def test_a_held_back_quote_is_requoted_by_the_next_book_with_its_frame_time(instance):
    rig = Rig(instance, dict(PARAMS, max_orders_per_s=4, stale_ms=5000))
    _acked(rig, rig.book(10_000, 10_010))
    _acked(rig, rig.book(10_020, 10_030))
    assert list(rig.book(10_060, 10_070, dt=50_000_000)) == []  # spent; quiet < retry
    out = rig.book(10_060, 10_070, dt=SECOND)  # the window has room again
    assert list(out["action"]) == [OrderAction.REPLACE] * 2
    assert (out["t_origin_ns"] == rig.t).all()  # tick-to-trade still measured


def test_pulling_quotes_is_never_held_back_by_the_budget(instance):
    rig = Rig(instance, dict(PARAMS, max_orders_per_s=2, stale_ms=5000))
    _acked(rig, rig.book(10_000, 10_010))
    assert list(rig.book(10_040, 10_050)) == []  # replaces held back
    out = rig.book(0, 0, state=SyncState.UNSYNCED)
    assert list(out["action"]) == [OrderAction.CANCEL] * 2
    assert rig.mm.st_i[0, MM.REQUOTE_DUE] == 0  # pulled: nothing left to requote


def test_zero_budget_means_no_budget_and_bad_values_are_refused(instance):
    rig = Rig(instance, dict(PARAMS, max_orders_per_s=0, stale_ms=5000))
    for i in range(10):
        sent = _acked(rig, rig.book(10_000 + 10 * i, 10_010 + 10 * i))
        assert len(_orders(sent)) == 2
    for bad in (-1, 2.5, "10", True):
        with pytest.raises(ValueError, match="max_orders_per_s"):
            MM.make_state(1, dict(PARAMS, max_orders_per_s=bad), [100], [300])


def test_default_config_keeps_the_budget_inside_the_risk_limits():
    from pipeline import config
    from pipeline.strategy.setup import budget_warning

    cfg = config.load()
    assert budget_warning(cfg, len(cfg["instruments"])) is None
    assert 0 < cfg["strategy"]["max_orders_per_s"] * 2 <= cfg["risk"]["max_orders_per_s"]
    over = config.merge(cfg, {"strategy": {"max_orders_per_s": 11}})
    assert "half of [risk] max_orders_per_s" in budget_warning(over, 2)
    cancels = config.merge(cfg, {"strategy": {"levels": 8}})
    assert "max_cancels_per_s" in budget_warning(cancels, 2)
    assert "no order budget" in budget_warning(
        config.merge(cfg, {"strategy": {"max_orders_per_s": 0}}), 2)


def test_default_config_keeps_strategy_inventory_limits_inside_risk():
    from pipeline import config
    from pipeline.instruments import SymbolTable
    from pipeline.strategy.setup import position_warnings

    cfg = config.load()
    symbols = SymbolTable.from_config(cfg["instruments"])
    assert position_warnings(cfg, symbols) == []
    wide = config.merge(cfg, {"strategy": {"max_position": {"BTCUSDT": "0.01",
                                                            "ETHUSDT": "0.1"}}})
    assert [w.split(" = ")[0] for w in position_warnings(wide, symbols)] == \
        ["[strategy] max_position ETHUSDT"]
    per_symbol = config.merge(wide, {"risk": {"per_symbol": {"ETHUSDT": {
        "max_position": "0.2"}}}})
    assert position_warnings(per_symbol, symbols) == []


def test_throttled_count_carries_on_across_a_strategy_restart(instance):
    params = dict(PARAMS, max_orders_per_s=2, stale_ms=5000)
    rig = Rig(instance, params)
    _acked(rig, rig.book(10_000, 10_010))
    rig.book(10_040, 10_050)  # both replaces held back
    rig.agent.housekeeping(0)
    assert rig.counters.values()["strategy.requotes_throttled"] == 2
    mm = MM.make_state(1, params, quote_qty=[100], max_position=[300])  # a fresh process
    again = StrategyAgent(MM, mm, rig.orders, id_state(seed=8), rig.books, rig.execs,
                          rig.counters, event_clock=True)
    again.on_start()
    mm.budget[MM.B_THROTTLED] = 1  # held back once since the restart
    again.housekeeping(0)
    assert rig.counters.values()["strategy.requotes_throttled"] == 3


@pytest.mark.parametrize("move", [40, -40], ids=["up", "down"])
def test_with_budget_for_one_requote_the_side_the_market_moved_towards_goes(instance, move):
    rig = Rig(instance, dict(PARAMS, max_orders_per_s=3, stale_ms=5000))
    _acked(rig, rig.book(10_000, 10_010))  # 2 of 3 spent
    out = rig.book(10_000 + move, 10_010 + move)
    assert list(out["action"]) == [OrderAction.REPLACE]
    assert out[0]["side"] == (1 if move > 0 else 0)  # up: the ask first; down: the bid


def test_quotes_wait_until_the_gateway_reports_ready(instance):
    """An intent sent while the gateway logs on and reconciles would only be denied."""
    oms = OmsState.create(instance)
    rig = Rig(instance)
    held = StrategyAgent(MM, MM.make_state(1, PARAMS, quote_qty=[100], max_position=[300]),
                         rig.orders, id_state(seed=9), rig.books, rig.execs, rig.counters,
                         event_clock=True, oms=oms)
    rig.agent = held
    held.on_start()
    assert len(rig.book(10_000, 10_010)) == 0  # gateway not ready: books seen, no quote
    held.housekeeping(0)
    assert len(rig.book(10_000, 10_010)) == 0  # still not ready
    atomic_store(oms.words, W_READY, 1)
    held.housekeeping(0)
    assert list(rig.book(10_000, 10_010)["action"]) == [OrderAction.NEW] * 2
    atomic_store(oms.words, W_READY, 0)  # later outages: risk denies, the hold is start-up only
    held.pause(True)
    assert held.paused == BY_OPERATOR
    held.pause(False)
    held.housekeeping(0)
    assert held.paused == 0


def test_live_strategy_does_not_act_on_a_book_from_a_backlog(instance):
    """A book update whose frame arrived longer ago than max_book_age (frames queued while
    the process compiled, a stall) is consumed and counted, not quoted on."""
    import time

    rig = Rig(instance)
    live = StrategyAgent(MM, MM.make_state(1, PARAMS, quote_qty=[100], max_position=[300]),
                         rig.orders, id_state(seed=10), rig.books, rig.execs, rig.counters,
                         max_book_age_ns=50_000_000)
    rig.agent = live
    live.on_start()

    def book(age_ns):
        rec = np.zeros(1, BOOK_UPDATE)
        rec["t_origin_ns"] = rec["t_book_ns"] = time.monotonic_ns() - age_ns
        rec["state"] = SyncState.SYNCED
        rec["n_bids"] = rec["n_asks"] = 1
        rec["bid_px"][0, 0], rec["ask_px"][0, 0] = 10_000, 10_010
        rec["bid_qty"][0, 0] = rec["ask_qty"][0, 0] = 1000
        assert rig.books.offer(rec)
        return rig.run()
    assert len(book(2_000_000_000)) == 0  # two seconds old: not the market any more
    live.housekeeping(0)
    values = rig.counters.values()
    assert values["strategy.books_late"] == 1 and values["strategy.book_updates"] == 1
    assert list(book(0)["action"]) == [OrderAction.NEW] * 2  # a fresh one is quoted on


def _live(rig, seed, **kw):
    # a minute before quotes go stale: on the live clock, a loaded host must not pull them
    params = dict(PARAMS, stale_ms=60_000)
    agent = StrategyAgent(MM, MM.make_state(1, params, quote_qty=[100], max_position=[300]),
                          rig.orders, id_state(seed=seed), rig.books, rig.execs, rig.counters,
                          **kw)
    rig.agent = agent
    agent.on_start()
    assert len(rig.run()) == 0  # compiles the bound cycle: a book offered now is not late
    return agent


def _fresh_book(rig, bid, ask):
    import time

    rec = np.zeros(1, BOOK_UPDATE)
    rec["t_origin_ns"] = rec["t_book_ns"] = time.monotonic_ns()
    rec["state"] = SyncState.SYNCED
    rec["n_bids"] = rec["n_asks"] = 1
    rec["bid_px"][0, 0], rec["ask_px"][0, 0] = bid, ask
    rec["bid_qty"][0, 0] = rec["ask_qty"][0, 0] = 1000
    assert rig.books.offer(rec)
    return rig.run()


def test_warm_passes_decide_on_shadow_state_and_send_nothing(instance):
    """While idle, a warming strategy runs its own on_book on a copy of its state with the
    last book shifted: the requote branch runs, but into a private ring; the real order
    ring, the real state and the real order ids are untouched."""
    rig = Rig(instance)
    agent = _live(rig, 11, warm_ns=1)  # every idle pass warms
    quotes = _fresh_book(rig, 10_000, 10_010)
    assert list(quotes["action"]) == [OrderAction.NEW] * 2
    for q in quotes:  # acked: resting quotes, which a moved target replaces
        assert len(rig.report(q, ExecType.NEW)) == 0
    state = [a.copy() for a in agent.mm]
    next_id = int(agent.sink.ids[0])
    shadow_ctl, shadow_recs = agent.warm.sink.orders.ctl, agent.warm.sink.orders.records
    passes, sent = rig.counters.values()["strategy.warm_passes"], int(shadow_ctl[PUBLISHED])
    for _ in range(5):
        assert len(rig.run()) == 0  # nothing reaches the order ring
    passes = rig.counters.values()["strategy.warm_passes"] - passes
    assert passes >= 5
    assert all((a == b).all() for a, b in zip(agent.mm, state, strict=True))
    assert int(agent.sink.ids[0]) == next_id
    sent = int(shadow_ctl[PUBLISHED]) - sent
    assert sent == 2 * passes  # each pass requoted both sides (the shifted book moved them)
    last = shadow_recs[: min(sent, len(shadow_recs))]
    assert set(last["action"]) == {OrderAction.REPLACE}
    assert set(last["orig_cl_ord_id"]) == set(quotes["cl_ord_id"])  # replacing the real quotes
    assert not set(last["price"]) & set(quotes["price"])  # priced off the shifted book
    # the real book moves next: the real state decides as if no warm pass had happened
    assert list(_fresh_book(rig, 10_100, 10_110)["action"]) == [OrderAction.REPLACE] * 2


def test_event_clock_never_warms(instance):
    rig = Rig(instance)
    agent = _live(rig, 12, event_clock=True, warm_ns=1)
    assert len(rig.book(10_000, 10_010)) == 2
    for _ in range(5):
        assert len(rig.run()) == 0
    agent.housekeeping(0)
    assert rig.counters.values()["strategy.warm_passes"] == 0
    assert agent.warm.clock["period_ns"][0] == 0  # period forced to 0: replays stay byte-identical


def _cached(dispatcher) -> bool:
    """Whether numba's on-disk cache holds ``dispatcher``'s compiled signature: what a
    fresh process would load instead of compiling."""
    sig = dispatcher.signatures[0]
    return dispatcher._cache.load_overload(sig, dispatcher.targetctx) is not None


def test_the_bound_strategy_pass_and_a_fused_loop_over_it_are_cached(instance):
    """Bound to its callbacks by name, the strategy's pass is cached, and so is a fused loop
    calling it: a fused process does not compile them again at each start."""
    rig = Rig(instance)
    rig.book(10_000, 10_010)
    assert _cached(rig.agent._cycle)
    loop = FusedLoop()
    loop.compile([rig.agent.hot_duty()], idle.noop())
    assert _cached(loop._run)


def test_a_callback_that_is_not_module_level_is_refused_clearly(instance):
    @njit(cache=False)
    def on_book(mm, sink, book, now):
        return 0

    strategy = SimpleNamespace(on_book=on_book, on_trade=MM.on_trade, on_exec=MM.on_exec,
                               on_timer=MM.on_timer)
    with pytest.raises(TypeError, match="module-level jitted function"):
        bind_cycle(strategy)
