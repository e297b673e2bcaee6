"""What every process module shares: its command line and how it runs its agent."""

from __future__ import annotations

import argparse
import logging

from pipeline.metrics.counters import Counters
from pipeline.runtime import idle
from pipeline.runtime.agent import Agent
from pipeline.runtime.runner import AgentRunner, RunnerConfig
from pipeline.transport.registry import Instance


def parser(description: str, instance_required: bool = True) -> argparse.ArgumentParser:
    """The options every process takes (the launcher passes them from the profile)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--instance", required=instance_required,
                   help="pipeline instance name" + ("" if instance_required else
                                                    " (default: [instance] name)"))
    p.add_argument("--core", type=int, default=None, help="CPU core to pin to")
    p.add_argument("--idle", default="backoff",
                   help="idle strategy: busy_spin, yield, backoff, block (backoff, then "
                   "sleep on the main input ring until a publish), sleep")
    p.add_argument("--idle-spins", type=int, default=None,
                   help="backoff/block: empty duty cycles spun before yielding (default 100)")
    p.add_argument("--idle-yields", type=int, default=None,
                   help="backoff/block: sched_yield()s before parking (default 10)")
    p.add_argument("--idle-park-us", type=float, default=None,
                   help="backoff/block: longest park, a block's sleep timeout (default 1000)")
    p.add_argument("--idle-handoff", action="store_true",
                   help="block: sched_yield after every duty cycle with work, so a consumer "
                   "it woke on this core runs at once")
    p.add_argument("--rt-priority", type=int, default=0, help="SCHED_FIFO priority (0: off)")
    p.add_argument("--lock-memory", action="store_true", help="mlockall")
    add_slice_argument(p)
    p.add_argument("--config", default=None, help="TOML config merged over the default")
    return p


def add_slice_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slice-us", type=float, default=1000.0,
                   help="how long the duty cycles run between two housekeeping passes")


def add_warm_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--warm-us", type=float, default=0.0,
                   help=f"keep {what} hot: one dry pass every N us while idle "
                   "(busy-spinning processes only; 0 = off)")


def idle_strategy(args: argparse.Namespace) -> idle.IdleStrategy:
    """``--idle`` with the ladder options the profile gave (``--idle-spins`` ...)."""
    strategy = idle.from_name(args.idle)
    park = None if args.idle_park_us is None else int(args.idle_park_us * 1000)
    if (args.idle_spins, args.idle_yields, park, args.idle_handoff) == (None, None, None, False):
        return strategy
    return idle.with_ladder(strategy, args.idle_spins, args.idle_yields, park,
                            handoff=args.idle_handoff)


def attach(args: argparse.Namespace) -> tuple[Instance, Counters]:
    inst = Instance.attach(args.instance)
    return inst, Counters.attach(inst)


def log_as(name: str) -> None:
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s {name} %(levelname)s %(message)s")


def run(agent: Agent, args: argparse.Namespace, counters: Counters | None) -> int:
    log_as(agent.name)
    config = RunnerConfig(core=args.core, realtime_priority=args.rt_priority,
                          lock_memory=args.lock_memory, slice_ns=int(args.slice_us * 1000))
    AgentRunner(agent, idle_strategy(args), config, counters).run()
    return 0
