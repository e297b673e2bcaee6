"""Fault injection switches, set at start (config/flags) and changed at run time.

State faults stay on until switched off (probabilities, delays, stalls, a refused logon);
one-shot counts (``md_drop_next``, ``fix_drop_next`` ...) apply to the next N messages;
actions (``disconnect_md``, ``drop_fix``, ``garble_fix``) happen once when set and are not
stored. The same object is shared by the market-data server and the FIX acceptor sessions
(``venue.session``); ``update`` is what the admin HTTP endpoint and the in-process handle
call. The ``fix_*`` counts apply to messages the venue sequences from then on, over all
sessions: they are how tests make the venue misbehave toward a FIX initiator.
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
    fix_refuse_logon: str = ""  # set: every Logon is answered by a Logout with this text
    fix_silent: bool = False  # logged-on sessions go mute: nothing handled, nothing sent
    fix_resend_gap_fill: bool = False  # ResendRequest answered by GapFill only, no resends
    fix_drop_next: int = 0  # sequenced and journaled, never sent: the client sees a gap
    fix_garble_next: int = 0  # sent with a broken CheckSum (its seq is spent: a gap)
    fix_duplicate_next: int = 0  # sent twice, the copy as a PossDup resend
    fix_skip_seq: int = 0  # the next message jumps this many sequence numbers ahead
    fix_disconnect_after: int = 0  # the session closes after this many more messages
    # dialect binance: every live session gets a maintenance News(B) countdown of this
    # many seconds, then a Logout (taken when set: one countdown per setting)
    fix_maintenance_s: int = 0
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
            if isinstance(current, bool) and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"fault {key}: bad value {value!r}")
                value = value.lower() in ("true", "1")
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
        return self.reject_orders or self.take("reject_next")

    def take(self, count: str) -> bool:
        """Use up one of the one-shot count ``count``; False when it is at 0."""
        left = getattr(self, count)
        if left <= 0:
            return False
        setattr(self, count, left - 1)
        return True

    def take_all(self, count: str) -> int:
        """The whole one-shot count ``count`` (it applies once, to one message)."""
        n = getattr(self, count)
        setattr(self, count, 0)
        return n

    def to_dict(self) -> dict:
        d = asdict(self)
        d["md_stalled"] = self.stalled()
        del d["md_stall_until"]
        return d
