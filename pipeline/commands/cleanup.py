"""``hft cleanup [INSTANCE]``: remove what dead instances left behind.

A clean shutdown removes its segments; a killed launcher leaves them in /dev/shm. Either
way ``var/run/<instance>/`` (FIX stores and journals: hundreds of MB apparent size after a
long run) and ``var/run/<instance>.toml`` stay. This removes an instance's segments and
run files only when no process that created one of its segments is still alive.
"""

from __future__ import annotations

import argparse

from pipeline.launch import rundir
from pipeline.transport.registry import instances, live_creators
from pipeline.transport.segment import unlink


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance", nargs="?", help="instance name (default: every dead instance)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")


def main(args: argparse.Namespace) -> int:
    found = instances()
    names = [args.instance] if args.instance else sorted(set(found) | rundir.names())
    if args.instance and not found.get(args.instance) and not rundir.run_files(args.instance):
        print(f"nothing left by instance {args.instance!r}")
        return 0
    status = 0
    verb = "would remove" if args.dry_run else "removed"
    for name in names:
        segments = found.get(name, [])
        alive = live_creators(segments)
        if alive:
            print(f"{name}: still in use by pid {', '.join(map(str, sorted(alive)))}; kept")
            status = 1 if args.instance else status
            continue
        for full in segments:
            if not args.dry_run:
                unlink(full)
            print(f"{verb} {full}")
        for path in rundir.run_files(name):
            shown = f"{path}/" if path.is_dir() else str(path)
            if not args.dry_run:
                rundir.remove(path)
            print(f"{verb} {shown}")
    return status
