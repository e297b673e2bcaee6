"""Fault injection switches, set at start (config/flags) and changed at run time.

State faults stay on until switched off (probabilities, delays, stalls); one-shot counts
(``md_drop_next`` ...) apply to the next N messages; actions (``disconnect_md``,
``drop_fix``, ``garble_fix``) happen once when set and are not stored. The same object is
shared by the market-data server and the FIX acceptor; ``update`` is what the admin HTTP
endpoint and the in-process handle call.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

ACTIONS = ("disconnect_md", "drop_fix", "garble_fix")


@dataclass
class Faults:
    md_drop: float = 0.0  # probability per market-data message
    md_duplicate: float = 0.0
    md_reorder: float = 0.0  # held back and sent after the next message
    md_drop_next: int = 0  # drop the next N messages (per connection, counted globally)
    md_duplicate_next: int = 0
    md_reorder_next: int = 0
    md_stall_ms: int = 0  # set: streams go silent (connections stay open) for this long
    snapshot_delay_ms: int = 0  # REST depth answers this late
    snapshot_stale_ms: int = 0  # REST depth answers a snapshot at least this old
    reject_orders: bool = False  # every new order is rejected
    reject_next: int = 0
    exec_delay_ms: int = 0  # execution reports leave this late
    md_stall_until: float = 0.0  # monotonic seconds; derived from md_stall_ms

    def update(self, values: dict) -> list[str]:
        """Apply ``values`` (unknown keys raise ValueError); returns the actions requested."""
        known = {f.name: f.type for f in fields(self)}
        actions = []
        for key, value in values.items():
            if key in ACTIONS:
                if value:
                    actions.append(key)
                continue
            if key not in known or key == "md_stall_until":
                raise ValueError(f"unknown fault {key!r}")
            current = getattr(self, key)
            try:
                value = type(current)(value)
            except (TypeError, ValueError):
                raise ValueError(f"fault {key}: bad value {value!r}") from None
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"fault {key}: must not be negative")
            setattr(self, key, value)
            if key == "md_stall_ms":
                self.md_stall_until = time.monotonic() + value / 1000 if value else 0.0
        return actions

    def stalled(self) -> bool:
        return self.md_stall_until > 0 and time.monotonic() < self.md_stall_until

    def take_reject(self) -> bool:
        if self.reject_orders:
            return True
        if self.reject_next > 0:
            self.reject_next -= 1
            return True
        return False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["md_stalled"] = self.stalled()
        del d["md_stall_until"]
        return d
