"""Signed REST: rest-api.md's signature examples byte for byte, the client against a local
venue that verifies what it receives, Binance error bodies, reconcile parsing, secrets."""

import pytest
from binance_venue import Venue, open_order

from pipeline.binance import reconcile
from pipeline.binance.keys import load_public_key, load_signer, write_key_pair
from pipeline.binance.rest import (
    BinanceError,
    CredentialError,
    Credentials,
    Ed25519Signer,
    HmacSigner,
    RestSettings,
    SignedRest,
    VenueUnreachable,
    encode,
    sign_query,
)
from pipeline.config import ConfigError
from pipeline.instruments import SymbolTable
from shm_layouts.records import OrdStatus, Side

# rest-api.md "SIGNED Endpoint Examples for POST /api/v3/order", HMAC Keys
HMAC_SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
HMAC_PARAMS = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
               ("quantity", 1), ("price", "0.1"), ("recvWindow", 5000),
               ("timestamp", 1499827319559)]
HMAC_QUERY = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
              "&recvWindow=5000&timestamp=1499827319559"
              "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71")
NON_ASCII = "\uff11\uff12\uff13\uff14\uff15\uff16"  # １２３４５６
NON_ASCII_PAYLOAD = ("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY"
                     "&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
                     "&timestamp=1499827319559")
NON_ASCII_SIG = "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
# Ed25519 Keys: the payloads, and step 3 (percent-encoding the base64 signature). The
# signatures printed there are 256 bytes (RSA-sized: the example was copied from the RSA
# section) and the private key is not published, so only the encoding steps can be checked.
ED_PARAMS = [("symbol", "BTCUSDT"), ("side", "SELL"), ("type", "LIMIT"), ("timeInForce", "GTC"),
             ("quantity", 1), ("price", "0.2"), ("timestamp", 1668481559918),
             ("recvWindow", 5000)]
ED_PAYLOAD = ("symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=1&price=0.2"
              "&timestamp=1668481559918&recvWindow=5000")
ED_DOC_B64 = ("HaZnek7KOGa/k5+f6Q1nw8lzMUpo36mRVvvLHCMUCXxlmdQQGZge1luAUKnleD/DYeD19YrqzeHbb6x"
              "U3MkSIXKhAO1MaYq48uGVYb3vJScEZVOutgMInrZzUcCWNulNkfcbmExSiymCZ5xQBw5QDuzpuDFqRZ1X"
              "t+BZxEHBN9OYQKpoe0+ovjnXyVOaH8VUKhE/ghUWnThrXJr+hmSc5t7ggjiVPQc7pGn3qSNGCQwdpkQ"
              "C9GHMr/r+8n6qeEKMYB5j/1wC4d8Jae8FQiU8xcXR0NlUgV2LAw61/ZJv5BTJpa+z5Lv1W9v6jHQWRX2"
              "O8uaG3KU/lR3spR7+oGlWOw=")
ED_DOC_ENCODED = ("HaZnek7KOGa%2Fk5%2Bf6Q1nw8lzMUpo36mRVvvLHCMUCXxlmdQQGZge1luAUKnleD%2FDYeD19Y"
                  "rqzeHbb6xU3MkSIXKhAO1MaYq48uGVYb3vJScEZVOutgMInrZzUcCWNulNkfcbmExSiymCZ5xQBw5"
                  "QDuzpuDFqRZ1Xt%2BBZxEHBN9OYQKpoe0%2BovjnXyVOaH8VUKhE%2FghUWnThrXJr%2BhmSc5t7gg"
                  "jiVPQc7pGn3qSNGCQwdpkQC9GHMr%2Fr%2B8n6qeEKMYB5j%2F1wC4d8Jae8FQiU8xcXR0NlUgV2LAw"
                  "61%2FZJv5BTJpa%2Bz5Lv1W9v6jHQWRX2O8uaG3KU%2FlR3spR7%2BoGlWOw%3D")
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
TABLE = SymbolTable.from_config([
    {"symbol": "BTCUSDT", "tick_size": "0.01", "lot_size": "0.00001"},
    {"symbol": "ETHUSDT", "tick_size": "0.01", "lot_size": "0.0001"}])


class _Fixed:
    """A signer returning a fixed value: checks the encoding step alone."""

    kind = "fixed"

    def __init__(self, value: str):
        self.value = value

    def signature(self, payload: bytes) -> str:
        return self.value


def test_hmac_documented_examples_byte_for_byte():
    assert sign_query(HMAC_PARAMS, HmacSigner(HMAC_SECRET)) == HMAC_QUERY
    params = [("symbol", NON_ASCII), *HMAC_PARAMS[1:]]
    assert encode(params) == NON_ASCII_PAYLOAD
    assert sign_query(params, HmacSigner(HMAC_SECRET)) == \
        f"{NON_ASCII_PAYLOAD}&signature={NON_ASCII_SIG}"


