"""``hft``: one console script, one module per subcommand.

Each command module exposes ``add_arguments(parser)`` and ``main(args) -> int``; it is
imported only when its command runs, so ``hft --help`` stays fast and a broken optional
piece cannot stop the others.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pipeline.commands.demo", "live transport demo: producer and consumers on a ring"),
    "bench": ("pipeline.commands.bench", "run a benchmark (transport, md, sim, fix, e2e)"),
    "sim": ("pipeline.commands.sim", "run the venue simulator"),
    "capture": ("pipeline.commands.capture", "record a Binance-format feed to a capture file"),
    "replay": ("pipeline.commands.replay", "replay captures through parser, sync and books"),
    "run": ("pipeline.commands.run", "launch the whole pipeline"),
    "monitor": ("pipeline.commands.monitor", "show a running pipeline from shared memory"),
    "ctl": ("pipeline.commands.ctl", "steer a running pipeline"),
    "risk": ("pipeline.commands.risk", "firm-wide risk view and kill switch over NATS"),
    "tune": ("pipeline.commands.tune", "host tuning checks and jitter probe"),
    "cleanup": ("pipeline.commands.cleanup", "remove the segments of a dead instance"),
    "audit": ("pipeline.commands.audit", "replay the drop copy from NATS and check it"),
    "keys": ("pipeline.commands.keys", "make an Ed25519 key pair to register with Binance"),
    "firm": ("pipeline.commands.firm", "two instances of one firm: Aeron bridge, NATS drop copy "
             "and risk view, firm-wide kill switch (demo)"),
    "bridge": ("pipeline.commands.bridge", "forward a ring over Aeron to another instance"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items()
            if importlib.util.find_spec(spec[0]) is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hft", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    available = _available()
    for name, (module, help_text) in available.items():
        p = sub.add_parser(name, help=help_text)
        # only the chosen command's module is imported to add its arguments
        if name in argv:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    module = importlib.import_module(available[args.command][0])
    try:
        return int(module.main(args) or 0)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"hft {args.command}: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    except Exception as e:
        if not _user_error(e):
            raise
        # say which file (or which running instance already has the name)
        print(f"hft {args.command}: {e}", file=sys.stderr)
        return 2


# (module, class) of the errors that are the user's input, reported in one line. Looked
# up only among modules already imported: importing them here would load numba (and its
# cache) for commands that never use it, e.g. `hft tune check` as an unprivileged user.
USER_ERRORS = (("pipeline.config", "ConfigError"), ("tuning.profiles", "ProfileError"),
               ("pipeline.marketdata.files", "CaptureError"),
               ("pipeline.transport.segment", "SegmentLive"))


def _user_error(e: BaseException) -> bool:
    return any(isinstance(e, getattr(sys.modules[m], n)) for m, n in USER_ERRORS
               if m in sys.modules)


if __name__ == "__main__":
    sys.exit(main())
