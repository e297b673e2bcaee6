"""REST depth snapshots over HTTP (cold path, on a helper thread)."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlparse

DEPTH_PATHS = {"spot": "/api/v3/depth", "usdm": "/fapi/v1/depth", "coinm": "/dapi/v1/depth"}


def snapshot_url(rest_base: str, venue: str, symbol: str, limit: int = 1000) -> str:
    return f"{rest_base.rstrip('/')}{DEPTH_PATHS[venue]}?symbol={symbol}&limit={limit}"


def fetch(url: str, timeout: float = 5.0) -> tuple[bytes, int]:
    """GET ``url``: (body, CLOCK_MONOTONIC receive time). Raises on non-200."""
    u = urlparse(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""))
        resp = conn.getresponse()
        body = resp.read()
        t = time.monotonic_ns()
        if resp.status != 200:
            raise ConnectionError(f"GET {url}: HTTP {resp.status} {body[:200]!r}")
        return body, t
    finally:
        conn.close()
