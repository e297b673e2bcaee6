"""Configuration: TOML files, with ``config/default.toml`` as the base.

Components read their own section (``config["feed"]``, ``config["risk"]`` ...). Secrets
(FIX passwords, API keys) are never stored here: a key ending in ``_env`` names the
environment variable that holds the value (``password_env = "HFT_FIX_PASSWORD"``).

``SCHEMA`` is the one list of valid keys and the one statement of each default: every file
``load`` reads is checked against it, so a typo (``warm_ms`` for ``warm_us``) stops start-up
with the key, its section and the nearest valid key instead of being ignored; consumers
take their defaults from it (``section``, ``defaults``), never restate them.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "default.toml"


class ConfigError(ValueError):
    """A config or profile file names a key nobody reads, misses a required one or holds
    a value its consumer cannot use (``pipeline.config_check``)."""


class Required:
    """A key without a default: the config (or the launcher) must set it."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED = Required()
OPEN = "open"  # a table whose keys are data (symbol -> quantity), or checked by its consumer


class Rows:
    """An array of tables (``[[instruments]]``), each row checked against ``schema``."""

    def __init__(self, schema: dict):
        self.schema = schema


class Each:
    """A table of tables keyed by data (``per_symbol.BTCUSDT``), each checked."""

    def __init__(self, schema: dict):
        self.schema = schema


# TLS towards a venue (pipeline/tls/client.py TlsSettings.from_config validates them):
# ``server_name`` "" = the URL's / endpoint's host (SNI + certificate name), ``ca_file`` "" =
# the system CA store, ``tls_verify = false`` only on purpose (a warning on every connect).
TLS_KEYS: dict[str, Any] = {"server_name": "", "ca_file": "", "tls_verify": True,
                            "handshake_timeout_s": 5.0}

