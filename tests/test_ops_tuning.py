"""Host check (real host unprivileged, fake sysfs trees), profiles, apply.sh dry run, jitter."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli
from tuning import check
from tuning.profiles import ProfileError, hot_cores, load_profile, validate

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ("feed_handler", "book_builder", "strategy", "oms_gateway")


# ------------------------------------------------------------------ profiles
def test_dev_profile_never_busy_spins_and_tuned_profile_isolates_each_process():
    dev = load_profile("dev-2core")
    assert set(PIPELINE) <= set(dev) and all(s["idle"] != "busy_spin" for s in dev.values())
    assert {s["core"] for s in dev.values()} <= {0, 1}
    tuned = load_profile("tuned-host")
    cores = [tuned[p]["core"] for p in PIPELINE]
    assert len(set(cores)) == 4 and all(tuned[p]["idle"] == "busy_spin" for p in PIPELINE)
    assert all(tuned[p]["warm_us"] > 0 for p in PIPELINE)  # each keeps its path warm
    assert tuned["simulator"]["core"] not in cores
    assert hot_cores(tuned) == sorted(cores)


def test_auto_picks_by_core_count():
    assert load_profile("auto", n_cores=2) == load_profile("dev-2core")
    assert load_profile("auto", n_cores=16) == load_profile("tuned-host")


def test_bad_profiles_are_refused_with_a_reason():
    with pytest.raises(ProfileError, match="busy-spins on core 1, which it shares"):
        validate({"processes": {"a": {"core": 1, "idle": "busy_spin"},
                                "b": {"core": 1, "idle": "backoff"}}}, "x")
    with pytest.raises(ProfileError, match="idle 'spin' is not one of"):
        validate({"processes": {"a": {"core": 1, "idle": "spin"}}}, "x")
    with pytest.raises(ProfileError, match="must be a core number"):
        validate({"processes": {"a": {"core": "1", "idle": "backoff"}}}, "x")
    with pytest.raises(ProfileError, match="no core-layout profile 'nope'"):
        load_profile("nope")


# ------------------------------------------------------------------ check
def test_check_runs_unprivileged_on_this_host(tmp_path):
    """Without privileges: as user nobody when we are root (setpriv) and nobody can run this
    very interpreter, else as root with every capability dropped (a pyenv build under a
    0700 /root cannot load its libpython as nobody), else (not root) as ourselves."""
    cmd = [sys.executable, "-m", "pipeline.cli", "tune", "check", "--json"]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    no_caps = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    same = f"import sys; sys.exit(sys.version != {sys.version!r})"
    if os.geteuid() == 0 and shutil.which("setpriv"):
        if subprocess.run([*nobody, sys.executable, "-c", same], capture_output=True,
                          timeout=60).returncode == 0:
            os.chmod(tmp_path, 0o777)
            cmd = [*nobody, *cmd]
        else:
            cmd = [*no_caps, *cmd]
            caps = subprocess.run([*no_caps, "grep", "CapEff", "/proc/self/status"],
                                  capture_output=True, text=True, timeout=60).stdout
            assert caps.split() == ["CapEff:", "0000000000000000"], caps  # truly none
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    names = {f["name"] for f in report["findings"]}
    for expected in ("isolcpus", "nohz_full", "rcu_nocbs", "cpufreq governor", "C-states",
                     "SMT siblings", "irqbalance", "IRQ affinity", "transparent huge pages",
                     "swap", "timer slack", "NIC busy-poll", "memlock limit", "clocksource"):
        assert expected in names
    assert all(f["status"] in ("ok", "warn", "info", "unknown") for f in report["findings"])
    assert report["untuned"] == any(f["status"] == "warn" for f in report["findings"])


def test_missing_files_are_unknown_never_an_error(tmp_path):
    report = check.run_checks("tuned-host", root=tmp_path)  # an empty tree: nothing exists
    status = {f["name"]: f["status"] for f in report["findings"]}
    for name in ("isolcpus", "cpufreq governor", "C-states", "IRQ affinity",
                 "transparent huge pages", "swap", "NIC busy-poll", "clocksource"):
        assert status[name] == "unknown", name


def write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text + "\n")


def test_untuned_fake_host_gets_a_warning_and_advice_per_setting(tmp_path):
    cpu = "/sys/devices/system/cpu"
    write(tmp_path, {
        "/proc/cmdline": "quiet isolcpus=managed_irq,domain,2 nohz_full=2-3",
        f"{cpu}/present": "0-3", f"{cpu}/isolated": "2", f"{cpu}/nohz_full": "2-3",
        f"{cpu}/cpu2/cpufreq/scaling_governor": "powersave",
        f"{cpu}/cpu3/cpufreq/scaling_governor": "performance",
        f"{cpu}/cpu3/cpuidle/state2/name": "C6", f"{cpu}/cpu3/cpuidle/state2/latency": "85",
        f"{cpu}/cpu3/cpuidle/state2/disable": "0",
        f"{cpu}/cpu2/topology/thread_siblings_list": "0,2",
        "/proc/irq/30/smp_affinity_list": "0-3", "/proc/irq/31/smp_affinity_list": "0-1",
        "/sys/kernel/mm/transparent_hugepage/enabled": "[always] madvise never",
        "/proc/swaps": "Filename Type Size Used Priority\n/swapfile file 1024 0 -2",
        "/proc/sys/net/core/busy_poll": "0", "/proc/sys/net/core/busy_read": "50",
        "/sys/devices/system/clocksource/clocksource0/current_clocksource": "hpet",
    })
    report = check.run_checks("dev-2core", hot={2, 3}, root=tmp_path)
    f = {x["name"]: x for x in report["findings"]}
    assert f["isolcpus"]["status"] == "warn" and "isolcpus=managed_irq,domain,2,3" in \
        f["isolcpus"]["advice"]
    assert f["nohz_full"]["status"] == "ok"
    assert f["rcu_nocbs"]["status"] == "warn"
    assert f["cpufreq governor"]["status"] == "warn" and "cpu 2" in f["cpufreq governor"]["advice"]
    assert f["C-states"]["status"] == "warn" and "C6 (85us) on cpu 3" in f["C-states"]["value"]
    assert f["SMT siblings"]["status"] == "warn" and "cpu2 shares its core with 0" in \
        f["SMT siblings"]["value"]
    assert f["IRQ affinity"]["status"] == "warn" and "1 of 2 IRQs" in f["IRQ affinity"]["value"]
    assert f["transparent huge pages"]["status"] == "warn"
    assert f["swap"]["status"] == "warn" and f["swap"]["runtime"]
    assert f["NIC busy-poll"]["status"] == "warn"
    assert f["clocksource"]["status"] == "warn"
    assert report["untuned"]
    out = io.StringIO()
    assert check.warn_if_untuned("dev-2core", out, root=tmp_path)
    assert "not tuned" in out.getvalue() and "hft tune check" in out.getvalue()


def test_warn_if_untuned_never_raises():
    out = io.StringIO()
    assert check.warn_if_untuned("no-such-profile", out)
    assert "tuning check failed" in out.getvalue()


def test_cpulists_parse_ranges_and_skip_flags():
    assert check.parse_cpulist("managed_irq,domain,2-4,7") == {2, 3, 4, 7}
    assert check.parse_cpulist("") == set() and check.parse_cpulist(None) is None


# ------------------------------------------------------------------ apply.sh
def test_apply_dry_run_prints_changes_and_boot_parameters_without_changing_anything(tmp_path):
    watched = [Path("/proc/sys/net/core/busy_poll"), Path("/proc/sys/vm/stat_interval")]
    before = [p.read_text() if p.exists() else None for p in watched]
    undo = tmp_path / "undo.sh"
    res = subprocess.run([str(ROOT / "tuning" / "apply.sh"), "--dry-run", "--profile",
                          "tuned-host", "--undo-file", str(undo)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "dry run: nothing is changed" in res.stdout
    assert "isolcpus=managed_irq,domain,2,3,4,5 nohz_full=2,3,4,5 rcu_nocbs=2,3,4,5" in res.stdout
    lines = res.stdout.splitlines()
    for line, after in zip(lines, lines[1:], strict=False):  # each change has its undo
        if line.startswith(("set ", "run ")):
            assert after.strip().startswith("undo: "), line
    assert [p.read_text() if p.exists() else None for p in watched] == before
    assert not undo.exists()  # nothing applied, nothing to undo
    bad = subprocess.run([str(ROOT / "tuning" / "apply.sh"), "--bogus"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


# ------------------------------------------------------------------ jitter
@pytest.mark.spin
@pytest.mark.timeout(120)
@pytest.mark.timeout(300)  # the probe compiles from a cold numba cache first
def test_jitter_probe_on_one_core(capsys):
    core = max(os.sched_getaffinity(0))  # one core only: never spin both in a test
    assert cli.main(["tune", "jitter", "--cores", str(core), "--seconds", "1", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["core"] == core and row["seconds"] >= 1.0 and row["loops"] > 0
    assert row["interruptions"] >= 0 and row["max_us"] >= row["p99_us"] >= 0
    assert 0 <= row["lost_percent"] <= 100


def test_jitter_rejects_bad_cores(capsys):
    assert cli.main(["tune", "jitter", "--cores", "999", "--seconds", "1"]) == 2
    assert "not usable" in capsys.readouterr().err
    assert cli.main(["tune", "jitter", "--cores", "x", "--seconds", "1"]) == 2


def test_timer_slack_matters_only_when_a_process_parks(tmp_path):
    write(tmp_path, {"/proc/self/timerslack_ns": "50000"})
    busy = tmp_path / "busy.toml"
    busy.write_text('[processes.a]\ncore = 1\nidle = "busy_spin"\n')
    slack = {f["name"]: f for f in check.run_checks(str(busy), root=tmp_path)["findings"]}
    assert slack["timer slack"]["status"] == "info"
    slack = {f["name"]: f for f in check.run_checks("dev-2core", root=tmp_path)["findings"]}
    assert slack["timer slack"]["status"] == "warn"


def test_check_table_and_run_sh_warning_mode_exit_0(capsys):
    assert cli.main(["tune", "check", "--profile", "tuned-host"]) == 0
    out = capsys.readouterr().out
    assert "isolcpus" in out and "what to change" in out and "profile tuned-host" in out
    assert cli.main(["tune", "check", "--warn"]) == 0  # warns or not: never fails a launch
    assert cli.main(["tune", "check", "--profile", "nope"]) == 2
