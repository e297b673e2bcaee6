"""``hft bench tls``'s two same-run parts in a quick mode: md throughput through
``feed_once`` (plain and TLS rounds, every frame parsed and every diff applied) and the
send after an idle gap (every row measured, one record per write, no per-write buffer
release). Counts and shape only: no timing is asserted."""

from __future__ import annotations

import argparse

import pytest

from bench import tls, tls_cold, tls_md

pytestmark = [pytest.mark.spin, pytest.mark.timeout(600)]  # both poll a core for a while


def _args(**kw) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    tls.add_arguments(p)
    return p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


def test_md_throughput_rounds_parse_every_frame_plain_and_tls():
    rows, extra = tls_md.run(_args(diffs=40, small=2, md_rounds=2))
    assert [(r["path"].split()[0], r["rounds"]) for r in rows] == [("plain", 2), ("TLS", 2)]
    assert all(r["frames/s"] > 0 and r["ns/frame"] > 0 for r in rows)
    m = extra["md_tls_vs_plain_throughput"]
    assert m["frames_per_round"] == 40 * (1 + 2 * 2) and m["depth_diffs_per_round"] == 40
    lo, hi = m["paired_ratio_range"]
    assert 0 < lo <= m["paired_tls_over_plain_rate_median"] <= hi
    assert m["tls"].startswith("TLS_")  # the TLS rounds did run over TLS


def test_send_after_gap_measures_every_case():
    rows, extra = tls_cold.run(_args(samples=2, gap_ms=1, warm_us=50))
    assert len(rows) == 2 + len(tls_cold.CASES)
    assert all(r["samples"] > 0 and 0 < r["p50_ns"] <= r["p99_ns"] for r in rows)
    # one 200-byte record: 5-byte header, the content type byte, a 16-byte tag (TLS 1.3)
    assert extra["record_bytes"] == {"plaintext": 200, "ciphertext": 222}
    assert extra["release_buffers"] is False
    shadow = extra["tls"].split(", shadow ")
    assert shadow[0] == shadow[1]  # the shadow session is alike to the real one
