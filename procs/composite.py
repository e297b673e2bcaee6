"""Several pipeline agents in one process (one thread, one core): no park wake-up per hop.

``python -m procs.composite --instance NAME --config FILE --core 1 --idle busy_spin``
builds each agent with its own process module's ``build(args)`` (same options as when it
runs alone) and runs them round-robin in a ``CompositeAgent``, data-flow order, one duty
cycle each per round in one jitted loop (``--rounds fused``), so a tick crosses
feed -> book -> strategy -> gateway in one round with no Python in between.
On SIGTERM the children close strategy first (pulls its quotes), then the gateway (cancels,
logs out), then market data. The process registers as ``--name`` (default "pipeline").
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from pipeline.runtime.agent import Agent
from pipeline.runtime.composite import CompositeAgent
from procs import _common

AGENTS = ("feed_handler", "book_builder", "strategy", "oms_gateway")  # data-flow order
CLOSE_ORDER = ("strategy", "oms_gateway", "feed_handler", "book_builder")


def parser() -> argparse.ArgumentParser:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--name", default="pipeline", help="process name in the counters area")
    p.add_argument("--agents", default=",".join(AGENTS),
                   help=f"comma-separated agents, run in this order (of {', '.join(AGENTS)})")
    p.add_argument("--child-args", action="append", default=[], metavar="AGENT=ARGS",
                   help="extra options for one agent's module, e.g. strategy='--seed 7'")
    p.add_argument("--rounds", choices=CompositeAgent.ROUNDS, default="fused",
                   help="fused: the children's duty cycles in one jitted loop (default); "
                   "single: one Python call per child per round; slice: each child polls "
                   "CLOCK_CHECK_EVERY cycles per round")
    return p


def child_argv(name: str, args: argparse.Namespace) -> list[str]:
    """The command line the agent's own module would get: instance, config, extras."""
    argv = ["--instance", args.instance]
    if args.config:
        argv += ["--config", args.config]
    for spec in args.child_args:
        agent, sep, extra = spec.partition("=")
        if not sep:
            raise SystemExit(f"--child-args {spec!r}: expected AGENT=ARGS")
        if agent == name:
            argv += shlex.split(extra)
    return argv


def build_agents(args: argparse.Namespace) -> tuple[list[Agent], object]:
    names = [n for n in args.agents.split(",") if n]
    unknown = sorted(set(names) - set(AGENTS))
    if unknown or not names:
        raise SystemExit(f"--agents: unknown {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(AGENTS)}")
    agents, counters = [], None
    for name in names:
        module = importlib.import_module(f"procs.{name}")
        agent, c = module.build(module.parser().parse_args(child_argv(name, args)))
        agents.append(agent)
        counters = counters or c
    return agents, counters


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    agents, counters = build_agents(args)
    composite = CompositeAgent(agents, args.name, rounds=args.rounds,
                               close_order=list(CLOSE_ORDER))
    return _common.run(composite, args, counters)


if __name__ == "__main__":
    sys.exit(main())
