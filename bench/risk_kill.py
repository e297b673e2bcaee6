"""Firm-wide kill latency: ``hft risk kill`` set -> every instance's acknowledgement.

Two testbed instances (``pipeline.firm.risk_testbed``: OMS and control segments, a
``control_echo`` handler that acknowledges kill commands as the gateway does, a risk link),
one loopback nats-server (JetStream, fsync on every write). Each trial sets the firm-wide
kill and waits for both acks (``risk_bus.set_kill_and_wait``, what the command does), then
clears it. The reference, in the same run: the local kill path alone (``engage_kill``, what
``hft ctl kill on`` and each link run: flag, OMS mirror, command acknowledged by the
handler), timed in this process on the same instances. The difference is what NATS, the
links' doorbell read and the acks add.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench._report import emit
from pipeline.firm import risk_bus
from pipeline.firm.kill import engage_kill
from pipeline.firm.natsd import NatsServer
from pipeline.firm.risk import KillValue, aggregate
from pipeline.firm.risk_testbed import FirmInstance, unique_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", type=int, default=20, help="kill on/off rounds per path")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for acks")


def row(path: str, samples_ms: list[float]) -> dict:
    s = sorted(samples_ms)
    return {"path": path, "trials": len(s), "p50_ms": statistics.median(s),
            "p90_ms": s[min(len(s) - 1, int(0.9 * len(s)))], "max_ms": s[-1]}


async def firm_trials(url: str, names: list[str], trials: int, timeout: float) -> dict:
    nc = await risk_bus.connect(url, "bench-risk-kill")
    try:
        reports, kill = await risk_bus.open_buckets(risk_bus.jetstream(nc))
        deadline = time.monotonic() + 60
        while set(names) - set(aggregate(await risk_bus.read_reports(reports))["reporting"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"instances not reporting: {names}")
            await asyncio.sleep(0.1)
        every, engaged, failures = [], [], 0
        for i in range(trials + 1):  # the first round warms both links: not counted
            for on in (True, False):
                r = await risk_bus.set_kill_and_wait(nc, kill, KillValue.new(on, "bench"),
                                                     names, timeout)
                failures += bool(r.failed)
                if on and i and not r.failed:
                    every.append(r.elapsed_ms)
                    engaged += [a["elapsed_ms"] for a in r.acks.values()]
        return {"every": every, "engaged": engaged, "failures": failures}
    finally:
        await nc.close()


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-risk-") as tmp, \
            NatsServer(Path(tmp) / "nats") as server:
        fis: list[FirmInstance] = []
        try:
            for tag in ("A", "B"):
                fis.append(FirmInstance(unique_name(tag)))
                fis[-1].start_echo().start_link(server.url)
            firm = asyncio.run(firm_trials(server.url, [f.name for f in fis], args.trials,
                                           args.timeout))
            local = []
            for i in range(args.trials + 1):
                fi = fis[i % len(fis)]
                t0 = time.perf_counter()
                out = engage_kill(fi.inst, fi.area, True, args.timeout)
                if i and out.acknowledged:
                    local.append((time.perf_counter() - t0) * 1e3)
                engage_kill(fi.inst, fi.area, False, args.timeout)
        finally:
            for fi in fis:
                fi.close()
    rows = [row("local kill path (engage_kill, as hft ctl)", local),
            row("firm link engage (per instance, link's clock)", firm["engaged"]),
            row("firm-wide: set -> both instances acked", firm["every"])]
    emit("risk kill: firm-wide kill switch over NATS, 2 instances", rows, args.json,
         {"unacknowledged_rounds": firm["failures"],
          "load_average": [round(x, 2) for x in os.getloadavg()]})  # a shared host: say so
    return 0 if not firm["failures"] else 1
