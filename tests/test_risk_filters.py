"""The venue's exchange rules in pre-trade risk: exchangeInfo compiled into FILTER records,
each filter's boundary (the last passing value and the first refused one) on the jitted
check, a replace checked both ways, MAX_POSITION following fills from a reconcile."""

from decimal import Decimal as D

import numpy as np
import pytest
from binance_venue import exchange_info
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.binance import exchange as E
from pipeline.instruments import SymbolTable
from pipeline.orders import risk
from shm_layouts.oms import POSITION
from shm_layouts.oms import RiskReason as R
from shm_layouts.records import Side

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"},
    {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.0001"}])
RULES = E.parse(exchange_info())
BID, ASK = int(Side.BID), int(Side.ASK)


def test_compiled_from_exchange_info():
    f = risk.compile_filters(RULES, TABLE)
    b, e = f[0], f[1]
    assert (b["price_step"], b["qty_step"], b["min_price"], b["max_price"]) == \
        (1, 1, 1, 100_000_000)
    assert (b["min_qty"], b["max_qty"], b["min_notional"]) == (1, 900_000_000, 50_000_000)
    assert b["max_num_orders"] == 200  # the symbol's 200 under the exchange's 1000
    assert (e["max_num_orders"], e["max_position"], e["min_notional"]) == (25, 100_000,
                                                                            10_000_000)
    off = risk.compile_filters(None, TABLE)
    assert (off["price_step"] == 1).all() and (off["min_qty"] == 0).all()


def test_a_finer_config_grid_gets_venue_steps():
    fine = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.001",
                                     "lot_size": "0.000001"}, TABLE_ROW_ETH])
    f = risk.compile_filters(RULES, fine)[0]
    assert (f["price_step"], f["qty_step"], f["min_price"], f["min_qty"]) == (10, 10, 10, 10)
    assert f["min_notional"] == 50_000_000 * 100  # the unit is 100 times smaller
    coarse = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.1",
                                       "lot_size": "0.00001"}, TABLE_ROW_ETH])
    with pytest.raises(ValueError, match="BTCUSDT tick size.*0.01 is not a whole multiple"):
        risk.compile_filters(RULES, coarse)


