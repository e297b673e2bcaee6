"""Binance's signed REST API (``rest-api.md``), a small blocking client for the cold path.

Used at start-up and after every (re)logon: server time (``clock``), exchange rules
(``exchange``), open orders and balances (``reconcile``). A SIGNED request carries its
parameters, then ``recvWindow`` and ``timestamp`` (local time plus the measured server-time
offset), percent-encoded into the query string; ``signature`` is computed over exactly that
string (HMAC-SHA256 as hex, or Ed25519 as base64) and appended percent-encoded; the API key
goes in the ``X-MBX-APIKEY`` header. An error body ``{"code": .., "msg": ..}`` becomes a
``BinanceError`` carrying both; a venue that cannot be reached is one ``VenueUnreachable``.

Secrets (API key, HMAC secret, Ed25519 private key) come from environment variables and
files named in ``[binance]``; ``repr`` of every object here hides them, and no message
includes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlparse

from pipeline import config as cfgmod
from pipeline.binance.keys import Signer, load_signer
from pipeline.marketdata.wire import rest as http
from pipeline.tls.client import TlsSettings

MAX_RECV_WINDOW_MS = 60_000  # rest-api.md "Timing security"


class BinanceError(RuntimeError):
    """The venue answered with an error: HTTP status, Binance ``code`` and ``msg``
    (``code`` None when the body was not Binance's error JSON)."""

    def __init__(self, what: str, status: int, code: int | None, msg: str):
        self.what, self.status, self.code, self.msg = what, status, code, msg
        detail = f"code {code}: {msg}" if code is not None else msg
        super().__init__(f"{what}: HTTP {status}, {detail}")


class VenueUnreachable(ConnectionError):
    """No HTTP answer at all (DNS, refused, timeout, TLS): one line naming the URL."""


class CredentialError(ValueError):
    """API key / secret / private key missing or unusable (names the variable or file)."""


class PayloadSigner(Protocol):
    kind: str

    def signature(self, payload: bytes) -> str:
        """The ``signature`` value for ``payload`` (before percent-encoding)."""
        ...


@dataclass(frozen=True)
class HmacSigner:
    """HMAC-SHA256 keys: the signature is the lower-case hex digest."""

    secret: bytes = field(repr=False)
    kind: str = "hmac-sha256"

    def signature(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Ed25519Signer:
    """Ed25519 keys (the kind Binance recommends, and the only kind its FIX API takes):
    the signature is base64, case-sensitive."""

    key: Signer
    kind: str = "ed25519"

    def signature(self, payload: bytes) -> str:
        return self.key.sign_b64(payload)


@dataclass(frozen=True)
class Credentials:
    """The API key and the signer of one Binance account; ``repr`` shows neither."""

    api_key: str = field(repr=False)
    signer: PayloadSigner = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials({self.signer.kind}, api_key=<{len(self.api_key)} chars hidden>)"

    @classmethod
    def from_config(cls, section: dict, where: str = "[binance]") -> Credentials:
        """``api_key_env`` names the API key's variable; ``private_key_file`` (+
        ``private_key_passphrase_env``) an Ed25519 PEM, else ``hmac_secret_env`` the HMAC
        secret's variable."""
        s = cfgmod.section("binance", section)
        api_key = _env(s["api_key_env"], "the API key", where)
        if s["private_key_file"]:
            try:
                key = load_signer(Path(s["private_key_file"]).expanduser(),
                                  s["private_key_passphrase_env"])
            except ValueError as e:
                raise CredentialError(f"{where} private_key_file: {e}") from None
            return cls(api_key, Ed25519Signer(key))
        if s["hmac_secret_env"]:
            return cls(api_key, HmacSigner(_env(s["hmac_secret_env"], "the HMAC secret",
                                                where).encode()))
        raise CredentialError(f"{where}: set private_key_file (an Ed25519 PEM) or "
                              "hmac_secret_env to sign requests")


def _env(name: str, what: str, where: str) -> str:
    if not name:
        raise CredentialError(f"{where}: no environment variable is named for {what}")
    value = os.environ.get(name)
    if not value:
        raise CredentialError(f"{where}: environment variable {name} ({what}) is not set")
    return value


def encode(params: list[tuple[str, Any]]) -> str:
    """``k=v&...`` percent-encoded as rest-api.md's examples are (UTF-8; only
    ``A-Za-z0-9-_.~`` left as is): the exact bytes that are signed and sent."""
    return urlencode([(k, _text(v)) for k, v in params], quote_via=quote, safe="")


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list | tuple):  # exchangeInfo ?symbols=["A","B"]
        return json.dumps(list(v), separators=(",", ":"))
    return str(v)


def sign_query(params: list[tuple[str, Any]], signer: PayloadSigner) -> str:
    """The query string of a SIGNED request: ``params`` (already carrying ``recvWindow``
    and ``timestamp``), then ``&signature=`` and the percent-encoded signature."""
    payload = encode(params)
    return f"{payload}&signature={quote(signer.signature(payload.encode('ascii')), safe='')}"


@dataclass
class RestSettings:
    """``[binance]`` as the REST client reads it."""

    base_url: str
    recv_window_ms: int = cfgmod.defaults("binance")["recv_window_ms"]
    timeout_s: float = cfgmod.defaults("binance")["timeout_s"]
    tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        u = urlparse(self.base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise cfgmod.ConfigError(f"[binance] rest_url {self.base_url!r}: expected "
                                     "https://HOST[:PORT] (http:// only for a local venue)")
        if not 0 < self.recv_window_ms <= MAX_RECV_WINDOW_MS:
            raise cfgmod.ConfigError(f"[binance] recv_window_ms {self.recv_window_ms}: "
                                     f"Binance takes 1..{MAX_RECV_WINDOW_MS}")
        if self.timeout_s <= 0:
            raise cfgmod.ConfigError(f"[binance] timeout_s must be > 0, not {self.timeout_s}")

    @classmethod
    def from_config(cls, section: dict) -> RestSettings:
        s = cfgmod.section("binance", section)
        if not s["rest_url"]:
            raise cfgmod.ConfigError("[binance] rest_url is not set (a venue profile, "
                                     "config/venues/<name>.toml, sets it)")
        host = urlparse(s["rest_url"]).hostname or ""
        tls = TlsSettings.from_config(s, host, "[binance]") \
            if s["rest_url"].startswith("https://") else None
        return cls(s["rest_url"].rstrip("/"), int(s["recv_window_ms"]), float(s["timeout_s"]),
                   tls)


class SignedRest:
    """Blocking REST calls to one Binance venue. ``offset_ms`` (server minus local clock,
    from ``clock.measure_offset``) is added to every ``timestamp``."""

    def __init__(self, settings: RestSettings, credentials: Credentials | None = None):
        self.settings = settings
        self.credentials = credentials
        self.offset_ms = 0
        self.requests = 0  # every request sent (for the run summary)
        self.errors = 0  # every BinanceError / VenueUnreachable raised

    def __repr__(self) -> str:
        return f"SignedRest({self.settings.base_url}, {self.credentials!r})"

    @classmethod
    def from_config(cls, section: dict, signed: bool = True) -> SignedRest:
        """``signed``: load the credentials now (a missing key fails here, before any
        network); False for the public endpoints only."""
        creds = Credentials.from_config(section) if signed else None
        return cls(RestSettings.from_config(section), creds)

    # ------------------------------------------------------------------ endpoints
    def time_ms(self) -> int:
        """``GET /api/v3/time``: the server's clock (ms)."""
        return int(self.public("/api/v3/time")["serverTime"])

    def exchange_info(self, symbols: list[str] | None = None) -> dict:
        """``GET /api/v3/exchangeInfo`` for ``symbols`` (all when None)."""
        params = [("symbols", [s.upper() for s in symbols])] if symbols else []
        return self.public("/api/v3/exchangeInfo", params)

    def open_orders(self, symbol: str | None = None) -> list[dict]:
        """``GET /api/v3/openOrders`` (SIGNED; weight 6 per symbol, 80 without one)."""
        return self.signed("GET", "/api/v3/openOrders",
                           [("symbol", symbol.upper())] if symbol else [])

    def account(self) -> dict:
        """``GET /api/v3/account`` (SIGNED): balances, permissions, commissions."""
        return self.signed("GET", "/api/v3/account", [("omitZeroBalances", True)])

    # ------------------------------------------------------------------ requests
    def timestamp_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def signed_query(self, params: list[tuple[str, Any]]) -> str:
        """``params`` + ``recvWindow`` + ``timestamp`` + ``signature``."""
        if self.credentials is None:
            raise CredentialError("a SIGNED endpoint needs credentials ([binance] "
                                  "api_key_env and private_key_file or hmac_secret_env)")
        full = [*params, ("recvWindow", self.settings.recv_window_ms),
                ("timestamp", self.timestamp_ms())]
        return sign_query(full, self.credentials.signer)

    def public(self, path: str, params: list[tuple[str, Any]] | None = None) -> Any:
        query = encode(params or [])
        return self._send("GET", path, query, {})

    def signed(self, method: str, path: str, params: list[tuple[str, Any]]) -> Any:
        query = self.signed_query(params)
        return self._send(method, path, query, {"X-MBX-APIKEY": self.credentials.api_key})

    def _send(self, method: str, path: str, query: str, headers: dict[str, str]) -> Any:
        url = f"{self.settings.base_url}{path}" + (f"?{query}" if query else "")
        what = f"{method} {self.settings.base_url}{path}"  # never the query: no signature
        self.requests += 1
        try:
            status, body, _ = http.request(method, url, headers, self.settings.timeout_s,
                                           self.settings.tls)
        except OSError as e:
            self.errors += 1
            raise VenueUnreachable(f"{what}: venue unreachable ({_reason(e)})") from None
        if 200 <= status < 300:
            try:
                return json.loads(body)
            except ValueError:
                self.errors += 1
                raise BinanceError(what, status, None,
                                   f"not JSON: {body[:120]!r}") from None
        self.errors += 1
        raise _error(what, status, body)


def _reason(e: OSError) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _error(what: str, status: int, body: bytes) -> BinanceError:
    """A Binance error body (``{"code": -1121, "msg": "Invalid symbol."}``) or whatever
    else came back (a WAF page, a proxy error)."""
    code, msg = None, body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and "code" in doc:
            code, msg = int(doc["code"]), str(doc.get("msg", ""))
    except ValueError:
        pass
    return BinanceError(what, status, code, msg)