SCHEMA: dict[str, Any] = {
    "instance": {"name": "hft"},
    "instruments": Rows({"symbol": REQUIRED, "venue": "spot", "tick_size": REQUIRED,
                         "lot_size": REQUIRED}),
    # pipeline/strategy/market_maker.py (make_state), pipeline/strategy/setup.py
    "strategy": {
        "gamma": 0.05, "k": 0.3, "arrival_rate_prior": 5.0, "sigma2_prior": 4.0,
        "vol_halflife_s": 30.0, "rate_halflife_s": 30.0, "levels": 1,
        "level_spacing_ticks": 1, "requote_ticks": 1, "stale_ms": 2000,
        "max_book_age_ms": 50, "reject_cooldown_ms": 500, "max_orders_per_s": 10,
        "requote_retry_ms": 100, "quote_qty": OPEN, "max_position": OPEN,
    },
    # pipeline/venue/simulator.py (SimConfig); faults: venue/faults.py, flow: venue/flow.py
    "sim": {
        "host": "127.0.0.1", "md_port": 0, "sbe_port": 0, "rest_port": 0, "fix_port": 0,
        "symbols": [], "sbe_depth_ms": 20, "sbe_depth20_ms": 50,
        "seed": 1, "rate": 2000.0, "comp_id": "SIMVENUE", "state_dir": "var/sim",
        "depth_ms": 1000, "depth_fast_ms": 100, "max_order_lots": 0, "max_open_orders": 0,
        "first_update_id": 1_000_000, "start_prices": OPEN, "mean_qty": OPEN,
        "flow": OPEN, "faults": OPEN,
        "accounts": Rows({"username": REQUIRED, "password_env": "",
                          # dialect binance: the API key (or the variable holding it), the
                          # Ed25519 public key PEM registered for it, an HMAC secret's variable
                          "api_key": "", "api_key_env": "", "ed25519_public_key": "",
                          "hmac_secret_env": ""}),
        # "fix44" (the standard acceptor) or "binance" (Binance Spot's FIX and signed REST
        # rules: pipeline/venue/binance_session.py); binance: exchange filters per symbol
        # (pipeline/venue/binance_rules.py FILTER_DEFAULTS) and the venue's limits
        "dialect": "fix44",
        "filters": Each({"min_price": "", "max_price": "1000000", "min_qty": "",
                         "max_qty": "9000", "min_notional": "5", "max_notional": "9000000",
                         "bid_multiplier_up": "5", "bid_multiplier_down": "0.2",
                         "ask_multiplier_up": "5", "ask_multiplier_down": "0.2",
                         "max_num_orders": 200, "max_position": ""}),
        "binance": {"message_limit": 10_000, "message_window_s": 10.0, "connect_limit": 15,
                    "connect_window_s": 30.0, "max_connections": 10, "order_limit": 200,
                    "order_window_s": 10, "news_interval_s": 10.0},
        "balances": OPEN,  # binance: asset -> starting balance (GET /api/v3/account)
        # TLS on every endpoint (hft sim --tls): tls_cert/tls_key "" = generate a CA and a
        # certificate at start-up (pipeline/venue/tls.py); ca_file: the CA that signed tls_cert
        "tls": False, "tls_cert": "", "tls_key": "", "ca_file": "",
    },
    # pipeline/orders/gateway.py (GatewayConfig) and pipeline/fix/session.py (SessionConfig)
    "gateway": {
        "host": "127.0.0.1", "port": REQUIRED, "sender_comp_id": REQUIRED,
        "target_comp_id": REQUIRED, "username": "", "password_env": "", "heartbeat_s": 30,
        "state_dir": "var/gateway", "book_ring": "", "reconcile_timeout_s": 5.0,
        "shutdown_timeout_s": 3.0, "backoff_min_s": 0.1, "backoff_max_s": 5.0,
        "reset_on_logon": False, "logon_timeout_s": 10.0, "resend_app": False,
        "tls": False, **TLS_KEYS,  # tls = true: FIX over TLS (Binance: SNI required)
        # pipeline/fix/binance_spot.py (BinanceSpot): dialect = "binance-spot" (its key,
        # API key and recvWindow: the [binance] section)
        "dialect": "fix44", "message_handling": "sequential", "response_mode": "everything",
        "replace_mode": "stop_on_failure",
    },
    # pipeline/orders/risk.py (RiskLimits)
    "risk": {
        "max_qty": "1", "max_notional": "100000", "max_position": "5", "price_band_bps": 500,
        "max_orders_per_s": 50, "max_cancels_per_s": 100, "max_open_orders": 50,
        "stale_md_ms": 5000,
        # the venue's exchange rules (an exchangeInfo JSON file: hft run --venue <Binance
        # profile> sets it to what it fetched; "" = none): the filters risk enforces
        "exchange_rules": "",
        "per_symbol": Each({"max_qty": REQUIRED, "max_notional": REQUIRED,
                            "max_position": REQUIRED}),
    },
    # pipeline/binance/ (rest.py RestSettings + Credentials, clock.py, exchange.py): Binance's
    # signed REST API. Secrets only through the environment / a key file: api_key_env names
    # the API key's variable; private_key_file an Ed25519 PKCS#8 PEM (its passphrase in the
    # variable private_key_passphrase_env, "" = unencrypted), else hmac_secret_env an HMAC
    # secret's variable. A venue profile (config/venues/<name>.toml) sets rest_url.
    "binance": {
        "rest_url": "", "api_key_env": "HFT_BINANCE_API_KEY", "private_key_file": "",
        "private_key_passphrase_env": "", "hmac_secret_env": "", "recv_window_ms": 5000,
        "timeout_s": 5.0, "clock_samples": 5, "clock_margin_ms": 1000,
        "exchange_info_dir": "var/binance", "exchange_info_max_age_s": 0, **TLS_KEYS,
    },
    # a venue profile's endpoints (config/venues/<name>.toml, hft run --venue NAME;
    # pipeline/launch/venue.py): streams_url + /stream?streams=... (JSON), sbe_url (SBE),
    # rest_url (REST: depth snapshots, signed API), the FIX order-entry endpoint and the
    # venue's CompID (our TargetCompID); tls: every endpoint over TLS
    "venue": {
        "name": REQUIRED, "streams_url": REQUIRED, "sbe_url": "", "rest_url": REQUIRED,
        "fix_host": REQUIRED, "fix_port": REQUIRED, "comp_id": REQUIRED, "tls": True,
    },
    # pipeline/marketdata/feed.py (FeedConfig); url and rest_url are set by the launcher;
    # wss:// and https:// are TLS under TLS_KEYS (server_name applies to the stream)
    "feed": {
        "url": REQUIRED, "rest_url": REQUIRED, "stale_ms": 10_000, "snapshot_limit": 1000,
        "max_snapshot_retries": 8, "reconnect_min_ms": 100, "reconnect_max_ms": 5_000,
        "recv_buffer": 4 << 20, "md_format": "json", "api_key_env": "HFT_MD_API_KEY",
        "max_conn_s": 85_000, **TLS_KEYS,
    },
}


