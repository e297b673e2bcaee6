"""Config values are checked at start-up (``pipeline/config_check.py``): one row per rule,
each a config file and the one line its problem must give; every problem of a file is
reported at once; ``hft run`` stops with exit 2 before it starts anything."""

from __future__ import annotations

import pytest

from pipeline import cli
from pipeline import config as cfgmod
from pipeline.launch.launcher import Launcher

INST = '[[instruments]]\nsymbol = "BTCUSDT"\ntick_size = "0.01"\nlot_size = "0.00001"\n'
# (config file text, what the error must say): one rule per row
BAD_VALUES = [
    ("[gateway]\nheartbeat_s = 0\n", "[gateway] heartbeat_s = 0: must be a whole number > 0"),
    ("[gateway]\nheartbeat_s = 1.5\n", "[gateway] heartbeat_s = 1.5: must be a whole number"),
    ("[gateway]\nheartbeat_s = true\n", "[gateway] heartbeat_s = True: must be a whole number"),
    ("[gateway]\nport = 70000\n", "[gateway] port = 70000: must be a whole number 1..65535"),
    ('[gateway]\nsender_comp_id = ""\n', "[gateway] sender_comp_id = '': must be a non-empty"),
    ("[gateway]\nreconcile_timeout_s = -1\n", "[gateway] reconcile_timeout_s = -1: must be > 0"),
    ('[gateway]\ntls = "yes"\n', "[gateway] tls = 'yes': must be true or false"),
    ("[gateway]\nbackoff_min_s = 9.0\nbackoff_max_s = 1.0\n",
     "[gateway] backoff_min_s = 9.0 is above backoff_max_s = 1.0"),
    ('[risk]\nmax_qty = "-1"\n', "[risk] max_qty = '-1': must be >= 0"),
    ('[risk]\nmax_notional = "lots"\n', "[risk] max_notional = 'lots': is not a decimal"),
    ('[risk]\nmax_position = "0.00001"\n',  # BTCUSDT's lot, a tenth of ETHUSDT's
     "[risk] max_position = '0.00001': for ETHUSDT: not a whole number of lots"),
    ("[risk]\nmax_open_orders = -5\n", "[risk] max_open_orders = -5: must be a whole number >= 0"),
    ("[risk]\nstale_md_ms = 0\n", "[risk] stale_md_ms = 0: must be a whole number > 0"),
    ('[risk.per_symbol.DOGEUSDT]\nmax_qty = "1"\nmax_notional = "1"\nmax_position = "1"\n',
     "[risk.per_symbol]: 'DOGEUSDT' is not in [[instruments]]"),
    ('[risk.per_symbol.BTCUSDT]\nmax_qty = "1"\nmax_notional = "1"\n',
     "[risk.per_symbol.BTCUSDT]: missing max_position"),
    ('[risk.per_symbol.BTCUSDT]\nmax_qty = "-1"\nmax_notional = "1"\nmax_position = "1"\n',
     "[risk.per_symbol.BTCUSDT] max_qty = '-1': must be >= 0"),
    ('[strategy]\nmax_position = { DOGEUSDT = "1" }\n',
     "[strategy] max_position: 'DOGEUSDT' is not in [[instruments]]"),
    ('[strategy]\nquote_qty = { BTCUSDT = "0" }\n',
     "[strategy] quote_qty.BTCUSDT = '0': must be > 0"),
    ('[strategy]\nquote_qty = { BTCUSDT = "0.0000001" }\n',
     "[strategy] quote_qty.BTCUSDT = '0.0000001': not a whole number of lots"),
    ("[strategy]\nlevels = 0\n", "[strategy] levels = 0: must be a whole number 1..8"),
    ("[strategy]\ngamma = 0\n", "[strategy] gamma = 0: must be > 0"),
    ("[strategy]\nmax_orders_per_s = -1\n", "[strategy] max_orders_per_s = -1: must be a whole"),
    ('[sim]\nsymbols = ["DOGEUSDT"]\n', "[sim] symbols: 'DOGEUSDT' is not in [[instruments]]"),
    ('[sim]\nstart_prices = { BTCUSDT = "60000.001" }\n',
     "[sim] start_prices.BTCUSDT = '60000.001': not a whole number of ticks"),
    ("[sim]\nrate = -1\n", "[sim] rate = -1: must be >= 0"),
    ("[sim]\nmd_port = -1\n", "[sim] md_port = -1: must be a whole number 0..65535"),
    ('[[sim.accounts]]\nusername = ""\n', "[[sim.accounts]] #1: username must be a non-empty"),
    ("[feed]\nsnapshot_limit = 0\n", "[feed] snapshot_limit = 0: must be a whole number 1..5000"),
    ('[feed]\nmd_format = "xml"\n', "[feed] md_format = 'xml': must be one of 'json', 'sbe'"),
    ("[feed]\nreconnect_min_ms = 500\nreconnect_max_ms = 100\n",
     "[feed] reconnect_min_ms = 500 is above reconnect_max_ms = 100"),
    ('[instance]\nname = "a.b"\n', "[instance] name = 'a.b': must be non-empty letters"),
    ('[[instruments]]\nsymbol = "X"\ntick_size = "0"\nlot_size = "1"\n',
     "[[instruments]] X: tick_size = '0': must be > 0"),
    ('[[instruments]]\nsymbol = "X"\ntick_size = "abc"\nlot_size = "1"\n',
     "[[instruments]] X: tick_size = 'abc': is not a decimal number"),
    ('[[instruments]]\nsymbol = "X"\ntick_size = "1"\nlot_size = "1"\nvenue = "moon"\n',
     "[[instruments]] X: venue = 'moon': must be one of"),
    ('[[instruments]]\nsymbol = "X"\ntick_size = "1"\n', "[[instruments]] #1: missing lot_size"),
    (INST + INST, "[[instruments]] BTCUSDT: listed twice"),
]


