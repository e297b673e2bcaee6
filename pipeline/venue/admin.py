"""The simulator's ``/admin`` REST API (faults, flow, book, positions, stats) needs a token:
it switches faults and moves the market, so not every local process may call it.

The simulator takes the token from ``$HFT_SIM_ADMIN_TOKEN`` (the launcher sets a fresh one
per run, as it does the FIX password) or makes one, and prints it in its endpoints line
(``"admin_token"``; never logged). Callers send it in the ``X-Admin-Token`` header.
"""

from __future__ import annotations

import json
import secrets
import urllib.request

TOKEN_ENV = "HFT_SIM_ADMIN_TOKEN"
HEADER = "X-Admin-Token"
PREFIX = "/admin/"


def new_token() -> str:
    return secrets.token_urlsafe(16)


def call(rest: str, path: str, token: str, body: dict | None = None, timeout: float = 10.0,
         context=None) -> dict:
    """``GET`` (``body`` None) or ``POST`` ``rest + path`` with the token; the JSON reply.
    HTTP errors raise ``urllib.error.HTTPError`` (401: a missing or wrong token)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{rest}{path}", data=data, headers={HEADER: token},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
        return json.load(r)
