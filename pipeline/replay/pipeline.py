"""``hft run --replay``: the whole pipeline driven by a capture, against a paper venue.

Determinism is the point (two runs of one capture with one seed give byte-identical order
intents), so everything runs in ONE process, lock-step, in a fixed order, on the same
rings and shared memory as live:

    for each capture message:
        feed it (parser -> sync -> md ring)
        repeat: book builder -> strategy -> paper venue
        until no agent did any work and the feed has nothing left to push (quiescent)

The strategy runs on the event clock (the newest ``t_origin_ns`` seen, i.e. the capture's
receive times) with client order ids from ``--seed``; the paper venue stamps reports with
event times too. Nothing on the decision path reads a clock or depends on scheduling, so
the intent stream is a pure function of (capture, config, seed). The loop over messages
is one jitted function (``lockstep``); Python only sees it every ``STEP_MSGS`` messages or
``LOG_CHUNK`` intents, to write the intent log.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
import uuid
import warnings
from pathlib import Path

from numba import njit

from pipeline import config as cfgmod
from pipeline.instruments import SymbolTable
from pipeline.launch.summary import ERROR_WORDS
from pipeline.marketdata import apply as A
from pipeline.marketdata.builder import BookBuilderAgent, build_once
from pipeline.marketdata.normalize import FeedCore
from pipeline.marketdata.publish import push_records
from pipeline.marketdata.segments import create_md_segments
from pipeline.metrics.counters import Counters
from pipeline.orders.positions import money
from pipeline.orders.segments import create_order_path
from pipeline.replay.inline import prepare
from pipeline.replay.paper import PaperVenue, paper_cycle
from pipeline.replay.procs import feed_slice, feed_state
from pipeline.strategy import market_maker
from pipeline.strategy.agent import StrategyAgent
from pipeline.strategy.intents import id_state
from pipeline.strategy.setup import market_maker_state
from pipeline.transport.registry import Instance

warnings.filterwarnings("ignore", "First-class function type feature is experimental")

LOG_CHUNK = 1 << 16  # intents buffered before Python writes them out
LOG_MARGIN = 4096  # room kept free for the intents of one message
STEP_MSGS = 1 << 16  # messages per jitted call: Ctrl-C is seen between calls
MAX_ROUNDS = 1_000_000  # a message that never quiesces is a bug, not a long replay
# paper-venue counters that mean the intent stream or the reports are incomplete
INTEGRITY_ERRORS = ("exec_ring_full", "intent_log_overflow")
PAPER_ERRORS = ("bad_intents", *INTEGRITY_ERRORS)
DEFAULT_QUOTE_LOTS = 1  # quote size for a symbol the config does not list, in lots
DEFAULT_MAX_QUOTES = 10  # inventory limit for such a symbol, in quote sizes


@njit
def quiesce(push_args, build_args, strat, venue_args):
    """Book builder -> strategy (``strat``: its HotDuty) -> paper venue until none has
    work; returns rounds run (-1 if it never settled)."""
    for rounds in range(1, MAX_ROUNDS + 1):
        pushed = push_records(*push_args)
        work = build_once(*build_args)
        work += strat.cycle(*strat.args)
        work += paper_cycle(*venue_args)
        if pushed and work == 0:
            return rounds
    return -1


@njit
def lockstep(feed_args, push_args, build_args, strat, venue_args, max_msgs):
    """Feed one message, quiesce, repeat. Stops at ``max_msgs``, at the end of the capture
    or when the intent log is nearly full; returns messages fed (-1: a message did not
    settle)."""
    log, st = venue_args.paper.intent_log, venue_args.paper.state  # PaperVenue.args
    msgs = 0
    while msgs < max_msgs:
        if log.shape[0] and st[0].log_n > log.shape[0] - LOG_MARGIN:
            return msgs
        if feed_slice(*feed_args) == 0:
            return msgs
        msgs += 1
        if quiesce(push_args, build_args, strat, venue_args) < 0:
            return -1
    return msgs


def strategy_config(config: dict, symbols: SymbolTable) -> dict:
    """The config with quote size / inventory limit filled in for symbols it does not
    list (captures name their own symbols): ``DEFAULT_QUOTE_LOTS`` lots, limit
    ``DEFAULT_MAX_QUOTES`` quotes."""
    out = copy.deepcopy(config)
    s = out.setdefault("strategy", {})
    qty, limit = s.setdefault("quote_qty", {}), s.setdefault("max_position", {})
    for ins in symbols:
        q = qty.setdefault(ins.symbol, ins.qty_str(DEFAULT_QUOTE_LOTS))
        limit.setdefault(ins.symbol, ins.qty_str(ins.lots(str(q)) * DEFAULT_MAX_QUOTES))
    return out


class PipelineReplay:
    """One lock-step replay: an instance with the live segments, the agents, the loop."""

    def __init__(self, files: list[str | Path], config: dict | None = None, seed: int = 0,
                 configured: SymbolTable | None = None, name: str | None = None):
        self.config = config if config is not None else cfgmod.load(None)
        self.files = [str(f) for f in files]
        self.prepared = prepare(files, configured)
        self.symbols = self.prepared.symbols
        self.seed = seed
        self.instance = Instance.create(name or f"prep{os.getpid()}{uuid.uuid4().hex[:6]}")
        try:
            self._build()
        except BaseException:
            self.instance.destroy()
            raise

    def _build(self) -> None:
        inst, symbols = self.instance, self.symbols
        self.counters = Counters.create(inst)
        self.md = create_md_segments(inst, 1 << 16, symbols, book_capacity=1 << 12)
        orders, execs, _oms = create_order_path(inst)
        self.core = FeedCore(symbols)
        self.builder = BookBuilderAgent(self.md)
        self.builder.on_start()
        self.mm = market_maker_state(strategy_config(self.config, symbols), symbols)
        self.strategy = StrategyAgent(
            market_maker, self.mm, orders, id_state(self.seed), self.md.book, execs,
            self.counters, md_ring=self.md.md, event_clock=True,
            symbol_names=[i.symbol for i in symbols])
        self.strategy.on_start()
        self.venue = PaperVenue(orders, execs, self.md.latest, log_capacity=LOG_CHUNK)
        self.md.md.claim_producer()
        c, b = self.core, self.builder
        self.feed_st = feed_state()
        md = self.md.md.view()
        self.feed_args = (self.prepared.messages(), c.parse, c.syms, c.emit, md, self.feed_st,
                          0.0, 1)
        self.push_args = (md, c.out_raw, self.feed_st)
        self.build_args = b.hot_duty()[1]  # the builder's own duty-cycle arguments

    def _step(self, max_msgs: int) -> int:
        n = lockstep(self.feed_args, self.push_args, self.build_args, self.strategy.hot_duty(),
                     self.venue.args, max_msgs)
        if n < 0:
            raise RuntimeError("replay: a message did not quiesce (agents kept working)")
        return n

    def run(self, intents_out: str | Path | None = None) -> dict:
        """Replay every message, pull the quotes at the end, return the summary."""
        self._step(0)  # compile before timing (numba caches what it can)
        digest = hashlib.sha256()
        out = open(intents_out, "wb") if intents_out else None
        try:
            t = time.perf_counter()
            msgs = 0
            while True:
                n = self._step(STEP_MSGS)
                logged = self._flush(digest, out)
                msgs += n
                if self.feed_st[0]["done"]:
                    break
                if n == 0 and not logged:
                    raise RuntimeError(f"replay: stuck before message {msgs}")
            seconds = time.perf_counter() - t
            self.strategy.pause(True)  # end of capture: pull every quote, like shutdown
            if quiesce(self.push_args, self.build_args, self.strategy.hot_duty(),
                       self.venue.args) < 0:
                raise RuntimeError("replay: shutdown did not quiesce")
            self._flush(digest, out)
        finally:
            if out is not None:
                out.close()
        return self.summary(msgs, seconds, digest.hexdigest())

    def _flush(self, digest, out) -> int:
        chunk = self.venue.paper.take_log()
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
        return len(chunk)

    def summary(self, msgs: int, seconds: float, intents_sha256: str) -> dict:
        counters = self.counters.values()
        feed = self.core.summary()
        for name, f in A.COUNTER_FIELDS.items():
            feed[name] = int(self.md.latest.state[f].sum())
        paper = self.venue.paper.counters()
        return {
            "instance": self.instance.name,
            "files": self.files,
            "seed": self.seed,
            "seconds": round(seconds, 6),
            "messages": msgs,
            "messages_per_s": round(msgs / seconds) if seconds > 0 else None,
            "feed": feed,
            "strategy": {k.split(".", 1)[1]: v for k, v in counters.items()
                         if k.startswith("strategy.") and ".position." not in k},
            "paper": paper,
            "intents_sha256": intents_sha256,
            "positions": self.positions(),
            "errors": {**{f"feed.{k}": v for k, v in feed.items()
                          if v and any(w in k for w in ERROR_WORDS)},
                       **{f"paper.{k}": v for k, v in paper.items() if v and k in PAPER_ERRORS}},
        }

    def positions(self) -> dict:
        """Paper positions and PnL per symbol (quote currency), with the strategy's view."""
        pos = self.venue.paper.positions
        strat = market_maker.positions(self.mm)
        out = {}
        for ins in self.symbols:
            sid = ins.symbol_id
            p = pos[sid]
            book = self.md.latest.read(sid)
            lots, cost = int(p["position"]), int(p["open_cost"])
            unreal = None
            if book is not None and book["n_bids"] and book["n_asks"]:
                mid2 = int(book["bid_px"][0] + book["ask_px"][0])
                unreal = money((lots * mid2 - 2 * cost) // 2, ins)
            out[ins.symbol] = {
                "position": ins.qty_str(lots) if lots >= 0 else "-" + ins.qty_str(-lots),
                "position_lots": lots,
                "strategy_position_lots": int(strat[sid]),
                "fills": int(p["fills"]),
                "volume": ins.qty_str(int(p["volume"])),
                "realised_pnl": money(int(p["realised"]), ins),
                "unrealised_pnl": unreal,
            }
        return out

    def close(self) -> None:
        self.instance.destroy()


def run_replay(files: list[str | Path], config_path: str | None = None, seed: int = 0,
               intents_out: str | Path | None = None, instance: str | None = None) -> dict:
    """Load config, replay ``files`` through the pipeline, remove the instance."""
    config = cfgmod.load(config_path)
    configured = None
    if config_path:  # configured tick/lot for the symbols the capture names (as hft replay)
        named = {i.symbol for i in prepare(files).symbols}
        configured = SymbolTable.from_config(
            [row for row in config.get("instruments", []) if row["symbol"] in named])
    rep = PipelineReplay(files, config, seed, configured, instance)
    try:
        return rep.run(intents_out)
    finally:
        rep.close()


def print_replay_summary(s: dict) -> None:
    print(f"\n== replay summary: seed {s['seed']}, {s['messages']:,} messages in "
          f"{s['seconds']:.3f} s ({s['messages_per_s'] or 0:,} messages/s, lock-step)")
    f, st, p = s["feed"], s["strategy"], s["paper"]
    print(f"market data: {f.get('messages', 0):,} messages, {f.get('applied', 0):,} depth "
          f"events applied, {st.get('book_updates', 0):,} book updates to the strategy")
    print(f"orders: {st.get('intents', 0):,} intents from the strategy (plus its quote pulls "
          "at the end); paper venue: " + ", ".join(f"{k} {v:,}" for k, v in p.items() if v))
    print(f"intent stream sha256 {s['intents_sha256']}")
    for sym, q in s["positions"].items():
        print(f"  {sym}: position {q['position']}, fills {q['fills']}, volume {q['volume']}, "
              f"realised PnL {q['realised_pnl']}, unrealised {q['unrealised_pnl']}")
    errors = s["errors"]
    print("errors: " + (", ".join(f"{k} {v:,}" for k, v in errors.items()) or "none"))
