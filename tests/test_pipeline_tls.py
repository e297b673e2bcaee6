"""The whole pipeline over TLS against ``hft sim --tls`` (``hft run --tls``): wss:// market
data decrypted in the feed's jitted loop, https:// snapshots, FIX over TLS from the
gateway's jitted duty; the same checks as the plain run, and no key material logged."""

from __future__ import annotations

import os

import pytest
from pipeline_checks import assert_traded_and_clean, run_pipeline
from tls_peers import assert_no_key_in

from pipeline.launch.launcher import RUN_DIR

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.timeout(300)
def test_full_pipeline_over_tls(tmp_path):
    name = f"tls{os.getpid()}"
    logs: list[str] = []
    s = run_pipeline(name, tmp_path / "summary.json", 20, "--tls", outputs=logs)
    assert_traded_and_clean(s, name)
    c = s["counters"]
    assert c["gateway.tls.handshakes"] >= 1 and c["gateway.tls.handshake_failures"] == 0
    assert c["gateway.tls.cut_or_error"] == 0
    text = "\n".join(logs)
    assert "TLSv1.3" in text  # the feed's and the gateway's handshakes were logged
    keys = RUN_DIR / name / "sim" / "tls"
    assert list(keys.glob("*.key")), "the simulator's generated keys are where expected"
    assert_no_key_in(text, keys)
