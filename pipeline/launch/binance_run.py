"""``hft run --sim-dialect binance``: the run's Binance credentials and both sides' settings.

A fresh Ed25519 key pair per run in the instance's private run directory (mode 0700, the
private key 0600; ``pipeline.binance.keys.write_key_pair``) and a fresh 64-character API
key handed to both sides through the environment only. The simulator registers the public
key for that API key (``[[sim.accounts]]``, ``dialect = "binance"``, TLS on); the gateway
speaks the ``binance-spot`` FIX dialect with the private key, the API key from the same
variable, and the simulator's REST base URL for reconcile and exchange rules.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from pipeline.binance.keys import write_key_pair

API_KEY_ENV = "HFT_BINANCE_API_KEY"
ACCOUNT = "trader"
GATEWAY_DIALECT = "binance-spot"


@dataclass(frozen=True)
class BinanceRun:
    private_key: Path
    public_key: Path
    api_key_env: str = API_KEY_ENV


def make_credentials(run_dir: Path, env: dict[str, str]) -> BinanceRun:
    """Write the run's key pair under ``run_dir/keys`` and put a new API key in ``env``."""
    keys = run_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    os.chmod(keys, 0o700)
    private, public = write_key_pair(keys, "ed25519")
    alphabet = string.ascii_letters + string.digits
    env[API_KEY_ENV] = "".join(secrets.choice(alphabet) for _ in range(64))
    return BinanceRun(private, public)


def remove_credentials(creds: BinanceRun) -> None:
    """The run is over: its key pair goes (the API key only ever lived in the environment)."""
    for path in (creds.private_key, creds.public_key):
        path.unlink(missing_ok=True)


def sim_settings(sim: dict, creds: BinanceRun) -> None:
    """``[sim]`` of the run: the binance dialect with the run's account registered."""
    sim["dialect"] = "binance"
    sim["accounts"] = [{"username": ACCOUNT, "api_key_env": creds.api_key_env,
                        "ed25519_public_key": str(creds.public_key)}]


def gateway_settings(config: dict, creds: BinanceRun, rest_url: str, ca_file: str = "",
                     server_name: str = "") -> None:
    """``[gateway]`` and ``[binance]`` of the run: the binance-spot dialect; its key, API
    key and the simulator's REST base URL (trusting the simulator's CA)."""
    gw = config.setdefault("gateway", {})
    gw["dialect"] = GATEWAY_DIALECT
    gw.pop("password_env", None)
    gw.pop("username", None)
    b = config.setdefault("binance", {})
    b["rest_url"] = rest_url
    b["api_key_env"] = creds.api_key_env
    b["private_key_file"] = str(creds.private_key)
    b["private_key_passphrase_env"] = ""
    b["hmac_secret_env"] = ""
    if ca_file:
        b["ca_file"] = ca_file
    if server_name:
        b["server_name"] = server_name
