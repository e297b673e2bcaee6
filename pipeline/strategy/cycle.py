"""One strategy pass, as a template: ``on_book``, ``on_trade``, ``on_exec`` and ``on_timer``
are bound to a strategy's callbacks by ``pipeline.runtime.generated.specialize`` (here, the
placeholders are join_touch's), so each strategy's pass is compiled, and cached, with its
callbacks as direct calls (``pipeline.strategy.agent.bind_cycle``)."""

from numba import njit

from pipeline.metrics.counters import bump
from pipeline.metrics.histogram import record
from pipeline.runtime import warming
from pipeline.runtime.clock import monotonic_ns
from pipeline.strategy import warm as W
from pipeline.strategy.clock import LIVE_CLOCK, tick
from pipeline.strategy.join_touch import (
    on_book,  # bound
    on_exec,  # bound
    on_timer,  # bound
    on_trade,  # bound
)
from pipeline.transport import ring as R
from shm_layouts.records import MdKind

TRADE = int(MdKind.TRADE)
BATCH = 64  # records taken from a ring per poll


@njit(cache=True, _nrt=False)
def cycle(mm, sink, books, execs, trades, clock, tel, warm):
    """One pass: exec reports first (our state must be current), then book updates, then
    trades seen on the md ring, then the timer; a pass that found nothing may warm the
    decision path (``warm``, see ``pipeline.strategy.warm``). Returns records handled.

    ``books``/``execs``: RingView; ``trades``: TradeSource; ``clock``:
    1 STRATEGY_CLOCK record; ``tel``: Telemetry; ``warm``: ``warm.WarmState``."""
    work = 0
    c = clock[0]
    live = c.mode == LIVE_CLOCK
    words, stats, hists = tel.words, tel.stats, tel.hists
    n = R.poll(execs.ctl, execs.stamps, execs.slot, BATCH)
    if n:
        recs = execs.records
        pos = R.cursor(execs.ctl, execs.slot)
        for i in range(n):
            rep = recs[(pos + i) & (recs.shape[0] - 1)]
            now = tick(clock, rep["t_origin_ns"])
            if live and rep["t_recv_ns"] > 0:
                record(hists.exec_hop, now - rep["t_recv_ns"])
            bump(words, stats.intents, on_exec(mm, sink, rep, now))
        R.release(execs.ctl, execs.slot, pos + n)
        bump(words, stats.execs, n)
        work += n
    n = R.poll(books.ctl, books.stamps, books.slot, BATCH)
    if n:
        recs = books.records
        pos = R.cursor(books.ctl, books.slot)
        for i in range(n):
            book = recs[(pos + i) & (recs.shape[0] - 1)]
            now = tick(clock, book["t_origin_ns"])
            late = live and now - book["t_origin_ns"] > c.max_age_ns
            if late:
                bump(words, stats.late, 1)
            sent = on_book(mm, sink, book, now) if c.paused == 0 and not late else 0
            if live:
                record(hists.book_hop, now - book["t_book_ns"])
                if sent:
                    record(hists.decision, monotonic_ns() - now)
                    record(hists.tick_to_decision, now - book["t_origin_ns"])
                    record(hists.acted_book, book["t_book_ns"] - book["t_origin_ns"])
                    record(hists.acted_hop, now - book["t_book_ns"])
            bump(words, stats.intents, sent)
        W.keep_book(warm, recs[(pos + n - 1) & (recs.shape[0] - 1)])
        R.release(books.ctl, books.slot, pos + n)
        bump(words, stats.books, n)
        work += n
    md = trades.md
    if md.slot >= 0:
        n = R.observe(md.ctl, md.slot, md.raw, trades.out)
        for i in range(n):
            ev = trades.events[i]
            if ev["kind"] == TRADE:
                now = tick(clock, ev["t_origin_ns"])
                on_trade(mm, sink, ev["symbol_id"], ev["price"], ev["qty"], now)
                bump(words, stats.trades, 1)
        work += n
    now = tick(clock, 0)
    if now >= c.next_timer:
        c.next_timer = now + c.timer_ns
        bump(words, stats.intents, on_timer(mm, sink, now))
    if work == 0 and c.paused == 0 and warming.is_due(warm.clock):
        on_book(warm.mm, warm.sink, W.prepare(warm), now)  # shadow state, shadow sink
        bump(words, stats.warms, 1)
    return work
