"""Exchange rules from ``GET /api/v3/exchangeInfo``: the filters a post-only limit order
can hit, as int64 ticks/lots of each instrument, cross-checked against the config.

Filters read (filters.md): PRICE_FILTER (minPrice, maxPrice, tickSize), LOT_SIZE (minQty,
maxQty, stepSize), MIN_NOTIONAL and NOTIONAL (min/max of price x quantity), PERCENT_PRICE
and PERCENT_PRICE_BY_SIDE (price within multipliers of the reference price), MAX_NUM_ORDERS
(open orders per symbol), MAX_POSITION (base asset held + open buys) and the exchange
filter EXCHANGE_MAX_NUM_ORDERS. The rest (iceberg, market, algo, trailing, order-list
filters) cannot apply to the limit orders this pipeline sends.

Values that define a grid must convert exactly (``pipeline.units``); bounds in quote
currency (notional) become whole tick x lot units rounded inwards (min up, max down), so the
integer comparison in risk is the same as the decimal one. Multipliers are parts per
million. The body is cached on disk (``[binance] exchange_info_dir``, mode 0600); the cache
is used instead of the venue only when ``exchange_info_max_age_s`` > 0 allows it (off by
default: the signed REST reconcile needs the venue anyway, so a venue whose REST API is
down cannot be traded safely with stale rules either).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from pipeline.binance.rest import BinanceError, VenueUnreachable
from pipeline.instruments import Instrument, OffGrid, SymbolTable, to_units

log = logging.getLogger(__name__)
PPM_DECIMALS = 6  # multipliers: parts per million (to_units on 10**-6)
PPM = 10**PPM_DECIMALS
POST_ONLY_TYPE = "LIMIT_MAKER"


class ExchangeInfoError(ValueError):
    """An exchangeInfo body this pipeline cannot trade with (missing or unusable filter)."""


class RulesMismatch(ValueError):
    """The venue's rules disagree with the config's ``[[instruments]]`` (every problem in
    one message)."""


@dataclass(frozen=True)
class SymbolRules:
    """One symbol's filters on its own grid: prices in ticks of ``tick_size``, quantities
    in lots of ``step_size``, notionals in tick x lot units; 0 = the rule is off."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    tick_size: str
    step_size: str
    order_types: tuple[str, ...]
    min_price: int = 0
    max_price: int = 0
    min_qty: int = 0
    max_qty: int = 0
    min_notional: int = 0
    max_notional: int = 0
    bid_up_ppm: int = 0  # PERCENT_PRICE(_BY_SIDE): BUY price <= ref * bid_up
    bid_down_ppm: int = 0
    ask_up_ppm: int = 0
    ask_down_ppm: int = 0
    max_num_orders: int = 0
    max_position: int = 0  # lots of the base asset (held + open buys)

    def grid(self) -> Instrument:
        return Instrument(self.symbol, "spot", self.tick_size, self.step_size)


@dataclass(frozen=True)
class RateLimit:
    kind: str  # REQUEST_WEIGHT, ORDERS, RAW_REQUESTS
    interval: str  # SECOND, MINUTE, DAY
    interval_num: int
    limit: int


@dataclass(frozen=True)
class ExchangeRules:
    symbols: dict[str, SymbolRules]
    max_num_orders: int = 0  # EXCHANGE_MAX_NUM_ORDERS (account-wide), 0 = none
    rate_limits: tuple[RateLimit, ...] = ()
    server_time_ms: int = 0
    source: str = "venue"  # or "cache <path> (<age> s old)"


def _filters(entry: dict) -> dict[str, dict]:
    return {f["filterType"]: f for f in entry.get("filters", []) if "filterType" in f}


def _inward(value: str, unit: Decimal, up: bool) -> int:
    """``value / unit`` rounded inwards for a bound: up for a minimum, down for a maximum."""
    q = Decimal(value) / unit
    return int(math.ceil(q) if up else math.floor(q))


