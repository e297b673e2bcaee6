"""Processes for the market-data cross-process tests."""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.marketdata.latest import LatestBooks, write_latest
from pipeline.transport.registry import Instance
from shm_layouts.records import BOOK_UPDATE


@njit(cache=True)
def fill_book(rec, k):
    """Every field derived from ``k``: a torn copy mixes two values and is detectable."""
    rec.t_origin_ns = k
    rec.t_book_ns = k
    rec.exch_time_ns = k
    rec.update_id = k
    for i in range(rec.bid_px.shape[0]):
        rec.bid_px[i] = k
        rec.bid_qty[i] = k
        rec.ask_px[i] = k
        rec.ask_qty[i] = k


@njit(cache=True)
def write_many(seq, table, sid, count, rec):
    for k in range(1, count + 1):
        fill_book(rec, k)
        write_latest(seq, table, sid, rec)


def latest_writer_main(instance: str, count: int) -> None:
    area = LatestBooks.attach(Instance.attach(instance))
    rec = np.zeros(1, BOOK_UPDATE)
    write_many(area.seq, area.table, 0, count, rec[0])