def test_ed25519_documented_payloads_and_signature_encoding(tmp_path):
    assert encode(ED_PARAMS) == ED_PAYLOAD
    assert encode([("symbol", NON_ASCII), *ED_PARAMS[1:]]) == \
        ED_PAYLOAD.replace("BTCUSDT", "%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96")
    assert sign_query(ED_PARAMS, _Fixed(ED_DOC_B64)) == f"{ED_PAYLOAD}&signature={ED_DOC_ENCODED}"
    # a real Ed25519 signature over that payload verifies against the public key
    private, public = write_key_pair(tmp_path)
    signed = sign_query(ED_PARAMS, Ed25519Signer(load_signer(private)))
    from urllib.parse import unquote

    from pipeline.binance.keys import verify_b64
    payload, _, sig = signed.rpartition("&signature=")
    assert payload == ED_PAYLOAD
    assert verify_b64(load_public_key(public), payload.encode(), unquote(sig))


def _settings(url: str, **kw) -> RestSettings:
    return RestSettings(url, **kw)


def test_signed_requests_hmac_against_a_verifying_venue():
    with Venue(API_KEY, hmac_secret=HMAC_SECRET.decode()) as v:
        v.orders["BTCUSDT"] = [open_order("q1", 11), open_order("q2", 12, "SELL", "60010.5",
                                                                  "0.002", "0.0005",
                                                                  "PARTIALLY_FILLED")]
        rest = SignedRest(_settings(v.url, recv_window_ms=3000),
                          Credentials(API_KEY, HmacSigner(HMAC_SECRET)))
        orders = reconcile.fetch_open_orders(rest, TABLE)
        path, query, headers = v.requests[0]
        assert path == "/api/v3/openOrders"
        assert query.startswith("symbol=BTCUSDT&recvWindow=3000&timestamp=")
        assert "&signature=" in query and headers["X-MBX-APIKEY"] == API_KEY
        assert [p for p, _, _ in v.requests] == ["/api/v3/openOrders"] * 2  # one per symbol
        assert orders == [
            reconcile.OpenOrder("q1", 11, "BTCUSDT", Side.BID, 6000001, 100, 0, OrdStatus.NEW,
                                "LIMIT_MAKER", "GTC"),
            reconcile.OpenOrder("q2", 12, "BTCUSDT", Side.ASK, 6001050, 200, 50,
                                OrdStatus.PARTIALLY_FILLED, "LIMIT_MAKER", "GTC")]
        assert orders[1].leaves_qty == 150
        balances = reconcile.fetch_balances(rest)
        assert balances["BTC"] == reconcile.Balance("BTC", 150_000_000, 100_000)
        assert balances["USDT"].locked == 6_000_001_000
        assert reconcile.base_holding_lots(balances["BTC"], TABLE["BTCUSDT"]) == 150_100
        assert "omitZeroBalances=true&recvWindow=3000" in v.requests[-1][1]


def test_ed25519_account_and_binance_errors(tmp_path):
    private, public = write_key_pair(tmp_path)
    with Venue("edkey", public_key=load_public_key(public)) as v:
        good = SignedRest(_settings(v.url), Credentials("edkey", Ed25519Signer(
            load_signer(private))))
        assert good.account()["accountType"] == "SPOT"
        other, _ = write_key_pair(tmp_path / "other")
        forged = SignedRest(_settings(v.url), Credentials("edkey", Ed25519Signer(
            load_signer(other))))
        with pytest.raises(BinanceError) as err:
            forged.account()
        assert (err.value.status, err.value.code) == (400, -1022)
        assert "code -1022: Signature for this request is not valid." in str(err.value)
        assert "signature=" not in str(err.value)  # the query (and signature) is not logged
        wrong_key = SignedRest(_settings(v.url), Credentials("nope", Ed25519Signer(
            load_signer(private))))
        with pytest.raises(BinanceError, match="-2015"):
            wrong_key.open_orders("BTCUSDT")
        with pytest.raises(BinanceError, match="code -1121: Invalid symbol"):
            good.exchange_info(["NOPEUSDT"])
        assert forged.errors == 1 and forged.requests == 1


def test_server_time_offset_goes_into_the_timestamp():
    import time

    from pipeline.binance import clock

    def ahead():  # the venue's clock runs 7 s ahead of ours
        return time.time_ns() // 1_000_000 + 7000
    with Venue(API_KEY, hmac_secret=HMAC_SECRET.decode(), clock_ms=ahead) as v:
        rest = SignedRest(_settings(v.url), Credentials(API_KEY, HmacSigner(HMAC_SECRET)))
        with pytest.raises(BinanceError, match="-1021"):  # outside the recvWindow
            rest.account()
        offset = clock.measure_offset(rest, 3)
        assert abs(offset.offset_ms - 7000) <= offset.rtt_ms / 2 + 1
        rest.offset_ms = offset.offset_int_ms
        assert rest.account()["canTrade"]