def unknown_key(source: str, where: str, key: str, valid) -> str:
    """What to say about ``key`` in ``[where]``: the nearest valid key, else all of them
    (also used for tuning profiles)."""
    valid = sorted(valid)
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(valid)}"
    place = f"[{where}]" if where else "the top level"
    return f"{source}: unknown keys in {place}: {key!r} ({hint})"


def check(table: dict, schema: dict, source: str, where: str = "") -> None:
    """Raise ``ConfigError`` for the first key of ``table`` that ``schema`` does not know."""
    for key, value in table.items():
        if key not in schema:
            raise ConfigError(unknown_key(source, where, key, schema))
        spec, path = schema[key], f"{where}.{key}" if where else key
        if isinstance(spec, dict) and isinstance(value, dict):
            check(value, spec, source, path)
        elif isinstance(spec, Rows) and isinstance(value, list):
            for row in value:
                if isinstance(row, dict):
                    check(row, spec.schema, source, path)
        elif isinstance(spec, Each) and isinstance(value, dict):
            for name, sub in value.items():
                if isinstance(sub, dict):
                    check(sub, spec.schema, source, f"{path}.{name}")


def defaults(name: str) -> dict[str, Any]:
    """Section ``name``'s defaults (keys without one are left out)."""
    return {k: v for k, v in SCHEMA[name].items() if not isinstance(v, Required | Rows | Each)
            and v is not OPEN}


def section(name: str, values: dict, source: str = "config") -> dict[str, Any]:
    """Section ``name`` as a consumer reads it: ``values`` checked, over the defaults."""
    check(values, SCHEMA[name], source, name)
    return defaults(name) | values


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def read(path: str | Path) -> dict[str, Any]:
    """One TOML file, checked against ``SCHEMA`` (the error names the file)."""
    with open(path, "rb") as f:
        try:
            table = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: TOML syntax error: {e}; fix it there") from None
    check(table, SCHEMA, str(path))
    return table


def load(path: str | Path | None = None, profile: str | Path | None = None, *,
         trading: bool = False) -> dict[str, Any]:
    """The default config, overlaid with a venue ``profile`` and then ``path`` (so a user
    config overrides the profile) when given: each file's keys checked, then every value of
    the result (``pipeline.config_check``; ``trading``: also what ``hft run`` needs). All
    problems are raised at once, one line each, naming the file."""
    from pipeline import config_check  # imports the instrument grid (numba)

    default = read(DEFAULT_CONFIG)
    config, mine = default, {}
    for overlay in (profile, path):
        if overlay is not None:
            table = read(overlay)
            config, mine = merge(config, table), merge(mine, table)
    config = config_check.drop_default_symbols(config, read(DEFAULT_CONFIG), mine)
    found = config_check.problems(config, trading)
    if found:
        source = str(path if path is not None else profile if profile is not None
                     else DEFAULT_CONFIG)
        if len(found) == 1:
            raise ConfigError(f"{source}: {found[0]}")
        raise ConfigError(f"{source}: {len(found)} problems:\n  " + "\n  ".join(found))
    return config


def secret(table: dict, key: str) -> str:
    """Resolve ``key`` from the environment variable named by ``<key>_env``."""
    env = table.get(f"{key}_env")
    if not env:
        raise KeyError(f"config has no {key}_env naming the environment variable for {key}")
    value = os.environ.get(env)
    if value is None:
        raise KeyError(f"environment variable {env} (for {key}) is not set")
    return value
