"""A bad file given to ``hft`` (run as the operator runs it: a subprocess) gives one line
naming the file (and the line, where there is one) and what to do, exit 2, no traceback."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest

from pipeline.config import ROOT

DEPTH = (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
         b'"U":1,"u":2,"b":[["1.00","1"]],"a":[]}}')


def hft(*args: str, env: dict | None = None) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, env=env)
    return out.returncode, out.stderr


def one_line(err: str) -> str:
    """The one line the command said (log lines, which carry a level, aside)."""
    assert "Traceback" not in err, err
    said = [line for line in err.splitlines() if line.startswith("hft ")]
    assert len(said) == 1, err
    return said[0]


def _toml_syntax(tmp_path):
    bad = tmp_path / "syntax.toml"
    bad.write_text('[gateway]\nheartbeat_s = 5\nport = \n')
    return ["run", "--config", str(bad), "--duration", "0"], bad, ["line 3", "fix it"]


def _tick_zero(tmp_path):
    bad = tmp_path / "tick.toml"
    bad.write_text('[[instruments]]\nsymbol = "BTCUSDT"\ntick_size = "0"\nlot_size = "1"\n')
    return ["run", "--config", str(bad), "--duration", "0"], bad, ["tick_size = '0'",
                                                                   "must be > 0"]


def _truncated_gz(tmp_path):
    whole = gzip.compress(b"".join(b"%d %s\n" % (i, DEPTH) for i in range(2000)))
    bad = tmp_path / "cut.txt.gz"
    bad.write_bytes(whole[: len(whole) // 2])
    return ["replay", "--inline", str(bad)], bad, ["truncated gzip", "copy the file again"]


def _not_a_capture(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("shopping list\neggs\n")
    return ["replay", "--inline", str(bad)], bad, [f"{bad}:1: not a capture line",
                                                   "expected '<recv_ns> <raw message>'"]


def _empty(tmp_path):
    bad = tmp_path / "empty.txt"
    bad.write_bytes(b"")
    return ["replay", "--inline", str(bad)], bad, ["no messages", "hft capture"]


def _empty_into_run_replay(tmp_path):
    args, bad, words = _empty(tmp_path)
    return ["run", "--replay", str(bad)], bad, words


def _missing(tmp_path):
    return ["replay", "--inline", str(tmp_path / "nosuch.txt")], tmp_path / "nosuch.txt", [
        "No such file"]


CASES = [_toml_syntax, _tick_zero, _truncated_gz, _not_a_capture, _empty,
         _empty_into_run_replay, _missing]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_a_bad_file_gives_one_line_and_exit_2(case, tmp_path):
    args, bad, words = case(tmp_path)
    code, err = hft(*args)
    line = one_line(err)
    assert code == 2 and str(bad) in line, err
    for word in words:
        assert word in line, line


def test_a_missing_fix_password_stops_hft_run_against_a_venue(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HFT_FIX_PASSWORD"}
    code, err = hft("run", "--venue", "127.0.0.1:1,2,3", "--duration", "0", env=env)
    line = one_line(err)
    assert code == 2 and "config/default.toml" in line, err
    assert "$HFT_FIX_PASSWORD is not set; export it" in line, line
