"""Strict config: a key nobody reads stops start-up, naming the key, its section and the
nearest valid key (``pipeline/config.py`` SCHEMA, ``tuning/profiles.py`` PROFILE_KEYS);
every process accepts every option the launcher passes from a profile."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from pipeline import cli
from pipeline import config as cfgmod
from pipeline.launch.launcher import START_ORDER, Launcher, RunOptions, write_toml

# (config file text, what the error must say): one typo per section
BAD_CONFIG = [
    ('[instance]\nnmae = "x"\n', "[instance]: 'nmae' (did you mean 'name'?)"),
    ('[[instruments]]\nsymbol = "X"\ntick_size = "1"\nlot_size = "1"\nvenu = "spot"\n',
     "[instruments]: 'venu' (did you mean 'venue'?)"),
    ("[strategy]\ngama = 0.1\n", "[strategy]: 'gama' (did you mean 'gamma'?)"),
    ("[sim]\nseeed = 2\n", "[sim]: 'seeed' (did you mean 'seed'?)"),
    ('[[sim.accounts]]\nusername = "u"\npassword_evn = "X"\n',
     "[sim.accounts]: 'password_evn' (did you mean 'password_env'?)"),
    ("[gateway]\nheartbeat = 5\n", "[gateway]: 'heartbeat' (did you mean 'heartbeat_s'?)"),
    ("[gateway]\nidle = \"busy_spin\"\n", "[gateway]: 'idle'"),  # removed: profiles place
    ('[risk]\nmax_qtty = "1"\n', "[risk]: 'max_qtty' (did you mean 'max_qty'?)"),
    ('[risk.per_symbol.BTCUSDT]\nmax_postion = "1"\n',
     "[risk.per_symbol.BTCUSDT]: 'max_postion' (did you mean 'max_position'?)"),
    ("[feed]\nstale_mss = 10\n", "[feed]: 'stale_mss' (did you mean 'stale_ms'?)"),
    ("[gatway]\nport = 1\n", "the top level: 'gatway' (did you mean 'gateway'?)"),
]

PROFILE = """description = "test"
min_cores = 1
[processes.feed_handler]
core = 0
idle = "backoff"
"""
# (profile text, what the error must say)
BAD_PROFILE = [
    (PROFILE + "warm_ms = 50\n", "[processes.feed_handler]: 'warm_ms' (did you mean 'warm_us'?)"),
    (PROFILE + "lock_mem = true\n",
     "[processes.feed_handler]: 'lock_mem' (did you mean 'lock_memory'?)"),
    ("min_core = 1\n" + PROFILE.split("\n", 2)[2], "the top level: 'min_core'"),
]


@pytest.fixture(autouse=True)
def never_launch(monkeypatch):
    """Should a bad key get through, fail here instead of starting a pipeline."""
    def refuse(self):
        raise AssertionError("the launcher got past its config check")
    monkeypatch.setattr(Launcher, "run", refuse)


CASES = [("--config", text, message) for text, message in BAD_CONFIG] + [
    ("--profile", text, message) for text, message in BAD_PROFILE]


@pytest.mark.parametrize(("option", "text", "message"), CASES, ids=[m for *_, m in CASES])
def test_an_unknown_key_stops_hft_run_with_the_nearest_key(option, text, message, tmp_path,
                                                           capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert cli.main(["run", option, str(bad), "--duration", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(bad) in err, err


@pytest.mark.parametrize("module", ["procs.oms_gateway", "procs.feed_handler"])
def test_a_process_refuses_a_config_typo_at_start_up(module, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nreconcile_timeout = 5\n")
    out = subprocess.run([sys.executable, "-m", module, "--instance", "nosuch", "--config",
                          str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "[gateway]: 'reconcile_timeout' (did you mean 'reconcile_timeout_s'?)" in out.stderr


def test_the_shipped_config_and_profiles_are_valid():
    from tuning.profiles import available, load_profile
    cfgmod.load()
    for name in available():
        load_profile(name)


def test_every_process_accepts_every_option_a_profile_gives_it(tmp_path):
    """``lock_memory = true`` under [processes.oms_gateway] once made the gateway exit on an
    argparse error: now each process parses exactly what the launcher passes it."""
    layout = tmp_path / "all.toml"
    layout.write_text("min_cores = 1\n" + "".join(
        f"[processes.{p}]\ncore = {i}\nidle = \"busy_spin\"\nlock_memory = true\n"
        f"slice_us = 20000\nwarm_us = 50\n" for i, p in enumerate(START_ORDER)))
    launcher = Launcher(RunOptions(profile=str(layout), instance="t"))
    for name in START_ORDER:
        child = launcher._child(name)
        args = importlib.import_module(child.module).parser().parse_args(child.args)
        assert (args.lock_memory, args.idle, args.core, args.slice_us, args.warm_us) == (
            True, "busy_spin", START_ORDER.index(name), 20000.0, 50.0), name
    # a composite process (dev-2core-lowlat) hands each agent's module its own options
    from procs import composite
    child = Launcher(RunOptions(profile="dev-2core-lowlat", instance="t"))._child("pipeline")
    args = composite.parser().parse_args(child.args)
    assert args.lock_memory
    for agent in args.agents.split(","):
        own = importlib.import_module(f"procs.{agent}").parser()
        assert own.parse_args(composite.child_argv(agent, args)).warm_us == 50.0, agent


def test_consumers_take_their_defaults_from_the_schema():
    from pipeline.marketdata.feed import FeedConfig
    from pipeline.orders.gateway import GatewayConfig
    from pipeline.orders.risk import RiskLimits
    gw = GatewayConfig.from_config({"port": 1, "sender_comp_id": "A", "target_comp_id": "B"})
    d = cfgmod.defaults("gateway")
    assert (gw.host, gw.reconcile_timeout_s, gw.session.heartbeat_s) == (
        d["host"], d["reconcile_timeout_s"], d["heartbeat_s"])
    assert RiskLimits.from_config({}) == RiskLimits()
    assert RiskLimits().max_open_orders == cfgmod.defaults("risk")["max_open_orders"]
    feed = FeedConfig.from_config({"url": "ws://x", "rest_url": "http://x"})
    assert feed.stale_ms == cfgmod.defaults("feed")["stale_ms"]
    with pytest.raises(cfgmod.ConfigError, match="did you mean 'stale_ms'"):
        FeedConfig.from_config({"url": "ws://x", "rest_url": "http://x", "stale": 1})


def test_the_resolved_config_is_written_for_our_user_only(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("old = 1\n")
    path.chmod(0o644)  # left by an older run
    write_toml(path, {"gateway": {"host": "127.0.0.1", "port": 9000}})
    assert path.stat().st_mode & 0o777 == 0o600
    assert "port = 9000" in path.read_text() and "old" not in path.read_text()
