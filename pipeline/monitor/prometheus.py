"""Prometheus text exposition (format 0.0.4) of monitor metrics, served on loopback."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.monitor.sections import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def family(name: str) -> str:
    """The metric family a sample belongs to (summary samples share one family)."""
    for suffix in ("_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)].endswith("_ns"):
            return name[: -len(suffix)]
    return name


def render(metrics: Iterable[Metric], common: dict[str, str]) -> str:
    """One HELP/TYPE pair per family, then its samples, grouped."""
    families: dict[str, list[str]] = {}
    meta: dict[str, tuple[str, str]] = {}
    for name, kind, help_text, labels, value in metrics:
        fam = family(name)
        if fam not in meta or (help_text and not meta[fam][1]):
            meta[fam] = (kind, help_text or meta.get(fam, ("", ""))[1])
        lab = ",".join(f'{k}="{_escape(str(v))}"' for k, v in (common | labels).items())
        families.setdefault(fam, []).append(f"{name}{{{lab}}} {_number(value)}")
    lines = []
    for fam, samples in families.items():
        kind, help_text = meta[fam]
        lines.append(f"# HELP {fam} {_escape(help_text or fam)}")
        lines.append(f"# TYPE {fam} {kind}")
        lines.extend(samples)
    return "\n".join(lines) + "\n"


def serve(port: int, text: Callable[[], str], host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start serving ``text()`` at http://host:port/metrics in a daemon thread."""
    lock = threading.Lock()  # sections keep rate state: one scrape at a time

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            if self.path.split("?")[0] not in ("/", "/metrics"):
                self.send_error(404)
                return
            try:
                with lock:
                    body = text().encode()
                code = 200
            except Exception as e:  # a dead instance: say so, keep serving
                body, code = f"# error: {e}\n".encode(), 503
            self.send_response(code)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="prometheus").start()
    return server
