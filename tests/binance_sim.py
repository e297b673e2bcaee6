"""Shared set-up for the Binance-strict simulator tests: keys, accounts, a logged-on client."""

from __future__ import annotations

import asyncio
import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.binance.keys import Signer
from pipeline.venue.simulator import Account
from pipeline.venue.testing import TEST_API_KEY, BinanceFixClient

# fix-api.md "How to sign Logon<A> request": the documented (illustrative) key and vector
DOC_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u
-----END PRIVATE KEY-----
"""
DOC_API_KEY = "sBRXrJx2DsOraMXOaUovEhgVRcjOvCtQwnWj8VxkOh1xqboS02SPGfKi2h8spZJb"
DOC_SIGNATURE = ("4MHXelVVcpkdwuLbl6n73HQUXUf1dse2PCgT1DYqW9w8AVZ1RACFGM+5UdlGPrQHrgtS3Cvs"
                 "RURC1oj73j8gCA==")
DOC_SENDING_TIME = "20240627-11:17:25.223"
DOC_LOGON = ("8=FIX.4.4|9=247|35=A|34=1|49=EXAMPLE|52=20240627-11:17:25.223|56=SPOT|95=88|"
             f"96={DOC_SIGNATURE}|98=0|108=30|141=Y|553={DOC_API_KEY}|25035=2|10=227|"
             ).replace("|", "\x01").encode()

BOB_API_KEY = "B" * 64
HMAC_API_KEY = "H" * 64
HMAC_SECRET = "test-only-hmac-secret"


def doc_signer() -> Signer:
    return Signer(serialization.load_pem_private_key(DOC_PRIVATE_PEM, password=None))


def new_signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def accounts(alice: Signer, bob: Signer | None = None) -> list[Account]:
    """alice (Ed25519, TEST_API_KEY), bob (Ed25519), carol (HMAC only, REST)."""
    out = [Account("alice", 1, None, TEST_API_KEY, alice.key.public_key())]
    if bob is not None:
        out.append(Account("bob", 2, None, BOB_API_KEY, bob.key.public_key()))
    out.append(Account("carol", 3, None, HMAC_API_KEY, None, HMAC_SECRET))
    return out


async def logged_on(sim, sender: str, signer: Signer, api_key: str = TEST_API_KEY,
                    hb: int = 30) -> BinanceFixClient:
    c = await BinanceFixClient(sim.endpoints()["fix_port"], sender, api_key, signer).connect()
    reply = await c.logon(hb=hb)
    assert reply.msg_type == "A", reply.raw
    return c


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def b64(sig: bytes) -> str:
    return base64.b64encode(sig).decode()
