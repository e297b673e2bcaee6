"""Core-layout profiles: which core and idle strategy each pipeline process gets.

``load_profile(name)`` reads ``tuning/profiles/<name>.toml`` (or a path) and returns
``{process: {"core": int, "idle": str}}``. ``"auto"`` picks ``tuned-host`` when the
host offers at least its ``min_cores`` usable cores, else ``dev-2core``. A profile where
a busy-spinning process shares its core with another process is refused: two spinners
(or a spinner and anything) on one core starve each other.

A process may host several pipeline agents in one composite process
(``agents = ["feed_handler", ...]``, see procs/composite.py); its spec then carries
``"agents"``. Each agent is placed at most once.

``python -m tuning.profiles [NAME] [--hot-cores]`` prints a profile (for shell scripts).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

from pipeline.config import unknown_key

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
IDLE_STRATEGIES = ("busy_spin", "yield", "backoff", "block", "sleep", "noop")
# every key a profile may set (anything else is a typo: refused, with the nearest key)
PROFILE_KEYS = ("description", "min_cores", "processes")
PROCESS_KEYS = ("core", "idle", "lock_memory", "slice_us", "warm_us", "agents",
                "idle_spins", "idle_yields", "idle_park_us", "idle_handoff")
LADDER_KEYS = ("idle_spins", "idle_yields", "idle_park_us")  # backoff and block only
AUTO_ORDER = ("tuned-host", "dev-2core")  # most demanding first


class ProfileError(ValueError):
    pass


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def usable_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _read(name: str) -> dict:
    path = Path(name) if name.endswith(".toml") else PROFILE_DIR / f"{name}.toml"
    if not path.is_file():
        raise ProfileError(f"no core-layout profile {name!r}; one of "
                           f"{', '.join(available() + ['auto'])} or a .toml path")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: {e}") from None


def choose_auto(n_cores: int | None = None) -> str:
    n = len(usable_cores()) if n_cores is None else n_cores
    for name in AUTO_ORDER:
        if n >= int(_read(name).get("min_cores", 1)):
            return name
    return AUTO_ORDER[-1]


def _known(table: dict, valid: tuple[str, ...], name: str, where: str) -> None:
    for key in table:
        if key not in valid:
            raise ProfileError(unknown_key(f"profile {name}", where, key, valid))


def validate(raw: dict, name: str) -> dict[str, dict]:
    _known(raw, PROFILE_KEYS, name, "")
    procs = raw.get("processes")
    if not isinstance(procs, dict) or not procs:
        raise ProfileError(f"profile {name}: no [processes.*] tables")
    out: dict[str, dict] = {}
    for proc, spec in procs.items():
        _known(spec, PROCESS_KEYS, name, f"processes.{proc}")
        core, idle = spec.get("core"), spec.get("idle")
        if not isinstance(core, int) or isinstance(core, bool) or core < 0:
            raise ProfileError(f"profile {name}: {proc}.core must be a core number, got {core!r}")
        if idle not in IDLE_STRATEGIES:
            raise ProfileError(f"profile {name}: {proc}.idle {idle!r} is not one of "
                               f"{', '.join(IDLE_STRATEGIES)}")
        out[proc] = {"core": core, "idle": idle}
        if spec.get("lock_memory"):  # mlockall: no page faults (first touch) on the hot path
            out[proc]["lock_memory"] = True
        if "slice_us" in spec:  # duty cycles between two housekeeping passes (Python)
            out[proc]["slice_us"] = _number(spec, "slice_us", proc, name, zero_ok=False)
        if "warm_us" in spec:  # strategy and gateway keep their paths hot (*/warm.py)
            warm = _number(spec, "warm_us", proc, name, zero_ok=True)
            if warm and idle != "busy_spin":
                raise ProfileError(f"profile {name}: {proc}.warm_us needs idle = "
                                   f"\"busy_spin\" (warming would keep a backing-off core "
                                   f"awake)")
            out[proc]["warm_us"] = warm
        if "agents" in spec:
            out[proc]["agents"] = _agents(spec["agents"], proc, name)
        for key in LADDER_KEYS:  # the backoff/block ladder: spins, yields, longest park
            if key in spec:
                if idle not in ("backoff", "block"):
                    raise ProfileError(f"profile {name}: {proc}.{key} needs idle = "
                                       f"\"backoff\" or \"block\"")
                out[proc][key] = _number(spec, key, proc, name, zero_ok=key != "idle_park_us")
        if "idle_handoff" in spec:  # yield to the consumer a cycle woke (idle.with_ladder)
            if not isinstance(spec["idle_handoff"], bool) or idle != "block":
                raise ProfileError(f"profile {name}: {proc}.idle_handoff must be true or "
                                   f"false, with idle = \"block\"")
            out[proc]["idle_handoff"] = spec["idle_handoff"]
    hosted = [a for p, s in out.items() for a in s.get("agents", [])]
    twice = sorted({a for a in hosted if hosted.count(a) > 1 or a in out})
    if twice:
        raise ProfileError(f"profile {name}: {', '.join(twice)} placed more than once")
    for proc, spec in out.items():
        sharing = [p for p, s in out.items() if p != proc and s["core"] == spec["core"]]
        if spec["idle"] == "busy_spin" and sharing:
            raise ProfileError(f"profile {name}: {proc} busy-spins on core {spec['core']}, "
                               f"which it shares with {', '.join(sharing)}")
    return out


def _number(spec: dict, key: str, proc: str, name: str, zero_ok: bool) -> float:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or \
            (value == 0 and not zero_ok):
        raise ProfileError(f"profile {name}: {proc}.{key} must be a number "
                           f"{'>=' if zero_ok else '>'} 0, got {value!r}")
    return value


def _agents(agents, proc: str, name: str) -> list[str]:
    if (not isinstance(agents, list) or not agents
            or not all(isinstance(a, str) and a for a in agents)):
        raise ProfileError(f"profile {name}: {proc}.agents must be a non-empty list of "
                           f"agent names, got {agents!r}")
    return list(agents)


def load_profile(name: str = "auto", *, n_cores: int | None = None) -> dict[str, dict]:
    """``{process: {"core": int, "idle": str}}`` of profile ``name`` ("auto": by core count)."""
    if name == "auto":
        name = choose_auto(n_cores)
    return validate(_read(name), name)


def hot_cores(profile: dict[str, dict]) -> list[int]:
    """Cores a busy-spinning process owns: the ones to isolate."""
    return sorted({s["core"] for s in profile.values() if s["idle"] == "busy_spin"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", default="auto")
    p.add_argument("--hot-cores", action="store_true",
                   help="print the busy-spin cores as a cpu list (e.g. 2-5 as 2,3,4,5)")
    p.add_argument("--all-cores", action="store_true", help="print every core it uses")
    args = p.parse_args(argv)
    try:
        profile = load_profile(args.name)
    except ProfileError as e:
        print(e, file=sys.stderr)
        return 2
    if args.hot_cores:
        print(",".join(map(str, hot_cores(profile))))
    elif args.all_cores:
        print(",".join(map(str, sorted({s["core"] for s in profile.values()}))))
    else:
        for proc, spec in profile.items():
            hosts = f" agents={','.join(spec['agents'])}" if "agents" in spec else ""
            print(f"{proc} core={spec['core']} idle={spec['idle']}{hosts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
