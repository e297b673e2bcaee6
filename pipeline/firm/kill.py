"""Engaging an instance's kill switch: the one path ``hft ctl kill`` and the firm-wide risk
link (``procs.risk_link``) both take, so a firm-wide kill is exactly a local one.

Order matters: the control area's flag first (code that reads it obeys at once), then its
mirrors in other areas (the OMS word the gateway acquire-loads every duty cycle), then the
KILL_ON/KILL_OFF command, acknowledged by every live handler (the gateway cancels what is
open before it acknowledges). A handler that is down still obeys: the flags persist in
shared memory and are read on start.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field

from pipeline.control.area import ControlArea, Outcome
from pipeline.transport.registry import Instance
from pipeline.transport.segment import SegmentError
from shm_layouts import control as L
from shm_layouts.control import Op

log = logging.getLogger(__name__)

# other areas' copies of the kill switch, set alongside ours while they exist:
# (layout name of their segment, module, function(instance_name, on)); imported by name so
# an instance without that area (a probe) needs none of its code
KILL_MIRRORS = [("oms", "pipeline.orders.killswitch", "set_kill")]


@dataclass
class KillOutcome:
    """The flag was set (always), the mirrors that were set, and the command's outcome."""

    on: bool
    outcome: Outcome
    mirrors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # mirrors that could not be set

    @property
    def acknowledged(self) -> bool:
        """Every live handler acknowledged, none refused."""
        return self.outcome.acknowledged and all(s == "done" for s in self.outcome.acks.values())

    def as_dict(self) -> dict:
        return {"on": self.on, "mirrors": self.mirrors, "warnings": self.warnings,
                **self.outcome.as_dict(), "acknowledged": self.acknowledged}


def mirror_kill(inst: Instance, on: bool) -> tuple[list[str], list[str]]:
    """Set every mirror of the kill switch the instance has: (set, warnings)."""
    done, warnings = [], []
    layouts = {e.layout_name for e in inst.segments()}
    for layout_name, module, func in KILL_MIRRORS:
        if layout_name in layouts:
            try:
                getattr(importlib.import_module(module), func)(inst.name, on)
                done.append(layout_name)
            except (ImportError, AttributeError, SegmentError) as e:
                warnings.append(f"could not set the {layout_name} kill word: {e}")
    return done, warnings


def warm() -> None:
    """Import the mirrors' modules now (a long-running issuer, at start): the first kill
    then pays no import."""
    for _, module, _ in KILL_MIRRORS:
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def engage_kill(inst: Instance, area: ControlArea, on: bool, timeout: float) -> KillOutcome:
    """Flag, mirrors, then the command, waiting (bounded by ``timeout``) for every live
    handler's acknowledgement."""
    area.set_flag(L.W_KILL, on)
    mirrors, warnings = mirror_kill(inst, on)
    for w in warnings:
        log.warning("%s", w)
    outcome = area.execute(Op.KILL_ON if on else Op.KILL_OFF, 0, timeout=timeout)
    return KillOutcome(on, outcome, mirrors, warnings)
