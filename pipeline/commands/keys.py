"""``hft keys ed25519 --out DIR``: make an Ed25519 key pair for Binance and print the
public key to register (Binance's FIX API takes Ed25519 API keys only; the same key signs
REST requests). The private key is written mode 0600, optionally encrypted with a
passphrase read from an environment variable (never from the command line)."""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.binance.keys import KeyFileError, write_key_pair


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    ed = sub.add_parser("ed25519", help="write DIR/NAME.pem (private, 0600) and "
                        "DIR/NAME.pub.pem; print the public key")
    ed.add_argument("--out", required=True, metavar="DIR", help="directory for the pair")
    ed.add_argument("--name", default="ed25519", help="file name stem (default: ed25519)")
    ed.add_argument("--passphrase-env", default="", metavar="VAR",
                    help="encrypt the private key with the passphrase in environment "
                    "variable VAR (then set [binance] private_key_passphrase_env = VAR)")


def main(args: argparse.Namespace) -> int:
    passphrase = None
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            print(f"hft keys: environment variable {args.passphrase_env} (the passphrase) is "
                  "not set", file=sys.stderr)
            return 2
        passphrase = value.encode()
    try:
        private, public = write_key_pair(args.out, args.name, passphrase)
    except (KeyFileError, OSError) as e:
        print(f"hft keys: {e}", file=sys.stderr)
        return 2
    print(f"private key: {private} (mode 0600{', encrypted' if passphrase else ''}; keep it "
          "secret, never commit it)", file=sys.stderr)
    print(f"public key:  {public}; register it with Binance (testnet: "
          "https://testnet.binance.vision -> Generate Ed25519 key; production: API "
          "Management -> Create API -> Self-generated), then put the API key Binance shows "
          "in the environment variable named by [binance] api_key_env", file=sys.stderr)
    sys.stdout.write(public.read_text())
    return 0
