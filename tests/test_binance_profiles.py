"""Venue profiles (config/venues/*.toml), ``hft keys ed25519``, and ``hft run --venue
NAME`` offline: key loading, config and signing pass, then one clear line at the network.
The preflight against a local verifying venue: clock, exchange rules, account."""

import os
import socket
import subprocess
import sys
import time

import pytest
from binance_venue import Venue

from pipeline import config as cfgmod
from pipeline.binance.keys import load_public_key, load_signer, verify_b64
from pipeline.instruments import SymbolTable
from pipeline.launch.preflight import PreflightError, binance_preflight
from pipeline.launch.venue import profile_path, profile_venue

ROOT = cfgmod.ROOT


def _hft(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name,fix,rest", [
    ("binance-testnet", "fix-oe.testnet.binance.vision", "https://testnet.binance.vision"),
    ("binance", "fix-oe.binance.com", "https://api.binance.com")])
def test_profiles_load_and_name_the_documented_endpoints(name, fix, rest):
    config = cfgmod.load(None, profile_path(name))
    v = profile_venue(config)
    assert (v.fix_host, v.fix_port, v.comp_id, v.rest, v.tls) == (fix, 9000, "SPOT", rest, True)
    assert v.ws.startswith("wss://stream") and v.sbe.startswith("wss://stream-sbe")
    assert config["gateway"]["dialect"] == "binance-spot" and config["gateway"]["tls"]
    b = config["binance"]
    assert b["api_key_env"].startswith("HFT_BINANCE") and b["private_key_file"].endswith(".pem")
    assert config["feed"]["api_key_env"] == b["api_key_env"]


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(cfgmod.ConfigError, match="profiles: binance, binance-testnet"):
        profile_path("bitnance")


def test_keys_ed25519_writes_a_pair_and_prints_the_public_key(tmp_path):
    r = _hft("keys", "ed25519", "--out", str(tmp_path / "k"))
    assert r.returncode == 0, r.stderr
    private, public = tmp_path / "k" / "ed25519.pem", tmp_path / "k" / "ed25519.pub.pem"
    assert os.stat(private).st_mode & 0o777 == 0o600
    assert r.stdout == public.read_text() and r.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in r.stdout + r.stderr
    sig = load_signer(private).sign_b64(b"x")
    assert verify_b64(load_public_key(public), b"x", sig)
    again = _hft("keys", "ed25519", "--out", str(tmp_path / "k"))
    assert again.returncode == 2 and "not overwriting" in again.stderr
    env = dict(os.environ, HFT_TEST_PASS="correct horse")
    enc = _hft("keys", "ed25519", "--out", str(tmp_path / "e"), "--passphrase-env",
               "HFT_TEST_PASS", env=env)
    assert enc.returncode == 0 and "correct horse" not in enc.stdout + enc.stderr
    assert b"ENCRYPTED" in (tmp_path / "e" / "ed25519.pem").read_bytes()
    os.environ["HFT_TEST_PASS"] = "correct horse"
    try:
        load_signer(tmp_path / "e" / "ed25519.pem", "HFT_TEST_PASS")
    finally:
        del os.environ["HFT_TEST_PASS"]
    missing = _hft("keys", "ed25519", "--out", str(tmp_path / "m"), "--passphrase-env",
                   "HFT_TEST_NOPE")
    assert missing.returncode == 2 and "HFT_TEST_NOPE" in missing.stderr


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_run_venue_profile_offline_fails_at_the_network_in_one_line(tmp_path):
    r = _hft("keys", "ed25519", "--out", str(tmp_path))
    assert r.returncode == 0
    port = _closed_port()  # the venue's REST host, unreachable
    overlay = tmp_path / "over.toml"
    overlay.write_text(f'[venue]\nrest_url = "http://127.0.0.1:{port}"\n'
                       f'[binance]\nprivate_key_file = "{tmp_path / "ed25519.pem"}"\n')
    env = dict(os.environ, HFT_BINANCE_TESTNET_API_KEY="test-api-key-value")
    run = _hft("run", "--venue", "binance-testnet", "--config", str(overlay),
               "--duration", "1", env=env)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("hft run: venue binance-testnet: GET "
                           f"http://127.0.0.1:{port}/api/v3/time: venue unreachable")
    assert "offline checks passed: config, key, signing" in last
    assert "signed request built" in run.stderr  # the key signed before the network
    assert "test-api-key-value" not in run.stdout + run.stderr
    # without the API key's variable: refused before any network, naming the variable
    env.pop("HFT_BINANCE_TESTNET_API_KEY")
    nokey = _hft("run", "--venue", "binance-testnet", "--config", str(overlay), env=env)
    assert nokey.returncode == 2
    assert "offline checks: [binance]: environment variable HFT_BINANCE_TESTNET_API_KEY" in \
        nokey.stderr.strip().splitlines()[-1]