def _ppm(text, what: str) -> int:
    return to_units(str(text), PPM_DECIMALS, 1, what)


def parse_symbol(entry: dict) -> SymbolRules:
    """One element of exchangeInfo ``symbols``; raises ``ExchangeInfoError`` naming it."""
    sym = str(entry.get("symbol", "?"))
    try:
        return _parse_symbol(sym, entry)
    except ExchangeInfoError:
        raise
    except (KeyError, OffGrid, ValueError, ArithmeticError) as e:
        raise ExchangeInfoError(f"exchangeInfo {sym}: {type(e).__name__}: {e}") from None


def _parse_symbol(sym: str, entry: dict) -> SymbolRules:
    f = _filters(entry)
    if "PRICE_FILTER" not in f or "LOT_SIZE" not in f:
        raise ExchangeInfoError(f"exchangeInfo {sym}: no PRICE_FILTER / LOT_SIZE filter")
    pf, lf = f["PRICE_FILTER"], f["LOT_SIZE"]
    if Decimal(pf["tickSize"]) <= 0 or Decimal(lf["stepSize"]) <= 0:
        raise ExchangeInfoError(f"exchangeInfo {sym}: tickSize {pf['tickSize']} / stepSize "
                                f"{lf['stepSize']}: a zero grid cannot be traded in ticks")
    rules = SymbolRules(sym, str(entry.get("status", "")), str(entry.get("baseAsset", "")),
                        str(entry.get("quoteAsset", "")), _plain(pf["tickSize"]),
                        _plain(lf["stepSize"]), tuple(entry.get("orderTypes", ())))
    g = rules.grid()
    unit = Decimal(rules.tick_size) * Decimal(rules.step_size)
    mins = [_inward(x["minNotional"], unit, True) for k in ("MIN_NOTIONAL", "NOTIONAL")
            if (x := f.get(k)) and Decimal(x.get("minNotional", "0")) > 0]
    nf = f.get("NOTIONAL", {})
    pct = f.get("PERCENT_PRICE_BY_SIDE")
    if pct is not None:
        mult = (pct["bidMultiplierUp"], pct["bidMultiplierDown"], pct["askMultiplierUp"],
                pct["askMultiplierDown"])
    elif (pp := f.get("PERCENT_PRICE")) is not None:
        mult = (pp["multiplierUp"], pp["multiplierDown"]) * 2
    else:
        mult = ("0",) * 4
    pos = f.get("MAX_POSITION", {}).get("maxPosition", "0")
    return replace(
        rules,
        min_price=g.ticks(pf.get("minPrice", "0")), max_price=g.ticks(pf.get("maxPrice", "0")),
        min_qty=g.lots(lf.get("minQty", "0")), max_qty=g.lots(lf.get("maxQty", "0")),
        min_notional=max(mins, default=0),
        max_notional=_inward(nf["maxNotional"], unit, False)
        if Decimal(nf.get("maxNotional", "0")) > 0 else 0,
        bid_up_ppm=_ppm(mult[0], f"{sym} bid multiplier up"),
        bid_down_ppm=_ppm(mult[1], f"{sym} bid multiplier down"),
        ask_up_ppm=_ppm(mult[2], f"{sym} ask multiplier up"),
        ask_down_ppm=_ppm(mult[3], f"{sym} ask multiplier down"),
        max_num_orders=int(f.get("MAX_NUM_ORDERS", {}).get("maxNumOrders", 0)),
        max_position=_inward(pos, Decimal(rules.step_size), False))


def _plain(text: str) -> str:
    """"0.01000000" -> "0.01" (the form ``Instrument`` and the config use)."""
    return format(Decimal(text).normalize(), "f")