TABLE_ROW_ETH = {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.0001"}
MID2 = 2 * 6_000_000  # mid 60000.00


def _f(**fields):
    f = np.zeros(1, risk.FILTER)
    f["price_step"] = f["qty_step"] = 1
    for k, v in fields.items():
        f[0][k] = v
    return f[0]


# (filter fields, passing (side, price, lo, hi), refused (side, price, lo, hi), reason)
BOUNDS = [
    ({"price_step": 5}, (BID, 6_000_005, 1, 1), (BID, 6_000_004, 1, 1), R.PRICE_TICK),
    ({"min_price": 100}, (BID, 100, 1, 1), (BID, 99, 1, 1), R.PRICE_RANGE),
    ({"max_price": 7_000_000}, (ASK, 7_000_000, 1, 1), (ASK, 7_000_001, 1, 1),
     R.PRICE_RANGE),
    ({"qty_step": 10}, (BID, 6_000_000, 20, 30), (BID, 6_000_000, 20, 31), R.LOT_STEP),
    ({"qty_step": 10}, (BID, 6_000_000, 20, 30), (BID, 6_000_000, 21, 30), R.LOT_STEP),
    ({"min_qty": 5}, (BID, 6_000_000, 5, 50), (BID, 6_000_000, 4, 50), R.MIN_QTY),
    ({"max_qty": 50}, (BID, 6_000_000, 5, 50), (BID, 6_000_000, 5, 51), R.LOT_MAX_QTY),
    ({"min_notional": 60_000_000}, (BID, 6_000_000, 10, 10), (BID, 5_999_999, 10, 10),
     R.MIN_NOTIONAL),
    ({"max_notional": 60_000_000}, (ASK, 6_000_000, 10, 10), (ASK, 6_000_000, 10, 11),
     R.NOTIONAL_MAX),
    # BUY within 0.8 .. 1.1 of the mid, SELL within 0.9 .. 1.2 (PERCENT_PRICE_BY_SIDE)
    ({"bid_up_ppm": 1_100_000, "bid_down_ppm": 800_000, "ask_up_ppm": 1_200_000,
      "ask_down_ppm": 900_000}, (BID, 6_600_000, 1, 1), (BID, 6_600_001, 1, 1),
     R.PERCENT_PRICE),
    ({"bid_up_ppm": 1_100_000, "bid_down_ppm": 800_000, "ask_up_ppm": 1_200_000,
      "ask_down_ppm": 900_000}, (BID, 4_800_000, 1, 1), (BID, 4_799_999, 1, 1),
     R.PERCENT_PRICE),
    ({"bid_up_ppm": 1_100_000, "bid_down_ppm": 800_000, "ask_up_ppm": 1_200_000,
      "ask_down_ppm": 900_000}, (ASK, 7_200_000, 1, 1), (ASK, 7_200_001, 1, 1),
     R.PERCENT_PRICE),
    ({"bid_up_ppm": 1_100_000, "bid_down_ppm": 800_000, "ask_up_ppm": 1_200_000,
      "ask_down_ppm": 900_000}, (ASK, 5_400_000, 1, 1), (ASK, 5_399_999, 1, 1),
     R.PERCENT_PRICE),
]


@pytest.mark.parametrize("fields,ok,bad,reason", BOUNDS,
                         ids=[f"{b[3].name.lower()}-{i}" for i, b in enumerate(BOUNDS)])
def test_each_filter_boundary(fields, ok, bad, reason):
    f = _f(**fields)
    assert risk.venue_filters(f, *ok, MID2) == R.OK
    assert risk.venue_filters(f, *bad, MID2) == reason


def test_rules_off_pass_everything():
    assert risk.venue_filters(_f(), BID, 1, 1, 1, MID2) == R.OK
    assert risk.venue_filters(_f(), ASK, 10**12, 10**6, 10**6, MID2) == R.OK


def test_max_position_counts_holdings_open_buys_and_fills():
    filters = risk.compile_filters(RULES, TABLE)
    p = np.zeros(1, POSITION)
    p[0]["position"] = 2_000  # the OMS position when the balance was read
    risk.set_holding(filters, 1, 90_000, 2_000)  # 9 ETH held: 1 ETH of room under 10
    f = filters[1]
    assert risk._venue_position(f, p[0], BID, 10_000, 0) == R.OK
    assert risk._venue_position(f, p[0], BID, 10_001, 0) == R.VENUE_MAX_POSITION
    assert risk._venue_position(f, p[0], ASK, 10**6, 0) == R.OK  # sells never breach it
    p[0]["open_buy"] = 4_000
    assert risk._venue_position(f, p[0], BID, 6_001, 0) == R.VENUE_MAX_POSITION
    assert risk._venue_position(f, p[0], BID, 6_001, -4_000) == R.OK  # replacing that buy
    p[0]["position"] = 1_000  # sold 0.1 ETH since: room grows by as much
    assert risk._venue_position(f, p[0], BID, 7_000, 0) == R.OK


def test_rules_from_the_exchange_rules_file(tmp_path):
    import json
    path = tmp_path / "exchangeInfo.json"
    path.write_text(json.dumps(exchange_info()))
    view = risk.RiskLimits(exchange_rules=str(path)).view(TABLE)
    assert view.filters[0]["min_notional"] == 50_000_000 and view.filters[1]["max_num_orders"] == 25
    assert (risk.RiskLimits().view(TABLE).filters["min_qty"] == 0).all()  # none by default
    wrong = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.1",
                                      "lot_size": "0.00001"}])
    with pytest.raises(E.RulesMismatch, match=f"file {path}.*tick_size 0.1"):
        risk.RiskLimits(exchange_rules=str(path)).view(wrong)
    with pytest.raises(E.ExchangeInfoError, match="exchange_rules .*missing.json"):
        risk.RiskLimits(exchange_rules=str(tmp_path / "missing.json")).view(TABLE)


