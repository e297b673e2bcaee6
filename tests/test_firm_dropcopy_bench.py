"""``hft bench dropcopy`` runs end to end (both sync policies, every batch size) and reports
what it measured. Counts and shape only: no timing is asserted."""

from __future__ import annotations

import json

import pytest

from pipeline import cli

pytestmark = pytest.mark.timeout(300)


def test_bench_dropcopy_json(capsys):
    assert cli.main(["bench", "dropcopy", "--json", "--messages", "5", "--rounds", "1",
                     "--batches", "1,4"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["sync_interval"], r["batch"]): r for r in out["rows"]}
    assert set(rows) == {(s, b) for s in ("always", "2m") for b in (1, 4)}
    for r in rows.values():
        assert r["messages"] == 5 and r["failures"] == 0
        assert 0 < r["ack_p50_us"] <= r["ack_p99_us"]
        assert r["records_per_s"] > 0
    assert set(out["ratios"]) == {"batch 1: always/2m records_per_s",
                                  "batch 4: always/2m records_per_s"}
