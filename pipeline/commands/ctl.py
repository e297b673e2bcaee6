"""``hft ctl [INSTANCE] ACTION``: steer a running pipeline through its control area.

Actions: ``kill on|off``, ``cancel-all``, ``pause``, ``resume``, ``resync SYMBOL``
(a symbol of the config or a numeric id), ``status``. A flag (kill switch, pause) is set
first, so code that reads it obeys at once; then the command is issued and every running
process that handles it must acknowledge within ``--timeout``. Each command and its
outcome go to the audit log. Exit 0: acknowledged by all; 1: not acknowledged or refused;
2: no such instance, no control area, or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline import config as cfgmod
from pipeline.control import audit
from pipeline.control.area import CONTROL, SEGMENT_NAME, ControlArea, Outcome
from pipeline.firm.kill import engage_kill
from pipeline.instruments import SymbolTable
from pipeline.monitor import discover
from pipeline.transport.segment import SegmentError
from shm_layouts import control as L
from shm_layouts.control import Op

ACTIONS = ("kill", "cancel-all", "pause", "resume", "resync", "status")


class UsageError(ValueError):
    pass


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", nargs="+", metavar="[INSTANCE] ACTION [ARG]",
                   help="kill on|off, cancel-all, pause, resume, resync SYMBOL, status")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for acks")
    p.add_argument("--audit-log", default=None, help="audit log file (default var/audit.log)")
    p.add_argument("--config", default=None, help="TOML config (instance name, symbols)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def parse_words(words: list[str]) -> tuple[str | None, str, list[str]]:
    instance = None
    if words[0] not in ACTIONS:
        instance, words = words[0], words[1:]
    if not words or words[0] not in ACTIONS:
        raise UsageError(f"expected an action ({', '.join(ACTIONS)})")
    action, rest = words[0], words[1:]
    wanted = {"kill": 1, "resync": 1}.get(action, 0)
    if len(rest) != wanted:
        raise UsageError(f"{action} takes {wanted} argument(s), got {rest}")
    if action == "kill" and rest[0] not in ("on", "off"):
        raise UsageError("kill takes on or off")
    return instance, action, rest


def symbol_id(text: str, config: dict) -> int:
    if text.isdigit():
        return int(text)
    table = SymbolTable.from_config(config.get("instruments", []))
    if text not in table:
        known = ", ".join(i.symbol for i in table) or "none"
        raise UsageError(f"unknown symbol {text!r} (configured: {known})")
    return table[text].symbol_id


def plan(action: str, rest: list[str], config: dict) -> tuple[Op, int, int | None, bool]:
    """(op, arg0, flag word or None, flag value) for an action."""
    if action == "kill":
        on = rest[0] == "on"
        return (Op.KILL_ON if on else Op.KILL_OFF), 0, L.W_KILL, on
    if action in ("pause", "resume"):
        return (Op.PAUSE if action == "pause" else Op.RESUME), 0, L.W_PAUSED, action == "pause"
    if action == "resync":
        return Op.RESYNC, symbol_id(rest[0], config), None, False
    return Op.CANCEL_ALL, 0, None, False


def describe(outcome: Outcome) -> str:
    op = outcome.op.name.lower()
    if not outcome.expected:
        return f"command #{outcome.seq} {op}: NOT acknowledged: no running process handles it"
    acks = ", ".join(f"{h} ({s})" for h, s in sorted(outcome.acks.items()))
    text = f"command #{outcome.seq} {op}: acknowledged by {acks or 'nobody'}"
    if outcome.missing:
        text += f"; NOT acknowledged by {', '.join(outcome.missing)} (timed out or exited)"
    return text


def show_status(area: ControlArea, name: str, as_json: bool) -> int:
    state = {"instance": name, **area.flags(), "handlers": area.handlers()}
    if as_json:
        print(json.dumps(state, indent=2))
        return 0
    print(f"instance {name}: kill switch {'ON' if state['kill_switch'] else 'off'}, "
          f"quoting {'PAUSED' if state['paused'] else 'running'}, "
          f"last command #{state['last_command']}")
    for h in state["handlers"]:
        print(f"  handler {h['name']}: pid {h['pid']} {'active' if h['active'] else 'gone'}, "
              f"executed {h['executed']}, ops {', '.join(h['ops_names'])}")
    return 0


def main(args: argparse.Namespace) -> int:
    config = cfgmod.load(args.config)
    try:
        instance, action, rest = parse_words(args.words)
        name = discover.resolve(instance, args.config)
        inst = discover.attach(name)
        try:
            area = ControlArea(inst.attach_segment(SEGMENT_NAME, CONTROL,
                                                   readonly=action == "status"))
        except SegmentError as e:
            raise discover.InstanceUnavailable(
                f"instance {name!r} has no control area ({e}); its launcher must call "
                f"pipeline.control.area.create_control") from None
        if action == "status":
            return show_status(area, name, args.json)
        op, arg0, flag, value = plan(action, rest, config)
    except (UsageError, discover.InstanceUnavailable) as e:
        print(f"hft ctl: {e}", file=sys.stderr)
        return discover.EXIT_UNAVAILABLE
    log = audit.audit_path(args.audit_log, config)
    entry = {"instance": name, "action": " ".join([action, *rest]), "op": op.name.lower(),
             "arg0": arg0}
    audit.append(log, entry | {"event": "issued"})
    notes = []
    if flag is not None:
        notes.append(f"{'kill switch' if flag == L.W_KILL else 'pause'} flag "
                     f"{'ON' if value else 'off'}")
    if flag == L.W_KILL:  # the path the firm-wide kill takes too
        kill = engage_kill(inst, area, value, args.timeout)
        for w in kill.warnings:
            print(f"warning: {w}", file=sys.stderr)
        notes += [f"mirrored to {m}" for m in kill.mirrors]
        outcome = kill.outcome
    else:
        if flag is not None:
            area.set_flag(flag, value)
        outcome = area.execute(op, arg0, timeout=args.timeout)
    audit.append(log, entry | {"event": "acknowledged" if outcome.acknowledged else
                               "not_acknowledged"} | outcome.as_dict())
    refused = any(s != "done" for s in outcome.acks.values())
    if args.json:
        print(json.dumps(outcome.as_dict() | {"notes": notes, "audit_log": str(log)}))
    else:
        print("; ".join(notes + [describe(outcome)]))
    return 0 if outcome.acknowledged and not refused else 1
