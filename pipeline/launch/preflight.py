"""Before ``hft run`` starts anything against a real Binance venue: everything that can be
checked, in the order that lets an offline host get as far as possible.

1. offline: the config (``[binance]``, TLS settings), the credentials (API key from its
   environment variable, the Ed25519 private key file and its passphrase), one signed
   request built (the key signs);
2. the network: the clock offset (``/api/v3/time``, refused beyond the recvWindow margin),
   the exchange rules for the configured instruments (cross-checked against them), the
   account (the key is registered and may trade).

Any failure is one ``PreflightError`` line naming the venue, the step and the cause.
"""

from __future__ import annotations

import logging
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
    probe = rest.signed_query([("symbol", table[0].symbol)] if len(table) else [])
    log.info("%r loaded, a signed request built (%d bytes); config checked",
             rest.credentials, len(probe))
    return rest


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
