"""Ed25519 keys for Binance: load a private key, sign a payload, make a key pair.

Binance's FIX API accepts only Ed25519 API keys; the Logon's RawData(96) and a signed REST
request's ``signature`` are both base64 Ed25519 signatures. The private key is a PKCS#8 PEM
file (optionally encrypted); its passphrase comes from an environment variable named in
config, never from config itself. Nothing here logs or returns key material except
``KeyPair.public_pem`` (the part you register with Binance).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


class KeyFileError(ValueError):
    """A key file that is missing, unreadable, not Ed25519, or needs a passphrase."""


@dataclass(frozen=True)
class Signer:
    """Signs with one Ed25519 private key; ``repr`` shows the public key only."""

    key: Ed25519PrivateKey = field(repr=False)

    def sign_b64(self, payload: bytes) -> str:
        """The base64 Ed25519 signature of ``payload`` (RawData(96), REST ``signature``)."""
        return base64.b64encode(self.key.sign(payload)).decode("ascii")

    @property
    def public_pem(self) -> str:
        return public_pem(self.key.public_key())


def load_signer(path: str | Path, passphrase_env: str = "") -> Signer:
    """The private key in the PEM file ``path``; ``passphrase_env`` names the environment
    variable holding its passphrase (empty: the key is not encrypted)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read the Ed25519 private key ({e.strerror})") from e
    password = None
    if passphrase_env:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise KeyFileError(f"{path}: the passphrase variable ${passphrase_env} is not set")
        password = value.encode()
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as e:
        # the message names the file and the cause, never the key or the passphrase
        raise KeyFileError(f"{path}: not a usable PEM private key ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'bad data'})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: the key is {type(key).__name__}; Binance FIX needs Ed25519")
    return Signer(key)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (the simulator's registered account keys)."""
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{path}: not a readable Ed25519 public key PEM ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: the key is {type(key).__name__}, not Ed25519")
    return key


def verify_b64(key: Ed25519PublicKey, payload: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid signature of ``payload`` by ``key``."""
    from cryptography.exceptions import InvalidSignature
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def write_key_pair(directory: str | Path, name: str = "ed25519",
                   passphrase: bytes | None = None) -> tuple[Path, Path]:
    """Write ``<name>.pem`` (private, PKCS#8, mode 0600) and ``<name>.pub.pem`` in
    ``directory``; returns both paths. Refuses to overwrite an existing private key."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    if private.exists():
        raise KeyFileError(f"{private} exists; not overwriting a private key")
    key = Ed25519PrivateKey.generate()
    algorithm = (serialization.BestAvailableEncryption(passphrase) if passphrase
                 else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            algorithm)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_text(public_pem(key.public_key()))
    return private, public
