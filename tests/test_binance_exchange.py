"""exchangeInfo: every filter a post-only limit order can hit, parsed exactly into ticks,
lots and tick x lot units; the cross-check against the config; the on-disk cache."""

import json
import os

import pytest
from binance_venue import BTC, ETH, Venue, exchange_info

from pipeline.binance import exchange as E
from pipeline.binance.rest import RestSettings, SignedRest, VenueUnreachable
from pipeline.instruments import SymbolTable

TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"},
    {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.0001"}])


def test_parse_real_shaped_body():
    rules = E.parse(exchange_info())
    b, e = rules.symbols["BTCUSDT"], rules.symbols["ETHUSDT"]
    assert (b.tick_size, b.step_size) == ("0.01", "0.00001")
    assert (b.min_price, b.max_price) == (1, 100_000_000)  # ticks of 0.01
    assert (b.min_qty, b.max_qty) == (1, 900_000_000)  # lots of 0.00001
    # NOTIONAL 5 .. 9e6 USDT in units of 0.01 x 0.00001 = 1e-7
    assert (b.min_notional, b.max_notional) == (50_000_000, 90_000_000_000_000)
    assert (b.bid_up_ppm, b.bid_down_ppm, b.ask_up_ppm, b.ask_down_ppm) == \
        (5_000_000, 200_000, 5_000_000, 200_000)
    assert (b.max_num_orders, b.max_position) == (200, 0)
    # PERCENT_PRICE applies to both sides; MIN_NOTIONAL 10 in units of 0.01 x 0.0001
    assert (e.bid_up_ppm, e.bid_down_ppm, e.ask_up_ppm, e.ask_down_ppm) == \
        (1_300_000, 700_000, 1_300_000, 700_000)
    assert (e.min_notional, e.max_notional) == (10_000_000, 0)
    assert (e.max_num_orders, e.max_position) == (25, 100_000)  # 10 ETH in lots of 0.0001
    assert rules.max_num_orders == 1000
    assert E.RateLimit("ORDERS", "SECOND", 10, 100) in rules.rate_limits


def test_notional_bounds_round_inwards():
    odd = {**BTC, "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "0", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "0", "stepSize": "0.001"},
        {"filterType": "NOTIONAL", "minNotional": "0.000015", "maxNotional": "0.000025"}]}
    r = E.parse_symbol(odd)  # unit 1e-5: min 1.5 -> 2 units, max 2.5 -> 2 units
    assert (r.min_notional, r.max_notional, r.max_price, r.max_qty) == (2, 2, 0, 0)


def test_unusable_bodies_name_the_symbol():
    no_lot = {**BTC, "filters": [BTC["filters"][0]]}
    with pytest.raises(E.ExchangeInfoError, match="^exchangeInfo BTCUSDT: no PRICE_FILTER / LOT"):
        E.parse_symbol(no_lot)
    off = {**BTC, "filters": [{**BTC["filters"][0], "minPrice": "0.015"}, BTC["filters"][1]]}
    with pytest.raises(E.ExchangeInfoError, match="BTCUSDT.*0.015"):
        E.parse_symbol(off)
    with pytest.raises(E.ExchangeInfoError, match="no 'symbols'"):
        E.parse({"code": -1000})


def test_cross_check_lists_every_mismatch_in_one_error():
    rules = E.parse(exchange_info())
    E.cross_check(rules, TABLE)
    bad = SymbolTable.from_config([
        {"symbol": "BTCUSDT", "tick_size": "0.1", "lot_size": "0.00001"},
        {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.001"},
        {"symbol": "XRPUSDT", "tick_size": "0.0001", "lot_size": "1"}])
    with pytest.raises(E.RulesMismatch) as err:
        E.cross_check(rules, bad)
    text = str(err.value)
    assert "BTCUSDT: tick_size 0.1 in the config, tickSize 0.01 at the venue" in text
    assert "ETHUSDT: lot_size 0.001 in the config, stepSize 0.0001 at the venue" in text
    assert "XRPUSDT: not listed by the venue" in text
    halted = E.parse(exchange_info([{**BTC, "status": "HALT", "orderTypes": ["LIMIT"]}, ETH]))
    with pytest.raises(E.RulesMismatch, match="status HALT.*no LIMIT_MAKER"):
        E.cross_check(halted, TABLE)


def test_load_rules_caches_and_refuses_a_stale_or_absent_cache(tmp_path):
    with Venue("k", hmac_secret="s") as v:
        rest = SignedRest(RestSettings(v.url))
        rules = E.load_rules(rest, TABLE, tmp_path)
        assert rules.source == "venue" and set(rules.symbols) == {"BTCUSDT", "ETHUSDT"}
        path = E.cache_path(tmp_path, v.url)
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert json.loads(path.read_text())["symbols"][0]["symbol"] == "BTCUSDT"
        query = v.requests[-1][1]
        assert query == "symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D"
        xrp = SymbolTable.from_config([{"symbol": "XRPUSDT", "tick_size": "0.0001",
                                        "lot_size": "1"}])
        with pytest.raises(E.RulesMismatch, match="not all of XRPUSDT.*-1121"):
            E.load_rules(rest, xrp, tmp_path)
    # the venue is gone now: the cache is used only when allowed and young enough
    with pytest.raises(VenueUnreachable, match="exchange_info_max_age_s = 0 does not allow"):
        E.load_rules(rest, TABLE, tmp_path)
    cached = E.load_rules(rest, TABLE, tmp_path, max_cache_age_s=3600)
    assert cached.source.startswith("cache ") and cached.symbols == rules.symbols
    os.utime(path, (0, 0))  # 1970: far too old
    with pytest.raises(VenueUnreachable, match="s old"):
        E.load_rules(rest, TABLE, tmp_path, max_cache_age_s=3600)
    with pytest.raises(VenueUnreachable, match="no cached copy"):
        E.load_rules(rest, TABLE, tmp_path / "empty", max_cache_age_s=3600)
