"""``hft cleanup [INSTANCE]``: remove the shared-memory segments of dead instances.

A clean shutdown removes its segments; a killed launcher leaves them in /dev/shm. This
removes an instance's segments only when no process that created one is still alive.
"""

from __future__ import annotations

import argparse

from pipeline.transport.registry import instances, live_creators
from pipeline.transport.segment import unlink


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance", nargs="?", help="instance name (default: every dead instance)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")


def main(args: argparse.Namespace) -> int:
    found = instances()
    targets = {args.instance: found.get(args.instance, [])} if args.instance else found
    if args.instance and not targets[args.instance]:
        print(f"no segments for instance {args.instance!r}")
        return 0
    status = 0
    for name, segments in targets.items():
        alive = live_creators(segments)
        if alive:
            print(f"{name}: still in use by pid {', '.join(map(str, sorted(alive)))}; kept")
            status = 1 if args.instance else status
            continue
        for full in segments:
            if not args.dry_run:
                unlink(full)
            print(f"{'would remove' if args.dry_run else 'removed'} {full}")
    return status
