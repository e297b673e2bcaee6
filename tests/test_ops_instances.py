"""Instance names as an operator meets them: a second ``hft run`` with a live name stops
before touching anything of the first; ``hft cleanup`` removes a dead instance's run files
(var/run/<instance>/ and its .toml) with its segments, and keeps a live one's."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import cli
from pipeline.commands import cleanup
from pipeline.config import ROOT
from pipeline.launch import rundir
from pipeline.launch.rundir import RUN_DIR
from pipeline.transport import registry


def hft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_a_second_run_with_a_live_name_touches_nothing(instance):
    """It once overwrote var/run/<instance>.toml with its own ports first: the live run's
    supervisor then restarted a killed gateway against a dead port forever."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    toml = RUN_DIR / f"{instance.name}.toml"
    toml.write_text("# the live run's resolved config\n")
    try:
        out = hft("run", "--instance", instance.name, "--duration", "1")
        assert out.returncode == 2, out.stderr
        assert f"instance {instance.name!r} is running (pid {os.getpid()})" in out.stderr
        assert "Traceback" not in out.stderr
        assert toml.read_text() == "# the live run's resolved config\n"
        assert not (RUN_DIR / instance.name).exists()
        assert os.path.exists(f"/dev/shm/hft.{instance.name}.registry")
    finally:
        toml.unlink()


def test_cleanup_removes_a_dead_instances_run_files_and_keeps_a_live_ones(
        instance, instance_name, monkeypatch, capsys):
    dead = instance_name + "dead"
    code = ("from pipeline.transport.registry import Instance; "
            f"Instance.create({dead!r})")  # exits without destroy: segments left behind
    subprocess.run([sys.executable, "-c", code], check=True)
    gone = instance_name + "gone"  # a clean shutdown: no segments, run files left
    for name in (dead, gone, instance.name):
        (RUN_DIR / name / "gateway").mkdir(parents=True)
        (RUN_DIR / name / "gateway" / "journal").write_bytes(b"x" * 100)
        (RUN_DIR / f"{name}.toml").write_text("")
    try:
        out = hft("cleanup", dead)
        assert out.returncode == 0, out.stderr
        assert f"removed {RUN_DIR / dead}/" in out.stdout
        assert not (RUN_DIR / dead).exists() and not (RUN_DIR / f"{dead}.toml").exists()
        assert not os.path.exists(f"/dev/shm/hft.{dead}.registry")
        # every dead instance, also the ones without segments (only this test's: /dev/shm
        # is shared with whatever else runs on the host)
        mine = registry.instances
        monkeypatch.setattr(cleanup, "instances", lambda: {
            k: v for k, v in mine().items() if k.startswith(instance_name)})
        monkeypatch.setattr(rundir, "names", lambda: {dead, gone, instance.name})
        assert cli.main(["cleanup"]) == 0
        out = capsys.readouterr().out
        assert f"removed {RUN_DIR / gone}/" in out, out
        assert not (RUN_DIR / gone).exists()
        assert "still in use" in out and (RUN_DIR / instance.name).exists()
        live = hft("cleanup", instance.name)
        assert live.returncode == 1 and (RUN_DIR / instance.name / "gateway").exists()
    finally:
        for name in (dead, gone, instance.name):
            subprocess.run(["rm", "-rf", str(RUN_DIR / name), str(RUN_DIR / f"{name}.toml")])
