"""``hft run --sim-dialect binance``: the run's credentials and both sides' settings, offline."""

from __future__ import annotations

import os
import stat

from pipeline import config as cfgmod
from pipeline.binance.keys import load_public_key, load_signer, verify_b64
from pipeline.launch.binance_run import (
    API_KEY_ENV,
    gateway_settings,
    make_credentials,
    remove_credentials,
    sim_settings,
)
from pipeline.venue.simulator import SimConfig


def test_run_credentials_private_and_registered_with_the_simulator(tmp_path):
    env: dict[str, str] = {}
    creds = make_credentials(tmp_path / "run", env)
    assert stat.S_IMODE(os.stat(creds.private_key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(creds.private_key.parent).st_mode) == 0o700
    key = env[API_KEY_ENV]
    assert len(key) == 64 and key.isalnum()
    config = cfgmod.load()
    sim_settings(config["sim"], creds)
    os.environ[API_KEY_ENV] = key
    try:
        cfg = SimConfig.from_config(config)
    finally:
        del os.environ[API_KEY_ENV]
    assert cfg.dialect == "binance" and cfg.comp_id == "SPOT"
    (account,) = cfg.accounts
    assert account.api_key == key and key not in repr(account)
    signer = load_signer(creds.private_key)
    assert verify_b64(account.public_key, b"payload", signer.sign_b64(b"payload"))
    assert verify_b64(load_public_key(creds.public_key), b"x", signer.sign_b64(b"x"))
    run = {"gateway": {"password_env": "HFT_FIX_PASSWORD", "username": "trader"}}
    gateway_settings(run, creds, "https://127.0.0.1:1", "/ca.pem", "localhost")
    gw, b = run["gateway"], run["binance"]
    assert gw == {"dialect": "binance-spot"}
    assert b["api_key_env"] == API_KEY_ENV and b["rest_url"] == "https://127.0.0.1:1"
    assert b["private_key_file"] == str(creds.private_key) and b["ca_file"] == "/ca.pem"
    cfgmod.check(run, cfgmod.SCHEMA, "run")  # every key is one the gateway reads
    remove_credentials(creds)
    assert not creds.private_key.exists() and not creds.public_key.exists()