def parse(info: dict, source: str = "venue") -> ExchangeRules:
    """A whole exchangeInfo body."""
    if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
        raise ExchangeInfoError("exchangeInfo: no 'symbols' list in the body")
    symbols = {}
    for entry in info["symbols"]:
        r = parse_symbol(entry)
        symbols[r.symbol] = r
    ex = {f.get("filterType"): f for f in info.get("exchangeFilters", [])}
    limits = tuple(RateLimit(str(x["rateLimitType"]), str(x["interval"]),
                             int(x["intervalNum"]), int(x["limit"]))
                   for x in info.get("rateLimits", []) if "rateLimitType" in x)
    return ExchangeRules(symbols,
                         int(ex.get("EXCHANGE_MAX_NUM_ORDERS", {}).get("maxNumOrders", 0)),
                         limits, int(info.get("serverTime", 0)), source)


def cross_check(rules: ExchangeRules, table: SymbolTable) -> None:
    """Every configured instrument must be listed, TRADING, take LIMIT_MAKER orders and
    have exactly the venue's tick and step (so a price in ticks means the same to both).
    Raises ``RulesMismatch`` listing every problem."""
    problems = []
    for inst in table:
        r = rules.symbols.get(inst.symbol)
        if r is None:
            problems.append(f"{inst.symbol}: not listed by the venue")
            continue
        if inst.venue != "spot":
            problems.append(f"{inst.symbol}: venue {inst.venue!r} in the config, but these "
                            "are Binance Spot rules")
        if Decimal(inst.tick_size) != Decimal(r.tick_size):
            problems.append(f"{inst.symbol}: tick_size {inst.tick_size} in the config, "
                            f"tickSize {r.tick_size} at the venue")
        if Decimal(inst.lot_size) != Decimal(r.step_size):
            problems.append(f"{inst.symbol}: lot_size {inst.lot_size} in the config, "
                            f"stepSize {r.step_size} at the venue")
        if r.status != "TRADING":
            problems.append(f"{inst.symbol}: status {r.status or '?'} (not TRADING)")
        if r.order_types and POST_ONLY_TYPE not in r.order_types:
            problems.append(f"{inst.symbol}: the venue takes no {POST_ONLY_TYPE} orders")
    if problems:
        raise RulesMismatch(f"exchange rules ({rules.source}) vs the config's "
                            f"[[instruments]]: " + "; ".join(problems))


# ---------------------------------------------------------------------- cache + start-up
def cache_path(directory: str | Path, rest_url: str) -> Path:
    host = urlparse(rest_url).netloc.replace(":", "_") or "venue"
    return Path(directory) / f"exchangeInfo-{host}.json"


def write_cache(path: Path, info: dict) -> None:
    """Atomic write, mode 0600 (whatever the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_rules(rest, table: SymbolTable, cache_dir: str | Path,
               max_cache_age_s: float = 0) -> ExchangeRules:
    """The rules for ``table``'s symbols from the venue (``rest``: a ``SignedRest``),
    cached; from the cache only when the venue is unreachable and the cache is at most
    ``max_cache_age_s`` old (0: never). Cross-checked against ``table`` either way."""
    path = cache_path(cache_dir, rest.settings.base_url)
    symbols = [i.symbol for i in table]
    try:
        info = rest.exchange_info(symbols)
    except VenueUnreachable as e:
        age = time.time() - path.stat().st_mtime if path.exists() else None
        if age is None or max_cache_age_s <= 0 or age > max_cache_age_s:
            why = ("no cached copy" if age is None else
                   f"the cached copy {path} is {age:.0f} s old; [binance] "
                   f"exchange_info_max_age_s = {max_cache_age_s:g} does not allow it")
            raise VenueUnreachable(f"{e}; exchange rules: {why}") from None
        log.warning("%s; using the cached exchange rules %s (%.0f s old)", e, path, age)
        rules = parse(json.loads(path.read_text()), f"cache {path} ({age:.0f} s old)")
    except BinanceError as e:
        if e.code == -1121:  # Invalid symbol
            raise RulesMismatch(f"exchange rules: the venue lists not all of "
                                f"{', '.join(symbols)} ({e})") from None
        raise
    else:
        rules = parse(info)
        write_cache(path, info)
    cross_check(rules, table)
    return rules
