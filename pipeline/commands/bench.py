"""``hft bench NAME``: run ``bench/NAME.py`` (each prints a table, or JSON with --json)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import bench


def _names() -> list[str]:
    modules = pkgutil.iter_modules(bench.__path__)
    return sorted(m.name for m in modules if not m.name.startswith("_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=_names(), help="which benchmark")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own arguments")


def main(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"bench.{args.name}")
    parser = argparse.ArgumentParser(prog=f"hft bench {args.name}", description=module.__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(args.rest)) or 0)
