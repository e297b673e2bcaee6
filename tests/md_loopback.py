"""A small Binance-format venue for the feed-handler tests: a WebSocket server (combined
stream of spot depth diffs) and an HTTP server (REST depth snapshots), both on loopback,
backed by one synthetic order book. It can drop a diff, close the connection or go quiet.
"""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from websockets.sync.server import serve


class Market:
    def __init__(self, symbol: str = "BTCUSDT", seed: int = 7):
        self.symbol = symbol
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.mid = 6_000_000  # ticks of 0.01
        self.book: tuple[dict[int, int], dict[int, int]] = ({}, {})
        for i in range(1, 200):
            self.book[0][self.mid - i] = self.rng.randint(1, 5000)
            self.book[1][self.mid + i] = self.rng.randint(1, 5000)
        self.last_id = 1_000
        self.history: dict[int, tuple] = {self.last_id: self.top()}
        self.sent = 0
        self.drop_next = threading.Event()
        self.close_next = threading.Event()
        self.quiet_until = 0.0
        self.fail_snapshots = 0  # answer this many REST calls with HTTP 500

    def top(self, n: int = 5) -> tuple:
        bids = sorted(self.book[0].items(), reverse=True)[:n]
        asks = sorted(self.book[1].items())[:n]
        return tuple(bids), tuple(asks)

    def step(self) -> bytes:
        """One depth diff (U..u), applied to the book."""
        with self.lock:
            self.mid += self.rng.choice((-1, 0, 0, 1))
            changes: tuple[list, list] = ([], [])
            for _ in range(self.rng.randint(1, 6)):
                side = self.rng.randint(0, 1)
                off = int(abs(self.rng.gauss(0, 8))) + 1
                price = self.mid - off if side == 0 else self.mid + off
                qty = 0 if self.rng.random() < 0.3 else self.rng.randint(1, 5000)
                if qty == 0:
                    self.book[side].pop(price, None)
                else:
                    self.book[side][price] = qty
                changes[side].append([f"{price / 100:.2f}", f"{qty / 1000:.3f}"])
            # keep the book uncrossed: drop levels that now cross the other side
            best_bid = max(self.book[0])
            for p in [p for p in self.book[1] if p <= best_bid]:
                del self.book[1][p]
                changes[1].append([f"{p / 100:.2f}", "0"])
            first = self.last_id + 1
            self.last_id += self.rng.randint(1, 3)
            self.history[self.last_id] = self.top()
            data = {"e": "depthUpdate", "E": int(time.time() * 1000), "s": self.symbol,
                    "U": first, "u": self.last_id, "b": changes[0], "a": changes[1]}
            stream = f"{self.symbol.lower()}@depth@100ms"
            return json.dumps({"stream": stream, "data": data}).encode()

    def snapshot(self) -> bytes:
        with self.lock:
            return json.dumps({
                "lastUpdateId": self.last_id,
                "bids": [[f"{p / 100:.2f}", f"{q / 1000:.3f}"]
                         for p, q in sorted(self.book[0].items(), reverse=True)],
                "asks": [[f"{p / 100:.2f}", f"{q / 1000:.3f}"]
                         for p, q in sorted(self.book[1].items())]}).encode()


class Venue:
    """Start with ``with Venue(market) as v:``; ``v.ws_url`` and ``v.rest_url``."""

    def __init__(self, market: Market, interval: float = 0.002):
        self.market = market
        self.interval = interval
        self.connections = 0
        self.stop = threading.Event()

    def _handler(self, ws) -> None:
        self.connections += 1
        m = self.market
        try:
            while not self.stop.is_set():
                time.sleep(self.interval)
                if time.monotonic() < m.quiet_until:
                    continue
                msg = m.step()
                if m.close_next.is_set():
                    m.close_next.clear()
                    ws.close()
                    return
                if m.drop_next.is_set():
                    m.drop_next.clear()
                    continue  # the diff happened but the client never sees it: a gap
                ws.send(msg.decode())
                m.sent += 1
        except Exception:  # noqa: BLE001 - the client went away
            return

    def __enter__(self) -> Venue:
        self.ws_server = serve(self._handler, "127.0.0.1", 0, compression=None)
        port = self.ws_server.socket.getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{port}/stream?streams=btcusdt@depth@100ms"
        market = self.market

        class Rest(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                u = urlparse(self.path)
                sym = parse_qs(u.query).get("symbol", [""])[0]
                if u.path != "/api/v3/depth" or sym != market.symbol:
                    self.send_error(400, "bad request")
                    return
                if market.fail_snapshots > 0:
                    market.fail_snapshots -= 1
                    self.send_error(500, "try again")
                    return
                body = market.snapshot()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Rest)
        self.rest_url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.threads = [threading.Thread(target=self.ws_server.serve_forever, daemon=True),
                        threading.Thread(target=self.http.serve_forever, daemon=True)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.ws_server.shutdown()
        self.http.shutdown()
        self.http.server_close()