# ---------------------------------------------------------------- against filters.md, in decimals
FINE = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.001",
                                 "lot_size": "0.0001"}])  # 10 config ticks / lots per venue one


def _dec(n: int, places: int) -> str:
    return str(D(n).scaleb(-places))


entries = st.fixed_dictionaries({
    "min_price": st.sampled_from([0, 1, 500, 59_000]),  # venue ticks of 0.01
    "max_price": st.sampled_from([0, 61_000, 1_000_000]),
    "min_qty": st.sampled_from([1, 5, 20]),  # venue lots of 0.001
    "max_qty": st.sampled_from([50, 400, 9_000]),
    "min_notional": st.integers(0, 30_000_000_000),  # 1e-8 USDT: 0 .. 300
    "max_notional": st.sampled_from([0, 20_000_000_000, 10**12]),
    # multipliers in 1e-4: up 0.9 .. 3, down 0.0001 .. 1.1
    "mult": st.tuples(st.integers(9_000, 30_000), st.integers(1, 11_000),
                      st.integers(9_000, 30_000), st.integers(1, 11_000)),
})
off_grid = st.sampled_from([0, 0, 0, 0, 0, 0, 3])  # mostly on the venue's grid
# (side, mid in venue ticks, price - mid in venue ticks, price off-grid part in config
# ticks, open qty in venue lots, its off-grid part, total - open in venue lots, its part)
orders = st.tuples(st.sampled_from([BID, ASK]), st.integers(50_000, 70_000),
                   st.integers(-3_000, 3_000), off_grid, st.integers(1, 500), off_grid,
                   st.integers(0, 300), off_grid)


@settings(max_examples=400, deadline=None)
@given(e=entries, o=orders)
def test_venue_filters_agree_with_filters_md_in_decimals(e, o):
    up_b, down_b, up_a, down_a = (_dec(m, 4) for m in e["mult"])
    filters = [
        {"filterType": "PRICE_FILTER", "minPrice": _dec(e["min_price"], 2),
         "maxPrice": _dec(e["max_price"], 2), "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": _dec(e["min_qty"], 3),
         "maxQty": _dec(e["max_qty"], 3), "stepSize": "0.001"},
        {"filterType": "NOTIONAL", "minNotional": _dec(e["min_notional"], 8),
         "maxNotional": _dec(e["max_notional"], 8)},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": up_b,
         "bidMultiplierDown": down_b, "askMultiplierUp": up_a, "askMultiplierDown": down_a}]
    rules = E.parse(exchange_info([{**exchange_info()["symbols"][0], "filters": filters}]))
    f = risk.compile_filters(rules, FINE)[0]
    side, mid_v, delta_v, p_off, lo_v, lo_off, extra_v, hi_off = o
    mid_t, price_t = 10 * mid_v, 10 * (mid_v + delta_v) + p_off  # config ticks (0.001)
    lo_l = 10 * lo_v + lo_off  # config lots (0.0001)
    hi_l = lo_l + 10 * extra_v + hi_off
    got = risk.venue_filters(f, side, price_t, lo_l, hi_l, 2 * mid_t)
    # the model: filters.md's rules on decimal prices and quantities
    price, mid = D(price_t) * D("0.001"), D(mid_t) * D("0.001")
    lo, hi = D(lo_l) * D("0.0001"), D(hi_l) * D("0.0001")
    min_p, max_p = D(e["min_price"]) / 100, D(e["max_price"]) / 100
    up, down = (D(up_b), D(down_b)) if side == BID else (D(up_a), D(down_a))
    broken = set()
    if price % D("0.01") != 0:
        broken.add(R.PRICE_TICK)
    if price < min_p or (max_p and price > max_p):
        broken.add(R.PRICE_RANGE)
    if lo % D("0.001") != 0 or hi % D("0.001") != 0:
        broken.add(R.LOT_STEP)
    if lo < D(e["min_qty"]) / 1000:
        broken.add(R.MIN_QTY)
    if hi > D(e["max_qty"]) / 1000:
        broken.add(R.LOT_MAX_QTY)
    if price * lo < D(e["min_notional"]).scaleb(-8):
        broken.add(R.MIN_NOTIONAL)
    if e["max_notional"] and price * hi > D(e["max_notional"]).scaleb(-8):
        broken.add(R.NOTIONAL_MAX)
    if price > mid * up or price < mid * down:
        broken.add(R.PERCENT_PRICE)
    assert (got == R.OK) == (not broken), (got, broken)
    assert got == R.OK or R(got) in broken


