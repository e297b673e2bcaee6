"""The whole pipeline against the simulator, as a user runs it (``hft run``)."""

from __future__ import annotations

import os

import pytest
from pipeline_checks import assert_traded_and_clean, run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.timeout(240)
def test_full_pipeline_quotes_fills_and_shuts_down_clean(tmp_path):
    name = f"e2e{os.getpid()}"
    s = run_pipeline(name, tmp_path / "summary.json", 20)
    assert_traded_and_clean(s, name)
    # risk denials, broken down by reason (each reason is its own gateway counter)
    assert sum(s["denied"]["by_reason"].values()) == s["denied"]["total"]
