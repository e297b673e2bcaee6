"""The feed handler and book builder as real processes against a loopback Binance-format
venue: sync from a REST snapshot, a dropped diff (gap -> resync), a disconnect
(reconnect -> resync), a stale stream and a killed and restarted book builder."""

from __future__ import annotations

import time

import numpy as np
import pytest
from md_loopback import Market, Venue
from waiting import until

from pipeline.instruments import SymbolTable
from pipeline.marketdata.latest import read_latest
from pipeline.marketdata.segments import create_md_segments
from pipeline.marketdata.wire.frames import next_frame
from pipeline.metrics.counters import Counters
from pipeline.runtime.processes import Child, stop, wait_running
from shm_layouts.records import BOOK_UPDATE

CONFIG = """
[[instruments]]
symbol = "BTCUSDT"
venue = "spot"
tick_size = "0.01"
lot_size = "0.001"

[feed]
url = "{url}"
rest_url = "{rest}"
stale_ms = 700
reconnect_min_ms = 50
"""


def _wait(cond, what: str, timeout: float = 60.0):
    return until(cond, timeout, what, tolerate=())


def _book_matches(segs, market) -> int:
    """Update id of the latest book if it is synced and equals the venue's book then."""
    out = np.zeros(1, BOOK_UPDATE)
    if not read_latest(segs.latest.seq, segs.latest.table, 0, out):
        return 0
    u = out[0]
    if u["state"] != 2:
        return 0
    bids = tuple(zip(u["bid_px"][: u["n_bids"]].tolist(), u["bid_qty"][: u["n_bids"]].tolist(),
                     strict=True))
    asks = tuple(zip(u["ask_px"][: u["n_asks"]].tolist(), u["ask_qty"][: u["n_asks"]].tolist(),
                     strict=True))
    want = market.history.get(int(u["update_id"]))
    assert want is not None, f"book at an update id the venue never had: {u['update_id']}"
    assert (bids, asks) == want, "latest book differs from the venue's book at that id"
    return int(u["update_id"])


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_feed_handler_end_to_end(instance, tmp_path):
    market = Market()
    market.fail_snapshots = 2  # the first two REST calls fail: retried with backoff
    with Venue(market) as venue:
        cfg = tmp_path / "feed.toml"
        cfg.write_text(CONFIG.format(url=venue.ws_url, rest=venue.rest_url))
        counters = Counters.create(instance)
        symbols = SymbolTable.from_config([{"symbol": "BTCUSDT", "venue": "spot",
                                            "tick_size": "0.01", "lot_size": "0.001"}])
        segs = create_md_segments(instance, 1 << 14, symbols, book_consumers=())
        common = ["--instance", instance.name, "--idle", "backoff"]
        children = [Child("book_builder", "procs.book_builder", common).start(),
                    Child("feed_handler", "procs.feed_handler",
                          [*common, "--config", str(cfg)]).start()]
        try:
            wait_running(counters, children, timeout=120)

            def value(name):
                return counters.values().get(f"feed.{name}", 0)

            first = _wait(lambda: _book_matches(segs, market), "initial sync")
            _wait(lambda: value("snapshot_failures") == 2, "both failed snapshots counted")
            _wait(lambda: _book_matches(segs, market) > first + 20, "live updates")
            assert value("gaps") == 0
            snaps = value("snapshots")

            market.drop_next.set()
            _wait(lambda: value("gaps") >= 1, "gap detected")
            _wait(lambda: value("snapshots") >= snaps + 1, "re-snapshot after the gap")
            after_gap = _wait(lambda: _book_matches(segs, market), "resync after gap")
            assert segs.latest.state[0]["invalidations"] >= 1  # the builder saw INVALIDATE

            market.close_next.set()
            _wait(lambda: value("connects") >= 2, "reconnect")
            _wait(lambda: value("snapshots") >= snaps + 2, "re-snapshot after reconnect")
            _wait(lambda: _book_matches(segs, market) > after_gap, "resync after reconnect")

            market.quiet_until = time.monotonic() + 2.0  # connected but silent
            _wait(lambda: value("disconnects") >= 2, "stale stream detected")
            _wait(lambda: value("snapshots") >= snaps + 3, "re-snapshot after stale stream")
            after_stale = _wait(lambda: _book_matches(segs, market) > after_gap,
                                "resync after stale")

            # crash-only: kill the book builder; its restart asks the feed for snapshots
            assert after_stale
            children[0].popen.kill()
            children[0].popen.wait(10)
            at_kill = _book_matches(segs, market)
            requested = value("resyncs_requested")
            rebuilt = segs.latest.state[0]["snapshots"]
            children[0] = Child("book_builder", "procs.book_builder", common).start()
            _wait(lambda: value("resyncs_requested") > requested, "resync request")
            _wait(lambda: segs.latest.state[0]["snapshots"] > rebuilt, "snapshot applied")
            _wait(lambda: _book_matches(segs, market) > at_kill, "books rebuilt")
            assert value("rejected") == 0
            assert segs.latest.state[0]["crossed"] == 0  # never crossed
        finally:
            codes = stop(children)
        assert codes == {"book_builder": 0, "feed_handler": 0}, codes