@pytest.mark.parametrize(("text", "message"), BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_a_bad_value_stops_start_up_with_one_line_naming_it(text, message, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(cfgmod.ConfigError) as e:
        cfgmod.load(bad)
    assert str(e.value) == f"{bad}: " + str(e.value).split(": ", 1)[1]
    assert message in str(e.value), str(e.value)
    assert len(str(e.value).splitlines()) == 1, str(e.value)  # one problem, one line


def test_every_problem_is_reported_at_once(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nheartbeat_s = 0\n[risk]\nmax_qty = "-1"\n'
                   '[strategy]\nquote_qty = { NOPE = "1" }\n')
    with pytest.raises(cfgmod.ConfigError) as e:
        cfgmod.load(bad)
    lines = str(e.value).splitlines()
    assert lines[0] == f"{bad}: 3 problems:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "[gateway] heartbeat_s = 0", "[risk] max_qty = '-1'", "[strategy] quote_qty"]


def test_a_config_trading_other_symbols_drops_the_default_ones(tmp_path):
    """default.toml's per-symbol tables name BTCUSDT and ETHUSDT: a config trading only
    SOLUSDT inherits them unless they are dropped; the ones it names itself are kept."""
    mine = tmp_path / "sol.toml"
    mine.write_text('[[instruments]]\nsymbol = "SOLUSDT"\ntick_size = "0.01"\n'
                    'lot_size = "0.001"\n[strategy]\nquote_qty = { SOLUSDT = "0.1" }\n'
                    'max_position = { SOLUSDT = "1" }\n')
    config = cfgmod.load(mine, trading=True)
    assert config["strategy"]["quote_qty"] == {"SOLUSDT": "0.1"}
    assert "BTCUSDT" not in config["sim"]["start_prices"]
    (tmp_path / "no_limits.toml").write_text(mine.read_text().split("[strategy]")[0])
    assert cfgmod.load(tmp_path / "no_limits.toml")  # fine for hft sim, not for hft run:
    with pytest.raises(cfgmod.ConfigError, match=r"\[strategy\] quote_qty: no value for "
                                                 r"SOLUSDT"):
        cfgmod.load(tmp_path / "no_limits.toml", trading=True)


def test_the_shipped_config_has_no_problem():
    cfgmod.load(trading=True)


def test_hft_run_refuses_bad_values_before_starting_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Launcher, "run", lambda self: pytest.fail("the launcher ran"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway]\nheartbeat_s = 0\n[risk]\nmax_open_orders = -1\n")
    assert cli.main(["run", "--config", str(bad), "--duration", "0"]) == 2
    err = capsys.readouterr().err
    assert "heartbeat_s = 0" in err and "max_open_orders = -1" in err and str(bad) in err
