"""Ed25519 keys: the fix-api.md Logon signature vector, load/verify round trip, refusals."""

import base64
import os

import pytest

from pipeline.binance.keys import (
    KeyFileError,
    load_public_key,
    load_signer,
    verify_b64,
    write_key_pair,
)

# fix-api.md, "How to sign Logon <A> request": the documented key and its signature
DOC_KEY = ("-----BEGIN PRIVATE KEY-----\n"
           "MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u\n"
           "-----END PRIVATE KEY-----\n")
DOC_PAYLOAD = "\x01".join(["A", "EXAMPLE", "SPOT", "1", "20240627-11:17:25.223"]).encode()
DOC_SIGNATURE = ("4MHXelVVcpkdwuLbl6n73HQUXUf1dse2PCgT1DYqW9w8AVZ1RACFGM+5UdlGPrQHrgtS3CvsR"
                 "URC1oj73j8gCA==")


def test_documented_logon_signature(tmp_path):
    (tmp_path / "k.pem").write_text(DOC_KEY)
    signer = load_signer(tmp_path / "k.pem")
    assert signer.sign_b64(DOC_PAYLOAD) == DOC_SIGNATURE
    assert "PRIVATE" not in repr(signer)


def test_pair_round_trip_and_passphrase(tmp_path, monkeypatch):
    private, public = write_key_pair(tmp_path, passphrase=b"s3cret")
    assert os.stat(private).st_mode & 0o777 == 0o600
    monkeypatch.setenv("HFT_TEST_KEY_PASS", "s3cret")
    signer = load_signer(private, "HFT_TEST_KEY_PASS")
    sig = signer.sign_b64(b"payload")
    pub = load_public_key(public)
    assert verify_b64(pub, b"payload", sig)
    assert not verify_b64(pub, b"payloaD", sig)
    assert not verify_b64(pub, b"payload", base64.b64encode(b"x" * 64).decode())
    assert not verify_b64(pub, b"payload", "not base64!")
    with pytest.raises(KeyFileError, match="exists"):
        write_key_pair(tmp_path)


def test_refusals_name_the_file_not_the_secret(tmp_path, monkeypatch):
    private, _ = write_key_pair(tmp_path, passphrase=b"s3cret")
    with pytest.raises(KeyFileError, match="HFT_NOPE"):
        load_signer(private, "HFT_NOPE")
    monkeypatch.setenv("HFT_TEST_KEY_PASS", "wrong")
    with pytest.raises(KeyFileError, match=str(private)) as err:
        load_signer(private, "HFT_TEST_KEY_PASS")
    assert "wrong" not in str(err.value)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signer(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(KeyFileError, match="not a usable"):
        load_signer(tmp_path / "junk.pem")
