"""Keeping the order path hot: a warm pass changes no order state and takes no sequence
number; pretouching changes no byte of the journals."""

from __future__ import annotations

import numpy as np
import pytest
import simplefix
from test_orders_risk import MID, Rig

from pipeline.fix.store import JOURNAL_END, NEXT_OUT
from pipeline.orders import journal as J
from pipeline.orders import warm
from pipeline.transport.ring import Ring
from shm_layouts.records import EXEC_REPORT


@pytest.fixture
def rig(instance, tmp_path):
    execs = Ring.create(instance, "execs", "exec_report", EXEC_REPORT, 1024)
    r = Rig(execs, J.open_journal(tmp_path / "oms.journal", 4096))
    r.scratch = warm.scratch_buffer()
    yield r
    execs.close()


def _state(rig) -> list[np.ndarray]:
    return [a.copy() for a in (rig.words, rig.orders, rig.positions, rig.rates, rig.seqs,
                               rig.jdata, rig.jindex, rig.j, rig.marks, rig.wio)]


def test_warm_pass_sends_an_order_to_itself_and_changes_no_order_state(rig):
    """A dry pass (risk, encode, send to itself) and the touch of the next order's lines
    leave every byte of the order state as it was."""
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    reason, _ = rig.submit(now, action=1, cl_ord_id=77, symbol_id=0, side=0, price=MID - 5,
                           qty=1, tif=1, ord_type=1)
    assert reason == 0  # an order is live: the state a warm pass must leave alone
    before = _state(rig)
    link = warm.WarmLink()
    seen = set()
    try:
        tx, rx = link.fds()
        for i in range(200):  # NewOrderSingle and cancel/replace passes in turn
            got = warm.warm(tx, rx, rig.scratch, rig.seqs, rig.comp_ids, rig.syms,
                            rig.sym_lens, rig.grid, rig.words, rig.orders, rig.positions,
                            rig.limits, rig.g, rig.marks, rig.rates, now + i, 10**18, i & 1)
            p = simplefix.FixParser()
            p.append_buffer(bytes(rig.scratch[warm.WARM_RX: warm.WARM_RX + got]))
            m = p.get_message()  # the bytes came back over the link
            if m is not None:
                assert m.get(35) == (b"G" if i & 1 else b"D")
                assert int(m.get(34)) == rig.seqs[NEXT_OUT]  # the next number, not taken
                seen.add(m.get(35))
        wire, torig = rig.wire.copy(), rig.torig.copy()
        for last_cl in (0, 77, 3, rig.orders.shape[0] * 5 + 2):  # ids around 0 and past a wrap
            warm.touch(rig.wire, rig.torig, rig.orders, last_cl, rig.j, rig.seqs, rig.jdata,
                       rig.jindex)
        assert np.array_equal(wire, rig.wire) and np.array_equal(torig, rig.torig)
    finally:
        link.close()
    for a, b in zip(before, _state(rig), strict=True):
        assert np.array_equal(a, b)
    assert seen == {b"D", b"G"}


def test_pretouch_changes_no_byte_of_the_journals(rig):
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    for i in range(5):
        rig.submit(now + i, action=1, cl_ord_id=100 + i, symbol_id=0, side=0,
                   price=MID - 5, qty=1, tif=1, ord_type=1)
    rig.jdata[:] = np.arange(rig.jdata.shape[0]) % 251  # a store that has wrapped
    rig.seqs[JOURNAL_END] = rig.jdata.shape[0] * 3 - 100  # appends wrap within the pages
    before = [a.copy() for a in (rig.j, rig.jdata, rig.jindex, rig.seqs)]
    warm.pretouch(rig.j, rig.seqs, rig.jdata, rig.jindex)
    rig.j[0, 0] = rig.j.shape[0] - J.HEADER_RECORDS - 2  # nearly full: pages past the end
    before[0] = rig.j.copy()
    warm.pretouch(rig.j, rig.seqs, rig.jdata, rig.jindex)
    for a, b in zip(before, (rig.j, rig.jdata, rig.jindex, rig.seqs), strict=True):
        assert np.array_equal(a, b)
