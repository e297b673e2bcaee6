"""Interop: a standard FIX engine (QuickFIX/C++ via the quickfix-tls wheel) trades here.

The simulator runs in the test process; the QuickFIX initiator runs in its own process
(``tests/quickfix_client.py``), so a crash in the C++ engine's teardown cannot take pytest
down. The test sends it orders and a stop on stdin and reads its observations on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.venue.testing import TEST_PASSWORD, FixClient, running, sim_test_config

pytest.importorskip(
    "quickfix", reason="quickfix-tls (QuickFIX/C++ wheel) is only built for cp311 x86_64")

from quickfix_client import PASSWORD_ENV  # noqa: E402 (needs quickfix)

pytestmark = [pytest.mark.e2e]


class QuickFixClient:
    """Handle on one ``tests/quickfix_client.py`` process. Each test uses its own
    SenderCompID; a second process with the same one resumes from the file store."""

    def __init__(self, tmp_path: Path, port: int, sender: str, user: str, password: str):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("quickfix_client.py")),
             "127.0.0.1", str(port), user, sender, str(tmp_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, PASSWORD_ENV: password})
        self.events: queue.Queue = queue.Queue()  # ("logon", None), ("8", {tag: value})...
        self.replies: queue.Queue = queue.Queue()  # answers to our commands, in order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            kind, data = json.loads(line)
            if kind == "reply":
                self.replies.put(data)
            else:
                self.events.put((kind, dict(data) if kind == "8" else data))
        self.events.put(("exited", None))
        self.replies.put({"op": "exited", "ok": False, "error": "process exited"})

    async def command(self, op: str, timeout: float = 20.0, **args) -> None:
        """Send one command and wait for its reply; fail unless it succeeded."""
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            reply = await asyncio.to_thread(self.replies.get, True, timeout)
        except queue.Empty:
            raise TimeoutError(f"QuickFIX client did not answer {op!r}") from None
        assert reply["op"] == op and reply["ok"], reply

    async def stop(self) -> None:
        """Stop the initiator (it waits for our Logout reply) and the process; kill it if
        it does not exit in time."""
        try:
            await self.command("stop")
            rc = await asyncio.to_thread(self.proc.wait, 10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        assert rc == 0, f"QuickFIX client exited with {rc}"


async def next_event(app: QuickFixClient, kind: str, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise TimeoutError(f"no {kind!r} from QuickFIX")
        try:
            got, payload = await asyncio.to_thread(app.events.get, True, min(left, 0.5))
        except queue.Empty:
            continue
        if got == "exited":
            raise AssertionError(f"QuickFIX client exited ({app.proc.wait(5)}) before {kind!r}")
        if got == kind:
            return payload


async def send_order(app: QuickFixClient, clid: str, side: str, qty: str, price: str,
                     tif: str) -> None:
    """A BTCUSDT limit NewOrderSingle through QuickFIX's own session."""
    await app.command("order", clid=clid, side=side, qty=qty, price=price, tif=tif)


@pytest.mark.timeout(90)
def test_quickfix_initiator_logs_on_and_gets_filled(tmp_path):
    async def main():
        cfg = sim_test_config(tmp_path, rate=0, flow={"target_orders": 0})
        async with running(cfg) as sim:
            port = sim.endpoints()["fix_port"]
            bob = await FixClient(port, "BOBCLIENT").connect()
            await bob.logon("bob", "bobpw")
            bob.send("D", [(11, "b1"), (55, "BTCUSDT"), (54, "2"), (38, "0.002"), (40, "2"),
                           (44, "60000.00"), (59, "1"), (60, "20260101-00:00:00")])
            await bob.recv("8")
            app = QuickFixClient(tmp_path, port, "QFFILL", "alice", TEST_PASSWORD)
            try:
                await next_event(app, "logon")
                await send_order(app, "q1", "1", "0.003", "60000.00", "3")
                reports = [await next_event(app, "8") for _ in range(3)]
                assert [r[150] for r in reports] == ["0", "F", "C"]
                fill = reports[1]
                assert (fill[31], fill[32], fill[39], fill[11]) == ("60000", "0.002", "1", "q1")
                assert sim.positions()["alice"]["BTCUSDT"]["qty"] == "0.002"
            finally:
                await app.stop()  # it waits for our Logout reply
            await next_event(app, "logout")
            log = b"".join(p.read_bytes() for p in (tmp_path / "qf_log").glob("*messages*"))
            assert b"35=5\x0149=SIMVENUE" in log  # the logout was answered
            assert sim.stats["fix_bad_logon"] == 0 and sim.stats["fix_garbled_in"] == 0
            assert sim.stats["fix_reject_received"] == 0  # QuickFIX accepted every message
    asyncio.run(asyncio.wait_for(main(), 80))


@pytest.mark.timeout(60)
def test_quickfix_wrong_password_gets_logout_text(tmp_path):
    async def main():
        async with running(sim_test_config(tmp_path, rate=0)) as sim:
            app = QuickFixClient(tmp_path, sim.endpoints()["fix_port"], "QFBADPW", "alice",
                                 "wrong")
            try:
                text = await next_event(app, "logout_text")
                assert text == "invalid username or password"
            finally:
                await app.stop()
    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.timeout(90)
def test_quickfix_reconnect_recovers_fill_missed_while_away(tmp_path):
    """QuickFIX logs out, misses a fill, starts again from its file store: it sees our
    higher sequence number, asks for a resend and gets the fill (PossDupFlag)."""
    async def main():
        cfg = sim_test_config(tmp_path, rate=0, flow={"target_orders": 0})
        async with running(cfg) as sim:
            port = sim.endpoints()["fix_port"]
            app = QuickFixClient(tmp_path, port, "QFRECON", "alice", TEST_PASSWORD)
            try:
                await next_event(app, "logon")
                await send_order(app, "rest1", "1", "0.001", "59000.00", "1")
                assert (await next_event(app, "8"))[150] == "0"
            finally:
                await app.stop()
            await next_event(app, "logout")
            bob = await FixClient(port, "BOBCLIENT").connect()
            await bob.logon("bob", "bobpw")
            bob.send("D", [(11, "b1"), (55, "BTCUSDT"), (54, "2"), (38, "0.001"), (40, "2"),
                           (44, "59000.00"), (59, "1")])
            await bob.recv("8")
            # same file store: resumes
            app2 = QuickFixClient(tmp_path, port, "QFRECON", "alice", TEST_PASSWORD)
            try:
                await next_event(app2, "logon")
                fill = await next_event(app2, "8")
                assert (fill[150], fill[39], fill[11], fill[32]) == ("F", "2", "rest1", "0.001")
            finally:
                await app2.stop()
            assert sim.stats["fix_resend_requests"] >= 1
            assert sim.stats["fix_reject_received"] == 0
    asyncio.run(asyncio.wait_for(main(), 80))
