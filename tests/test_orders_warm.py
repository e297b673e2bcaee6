"""Keeping the order path hot: a warm pass changes no order state, takes no sequence
number and sends what real orders look like; pretouching changes no byte of the journals
but does map their next pages."""

from __future__ import annotations

import resource
import socket

import numpy as np
import pytest
import simplefix
from test_orders_risk import MID, Rig

from pipeline.fix.store import JOURNAL_END, NEXT_OUT
from pipeline.metrics import histogram
from pipeline.orders import flow, warm
from pipeline.orders import journal as J
from pipeline.orders import views as V
from pipeline.transport.ring import Ring
from shm_layouts.records import EXEC_REPORT, ORDER_INTENT, OrderType, TimeInForce


@pytest.fixture
def rig(instance, tmp_path):
    execs = Ring.create(instance, "execs", "exec_report", EXEC_REPORT, 1024)
    r = Rig(execs, J.open_journal(tmp_path / "oms.journal", 4096))
    yield r
    execs.close()


def _warm_messages(rig, passes: int, now: int) -> list:
    """Run ``passes`` warm passes (new order, then replace, in turn) over a real link;
    the messages that came back."""
    link = warm.WarmLink()
    io = rig.wio[0]
    io["warm_tx"], io["warm_rx"] = link.fds()
    msgs = []
    try:
        for i in range(passes):
            got = warm.warm(rig.fix, rig.oms, rig.risk, now + i, 10**18, i & 1)
            p = simplefix.FixParser()
            p.append_buffer(bytes(rig.scratch[warm.WARM_RX: warm.WARM_RX + got]))
            msgs.append(p.get_message())
    finally:
        io["warm_tx"] = io["warm_rx"] = -1
        link.close()
    return msgs


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
    seen = set()
    for i, m in enumerate(_warm_messages(rig, 200, now)):  # new orders and replaces in turn
        if m is not None:  # the bytes came back over the link
            assert m.get(35) == (b"G" if i & 1 else b"D")
            assert int(m.get(34)) == rig.seqs[NEXT_OUT]  # the next number, not taken
            seen.add(m.get(35))
    wire, torig = rig.wire.copy(), rig.torig.copy()
    for last_cl in (0, 77, 3, rig.orders.shape[0] * 5 + 2):  # ids around 0 and past a wrap
        rig.wio[0]["warm_last_cl"] = last_cl
        warm.touch(rig.fix, rig.oms)
    assert np.array_equal(wire, rig.wire) and np.array_equal(torig, rig.torig)
    rig.wio[0]["warm_last_cl"] = before[-1][0]["warm_last_cl"]
    for a, b in zip(before, _state(rig), strict=True):
        assert np.array_equal(a, b)
    assert seen == {b"D", b"G"}


def _order_shape(m) -> tuple:
    return m.get(40), m.get(59), m.get(18), m.get(44) is not None


def test_warm_pass_sends_a_post_only_limit_order_like_the_strategy(rig):
    """Before any real intent: the market maker's shape (limit, post-only: ExecInst 6,
    priced: tag 44 at the touch), and risk passes it like a real quote."""
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    new, replace = _warm_messages(rig, 2, now)
    assert _order_shape(new) == (b"2", b"1", b"6", True)
    assert int(new.get(44).replace(b".", b"")) == MID - 1  # a buy at the best bid
    assert _order_shape(replace) == (b"2", b"1", b"6", True)
    # without a link the pass returns risk's verdict alone: OK, as for a real quote
    assert warm.warm(rig.fix, rig.oms, rig.risk, now, 10**18, 0) == 0


def test_warm_pass_takes_the_shape_of_the_last_real_order(rig):
    now = 10**12
    rig.marks[0] = (MID - 1, MID + 1, now, 0)
    reason, sent = rig.submit(now, action=1, cl_ord_id=77, symbol_id=0, side=1,
                              price=MID + 5, qty=3, tif=int(TimeInForce.IOC),
                              ord_type=int(OrderType.LIMIT))
    assert reason == 0
    new, _ = _warm_messages(rig, 2, now)
    assert _order_shape(new) == _order_shape(sent[0]) == (b"2", b"3", None, True)
    assert new.get(54) == b"2" and new.get(38) == sent[0].get(38)  # side and quantity
    assert int(new.get(44).replace(b".", b"")) == MID + 1  # a sell at the best ask
    assert int(new.get(11)) == 78  # the id a next order would take


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


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_pretouch_maps_the_next_pages_of_fresh_files(tmp_path):
    """On sparse files never written, pretouch takes a page fault for the pages it touches
    (journal rows, store bytes, store index slots): it really writes. A plain
    ``a[i] = a[i]`` compiles to nothing and takes none."""
    pages = warm.AHEAD_PAGES + 1
    j = J.open_journal(tmp_path / "fresh.journal", 4096)

    def sparse(name: str, dtype, shape) -> np.ndarray:  # mapped like the FIX store's files
        return np.memmap(tmp_path / name, dtype=dtype, mode="w+", shape=shape).view(np.ndarray)
    jdata = sparse("journal.dat", np.uint8, (1 << 20,))
    jindex = sparse("journal.idx", np.int64, (4096, 3))
    seqs = np.zeros(16, np.int64)
    # compiled first, on arrays of the same types (no page of the files above)
    warm.pretouch(np.zeros_like(j[:8]), seqs, np.zeros(1 << 16, np.uint8),
                  np.zeros((1024, 3), np.int64))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    warm.pretouch(j, seqs, jdata, jindex)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # store bytes: one page each; index slots and journal rows: a page apart or nearly
    # (rows of 328 and 24 bytes), so at least pages - 1 new pages each
    assert faults >= 3 * pages - 2, faults
    assert not jdata.any() and not jindex.any() and not j[1:].any()  # and no byte changed


def test_the_idle_duty_warms_on_its_clock_and_sends_nothing(rig, instance):
    """``flow.duty`` with nothing to send runs a warm pass when the record's clock is due
    (``warming.is_due`` on GATEWAY_IO): passes counted, nothing on the FIX socket."""
    orders = Ring.create(instance, "orders", "order_intent", ORDER_INTENT, 1024,
                         gating=("gateway",))
    fix_end, venue_end = socket.socketpair()
    link = warm.WarmLink()
    try:
        fix_end.setblocking(False)
        venue_end.setblocking(False)
        io = rig.wio[0]
        io["warm_tx"], io["warm_rx"] = link.fds()
        io["period_ns"], io["ready"] = 1, 1
        rig.marks[0] = (MID - 1, MID + 1, 10**12, 0)
        args = (orders.view(orders.join("gateway")), rig.oms, rig.risk, rig.fix, rig.execs,
                V.book_view(None), V.Hists(*(histogram.new() for _ in V.Hists._fields)))
        for _ in range(5):
            assert flow.duty(fix_end.fileno(), 0, *args) == 0  # no work: warming is not work
        assert io["passes"] == 5 and io["warm_result"] > 0  # bytes came back on the link
        assert io["end"] == 0 and io["sent"] == 0 and rig.seqs[NEXT_OUT] == 1
        with pytest.raises(BlockingIOError):
            venue_end.recv(1)  # not a byte on the FIX socket
    finally:
        link.close()
        fix_end.close()
        venue_end.close()
        orders.close()
