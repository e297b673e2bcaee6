"""The strategy decision, hot: what the market maker's ``on_book`` costs when it reprices.

Each call gets a book moved 20 ticks (alternately up and down), so the GLFT targets move
and both quotes are replaced: two REPLACE intents written into a real order ring in shared
memory, then drained by a consumer, as the gateway would. The reference in the same run is
the ring part of that work alone: the same two intents submitted back to back with no
model, so ``decision_over_ring`` says what the model and the order upkeep add. Both loops
are jitted and timed as the minimum over short rounds (robust to a noisy host). Config
``[strategy]`` defaults except no order budget (every book decides).

This is the stage the pipeline reports as ``strategy.decision_ns``; cold in the pipeline
(a few decisions a second), hot here: a regression in the decision's code shows here
without the noise of a whole-pipeline run. Run it twice on an empty ``NUMBA_CACHE_DIR``
(a fresh compile, then the cached code the pipeline runs): they must agree (issue 12:
the cached code ran 5x slower until the level loop got a run-time bound).
``hft bench strategy [--json]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from bench._report import emit
from pipeline.metrics.counters import Counters
from pipeline.strategy import market_maker as MM
from pipeline.strategy.agent import StrategyAgent
from pipeline.strategy.intents import ASK, BID, POST_ONLY, REPLACE, Order, id_state, submit
from pipeline.transport import ring as R
from pipeline.transport.registry import Instance
from pipeline.transport.ring import Ring
from shm_layouts.records import BOOK_UPDATE, EXEC_REPORT, ORDER_INTENT, SyncState

MID_TICKS, MOVE_TICKS, SPREAD_TICKS = 10_000, 20, 10
STEP_NS = 1_000_000  # book-to-book time on the strategy's clock


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=20_000, help="decisions per timed round")
    p.add_argument("--rounds", type=int, default=40, help="timed rounds (the minimum is kept)")


@njit(cache=True, _nrt=False)
def _drain(orders, slot):
    """Consume what the strategy published, as the gateway would (the ring never fills)."""
    n = R.poll(orders.ctl, orders.stamps, slot, 64)
    R.release(orders.ctl, slot, R.cursor(orders.ctl, slot) + n)


@njit(cache=True, _nrt=False)
def _decide(mm, sink, books, calls, slot):
    """``calls`` decisions on alternating books; each replaces both quotes (acked at once)."""
    sent = 0
    now = 1_000_000_000
    for i in range(calls):
        now += STEP_NS
        book = books[i & 1]
        book["t_origin_ns"] = now
        book["t_book_ns"] = now
        sent += MM.on_book(mm, sink, book, now)
        for side in range(2):  # the venue acks the replace: the quote is live again
            o = mm.orders[0, side, 0]
            if o[MM.O_STATUS] != MM.EMPTY:
                o[MM.O_STATUS] = MM.LIVE
        _drain(sink.orders, slot)
    return sent


@njit(cache=True, _nrt=False)
def _intents_only(sink, calls, slot):
    """The reference: the same two REPLACE intents per call, no model."""
    sent = 0
    for i in range(calls):
        price = MID_TICKS + (MOVE_TICKS if i & 1 else -MOVE_TICKS)
        for side in (BID, ASK):
            sent += submit(sink, REPLACE, Order(0, side, price + side * SPREAD_TICKS, 1,
                                                POST_ONLY), i, i, i, i)
        _drain(sink.orders, slot)
    return sent


def _books() -> np.ndarray:
    books = np.zeros(2, BOOK_UPDATE)
    for i, bid in enumerate((MID_TICKS - MOVE_TICKS, MID_TICKS + MOVE_TICKS)):
        books[i]["state"] = SyncState.SYNCED
        books[i]["n_bids"] = books[i]["n_asks"] = 1
        books[i]["bid_px"][0], books[i]["ask_px"][0] = bid, bid + SPREAD_TICKS
        books[i]["bid_qty"][0] = books[i]["ask_qty"][0] = 1000
    return books


def _best_ns(fn, args: tuple, calls: int, rounds: int) -> tuple[float, int]:
    fn(*args[:-2], 10, args[-1])  # compile / load from the cache
    best, sent = float("inf"), 0
    for _ in range(rounds):
        t = time.perf_counter_ns()
        sent = fn(*args)
        best = min(best, (time.perf_counter_ns() - t) / calls)
    return best, sent


def main(args: argparse.Namespace) -> int:
    inst = Instance.create(f"bstrat{time.time_ns() % 1_000_000}")
    try:
        counters = Counters.create(inst)
        books = Ring.create(inst, "book", "book_update", BOOK_UPDATE, 256,
                            gating=("strategy",))
        execs = Ring.create(inst, "execs", "exec_report", EXEC_REPORT, 256,
                            gating=("strategy",))
        orders = Ring.create(inst, "orders", "order_intent", ORDER_INTENT, 256,
                             gating=("gateway",))
        slot = orders.join("gateway")
        mm = MM.make_state(1, {"max_orders_per_s": 0}, quote_qty=[1], max_position=[10**9])
        agent = StrategyAgent(MM, mm, orders, id_state(seed=7), books, execs, counters)
        decision, sent = _best_ns(_decide, (mm, agent.sink, _books(), args.calls, slot),
                                  args.calls, args.rounds)
        ring, ring_sent = _best_ns(_intents_only, (agent.sink, args.calls, slot),
                                   args.calls, args.rounds)
    finally:
        inst.destroy()
    rows = [{"measure": "market maker on_book, both quotes replaced", "ns_per_call": decision,
             "intents_per_call": sent / args.calls},
            {"measure": "reference: the same two intents into the ring", "ns_per_call": ring,
             "intents_per_call": ring_sent / args.calls}]
    emit("strategy decision (hot)", rows, args.json,
         {"decision_over_ring": round(decision / ring, 2), "calls": args.calls,
          "rounds": args.rounds})
    return 0 if sent == 2 * args.calls else 1