def test_frame_decoder_lengths_and_errors():
    def frame(payload: bytes, op=1, fin=True, masked=False) -> bytes:
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | op])
        m = 0x80 if masked else 0
        if n < 126:
            head += bytes([m | n])
        elif n < 65536:
            head += bytes([m | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([m | 127]) + n.to_bytes(8, "big")
        return head + payload

    buf = np.zeros(1 << 20, np.uint8)
    for size in (0, 5, 125, 126, 300, 70_000):
        raw = frame(b"x" * size)
        buf[: len(raw)] = np.frombuffer(raw, np.uint8)
        status, op, fin, ps, pe, nr = next_frame(buf, 0, len(raw))
        assert (status, op, fin, pe - ps, nr) == (1, 1, 1, size, len(raw))
        assert next_frame(buf, 0, len(raw) - 1)[0] == 0  # incomplete: wait for more
    for bad in (frame(b"x", masked=True), frame(b"x" * 200, op=9), frame(b"", op=9, fin=False),
                bytes([0xC1, 0])):
        buf[: len(bad)] = np.frombuffer(bad, np.uint8)
        assert next_frame(buf, 0, len(bad))[0] == -1
    huge = bytes([0x81, 127]) + (1 << 40).to_bytes(8, "big")
    buf[: len(huge)] = np.frombuffer(huge, np.uint8)
    assert next_frame(buf, 0, len(huge))[0] == -1


def _ws_text(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame."""
    if len(payload) < 126:
        return bytes([0x81, len(payload)]) + payload
    return bytes([0x81, 126]) + len(payload).to_bytes(2, "big") + payload


def test_feed_cycle_stops_after_a_book_change_and_takes_the_next_without_a_recv(instance):
    """A trade and two bookTickers read by one recv: a cycle publishes up to one
    book-changing frame's records (so a fused loop acts on the first ticker before parsing
    the second); the second keeps the first read's receive time; a cycle with nothing left
    to take reads the socket again. Warming on, a cycle that found nothing parses the
    first ticker again into private records: the ring, the counters and the sync state
    see nothing of it."""
    import socket

    from pipeline.marketdata import sbe
    from pipeline.marketdata import warm as MW
    from pipeline.marketdata.feed import Sock, feed_once, new_state
    from pipeline.marketdata.normalize import FeedCore
    from shm_layouts.records import MD_EVENT, MdKind

    table = SymbolTable.from_config([{"symbol": "BTCUSDT", "venue": "spot",
                                      "tick_size": "0.01", "lot_size": "0.001"}])
    segs = create_md_segments(instance, 64, table)
    segs.md.claim_producer()
    core = FeedCore(table)
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        tick = (b'{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"100.01",'
                b'"B":"1.000","a":"100.02","A":"2.000"}}')
        trade = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,'
                 b'"p":"100.01","q":"1.000","T":1,"m":true}}')
        a.sendall(_ws_text(trade) + _ws_text(tick % 7) + _ws_text(tick % 8))
        rbuf, frag = np.zeros(4096, np.uint8), np.zeros(4096, np.uint8)
        st = new_state()
        s = st[0]
        warm = MW.feed_state(1, core.stats.shape[0])  # every idle cycle warms
        md = segs.md.view()
        dec = sbe.new_decoder(table)

        def cycle() -> int:
            return feed_once(Sock(b.fileno(), 0), rbuf, frag, st, core.parse, core.syms,
                             core.emit, md, warm, dec)
        _wait(lambda: cycle() and s["frames"] == 2, "the trade and the first ticker")
        recv_ns = int(s["last_recv"])
        recs = segs.md.records.view(MD_EVENT)
        assert segs.md.published() == 3 and recs[2]["last_id"] == 7  # trade, bid, ask
        assert cycle() > 0 and s["frames"] == 3 and segs.md.published() == 5
        assert recs[4]["last_id"] == 8 and recs[4]["t_origin_ns"] == recv_ns
        assert s["last_recv"] == recv_ns  # no recv between the two tickers
        stats, sync = core.stats.copy(), core.sync.copy()
        assert cycle() == 0 and segs.md.published() == 5  # nothing left: it read again
        assert cycle() == 0 and segs.md.published() == 5
        assert warm.clock[0]["passes"] == 2  # ... and parsed the first ticker again, twice
        shadow = warm.emit.recs
        assert list(shadow[:2]["kind"]) == [MdKind.BBO] * 2 and shadow[0]["last_id"] == 7
        assert np.array_equal(stats, core.stats) and np.array_equal(sync, core.sync)
    finally:
        a.close()
        b.close()
