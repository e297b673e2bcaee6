"""The feed handler on Binance SBE market data: the same simulator events build the same
book through the JSON and the SBE paths (both agents in this process, each publishing to
its own md ring), the API key comes from the environment, ``serverShutdown`` reconnects."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from pipeline_checks import assert_traded_and_clean, run_pipeline

from pipeline.config import ConfigError
from pipeline.instruments import Instrument, SymbolTable
from pipeline.marketdata.events import (
    ASK,
    BID,
    DIFF_LEVEL,
    INVALIDATE,
    SNAPSHOT_BEGIN,
    SNAPSHOT_LEVEL,
    TRADE,
)
from pipeline.marketdata.feed import FeedConfig, FeedHandlerAgent
from pipeline.runtime import idle
from pipeline.transport.ring import Ring
from pipeline.venue.testing import VenueThread, sim_test_config
from shm_layouts.records import MD_EVENT

SYMBOLS = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001")])
KEY_ENV = "HFT_TEST_SBE_KEY"
QUIET_MS = 600_000  # the flow is paused at the end: a silent stream is not stale here


def book_of(ring: Ring) -> tuple[dict, dict, list]:
    """Replay the ring's records (never wrapped here) into price -> qty per side; trades."""
    n = ring.published()
    assert n < ring.records.shape[0]
    recs = ring.records.view(MD_EVENT)[:n]
    book: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
    trades = []
    for r in recs.tolist():
        kind, side, px, qty = (r[MD_EVENT.names.index(f)] for f in
                               ("kind", "side", "price", "qty"))
        if kind in (SNAPSHOT_BEGIN, INVALIDATE):
            book[BID].clear()
            book[ASK].clear()
        elif kind in (SNAPSHOT_LEVEL, DIFF_LEVEL):
            if qty:
                book[side][px] = qty
            else:
                book[side].pop(px, None)
        elif kind == TRADE:
            trades.append((r[MD_EVENT.names.index("first_id")], px, qty, side))
    return book[BID], book[ASK], trades


def pump(agents, until, what: str, timeout: float = 60.0) -> None:
    state = idle.backoff()
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        for a in agents:
            now = time.monotonic_ns()
            a.housekeeping(now)
            a.do_work(state, now + 1_000_000)


def test_md_format_is_checked_and_the_key_required(monkeypatch):
    with pytest.raises(ConfigError, match="md_format"):
        FeedConfig("ws://x", "http://x", md_format="fix")
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=KEY_ENV):
        FeedConfig("ws://x", "http://x", md_format="sbe", api_key_env=KEY_ENV).api_key()


@pytest.mark.timeout(240)
def test_json_and_sbe_paths_build_the_same_book(instance, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    vt = VenueThread(sim_test_config(tmp_path, symbols=SYMBOLS))
    agents = []
    try:
        ep = vt.sim.endpoints()
        base = "btcusdt"
        cfgs = {"json": FeedConfig(f"{ep['ws']}/stream?streams={base}@depth@100ms/"
                                   f"{base}@bookTicker/{base}@trade", ep["rest"],
                                   stale_ms=QUIET_MS),
                "sbe": FeedConfig(f"{ep['sbe']}/stream?streams={base}@depth/"
                                  f"{base}@bestBidAsk/{base}@trade", ep["rest"],
                                  stale_ms=QUIET_MS, md_format="sbe", api_key_env=KEY_ENV)}
        rings = {name: Ring.create(instance, f"md_{name}", "md_event", MD_EVENT, 1 << 18,
                                   gating=("none",)) for name in cfgs}
        agents = [FeedHandlerAgent(rings[n], SYMBOLS, cfgs[n]) for n in cfgs]
        for a in agents:
            a.on_start()
        j, s = agents

        def applied(a) -> int:
            return int(a.core.sync["applied"][0])

        pump(agents, lambda: applied(j) > 20 and applied(s) > 50, "both synced and applying")
        vt.call(lambda: setattr(vt.sim, "paused", True))
        target = vt.call(vt.sim.update_id, "BTCUSDT")

        def at_target() -> bool:
            return all(int(a.core.sync["last"][0]) == target for a in agents)

        pump(agents, at_target, "both books at the engine's update id")
        bids, asks = vt.call(vt.sim.levels, "BTCUSDT")
        jb, ja, jt = book_of(rings["json"])
        sb, sa, st = book_of(rings["sbe"])
        assert len(bids) > 100 and dict(bids) == jb == sb and dict(asks) == ja == sa
        first = max(jt[0][0], st[0][0])  # both connections saw every trade after this one
        assert [t for t in jt if t[0] >= first] == [t for t in st if t[0] >= first]
        assert s.summary()["sbe_frames"] > 100 and s.summary()["sbe_rejected"] == 0
        assert j.summary()["sbe_frames"] == 0  # JSON venue: no binary frames

        # serverShutdown (a JSON text frame on the SBE connection): reconnect and resync
        snaps = int(s.core.sync["snapshots"][0])
        assert vt.call(vt.sim.sbe_md.shutdown_all) == 1
        pump(agents, lambda: s.connects == 2 and int(s.core.sync["snapshots"][0]) > snaps
             and at_target(), "reconnected and resynced after serverShutdown")
        assert s.disconnects == {"server shutdown": 1} and j.connects == 1
        sb, sa, _ = book_of(rings["sbe"])
        assert dict(bids) == sb and dict(asks) == sa
        assert np.all(s.core.sync["gaps"] == 0)
    finally:
        for a in agents:
            a.on_close()
        vt.stop()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(400)
def test_hft_run_trades_on_sbe_market_data(tmp_path):
    name = f"sbe{os.getpid()}"
    s = run_pipeline(name, tmp_path / "summary.json", 20, "--md-format", "sbe")
    assert_traded_and_clean(s, name)
    c = s["counters"]
    assert c["feed.sbe_frames"] > 0 and c["feed.sbe_rejected"] == 0
