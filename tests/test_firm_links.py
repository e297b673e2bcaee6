"""``hft run``'s firm options: which consumers are reserved, which processes start."""

from __future__ import annotations

import argparse

import pytest

from pipeline.commands import run as run_cmd
from pipeline.config import ConfigError
from pipeline.launch.firm_links import Bridge, FirmLinks
from pipeline.launch.launcher import Launcher, RunOptions

CHANNEL = "aeron:udp?endpoint=127.0.0.1:40123"


def parse(*argv: str) -> FirmLinks:
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    return run_cmd.firm_links(p.parse_args(list(argv)))


def test_no_firm_options_change_nothing():
    links = parse()
    assert links.also_gating() == () and links.skipped_agents() == ()
    assert links.children("a", "a.toml", {}) == []


def test_drop_copy_and_gating_bridges_reserve_their_slots_and_start_in_order():
    links = parse("--nats", "nats://127.0.0.1:4222", "--aeron-dir", "/tmp/aeron",
                  "--bridge-out", "execs", CHANNEL, "11", "--bridge-out", "book", CHANNEL, "10")
    assert links.also_gating() == ("dropcopy", "bridge")
    names = [c.name for c in links.children("a", "a.toml", {})]
    assert names == ["dropcopy", "risk_link", "bridge_send_execs", "bridge_send_book"]
    send = links.children("a", "a.toml", {})[2]
    assert send.module == "procs.bridge" and send.args[:1] == ["send"]
    assert send.args[send.args.index("--stream-id") + 1] == "11"
    assert send.args[send.args.index("--aeron-dir") + 1] == "/tmp/aeron"


def test_an_observed_ring_reserves_nothing():
    assert parse("--aeron-dir", "d", "--bridge-out", "book", CHANNEL, "10").also_gating() == ()


def test_a_bridged_in_book_replaces_the_market_data_agents():
    links = parse("--aeron-dir", "d", "--book-from", CHANNEL, "10")
    assert links.skipped_agents() == ("feed_handler", "book_builder")
    (recv,) = links.children("b", "b.toml", {})
    assert recv.name == "bridge_recv_book" and recv.args[:1] == ["recv"]
    assert recv.args[recv.args.index("--ring") + 1] == "book"
    launcher = Launcher(RunOptions(firm=links, profile="dev-2core"))
    assert launcher.start_order == ("oms_gateway", "strategy")
    assert launcher.stop_order == ("strategy", "oms_gateway")


@pytest.mark.parametrize("argv, message", [
    (("--bridge-out", "book", CHANNEL, "1"), "--aeron-dir DIR"),
    (("--bridge-out", "quotes", CHANNEL, "1"), "not a ring of the pipeline"),
    (("--bridge-out", "book", CHANNEL, "1", "--bridge-out", "book", CHANNEL, "2"),
     "bridged twice"),
    (("--bridge-out", "book", CHANNEL, "1", "--book-from", CHANNEL, "2"), "from one place"),
    (("--book-from", CHANNEL, "ten"), "not a non-negative integer"),
])
def test_bad_firm_options_are_refused_in_one_line(argv, message):
    if "--aeron-dir DIR" not in message:
        argv = ("--aeron-dir", "d", *argv)
    with pytest.raises(ConfigError, match=message):
        parse(*argv)


def test_a_composite_profile_cannot_drop_its_market_data_agents():
    links = FirmLinks(aeron_dir="d", book_from=Bridge("book", CHANNEL, 10))
    with pytest.raises(ConfigError, match="one process per agent"):
        Launcher(RunOptions(firm=links, profile="dev-2core-lowlat"))
