"""Configuration: TOML files, with ``config/default.toml`` as the base.

Components read their own section (``config["feed"]``, ``config["risk"]`` ...). Secrets
(FIX passwords, API keys) are never stored here: a key ending in ``_env`` names the
environment variable that holds the value (``password_env = "HFT_FIX_PASSWORD"``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "default.toml"


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def load(path: str | Path | None = None) -> dict[str, Any]:
    """The default config, overlaid with ``path`` if given."""
    with open(DEFAULT_CONFIG, "rb") as f:
        config = tomllib.load(f)
    if path is not None:
        with open(path, "rb") as f:
            config = merge(config, tomllib.load(f))
    return config


def secret(section: dict, key: str) -> str:
    """Resolve ``key`` from the environment variable named by ``<key>_env``."""
    env = section.get(f"{key}_env")
    if not env:
        raise KeyError(f"config has no {key}_env naming the environment variable for {key}")
    value = os.environ.get(env)
    if value is None:
        raise KeyError(f"environment variable {env} (for {key}) is not set")
    return value
