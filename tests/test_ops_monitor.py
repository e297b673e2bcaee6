"""hft monitor against live instances: JSON/once/Prometheus views, read-only, clear errors."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from ops_helpers import publish_probes, segment_bytes
from waiting import until

from pipeline import cli
from pipeline.control.area import create_control
from pipeline.metrics.counters import Counters
from pipeline.monitor.top import Monitor
from pipeline.runtime.processes import Child, stop, wait_running
from pipeline.transport.ring import Ring
from shm_layouts import ring as RL
from shm_layouts.probe import PROBE_RECORD

N = 1000
# a stream this build does not know
MYSTERY = np.dtype([("seq", "<i8"), ("t_send_ns", "<i8"), ("x", "<i4", (12,))])


@pytest.fixture
def pipeline(instance):
    """counters + probe ring (gating consumer1 in its own process) + an unknown-stream
    ring + control area; exactly N records published and consumed."""
    counters = Counters.create(instance)
    ring = Ring.create(instance, "probe", "probe", PROBE_RECORD, 4096, gating=("consumer1",))
    mystery = Ring.create(instance, "mystery", "mystery", MYSTERY, 64)
    create_control(instance)
    child = Child("consumer1", "procs.probe_consumer",
                  ["--instance", instance.name, "--name", "consumer1", "--idle", "backoff"])
    child.start()
    try:
        wait_running(counters, [child])
        assert publish_probes(ring.ctl, ring.stamps, ring.records, N) == 0
        assert publish_probes(mystery.ctl, mystery.stamps, mystery.records, 5) == 0
        until(lambda: counters.values().get("consumer1.records") == N, 30, "N consumed")
        yield instance, counters, ring, child
    finally:
        stop([child])


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("once", [[], ["--once"]], ids=["json", "once-json"])
def test_json_reports_the_known_counts(pipeline, capsys, once):
    """``--json`` alone or with ``--once`` (once refused as mutually exclusive)."""
    inst, _, _, child = pipeline
    rc, out, _ = run_cli(capsys, "monitor", inst.name, *once, "--json", "--interval", "0.1")
    assert rc == 0
    state = json.loads(out)
    proc = {p["name"]: p for p in state["processes"]}["consumer1"]
    assert proc["pid"] == child.pid and proc["state"] == "RUNNING" and proc["alive"]
    assert proc["heartbeat_age_s"] is not None and proc["restarts"] == 0
    rings = {r["name"]: r for r in state["rings"]}
    probe = rings["probe"]
    assert probe["published"] == N and probe["capacity"] == 4096 and probe["verified"]
    (c1,) = probe["consumers"]
    assert (c1["name"], c1["mode"], c1["cursor"], c1["lag"], c1["lost"]) == (
        "consumer1", "gating", N, 0, 0)
    assert c1["rate"] == 0  # nothing published between the two samples
    mystery = rings["mystery"]  # unknown stream: shown from its control words alone
    assert (mystery["verified"], mystery["published"], mystery["stream"]) == (
        False, 5, "mystery")
    assert state["counters"]["consumer1.records"]["value"] == N
    assert state["counters"]["consumer1.sequence_errors"]["value"] == 0
    assert state["histograms"]["hop.consumer1"]["count"] == N
    assert state["control"]["kill_switch"] is False
    assert state["not_shown"] == {}


@pytest.mark.timeout(120)
def test_once_prints_one_screen(pipeline, capsys):
    inst = pipeline[0]
    rc, out, _ = run_cli(capsys, "monitor", inst.name, "--once", "--interval", "0")
    assert rc == 0
    for text in ("processes", "consumer1", "RUNNING", "probe (probe)", "consumer1 (gating)",
                 "mystery (mystery)", "hop.consumer1", f"{N:,}", "kill switch"):
        assert text in out, text


@pytest.mark.timeout(120)
def test_monitoring_never_writes(pipeline, capsys):
    inst, counters, ring, child = pipeline
    mon = Monitor(inst.name)
    assert all(s.readonly for s in _segments_of(mon))
    watched = [RL.PUBLISHED, RL.CLAIMED, RL.N_CONSUMERS, RL.P_FULL] + [
        RL.consumer_word(0, w) for w in (RL.C_CURSOR, RL.C_MODE, RL.C_LOST, RL.C_ATTACHES)]
    def measured() -> dict:  # <process>.housekeeping_ns counts on while a process lives
        return {k: v for k, v in counters.histograms().items()
                if not k.endswith(".housekeeping_ns")}
    before = ring.ctl[watched].copy(), counters.values(), measured()
    for _ in range(3):  # live process running: cursors and counters stay put
        mon.snapshot()
        mon.metrics_text()
    assert (ring.ctl[watched].copy() == before[0]).all()
    assert (counters.values(), measured()) == before[1:]
    mon.close()
    stop([child])  # now nothing else writes: every byte of every segment must stay equal
    frozen = segment_bytes(inst)
    run_cli(capsys, "monitor", inst.name, "--json", "--interval", "0.05")
    run_cli(capsys, "monitor", inst.name, "--once", "--interval", "0")
    mon = Monitor(inst.name)
    mon.metrics_text()
    mon.close()
    assert segment_bytes(inst) == frozen


def _segments_of(mon: Monitor):
    from pipeline.monitor.sections import ControlSection, ProcessesSection, RingsSection
    for s in mon.sections:
        if isinstance(s, ProcessesSection):
            yield s.counters.segment
        elif isinstance(s, RingsSection):
            yield from (v.segment for v in s.views)
        elif isinstance(s, ControlSection):
            yield s.area.segment
    yield mon.instance.registry.segment


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*)\} '
                    r'(-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$')


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a valid sample line: {line!r}"
        name, labels, value = m.groups()
        assert name in typed or re.sub(r"_(sum|count)$", "", name) in typed, name
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        samples[(name, pairs)] = float(value)
    return samples


@pytest.mark.timeout(120)
def test_prometheus_serves_counters_and_histograms(pipeline):
    inst = pipeline[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "monitor", inst.name,
                             "--prometheus", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.read().decode(), r.headers["Content-Type"]
            except OSError:
                assert proc.poll() is None, "monitor exited"
                return None
        text, ctype = until(scrape, 60, "metrics endpoint")
    finally:
        proc.terminate()
        proc.wait(10)
    assert ctype.startswith("text/plain; version=0.0.4")
    samples = parse_prometheus(text)
    i = ("instance", inst.name)
    assert samples[("hft_up", frozenset({i}))] == 1
    assert samples[("hft_counter_total", frozenset({i, ("counter", "consumer1.records")}))] == N
    hist = frozenset({i, ("histogram", "hop.consumer1")})
    assert samples[("hft_latency_ns_count", hist)] == N
    assert samples[("hft_latency_ns", hist | {("quantile", "0.99")})] > 0
    ring = frozenset({i, ("ring", "probe"), ("stream", "probe")})
    assert samples[("hft_ring_published_total", ring)] == N
    assert samples[("hft_ring_consumer_lag", ring | {("consumer", "consumer1"),
                                                     ("mode", "gating")})] == 0
    assert samples[("hft_process_up", frozenset({i, ("process", "consumer1")}))] == 1
    assert samples[("hft_kill_switch", frozenset({i}))] == 0


def test_missing_instance_is_a_clear_message(capsys):
    rc, out, err = run_cli(capsys, "monitor", "nosuch-instance-42", "--once")
    assert rc == 2 and out == ""
    assert "no pipeline instance 'nosuch-instance-42'" in err and "Traceback" not in err


@pytest.mark.timeout(60)
def test_dead_instance_is_a_clear_message(instance_name, capsys):
    code = ("from pipeline.transport.registry import Instance\n"
            "from pipeline.metrics.counters import Counters\n"
            f"Counters.create(Instance.create({instance_name!r}))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    try:
        rc, _, err = run_cli(capsys, "monitor", instance_name, "--json")
        assert rc == 2
        assert f"instance {instance_name!r} is dead" in err and "hft cleanup" in err
        assert "Traceback" not in err
    finally:
        assert cli.main(["cleanup", instance_name]) == 0


@pytest.mark.timeout(60)
def test_monitor_shows_segments_created_after_it_started(instance):
    mon = Monitor(instance.name)
    assert [s.key for s in mon.sections] == []
    Counters.create(instance).counter("late.counter")
    time.sleep(0)  # the registry entry is visible at once; the next snapshot rebuilds
    snap = mon.snapshot()
    assert snap["counters"] == {"late.counter": {"value": 0, "rate": None}}
    mon.close()


@pytest.mark.timeout(60)
def test_instance_whose_launcher_died_but_a_segment_creator_runs_is_alive(instance_name):
    """The registry's creator exits; a segment created by this process keeps it alive."""
    from pipeline.transport.registry import Instance
    code = f"from pipeline.transport.registry import Instance\nInstance.create({instance_name!r})\n"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    inst = Instance.attach(instance_name)
    counters = Counters.create(inst)
    try:
        mon = Monitor(instance_name)
        assert "counters" in mon.snapshot()
        mon.close()
    finally:
        counters.close()
        inst.destroy()


@pytest.mark.timeout(120)
def test_instance_whose_creators_died_but_a_process_runs_is_alive(instance_name):
    """Every segment was created by a process that exited; a registered process runs."""
    code = ("from pipeline.transport.registry import Instance\n"
            "from pipeline.metrics.counters import Counters\n"
            "from pipeline.transport.ring import Ring\n"
            "from shm_layouts.probe import PROBE_RECORD\n"
            f"inst = Instance.create({instance_name!r}); Counters.create(inst)\n"
            "Ring.create(inst, 'probe', 'probe', PROBE_RECORD, 64, gating=('consumer1',))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from pipeline.transport.registry import Instance
    inst = Instance.attach(instance_name)
    counters = Counters.attach(inst)
    child = Child("consumer1", "procs.probe_consumer",
                  ["--instance", instance_name, "--name", "consumer1"]).start()
    try:
        wait_running(counters, [child])
        mon = Monitor(instance_name)
        assert [p["name"] for p in mon.snapshot()["processes"]] == ["consumer1"]
        mon.close()
    finally:
        stop([child])
        counters.close()
        inst.destroy()