def _local_config(url: str, key_file, extra: str = "") -> dict:
    config = cfgmod.load(None, profile_path("binance-testnet"))
    config["binance"] = config["binance"] | {"rest_url": url, "private_key_file": str(key_file),
                                             "exchange_info_dir": str(key_file.parent)}
    config["feed"]["url"] = "wss://stream.testnet.binance.vision/stream?streams=x"
    return config


def test_preflight_against_a_verifying_venue(tmp_path, monkeypatch):
    from pipeline.binance.keys import write_key_pair
    private, public = write_key_pair(tmp_path)
    monkeypatch.setenv("HFT_BINANCE_TESTNET_API_KEY", "k1")
    table = SymbolTable.from_config(cfgmod.load()["instruments"])
    with Venue("k1", public_key=load_public_key(public)) as v:
        pre = binance_preflight(_local_config(v.url, private), table, "local")
        assert pre.can_trade and set(pre.rules.symbols) == {"BTCUSDT", "ETHUSDT"}
        assert abs(pre.offset.offset_ms) <= pre.offset.rtt_ms / 2 + 1
        paths = [p for p, _, _ in v.requests]
        assert paths[-2:] == ["/api/v3/exchangeInfo", "/api/v3/account"]
        from pipeline.orders.risk import RiskLimits  # what hft run hands the gateway's risk
        filters = RiskLimits(exchange_rules=pre.rules_file).view(table).filters
        assert filters[0]["min_notional"] == 50_000_000 and filters[1]["max_num_orders"] == 25
        # a key the venue does not know: refused at the account step, Binance's reason
        monkeypatch.setenv("HFT_BINANCE_TESTNET_API_KEY", "unregistered")
        with pytest.raises(PreflightError, match="account: .*-2015"):
            binance_preflight(_local_config(v.url, private), table, "local")
        monkeypatch.setenv("HFT_BINANCE_TESTNET_API_KEY", "k1")
        bad = SymbolTable.from_config([{"symbol": "BTCUSDT", "tick_size": "0.1",
                                        "lot_size": "0.00001"}])
        with pytest.raises(PreflightError, match="exchange rules: .*tick_size 0.1"):
            binance_preflight(_local_config(v.url, private), bad, "local")
        sbe = _local_config(v.url, private)
        sbe["feed"] = sbe["feed"] | {"md_format": "sbe", "api_key_env": "HFT_TEST_NO_MD_KEY"}
        with pytest.raises(PreflightError, match="offline checks: .*HFT_TEST_NO_MD_KEY"):
            binance_preflight(sbe, table, "local")
        big = _local_config(v.url, private)
        big["strategy"]["quote_qty"] = {"BTCUSDT": "10000", "ETHUSDT": "0.00005"}
        with pytest.raises(PreflightError, match="quote sizes: .*BTCUSDT 10000 is outside "
                           "minQty 0.00001 .. maxQty 9000; ETHUSDT 0.00005 is not a multiple"):
            binance_preflight(big, table, "local")
        v.clock_ms = lambda: time.time_ns() // 1_000_000 + 60_000  # a minute ahead of us
        with pytest.raises(PreflightError, match="clock: clock skew: .*behind"):
            binance_preflight(_local_config(v.url, private), table, "local")


def test_launcher_resolves_a_profile_without_clobbering_the_users_tls(tmp_path, monkeypatch):
    from pipeline.launch import launcher as L
    monkeypatch.setattr(L, "RUN_DIR", tmp_path)
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    overlay = tmp_path / "over.toml"
    overlay.write_text(f'[gateway]\nca_file = "{ca}"\n')
    run = L.Launcher(L.RunOptions(venue="binance-testnet", config=str(overlay),
                                  instance="bnprof"))
    run._start_venue()
    run._resolve_config()
    gw, feed, b = run.config["gateway"], run.config["feed"], run.config["binance"]
    assert (gw["host"], gw["port"], gw["target_comp_id"], gw["tls"]) == \
        ("fix-oe.testnet.binance.vision", 9000, "SPOT", True)
    assert gw["ca_file"] == str(ca) and gw.get("server_name", "") == ""  # SNI: the FIX host
    assert feed["url"].startswith("wss://stream.testnet.binance.vision/stream?streams="
                                  "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade/")
    assert feed["rest_url"] == b["rest_url"] == "https://testnet.binance.vision"
    assert gw.get("username", "") == ""  # no simulator account
    assert run._venue_positions() is None  # not the simulator: no admin API
