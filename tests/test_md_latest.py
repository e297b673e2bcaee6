"""The seqlock latest-book area across processes, and the md segment set."""

from __future__ import annotations

import multiprocessing as mp
import time

import md_workers as W
import numpy as np
import pytest

from pipeline.instruments import Instrument, SymbolTable
from pipeline.marketdata.latest import LatestBooks, read_latest
from pipeline.marketdata.segments import attach_md_segments, create_md_segments
from pipeline.transport.registry import Instance
from shm_layouts.records import BOOK_UPDATE

CTX = mp.get_context("spawn")


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_reader_never_sees_a_torn_book(instance):
    area = LatestBooks.create(instance, 2)
    out = np.zeros(1, BOOK_UPDATE)
    assert not read_latest(area.seq, area.table, 0, out)  # never written
    W.write_many(area.seq, area.table, 1, 1, out[0].copy())  # compile before timing matters
    count = 3_000_000
    writer = CTX.Process(target=W.latest_writer_main, args=(instance.name, count))
    writer.start()
    reads, last = 0, 0
    deadline = time.monotonic() + 100
    while writer.is_alive() or last < count:
        if read_latest(area.seq, area.table, 0, out):
            u = out[0]
            k = int(u["update_id"])
            fields = [int(u["t_origin_ns"]), int(u["t_book_ns"]), int(u["exch_time_ns"]),
                      *u["bid_px"].tolist(), *u["bid_qty"].tolist(), *u["ask_px"].tolist(),
                      *u["ask_qty"].tolist()]
            assert fields == [k] * len(fields), "torn read"
            assert k >= last, "went backwards"
            last = k
            reads += 1
        assert time.monotonic() < deadline
        if not writer.is_alive() and last < count and reads > 0:
            break
    writer.join(30)
    assert writer.exitcode == 0
    assert read_latest(area.seq, area.table, 0, out) and out[0]["update_id"] == count
    assert reads > 10


def test_md_segments_are_named_for_the_launcher(instance):
    symbols = SymbolTable([Instrument("BTCUSDT", "spot", "0.01", "0.00001"),
                           Instrument("BTCUSD_PERP", "coinm", "0.1", "1")])
    segs = create_md_segments(instance, 1024, symbols)
    names = {e.name for e in instance.segments()}
    assert {"md", "book", "latest_book"} <= names
    assert segs.md.consumer_name(0) == "book_builder"
    assert segs.book.consumer_name(0) == "strategy"
    other = attach_md_segments(Instance.attach(instance.name))
    reader = LatestBooks.attach(Instance.attach(instance.name), readonly=True)
    out = np.zeros(1, BOOK_UPDATE)
    assert not read_latest(reader.seq, reader.table, 1, out)
    rec = np.zeros(1, BOOK_UPDATE)
    rec[0]["update_id"] = 42
    W.write_many(segs.latest.seq, segs.latest.table, 1, 3, rec[0])
    assert read_latest(reader.seq, reader.table, 1, out) and out[0]["update_id"] == 3
    assert [i.symbol for i in other.latest.symbols()] == ["BTCUSDT", "BTCUSD_PERP"]
    assert other.latest.futures().tolist() == [0, 1]
    assert other.latest.symbols()["BTCUSD_PERP"].tick_size == "0.1"