def test_unreachable_venue_is_one_clear_error():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    rest = SignedRest(_settings(f"http://127.0.0.1:{port}"),
                      Credentials(API_KEY, HmacSigner(HMAC_SECRET)))
    with pytest.raises(VenueUnreachable) as err:
        rest.open_orders()
    text = str(err.value)
    assert f"GET http://127.0.0.1:{port}/api/v3/openOrders: venue unreachable" in text
    assert "\n" not in text and "signature" not in text


def test_reconcile_refuses_what_it_cannot_book_exactly():
    bad = open_order("q9", 99, price="60000.015")  # off the 0.01 grid
    with pytest.raises(reconcile.ReconcileError, match="q9.*orderId 99"):
        reconcile.parse_order(bad, TABLE)
    with pytest.raises(reconcile.ReconcileError, match="unknown or missing 'XRPUSDT'"):
        reconcile.parse_order({**open_order("q8", 98), "symbol": "XRPUSDT"}, TABLE)
    with pytest.raises(reconcile.ReconcileError, match="FILLED"):
        reconcile.parse_order(open_order("q7", 97, status="FILLED"), TABLE)
    with pytest.raises(reconcile.ReconcileError, match="balance BTC"):
        reconcile.parse_balances({"balances": [{"asset": "BTC", "free": "0.000000001",
                                                "locked": "0"}]})


def test_credentials_from_config_hide_secrets(tmp_path, monkeypatch):
    private, _ = write_key_pair(tmp_path)
    monkeypatch.setenv("HFT_TEST_BN_KEY", "the-api-key-value")
    creds = Credentials.from_config({"api_key_env": "HFT_TEST_BN_KEY",
                                     "private_key_file": str(private)})
    assert creds.signer.kind == "ed25519"
    assert "the-api-key-value" not in repr(creds) and "PRIVATE" not in repr(creds)
    monkeypatch.setenv("HFT_TEST_BN_SECRET", "hmac-secret-value")
    hm = Credentials.from_config({"api_key_env": "HFT_TEST_BN_KEY",
                                  "hmac_secret_env": "HFT_TEST_BN_SECRET"})
    assert "hmac-secret-value" not in repr(hm) and "hmac-secret-value" not in repr(hm.signer)
    rest = SignedRest(_settings("https://testnet.binance.vision"), hm)
    assert "the-api-key-value" not in repr(rest)
    with pytest.raises(CredentialError, match="HFT_TEST_BN_NOPE"):
        Credentials.from_config({"api_key_env": "HFT_TEST_BN_NOPE",
                                 "private_key_file": str(private)})
    with pytest.raises(CredentialError, match="private_key_file.*missing.pem"):
        Credentials.from_config({"api_key_env": "HFT_TEST_BN_KEY",
                                 "private_key_file": str(tmp_path / "missing.pem")})
    with pytest.raises(CredentialError, match="private_key_file .* or hmac_secret_env"):
        Credentials.from_config({"api_key_env": "HFT_TEST_BN_KEY"})


def test_settings_validation():
    with pytest.raises(ConfigError, match="rest_url is not set"):
        RestSettings.from_config({})
    with pytest.raises(ConfigError, match="recv_window_ms 70000"):
        RestSettings.from_config({"rest_url": "https://x.example", "recv_window_ms": 70000})
    with pytest.raises(ConfigError, match="expected https://"):
        RestSettings.from_config({"rest_url": "ftp://x.example"})
    s = RestSettings.from_config({"rest_url": "https://testnet.binance.vision/"})
    assert s.base_url == "https://testnet.binance.vision" and s.tls.server_name == \
        "testnet.binance.vision"


def test_signed_requests_over_https_trust_the_configured_ca(tmp_path):
    from pipeline.tls.certs import TestCA
    from pipeline.tls.client import UNKNOWN_CA, TlsSettings
    ca, other = TestCA(tmp_path / "ca"), TestCA(tmp_path / "other", name="someone else")
    cert = ca.issue(("localhost", "127.0.0.1"))
    creds = Credentials(API_KEY, HmacSigner(HMAC_SECRET))
    with Venue(API_KEY, hmac_secret=HMAC_SECRET.decode(), tls=cert) as v:
        assert v.url.startswith("https://localhost:")
        good = SignedRest(_settings(v.url, tls=TlsSettings("localhost", str(ca.ca_file))), creds)
        assert good.account()["canTrade"] and good.time_ms() > 0
        wrong = SignedRest(_settings(v.url, tls=TlsSettings("localhost", str(other.ca_file))),
                           creds)
        with pytest.raises(VenueUnreachable, match=f"venue unreachable .*{UNKNOWN_CA}"):
            wrong.account()
