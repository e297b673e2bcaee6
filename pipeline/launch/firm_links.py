"""What ``hft run`` adds to an instance that is one of a firm's (issue 17).

- ``--nats URL``: the drop copy (every order intent and execution report into JetStream,
  a gating consumer reserved on both order-path rings) and the risk link (positions, PnL
  and open orders out; the firm-wide kill switch in) run beside the pipeline.
- ``--bridge-out RING CHANNEL STREAM_ID``: a bridge sender forwards one of the instance's
  rings over Aeron (gating on ``orders``/``execs``, so it is reserved at creation).
- ``--book-from CHANNEL STREAM_ID``: the instance has no market data of its own; a bridge
  receiver produces its ``book`` ring from another instance's, and the strategy and the
  gateway read it as if the local book builder wrote it.

Each is a child process the supervisor keeps running like the pipeline's own; the
launcher stops them after the pipeline so the drop copy takes the last reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import ConfigError
from pipeline.runtime.processes import Child

BRIDGED_RINGS = ("md", "book", "orders", "execs")
GATING_RINGS = ("orders", "execs")  # the rings a bridge must not lose a record of
MARKET_DATA_AGENTS = ("feed_handler", "book_builder")
BRIDGE_CONSUMER = "bridge"
DROPCOPY_CONSUMER = "dropcopy"


@dataclass(frozen=True)
class Bridge:
    ring: str
    channel: str  # an Aeron channel URI, e.g. aeron:udp?endpoint=127.0.0.1:40123
    stream_id: int


@dataclass(frozen=True)
class FirmLinks:
    nats: str | None = None
    aeron_dir: str | None = None  # the media driver's directory (its default when None)
    bridge_out: tuple[Bridge, ...] = ()
    book_from: Bridge | None = None

    def __post_init__(self) -> None:
        rings = [b.ring for b in self.bridge_out]
        for ring in rings:
            if ring not in BRIDGED_RINGS:
                raise ConfigError(f"--bridge-out {ring}: not a ring of the pipeline; one of "
                                  f"{', '.join(BRIDGED_RINGS)}")
        if len(set(rings)) != len(rings):
            raise ConfigError(f"--bridge-out: a ring bridged twice ({', '.join(rings)})")
        if (rings or self.book_from) and not self.aeron_dir:
            raise ConfigError("--bridge-out / --book-from: --aeron-dir DIR names the Aeron "
                              "media driver to use (hft bridge driver --aeron-dir DIR)")
        if self.book_from is not None and "book" in rings:
            raise ConfigError("--book-from and --bridge-out book: the book ring comes "
                             "from one place")

    def also_gating(self) -> tuple[str, ...]:
        """Consumers reserved on the order-path rings at creation (nothing is lost)."""
        out = (DROPCOPY_CONSUMER,) if self.nats else ()
        if any(b.ring in GATING_RINGS for b in self.bridge_out):
            out += (BRIDGE_CONSUMER,)
        return out

    def skipped_agents(self) -> tuple[str, ...]:
        """Pipeline agents the instance does not run (its book ring is bridged in)."""
        return MARKET_DATA_AGENTS if self.book_from is not None else ()

    def children(self, instance: str, config_path: str, env: dict[str, str]) -> list[Child]:
        """The firm's processes for ``instance``, in start order (stop: reversed)."""
        common = ["--instance", instance, "--config", config_path]
        aeron = ["--aeron-dir", str(self.aeron_dir)]
        out = []
        if self.nats:
            out.append(Child("dropcopy", "procs.dropcopy", [*common, "--nats", self.nats],
                             env=env))
            out.append(Child("risk_link", "procs.risk_link", [*common, "--nats", self.nats],
                             env=env))
        if self.book_from is not None:
            out.append(Child("bridge_recv_book", "procs.bridge",
                             ["recv", *common, *aeron, *_endpoint(self.book_from)], env=env))
        for b in self.bridge_out:
            out.append(Child(f"bridge_send_{b.ring}", "procs.bridge",
                             ["send", *common, *aeron, *_endpoint(b)], env=env))
        return out


def _endpoint(b: Bridge) -> list[str]:
    return ["--ring", b.ring, "--channel", b.channel, "--stream-id", str(b.stream_id)]
