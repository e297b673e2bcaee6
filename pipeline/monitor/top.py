"""The monitor: a read-only view of a running instance, section by section.

Sections come from ``pipeline.monitor.sections`` (one plugin per layout-name prefix) and
are rebuilt when the instance registers new segments, so a pipeline that creates its
segments while the monitor runs shows up piece by piece.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Group
from rich.text import Text

from pipeline.monitor import discover, prometheus
from pipeline.monitor.sections import Section, build

ORDER = ("firm", "processes", "rings", "books", "orders", "control", "histograms", "counters")


class Monitor:
    def __init__(self, name: str, extra: Sequence[Section] = ()):
        """``extra``: sections not built from a segment (the firm view), owned from now."""
        self.name = name
        self.instance = discover.attach(name)
        self.extra = list(extra)
        self.sections: list[Section] = []
        self.not_shown: dict[str, str] = {}
        self._seen: tuple = ()
        self.refresh_sections()

    def refresh_sections(self) -> None:
        entries = self.instance.segments()
        key = tuple(sorted((e.name, e.layout_name) for e in entries))
        if key == self._seen:
            return
        self.close_sections()
        sections, self.not_shown = build(self.instance, entries)
        self.sections = sorted([*sections, *self.extra], key=lambda s: ORDER.index(s.key)
                               if s.key in ORDER else len(ORDER))
        self._seen = key
        self.entries = entries

    def check_alive(self) -> None:
        if not discover.alive(self.instance):
            raise discover.InstanceUnavailable(f"instance {self.name!r} has stopped")

    def snapshot(self) -> dict:
        """The full state: every section's data, plus the segments list."""
        self.check_alive()
        self.refresh_sections()
        now = time.monotonic_ns()
        snap: dict = {"instance": self.name, "time": time.time(),
                      "segments": [{"name": e.name, "layout": e.layout_name,
                                    "kind": e.kind.name.lower(), "size": e.size}
                                   for e in self.entries],
                      "not_shown": self.not_shown}
        for s in self.sections:
            snap[s.key] = s.collect(now)
        return snap

    def render(self, snap: dict) -> Group:
        head = Text.assemble(("instance ", "dim"), (self.name, "bold"),
                             (f"  {time.strftime('%H:%M:%S', time.localtime(snap['time']))}"
                              f"  {len(snap['segments'])} segments", "dim"))
        parts = [head] + [s.render(snap[s.key]) for s in self.sections]
        for name, why in snap["not_shown"].items():
            parts.append(Text(f"segment {name} not shown: {why}", style="dim"))
        return Group(*parts)

    def metrics_text(self) -> str:
        snap = self.snapshot()
        metrics = [("hft_up", "gauge", "1 while the instance is alive", {}, 1.0)]
        for s in self.sections:
            metrics += s.metrics(snap[s.key])
        return prometheus.render(metrics, {"instance": self.name})

    def close_sections(self) -> None:
        for s in self.sections:
            if s not in self.extra:
                s.close()
        self.sections = []

    def close(self) -> None:
        self.close_sections()
        for s in self.extra:
            s.close()
        self.instance.registry.close()
