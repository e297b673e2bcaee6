"""Drop-copy benchmark: records/s and acknowledged-publish latency into JetStream.

For batch sizes 1, 16 and 128 records per message, the drop copy's own publishing path
(``DropCopy.flush``: gather from the ring, publish, wait for the PubAck, release) drains an
orders ring filled beforehand, against two loopback nats-servers started now: one with
``sync_interval: always`` (fsync before every ack, what the drop copy runs with) and the
reference with the server's default ``2m`` (the page cache, fsynced every two minutes).
The cases alternate (always, 2m, always, 2m ...) so both see the same machine. Latency is
one publish, sent to PubAck received; the ring is backlogged, so records/s is the most the
drop copy can store with one batch in flight per ring.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._report import emit
from pipeline.firm.dropcopy import DropCopy
from pipeline.firm.natsd import NatsServer
from pipeline.metrics import histogram
from pipeline.orders.segments import create_order_path
from pipeline.transport.registry import Instance
from shm_layouts.records import ORDER_INTENT, OrderAction

SYNCS = ("always", "2m")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=int, default=500,
                   help="messages per case and round (records = messages x batch size)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of every case, interleaved; records/s is the median round, "
                   "latency pooled over all rounds")
    p.add_argument("--batches", default="1,16,128", help="batch sizes (records per message)")
    p.add_argument("--dir", default=None,
                   help="where the servers store (default: a temporary directory); fsync "
                   "costs what this file system's device makes it cost")


def run_case(url: str, batch: int, records: int, tag: str) -> dict:
    capacity = 1 << max(10, (records - 1).bit_length())
    inst = Instance.create(f"bdc{os.getpid()}{tag}")
    agent = None
    try:
        orders, _execs, _oms = create_order_path(inst, capacity, also_gating=("dropcopy",))
        rec = order_record()
        for i in range(records):
            rec["cl_ord_id"] = i
            if not orders.offer(rec):
                raise RuntimeError("ring full while filling")
        agent = DropCopy(inst, None, url, batch=batch)
        agent.on_start()
        slot = agent.copies[0].slot
        t0 = time.perf_counter()
        while orders.consumer(slot)["cursor"] < records:
            if agent.flush() == 0 and agent.retry_at_ns:
                raise RuntimeError(f"publishing to {url} failed: {agent.counts()}")
        elapsed = time.perf_counter() - t0
        return {"records_per_s": records / elapsed, "msgs_per_s": records / batch / elapsed,
                "ack_ns": agent.ack_ns.copy(),
                "failures": agent.counts()["publish_failures"]}
    finally:
        if agent is not None:
            agent.on_close()
        inst.destroy()


def summarise(sync: str, batch: int, cases: list[dict]) -> dict:
    pooled = histogram.new()
    for c in cases:
        histogram.merge(pooled, c["ack_ns"])
    lat = histogram.percentiles(pooled)
    median = sorted(cases, key=lambda c: c["records_per_s"])[len(cases) // 2]
    return {"sync_interval": sync, "batch": batch, "records_per_s": median["records_per_s"],
            "msgs_per_s": median["msgs_per_s"], "ack_p50_us": lat["p50"] / 1e3,
            "ack_p99_us": lat["p99"] / 1e3, "messages": lat["count"],
            "failures": sum(c["failures"] for c in cases)}


def order_record() -> np.ndarray:
    rec = np.zeros((), ORDER_INTENT)
    rec["action"], rec["qty"], rec["price"] = OrderAction.NEW, 1, 100
    return rec


def main(args: argparse.Namespace) -> int:
    sizes = [int(b) for b in args.batches.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-dropcopy-", dir=args.dir))
    servers = {s: NatsServer(root / s.replace("m", "min"), sync=s).start() for s in SYNCS}
    runs: dict[tuple[str, int], list[dict]] = {(s, b): [] for b in sizes for s in SYNCS}
    try:
        for r in range(args.rounds):
            for batch in sizes:
                for sync in SYNCS:
                    runs[(sync, batch)].append(run_case(servers[sync].url, batch,
                                                        args.messages * batch,
                                                        f"{sync[0]}{batch}r{r}"))
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(root, ignore_errors=True)
    rows = [summarise(sync, batch, cases) for (sync, batch), cases in runs.items()]
    by = {(r["sync_interval"], r["batch"]): r for r in rows}
    ratios = {f"batch {b}: always/2m records_per_s":
              round(by[("always", b)]["records_per_s"] / by[("2m", b)]["records_per_s"], 3)
              for b in sizes}
    emit("dropcopy: ring -> JetStream, acknowledged", rows, args.json,
         {"ratios": ratios, "store": f"{root} ({_fs_type(root)})"})
    return 0


def _fs_type(path: Path) -> str:
    """The file system holding ``path`` (tmpfs would make fsync free), from /proc/mounts."""
    best, kind = "", "unknown"
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mount, fstype = line.split()[:3]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    return kind
