"""Config values checked at start-up: types, ranges and cross-references.

``config.check`` knows the keys; this knows what each value may be. ``problems`` walks the
merged config once and returns every problem as one line (``[gateway] heartbeat_s = 0:
must be a whole number > 0``), so an operator fixes them all in one go; ``config.load``
raises them together in one ``ConfigError``. A rule is one entry of ``RULES`` (a key's
value alone), ``SYMBOL_TABLES`` (a table keyed by symbol) or ``ORDERED`` (two keys of a
section); adding a key with a constraint means adding one line here.

Per-symbol tables may only name symbols of ``[[instruments]]``; the ones that come from
``config/default.toml`` alone are defaults for its instruments and are dropped
(``drop_default_symbols``) when a config trades others.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.instruments import VENUE_KINDS, Instrument, OffGrid

Check = Callable[[Any], str | None]  # the value -> what is wrong with it, or None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def whole(low: int, high: int | None = None) -> Check:
    """An integer in ``low..high``."""
    def check(v):
        if not _is_int(v):
            return "must be a whole number"
        if v < low or (high is not None and v > high):
            return f"must be a whole number {low}..{high}" if high is not None else \
                f"must be a whole number >= {low}" if low != 1 else \
                "must be a whole number > 0"
        return None
    return check


def number(positive: bool) -> Check:
    """A number > 0 (``positive``) or >= 0."""
    def check(v):
        if not _is_number(v):
            return "must be a number"
        if v < 0 or (positive and v == 0):
            return "must be > 0" if positive else "must be >= 0"
        return None
    return check


def decimal(positive: bool) -> Check:
    """A decimal quantity (a string such as ``"0.01"``, or a number) > 0 or >= 0."""
    def check(v):
        if not (isinstance(v, str) or _is_number(v)):
            return 'must be a decimal string such as "0.01"'
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            return 'is not a decimal number (write e.g. "0.01")'
        if not d.is_finite() or d < 0 or (positive and d == 0):
            return "must be > 0" if positive else "must be >= 0"
        return None
    return check


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def text(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def string(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def name(v: Any) -> str | None:
    ok = isinstance(v, str) and v and all(c.isalnum() or c in "_-" for c in v)
    return None if ok else "must be non-empty letters, digits, '_' or '-'"


def one_of(*choices: str) -> Check:
    def check(v):
        return None if v in choices else f"must be one of {', '.join(map(repr, choices))}"
    return check


PORT = whole(1, 65535)
ANY_PORT = whole(0, 65535)  # 0: the OS picks one
POSITIVE, NON_NEGATIVE = whole(1), whole(0)
SECONDS = number(True)
TLS = {"server_name": string, "ca_file": string, "tls_verify": flag,
       "handshake_timeout_s": SECONDS}

# section -> key -> check (keys not listed: only their presence is checked, by config.check)
RULES: dict[str, dict[str, Check]] = {
    "instance": {"name": name},
    "strategy": {
        "gamma": number(True), "k": number(True), "arrival_rate_prior": number(True),
        "sigma2_prior": number(False), "vol_halflife_s": SECONDS, "rate_halflife_s": SECONDS,
        "levels": whole(1, 8), "level_spacing_ticks": POSITIVE, "requote_ticks": NON_NEGATIVE,
        "stale_ms": POSITIVE, "max_book_age_ms": POSITIVE, "reject_cooldown_ms": NON_NEGATIVE,
        "max_orders_per_s": NON_NEGATIVE, "requote_retry_ms": POSITIVE,
    },
    "sim": {
        "host": text, "md_port": ANY_PORT, "sbe_port": ANY_PORT, "rest_port": ANY_PORT,
        "fix_port": ANY_PORT, "sbe_depth_ms": POSITIVE, "sbe_depth20_ms": POSITIVE,
        "seed": NON_NEGATIVE, "rate": number(False), "comp_id": text, "state_dir": text,
        "depth_ms": POSITIVE, "depth_fast_ms": POSITIVE, "max_order_lots": NON_NEGATIVE,
        "max_open_orders": NON_NEGATIVE, "first_update_id": POSITIVE, "tls": flag,
        "tls_cert": string, "tls_key": string, "ca_file": string,
    },
    "gateway": {
        "host": text, "port": PORT, "sender_comp_id": text, "target_comp_id": text,
        "username": string, "password_env": string, "heartbeat_s": POSITIVE,
        "state_dir": text, "book_ring": string, "reconcile_timeout_s": SECONDS,
        "shutdown_timeout_s": SECONDS, "backoff_min_s": SECONDS, "backoff_max_s": SECONDS,
        "reset_on_logon": flag, "logon_timeout_s": SECONDS, "resend_app": flag, "tls": flag,
        **TLS,
    },
    "risk": {
        "max_qty": decimal(False), "max_notional": decimal(False),
        "max_position": decimal(False), "price_band_bps": POSITIVE,
        "max_orders_per_s": NON_NEGATIVE, "max_cancels_per_s": NON_NEGATIVE,
        "max_open_orders": NON_NEGATIVE, "stale_md_ms": POSITIVE,
    },
    "feed": {
        "url": text, "rest_url": text, "stale_ms": POSITIVE,
        "snapshot_limit": whole(1, 5000), "max_snapshot_retries": NON_NEGATIVE,
        "reconnect_min_ms": POSITIVE, "reconnect_max_ms": POSITIVE, "recv_buffer": POSITIVE,
        "md_format": one_of("json", "sbe"), "api_key_env": string, "max_conn_s": POSITIVE,
        **TLS,
    },
}
# (section, lower, upper): lower must not exceed upper
ORDERED = [("gateway", "backoff_min_s", "backoff_max_s"),
           ("feed", "reconnect_min_ms", "reconnect_max_ms")]
# tables keyed by symbol: path -> (what each value is, on which grid: "lots", "ticks", None)
SYMBOL_TABLES: dict[tuple[str, str], tuple[Check, str | None]] = {
    ("strategy", "quote_qty"): (decimal(True), "lots"),
    ("strategy", "max_position"): (decimal(False), "lots"),
    ("sim", "start_prices"): (decimal(True), "ticks"),
    ("sim", "mean_qty"): (decimal(True), "lots"),
}
RISK_PER_SYMBOL = {"max_qty": "lots", "max_notional": None, "max_position": "lots"}


def _say(section: str, key: str, value: Any, problem: str) -> str:
    return f"[{section}] {key} = {value!r}: {problem}"


def _instruments(config: dict, out: list[str]) -> dict[str, Instrument]:
    rows = config.get("instruments")
    if not isinstance(rows, list) or not rows:
        out.append("[[instruments]]: none configured (each needs symbol, tick_size, lot_size)")
        return {}
    found: dict[str, Instrument] = {}
    for n, row in enumerate(rows, start=1):
        where = f"[[instruments]] #{n}"
        missing = [k for k in ("symbol", "tick_size", "lot_size") if k not in row]
        if missing:
            out.append(f"{where}: missing {', '.join(missing)}")
            continue
        sym = row["symbol"]
        if text(sym) or not sym.replace("_", "").isalnum():
            out.append(f"{where}: symbol = {sym!r}: must be letters, digits or '_'")
            continue
        where = f"[[instruments]] {sym}"
        bad = False
        for key in ("tick_size", "lot_size"):
            if problem := decimal(True)(row[key]):
                out.append(f"{where}: {key} = {row[key]!r}: {problem}")
                bad = True
        venue = row.get("venue", "spot")
        if venue not in VENUE_KINDS:
            out.append(f"{where}: venue = {venue!r}: must be one of "
                       f"{', '.join(map(repr, VENUE_KINDS))}")
            bad = True
        if sym.upper() in found:
            out.append(f"{where}: listed twice")
        elif not bad:
            found[sym.upper()] = Instrument(sym, venue, str(row["tick_size"]),
                                            str(row["lot_size"]))
    return found


def _on_grid(inst: Instrument | None, grid: str | None, value: Any) -> str | None:
    if inst is None or grid is None:
        return None
    try:
        (inst.lots if grid == "lots" else inst.ticks)(str(value))
    except OffGrid as e:
        return f"not a whole number of {grid} ({e})"
    return None


def _symbol_value(where: str, key: str, value: Any, check: Check, inst, grid) -> str | None:
    problem = check(value) or _on_grid(inst, grid, value)
    return f"{where} {key} = {value!r}: {problem}" if problem else None


def _symbols(config: dict, known: dict[str, Instrument], out: list[str]) -> None:
    def unknown(where: str, sym: str) -> None:
        out.append(f"{where}: {sym!r} is not in [[instruments]] "
                   f"({', '.join(known) or 'none'})")

    for (section, key), (check, grid) in SYMBOL_TABLES.items():
        table = config.get(section, {}).get(key)
        if table is None:
            continue
        if not isinstance(table, dict):
            out.append(_say(section, key, table, "must be a table of symbol = value"))
            continue
        for sym, value in table.items():
            if known and sym.upper() not in known:
                unknown(f"[{section}] {key}", sym)
            elif p := _symbol_value(f"[{section}]", f"{key}.{sym}", value, check,
                                    known.get(sym.upper()), grid):
                out.append(p)
    for sym, limits in config.get("risk", {}).get("per_symbol", {}).items():
        if known and sym.upper() not in known:
            unknown("[risk.per_symbol]", sym)
            continue
        for key, grid in RISK_PER_SYMBOL.items():
            if key not in limits:
                out.append(f"[risk.per_symbol.{sym}]: missing {key}")
            elif p := _symbol_value(f"[risk.per_symbol.{sym}]", key, limits[key],
                                    decimal(False), known.get(sym.upper()), grid):
                out.append(p)
    for key in ("max_qty", "max_position"):  # the defaults apply to every instrument
        value = config.get("risk", {}).get(key)
        for inst in known.values():
            if value is not None and not decimal(False)(value) and (
                    p := _on_grid(inst, "lots", value)):
                out.append(f"[risk] {key} = {value!r}: for {inst.symbol}: {p}")
    wanted = config.get("sim", {}).get("symbols", [])
    if not isinstance(wanted, list):
        out.append(_say("sim", "symbols", wanted, "must be a list of symbols"))
    else:
        for sym in wanted:
            if not isinstance(sym, str) or (known and sym.upper() not in known):
                unknown("[sim] symbols", sym)


def _accounts(config: dict, out: list[str]) -> None:
    for n, row in enumerate(config.get("sim", {}).get("accounts", []), start=1):
        if text(row.get("username")):
            out.append(f"[[sim.accounts]] #{n}: username must be a non-empty string")


def problems(config: dict, trading: bool = False) -> list[str]:
    """Every problem of ``config`` (merged), one line each; ``trading``: also what
    ``hft run`` needs (a quote size and a position limit for every instrument)."""
    out: list[str] = []
    known = _instruments(config, out)
    for section, rules in RULES.items():
        table = config.get(section, {})
        if not isinstance(table, dict):
            out.append(f"[{section}] must be a table")
            continue
        for key, check in rules.items():
            if key in table and (problem := check(table[key])):
                out.append(_say(section, key, table[key], problem))
    for section, low, high in ORDERED:
        t = config.get(section, {})
        if _is_number(t.get(low)) and _is_number(t.get(high)) and t[low] > t[high]:
            out.append(f"[{section}] {low} = {t[low]!r} is above {high} = {t[high]!r}")
    _symbols(config, known, out)
    _accounts(config, out)
    if trading:
        strategy = config.get("strategy", {})
        for key in ("quote_qty", "max_position"):
            missing = [s for s in known if s not in {k.upper() for k in
                                                     strategy.get(key, {})}]
            if missing:
                out.append(f"[strategy] {key}: no value for {', '.join(missing)} "
                           f"(every instrument needs one)")
    return out


def drop_default_symbols(config: dict, default: dict, user: dict) -> dict:
    """``config`` without the per-symbol entries that only ``default`` names for symbols
    that are not instruments (a config trading other symbols inherits them otherwise)."""
    known = {str(r.get("symbol", "")).upper() for r in config.get("instruments", [])
             if isinstance(r, dict)}
    paths = [*SYMBOL_TABLES, ("risk", "per_symbol")]
    for section, key in paths:
        table = config.get(section, {}).get(key)
        if not isinstance(table, dict):
            continue
        mine = user.get(section, {}).get(key, {})
        theirs = default.get(section, {}).get(key, {})
        for sym in list(table):
            if sym.upper() not in known and sym not in mine and sym in theirs:
                del table[sym]
    return config
