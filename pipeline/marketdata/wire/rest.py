"""REST depth snapshots over HTTP or HTTPS (cold path, on a helper thread).

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
    u = urlparse(url)
    if u.scheme == "https":
        ctx = client_ssl_context(tls.ca_file if tls else None, tls.verify if tls else True,
                                 who=u.netloc)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""))
        resp = conn.getresponse()
        body = resp.read()
        t = time.monotonic_ns()
        if resp.status != 200:
            raise ConnectionError(f"GET {url}: HTTP {resp.status} {body[:200]!r}")
        return body, t
    except ssl.SSLError as e:
        raise as_tls_error(e, u.netloc) from e
    finally:
        conn.close()
