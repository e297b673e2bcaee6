"""The kill switch from the command line: blocks new orders; the gateway cancels all.

``python -m pipeline.orders.killswitch --instance NAME on|off|status``. ``set_kill`` is
what ``hft ctl`` should call.
"""

from __future__ import annotations

import argparse
import sys

from pipeline import config as cfgmod
from pipeline.orders.segments import OmsState
from pipeline.transport.registry import Instance
from shm_layouts import oms as L


def set_kill(instance_name: str, on: bool) -> None:
    state = OmsState.attach(Instance.attach(instance_name))
    try:
        state.set_kill(on)
    finally:
        state.close()


def status(instance_name: str) -> dict[str, int]:
    state = OmsState.attach(Instance.attach(instance_name), readonly=True)
    try:
        w = state.words
        return {"kill": int(w[L.W_KILL]), "ready": int(w[L.W_READY]),
                "open_orders": int(w[L.W_OPEN_ORDERS]), "fills": int(w[L.W_FILLS])}
    finally:
        state.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="killswitch", description=__doc__.splitlines()[0])
    p.add_argument("--instance", default=None)
    p.add_argument("--config")
    p.add_argument("action", choices=("on", "off", "status"))
    args = p.parse_args(argv)
    name = args.instance or cfgmod.load(args.config)["instance"]["name"]
    if args.action != "status":
        set_kill(name, args.action == "on")
    print(status(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
