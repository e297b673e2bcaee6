"""The array book against a dict reference on long random streams."""

from __future__ import annotations

import numpy as np
import pytest
from md_reference import DictBook

from pipeline.marketdata import book as B


def _check(books, ref, sid, n=5):
    qty, bits, meta, ov, _ = books.arrays()
    for side in (0, 1):
        px = np.zeros(n, np.int64)
        qt = np.zeros(n, np.int64)
        k = B.top(qty, bits, meta, ov, sid, side, px, qt)
        assert list(zip(px[:k].tolist(), qt[:k].tolist(), strict=True)) == ref.top(side, n)
        want = ref.top(side, 1)
        assert B.best(qty, meta, sid, side) == (want[0] if want else (0, 0))
        assert B.depth(meta, sid, side) == len(ref.sides[side])


@pytest.mark.parametrize("seed", range(6))
def test_random_stream_matches_dict_book(seed):
    rng = np.random.default_rng(seed)
    books = B.Books(2, window=1024, overflow=4096)
    refs = [DictBook(), DictBook()]
    mids = [6_000_000, 3500]
    for step in range(20_000):
        sid = int(rng.integers(2))
        ref = refs[sid]
        mids[sid] += int(rng.integers(-3, 4)) * (1 if rng.random() < 0.9 else 300)
        side = int(rng.integers(2))
        r = rng.random()
        if r < 0.15 and ref.sides[side]:  # delete the best level
            price = ref.top(side, 1)[0][0]
            q = 0
        elif r < 0.25:  # far away, either direction (outside the window)
            price = mids[sid] + int(rng.integers(-5000, 5000))
            q = int(rng.integers(0, 3)) * int(rng.integers(1, 10**6))
        elif r < 0.35 and ref.sides[side]:  # delete any existing level
            price = list(ref.sides[side])[int(rng.integers(len(ref.sides[side])))]
            q = 0
        else:
            off = int(abs(rng.normal(0, 40))) + 1
            price = mids[sid] - off if side == 0 else mids[sid] + off
            q = int(rng.integers(0, 4)) * int(rng.integers(1, 10**9))
        B.apply_level(*books.arrays(), sid, side, price, q)
        ref.apply(side, price, q)
        if step % 97 == 0:
            _check(books, ref, sid)
    for sid in (0, 1):
        _check(books, refs[sid], sid, n=50)
        assert books.meta[:, B.M_DROPPED].sum() == 0


def test_empty_side_and_clear():
    books = B.Books(1, window=128)
    arrays = books.arrays()
    B.apply_level(*arrays, 0, 0, 100, 0)  # deleting from an empty book is a no-op
    assert B.best(books.qty, books.meta, 0, 0) == (0, 0)
    B.apply_level(*arrays, 0, 0, 100, 5)
    B.apply_level(*arrays, 0, 0, 10_000_000, 7)  # a bid far above: window re-centres
    B.apply_level(*arrays, 0, 0, 1, 9)  # far below: overflow
    assert B.best(books.qty, books.meta, 0, 0) == (10_000_000, 7)
    B.apply_level(*arrays, 0, 0, 10_000_000, 0)
    assert B.best(books.qty, books.meta, 0, 0) == (100, 5)
    B.apply_level(*arrays, 0, 0, 100, 0)
    assert B.best(books.qty, books.meta, 0, 0) == (1, 9)
    B.clear(books.qty, books.bits, books.meta, 0)
    assert B.best(books.qty, books.meta, 0, 0) == (0, 0) and B.depth(books.meta, 0, 0) == 0
