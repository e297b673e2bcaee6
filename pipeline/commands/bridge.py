"""``hft bridge driver|send|recv``: a ring forwarded over Aeron (``procs.bridge``)."""

from __future__ import annotations

import argparse
import importlib


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", choices=("driver", "send", "recv"),
                        help="driver: the Aeron media driver; send: a local ring to Aeron; "
                        "recv: Aeron into a local ring")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the role's own arguments")


def main(args: argparse.Namespace) -> int:
    # the process module, as the launcher runs it (python -m procs.bridge ROLE ...)
    return int(importlib.import_module("procs.bridge").main([args.role, *args.rest]))
