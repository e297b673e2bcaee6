"""FirmSection: the firm-wide risk view (every instance's risk link, over NATS) as one
compact monitor section, shown by ``hft monitor --nats URL``.

It is not built from a segment of the instance: ``Monitor(extra=[...])`` adds it. Reading
NATS never blocks the screen: a ``RiskFeed`` refreshes the view in a background thread and
the section shows its last view, its age and the last error.
"""

from __future__ import annotations

from rich.table import Table

from pipeline.firm.risk_feed import RiskFeed
from pipeline.monitor.sections import Metric, Section, age, fmt


class FirmSection(Section):
    key, title = "firm", "firm (NATS risk view)"

    def __init__(self, feed: RiskFeed):
        self.feed = feed

    def collect(self, now_ns: int) -> dict:
        view, error, view_age = self.feed.latest()
        return {"url": self.feed.url, "view": view, "error": error, "view_age_s": view_age}

    def render(self, data: dict) -> Table:
        t = self.table("firm", "value")
        view = data["view"]
        if data["error"]:
            t.add_row("NATS", f"[red]{data['error']}[/red]")
        if view is None:
            t.add_row("view", f"none yet from {data['url']}")
            return t
        fk = view["firm_kill"]
        t.add_row("firm kill switch", "[red]ON[/red]" if fk and fk["on"] else "off")
        for i in view["instances"]:
            state = "KILLED" if i["kill"]["oms"] or i["kill"]["control"] else "trading"
            t.add_row(f"instance {i['instance']}", f"{state}, {i['open_orders']} open, "
                      f"{age(i['age_s'])} old" + (" [red]STALE[/red]" if i["stale"] else ""))
        for sym, f in view["firm"].items():
            t.add_row(f"firm {sym}", f"{f['position']} ({fmt(f['position_lots'])} lots), "
                      f"PnL {f['realised']} / {f['unrealised']}")
        return t

    def metrics(self, data: dict) -> list[Metric]:
        view = data["view"]
        if view is None:
            return []
        out: list[Metric] = [("hft_firm_instances_reporting", "gauge",
                              "instances with a fresh risk report", {},
                              len(view["reporting"]))]
        for sym, f in view["firm"].items():
            lab = {"symbol": sym}
            out.append(("hft_firm_position_lots", "gauge", "firm-wide position in lots", lab,
                        f["position_lots"]))
            for kind in ("realised", "unrealised"):
                out.append((f"hft_firm_pnl_{kind}", "gauge", f"firm-wide {kind} PnL", lab,
                            float(f[kind])))
        return out

    def close(self) -> None:
        self.feed.close()
