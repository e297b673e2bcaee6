"""REST over HTTP or HTTPS (cold path): depth snapshots on a helper thread, and the
``request`` primitive the signed Binance client (``pipeline.binance.rest``) builds on.

``https://`` uses Python's ``ssl`` under the TLS policy of ``pipeline.tls.pyssl`` (not a hot
path); a verification failure raises ``TlsVerifyError`` naming the cause.
"""

from __future__ import annotations

import http.client
import ssl
import time
from urllib.parse import urlparse

from pipeline.tls.client import TlsSettings
from pipeline.tls.pyssl import as_tls_error, client_ssl_context

DEPTH_PATHS = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth", "coinm": "/dapi/v1/depth"}


def snapshot_url(rest_base: str, venue: str, symbol: str, limit: int = 1000) -> str:
    return f"{rest_base.rstrip('/')}{DEPTH_PATHS[venue]}?symbol={symbol}&limit={limit}"


def fetch(url: str, timeout: float = 5.0,
          tls: TlsSettings | None = None) -> tuple[bytes, int]:
    """GET ``url``: (body, CLOCK_MONOTONIC receive time). Raises on non-200. ``https://``:
    ``tls``'s ``ca_file``/``verify`` (default: the system store; the name is the URL's)."""
    status, body, t = request("GET", url, timeout=timeout, tls=tls)
    if status != 200:
        raise ConnectionError(f"GET {url}: HTTP {status} {body[:200]!r}")
    return body, t


def request(method: str, url: str, headers: dict[str, str] | None = None,
            timeout: float = 5.0, tls: TlsSettings | None = None,
            body: bytes | None = None) -> tuple[int, bytes, int]:
    """One HTTP(S) request: (status, body, CLOCK_MONOTONIC receive time), whatever the
    status (the caller reads error bodies, e.g. Binance's ``{"code", "msg"}``). Network
    failures raise ``OSError`` (a TLS failure as ``TlsError``)."""
    u = urlparse(url)
    if u.scheme == "https":
        ctx = client_ssl_context(tls.ca_file if tls else None, tls.verify if tls else True,
                                 who=u.netloc)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.monotonic_ns()
    except ssl.SSLError as e:
        raise as_tls_error(e, u.netloc) from e
    except http.client.HTTPException as e:  # a malformed response: the peer is not HTTP
        raise ConnectionError(f"{method} {url}: bad HTTP response ({type(e).__name__}: {e})") \
            from e
    finally:
        conn.close()
