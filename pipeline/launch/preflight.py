"""Before ``hft run`` starts anything against a real Binance venue: everything that can be
checked, in the order that lets an offline host get as far as possible.

1. offline: the config (``[binance]``, TLS settings), the credentials (API key from its
   environment variable, the Ed25519 private key file and its passphrase), one signed
   request built (the key signs);
2. the network: the clock offset (``/api/v3/time``, refused beyond the recvWindow margin),
   the exchange rules for the configured instruments (cross-checked against them, and
   ``[strategy] quote_qty`` against their LOT_SIZE), the account (the key is registered
   and may trade).

Any failure is one ``PreflightError`` line naming the venue, the step and the cause.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from pipeline import config as cfgmod
from pipeline.binance import clock, exchange
from pipeline.binance.rest import BinanceError, CredentialError, SignedRest, VenueUnreachable
from pipeline.instruments import SymbolTable
from pipeline.tls.client import TlsSettings

log = logging.getLogger("preflight")


class PreflightError(RuntimeError):
    """The venue cannot be traded: one line (printed by ``hft run``, exit status 2)."""


@dataclass(frozen=True)
class Preflight:
    offset: clock.ClockOffset
    rules: exchange.ExchangeRules
    rules_file: str  # the exchangeInfo body they came from ([risk] exchange_rules)
    can_trade: bool


def check_offline(config: dict, table: SymbolTable) -> SignedRest:
    """Step 1: config, credentials, signing. Returns the client for step 2."""
    b = cfgmod.section("binance", config.get("binance", {}))
    rest = SignedRest.from_config(b)
    gw = config.get("gateway", {})
    if gw.get("tls"):
        TlsSettings.from_config(gw, str(gw.get("host", "")), "[gateway]")
    feed = config.get("feed", {})
    TlsSettings.from_config(feed, urlparse(str(feed.get("url", ""))).hostname or "", "[feed]")
    key_env = feed.get("api_key_env") or cfgmod.defaults("feed")["api_key_env"]
    if feed.get("md_format") == "sbe" and not os.environ.get(key_env):
        raise CredentialError(f"[feed] md_format sbe: the SBE streams need an API key, and "
                              f"environment variable {key_env} ([feed] api_key_env) is not set")
    probe = rest.signed_query([("symbol", table[0].symbol)] if len(table) else [])
    log.info("%r loaded, a signed request built (%d bytes); config checked",
             rest.credentials, len(probe))
    return rest


def check_quote_sizes(config: dict, rules: exchange.ExchangeRules, table: SymbolTable) -> None:
    """``[strategy] quote_qty`` within each symbol's LOT_SIZE (else every quote would be
    denied MIN_QTY / LOT_MAX_QTY / LOT_STEP): a ``ValueError`` listing each one."""
    problems = []
    for sym, text in config.get("strategy", {}).get("quote_qty", {}).items():
        if sym not in table or sym.upper() not in rules.symbols:
            continue
        inst, r = table[sym], rules.symbols[sym.upper()]
        venue = r.grid()
        try:
            lots = venue.lots(str(text))
        except ValueError:
            problems.append(f"{inst.symbol} {text} is not a multiple of stepSize "
                            f"{r.step_size}")
            continue
        if lots < r.min_qty or (r.max_qty and lots > r.max_qty):
            problems.append(f"{inst.symbol} {text} is outside minQty {venue.qty_str(r.min_qty)}"
                            f" .. maxQty {venue.qty_str(r.max_qty)}")
    if problems:
        raise ValueError("[strategy] quote_qty against the venue's LOT_SIZE: "
                         + "; ".join(problems))


def binance_preflight(config: dict, table: SymbolTable, name: str) -> Preflight:
    """Steps 1 and 2 (see the module docstring); raises ``PreflightError``."""
    step = "offline checks"
    try:
        rest = check_offline(config, table)
        b = cfgmod.section("binance", config.get("binance", {}))
        step = "clock"
        offset = clock.synchronise(rest, b["clock_samples"], b["recv_window_ms"],
                                   b["clock_margin_ms"])
        log.info("venue clock offset %+.1f ms (round trip %.1f ms)", offset.offset_ms,
                 offset.rtt_ms)
        step = "exchange rules"
        rules = exchange.load_rules(rest, table, b["exchange_info_dir"],
                                    b["exchange_info_max_age_s"])
        step = "quote sizes"
        check_quote_sizes(config, rules, table)
        step = "account"
        account = rest.account()
    except VenueUnreachable as e:
        raise PreflightError(f"venue {name}: {e} (offline checks passed: config, key, "
                             "signing)") from None
    except (CredentialError, cfgmod.ConfigError, BinanceError, clock.ClockSkewError,
            exchange.RulesMismatch, exchange.ExchangeInfoError, ValueError) as e:
        raise PreflightError(f"venue {name}: {step}: {e}") from None
    can_trade = bool(account.get("canTrade"))
    if not can_trade:
        raise PreflightError(f"venue {name}: account: the API key's account may not trade "
                             "(canTrade false: enable trading for the key)")
    path = exchange.cache_path(b["exchange_info_dir"], rest.settings.base_url)
    return Preflight(offset, rules, str(path.resolve()), can_trade)