def test_market_orders_meet_the_lot_rules():
    f = _f(qty_step=10, min_qty=20, max_qty=100)
    assert risk.lot_filters(f, 20, 100) == R.OK
    assert risk.lot_filters(f, 25, 100) == R.LOT_STEP
    assert risk.lot_filters(f, 10, 100) == R.MIN_QTY
    assert risk.lot_filters(f, 20, 110) == R.LOT_MAX_QTY


def test_check_applies_the_rules_to_new_orders_replaces_and_market_orders():
    """Through ``risk.check``: a new limit order, a market order (lot rules only) and a
    replace (its open quantity against the minimums, its total against the maximums)."""
    from pipeline.orders import views as V
    from shm_layouts import oms as L
    from shm_layouts.records import ORDER_INTENT, OrderAction, OrderType, OrdStatus
    words = np.zeros(L.CONTROL_WORDS, np.int64)
    words[L.W_READY] = 1
    orders = np.zeros(L.ORDER_SLOTS, L.ORDER)
    om = V.OmsView(words, orders, np.zeros(L.MAX_INSTRUMENTS, L.POSITION),
                   np.zeros((4, 8), np.int64), np.zeros(8, np.int64))
    limits = risk.RiskLimits(max_qty="1", max_notional="100000", max_position="1",
                             price_band_bps=500)
    rk = limits.view(TABLE, RULES)  # BTCUSDT: minQty 1 lot, NOTIONAL >= 5 USDT
    now = 10**12
    rk.marks[0] = (5_999_999, 6_000_001, now, 0)  # mid 60000.00
    r = np.zeros(1, ORDER_INTENT)[0]

    def intent(action, cl, qty, ord_type=OrderType.LIMIT, orig=0):
        r["action"], r["cl_ord_id"], r["orig_cl_ord_id"] = int(action), cl, orig
        r["symbol_id"], r["side"], r["price"], r["qty"] = 0, BID, 6_000_000, qty
        r["ord_type"], r["tif"] = int(ord_type), 1
        return risk.check(om, rk, r, now)

    assert intent(OrderAction.NEW, 1, 8) == R.MIN_NOTIONAL  # 8 lots x 60000 = 4.8 USDT
    assert intent(OrderAction.NEW, 1, 9) == R.OK  # 5.4 USDT
    assert intent(OrderAction.NEW, 1, 8, OrderType.MARKET) == R.OK  # no price: lots only
    rk.filters[0]["min_qty"] = 10
    assert intent(OrderAction.NEW, 1, 9, OrderType.MARKET) == R.MIN_QTY
    rk.filters[0]["min_qty"] = 1
    # a live order of 20 lots, 12 filled: a replace to 20 leaves 8 open (4.8 USDT)
    o = orders[5]
    o["cl_ord_id"], o["symbol_id"], o["side"], o["price"] = 5, 0, BID, 6_000_000
    o["qty"], o["cum_qty"], o["leaves_qty"] = 20, 12, 8
    o["status"] = int(OrdStatus.PARTIALLY_FILLED)
    assert intent(OrderAction.REPLACE, 6, 20, orig=5) == R.MIN_NOTIONAL
    assert intent(OrderAction.REPLACE, 6, 21, orig=5) == R.OK
    rk.filters[0]["max_qty"] = 20
    assert intent(OrderAction.REPLACE, 6, 21, orig=5) == R.LOT_MAX_QTY  # the total counts
